"""`atvg convert-official`: release-layout .pth files -> a model folder that `atvg generate` uses."""

import json
import os

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch", reason="the official-checkpoint tests need PyTorch: pip install '.[convert]'")

from atvg_tf.cli import main  # noqa: E402
from tests.convert.official_torch import ATNet, VGNet, randomize  # noqa: E402

pytestmark = pytest.mark.slow  # converts PyTorch checkpoints and generates a video


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Random release-architecture checkpoints saved as the release did (DataParallel `module.` prefix)."""
    folder = tmp_path_factory.mktemp("official")
    modules = {"atnet_lstm_18.pth": randomize(ATNet(), 4), "generator_23.pth": randomize(VGNet(), 5)}
    for name, module in modules.items():
        torch.save({f"module.{k}": v for k, v in module.state_dict().items()}, folder / name)
    return folder, modules


def _convert(capsys, folder, output, basics, atnet="atnet_lstm_18.pth", vgnet="generator_23.pth"):
    code = main(["convert-official", "--atnet", str(folder / atnet), "--vgnet", str(folder / vgnet),
                 "--basics", basics, "--output", str(output)])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def test_convert_writes_a_model_folder_that_generates(shared_data, checkpoints, tmp_path, capsys):
    from atvg_tf.generation.model import TalkingFaceModel

    folder, modules = checkpoints
    basics = os.path.join(shared_data, "atvgnet", "basics")
    # Folders of the user's beside the outputs, named as the temporary folders of earlier versions
    # were: both were deleted (issue 11 item 7); atvg now touches only its own `.atvg-*` temporaries.
    theirs = [tmp_path / "official.partial" / "notes.txt", tmp_path / "serving" / "1.partial" / "notes.txt"]
    for note in theirs:
        note.parent.mkdir(parents=True)
        note.write_text("the user's")
    code, _ = _convert(capsys, folder, tmp_path / "official", basics)
    assert code == 0
    model = TalkingFaceModel.load(str(tmp_path / "official"))
    assert model.pca.space == "procrustes" and model.pca.num_components == 6 and model.pca.scale == 5.0
    info = json.loads((tmp_path / "official" / "training.json").read_text())
    assert info["presets"] == {"atnet": "paper", "vgnet": "official"} and len(info["checkpoints"]["atnet"]["sha256"]) == 64
    assert info["landmark_backend"] == "dlib"
    from atvg_tf.generation.landmark_space import OfficialLandmarks

    assert isinstance(model.landmark_space, OfficialLandmarks)
    # The folder saves what it loads: the release's convention (official.npz) and presets included.
    from tests.helpers import assert_same_outputs

    model.save(str(tmp_path / "resaved"))
    resaved = TalkingFaceModel.load(str(tmp_path / "resaved"))
    assert isinstance(resaved.landmark_space, OfficialLandmarks) and resaved.landmark_backend == "dlib"
    assert json.loads((tmp_path / "resaved" / "training.json").read_text())["presets"]["vgnet"]["rnn"] == "conv_gru"
    assert_same_outputs(model, resaved, frames=2)
    rng = np.random.default_rng(0)
    codes, audio = rng.normal(size=(1, 6)).astype(np.float32), rng.normal(size=(1, 4, 28, 12)).astype(np.float32)
    with torch.no_grad():
        expected = modules["atnet_lstm_18.pth"](torch.tensor(codes), torch.tensor(audio)).numpy()
    got = model.atnet.predict_on_batch({"mfcc_windows": audio, "identity_pca_codes": codes})["pca_codes"]
    assert np.abs(got - expected).max() < 1e-4
    assert main(["export", "--format", "saved_model", "--model", str(tmp_path / "official"), "--output", str(tmp_path / "serving")]) == 0
    assert all(note.read_text() == "the user's" for note in theirs)
    import tensorflow as tf

    serving = tf.saved_model.load(str(tmp_path / "serving" / "1")).signatures["landmarks"]
    identity = model.pca.decode(np.zeros(6, np.float32))
    marks = serving(waveform=tf.constant(rng.normal(0, 0.1, 16000).astype(np.float32)), identity_landmarks=tf.constant(identity))
    assert marks["landmarks"].shape == (25, 68, 2) and np.isfinite(marks["landmarks"].numpy()).all()
    # The streaming TF-Lite models follow the same convention (float32 vs Keras on 10 frames of speech).
    import sys

    from atvg_tf.evaluation.metrics import psnr
    from atvg_tf.frontend.audio import load_audio, mfcc_windows

    photo = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    assert main(["export", "--format", "tflite", "--variants", "float32", "--model", str(tmp_path / "official"),
                 "--output", str(tmp_path / "lite"), "--avatar", photo]) == 0
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "mobile_demo"))
    from atvg_lite import LiteTalkingFace, pcm_window

    avatar = np.load(tmp_path / "lite" / "avatar.npz")
    speech = load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[:6400]
    engine = LiteTalkingFace(str(tmp_path / "lite"), "float32")
    engine.start(avatar["identity_frame"], avatar["identity_landmarks"])
    lite = np.stack([engine.step(pcm_window(speech, t))[0] for t in range(10)])
    expected_marks = model.predict_landmarks(mfcc_windows(speech), avatar["identity_landmarks"])
    expected = model.render(avatar["identity_frame"], avatar["identity_landmarks"], expected_marks)["frames"]
    assert psnr(expected, lite) >= 40.0
    from atvg_tf.evaluation.evaluate import evaluate

    report = evaluate([os.path.join(shared_data, "grid", "s1", "bbaf4p.mpg")], model, progress=False, renderers=("hybrid", "vgnet"),
                      max_frames=25)  # the paper-size networks on a CPU: a second of the clip shows it all
    assert np.isfinite(report["model"]["lmd"])
    # Both renderers draw the converted model's output (random weights here: any shape) into the clip's first frame.
    assert set(report["renderers"]) == {"hybrid", "vgnet"}
    assert all(np.isfinite(scores["sharpness_ratio"]) and np.isfinite(scores["static_region_error"]) for scores in report["renderers"].values())
    # Evaluation aligns clips as the model does: the release's templates and its dlib landmarks.
    assert report["landmarks"] == "dlib" and report["clips"][0]["alignment"] in ("release base_68", "release base_68_close")
    from atvg_tf.evaluation.evaluate import align_clip
    from atvg_tf.frontend.face.landmarks import create_landmark_detector

    with create_landmark_detector("dlib") as detector:
        clip = align_clip(os.path.join(shared_data, "grid", "s1", "bbaf4p.mpg"), detector, model.alignment)
    assert clip.alignment.alignment_points == tuple(range(27, 45))
    assert clip.alignment.template_points in model.landmark_space.templates
    output, second = tmp_path / "out.mp4", tmp_path / "second.wav"
    soundfile.write(second, load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[:20000], 16000)
    assert main(["generate", "--image", os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"), "--audio", str(second),
                 "--model", str(tmp_path / "official"), "--output", str(output), "--quiet"]) == 0  # the hybrid renderer, at the photo's size
    assert output.stat().st_size > 0


def test_bad_checkpoints_get_one_line_errors(shared_data, checkpoints, tmp_path, capsys):
    folder, _ = checkpoints
    basics = os.path.join(shared_data, "atvgnet", "basics")
    (folder / "notes.pth").write_text("not a checkpoint\n")
    real = (folder / "atnet_lstm_18.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(real[: len(real) // 2])
    cases = [
        ({"atnet": "notes.pth"}, "cannot read"),
        ({"atnet": "truncated.pth"}, "cannot read"),
        ({"atnet": "generator_23.pth"}, "is missing"),  # another model's checkpoint
        ({"vgnet": "missing.pth"}, "checkpoint not found"),
        ({"basics": str(tmp_path)}, "basics/ folder"),
    ]
    for index, (change, message) in enumerate(cases):
        output = tmp_path / f"out{index}"
        code, last = _convert(capsys, folder, output, **{"basics": basics, **change})
        assert code == 2 and last.startswith("atvg convert-official: error:") and message in last, (change, last)
        assert not output.exists() and not [name for name in os.listdir(tmp_path) if name.startswith(".atvg-")]
