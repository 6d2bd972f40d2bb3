"""Export of a cascade whose AT-net hears phones: SavedModel on precomputed features, TF-Lite with a
`phone_window` input, phone runs in the int8 calibration sets, and the mobile demo's phone front end."""

import dataclasses
import json
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.evaluation.metrics import psnr
from atvg_tf.frontend import phones
from atvg_tf.frontend.audio import load_audio
from atvg_tf.frontend.image import to_uint8, to_unit
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.models.atnet import audio_inputs, build_atnet
from atvg_tf.models.config import ATNetConfig
from tests.helpers import REPO, model_folder_with

sys.path.insert(0, os.path.join(REPO, "mobile_demo"))
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from atvg_lite import FrameInputs, LiteTalkingFace, frame_count, pcm_window  # noqa: E402


def _cascade(audio_features: str) -> TalkingFaceModel:
    """A `small` AT-net with random weights hearing `audio_features`, with the packaged model's VG-net and PCA."""
    default = TalkingFaceModel.load()
    atnet = build_atnet(dataclasses.replace(ATNetConfig.preset("small"), audio_features=audio_features))
    return TalkingFaceModel(atnet, default.vgnet, default.pca, default.info)


@pytest.fixture(scope="module")
def built_atnet():
    keras.utils.set_random_seed(0)
    return build_atnet(dataclasses.replace(ATNetConfig.preset("small"), audio_features="phones"))


@pytest.fixture(scope="module")
def phone_model_dir(built_atnet, tmp_path_factory):
    """A model folder: the phone AT-net beside the packaged model's VG-net, PCA and training.json, with
    a motion gain and rest_on_silence (so the exports' silence offset is checked on phones)."""
    return model_folder_with(built_atnet, tmp_path_factory.mktemp("phone_model"))


@pytest.fixture(scope="module")
def phone_model(phone_model_dir):
    """The cascade with the phone AT-net as it comes back from the folder."""
    model = TalkingFaceModel.load(phone_model_dir)
    assert model.rests_on_silence and model.landmark_space.motion_gain == 1.6
    return model


@pytest.fixture(scope="module")
def clip(shared_data, phone_model, tmp_path_factory):
    """3 s of real speech, its phone ids and windows, and an avatar (written where the TF-Lite export goes)."""
    from atvg_tf.export.tflite import write_avatar

    folder = tmp_path_factory.mktemp("phone_tflite")
    avatar = np.load(write_avatar(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"), str(folder), phone_model))
    waveform = load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[: 16000 * 3]
    ids = phones.phone_windows(waveform)
    return {"folder": str(folder), "waveform": waveform, "phone_ids": ids, "windows": {"phone_windows": phones.one_hot(ids)},
            "identity_frame": avatar["identity_frame"], "identity_landmarks": avatar["identity_landmarks"]}


def test_the_phone_atnet_survives_save_and_load(built_atnet, phone_model):
    assert audio_inputs(phone_model.atnet) == phone_model.audio_inputs == ("phone_windows",)
    rng = np.random.default_rng(0)
    inputs = {"phone_windows": phones.one_hot(rng.integers(0, phones.NUM_PHONES, (1, 10, 28))),
              "identity_pca_codes": rng.normal(0, 1, (1, 6)).astype(np.float32)}
    np.testing.assert_allclose(phone_model.atnet.predict_on_batch(inputs)["pca_codes"], built_atnet.predict_on_batch(inputs)["pca_codes"],
                               atol=1e-6)


def test_streaming_graphs_follow_the_audio_inputs():
    """atnet_step takes one window per audio input (in the model's order); mfcc.tflite only for MFCC models."""
    from atvg_tf.export.saved_model import CascadeGraph, signature_names
    from atvg_tf.export.tflite import StreamingGraphs

    expected = {"mfcc": (["mfcc_window"], True), "phones": (["phone_window"], False), "mfcc+phones": (["mfcc_window", "phone_window"], True),
                "mfcc+phone_head": (["mfcc_window", "phone_posterior"], True)}
    for features, (windows, with_mfcc) in expected.items():
        model = _cascade(features)
        functions = StreamingGraphs(model).functions()
        assert ("mfcc" in functions) == with_mfcc
        specs = functions["atnet_step"][1]
        assert [spec.name for spec in specs[: len(windows) + 1]] == [*windows, "identity_landmarks"]
        shapes = {spec.name: spec.shape.as_list() for spec in specs}
        assert shapes.get("phone_window", [1, 1, 28, 40]) == shapes.get("phone_posterior", [1, 1, 28, 40]) == [1, 1, 28, 40]
        assert shapes.get("mfcc_window", [1, 1, 28, 12]) == [1, 1, 28, 12]
        assert [spec.name for spec in CascadeGraph(model).audio_specs()] == list(model.audio_inputs)
        assert signature_names(model) == (("serving_default", "generate_from_mfcc", "landmarks") if features == "mfcc"
                                          else ("serving_default", "landmarks"))


def test_packaged_calibration_set_carries_phone_runs(phone_model):
    """The shipped speech comes with the phone ids of the same frames; a phone model's examples carry them one-hot."""
    from atvg_tf.export.tflite import CALIBRATION_FILE, StreamingGraphs, calibration_samples, packaged_calibration_examples

    with np.load(CALIBRATION_FILE) as data:
        ids, mfcc = data["phone_windows"], data["mfcc_windows"]
    assert ids.dtype == np.uint8 and ids.shape == mfcc.shape[:3] == (16, 16, 28) and ids.max() < phones.NUM_PHONES
    assert (ids != 0).mean() > 0.3  # speech, not silence
    np.testing.assert_array_equal(ids[:, 1:, :-4], ids[:, :-1, 4:])  # consecutive frames: windows 4 rows (40 ms) apart
    examples = packaged_calibration_examples(phone_model)
    first = [next(examples) for _ in range(17)]
    assert np.array_equal(first[0]["phone_windows"], first[16]["phone_windows"])  # 16 runs, cycled
    for example in first[:16]:
        assert example["phone_windows"].shape == (1, 16, 28, 40) and example["phone_windows"].dtype == np.float32
        np.testing.assert_array_equal(example["phone_windows"].sum(axis=-1), 1.0)
    samples = calibration_samples(StreamingGraphs(phone_model), packaged_calibration_examples(phone_model), count=20)
    window = samples["atnet_step"][3]["phone_window"]
    assert window.shape == (1, 1, 28, 40) and "mfcc_window" not in samples["atnet_step"][3]
    assert not np.allclose(samples["atnet_step"][1]["lstm_0_h"], 0)  # states carried through each run


@pytest.fixture(scope="module")
def served(phone_model, tmp_path_factory):
    """The phone cascade's SavedModel version folder."""
    from atvg_tf.export.saved_model import export_saved_model

    return export_saved_model(phone_model, str(tmp_path_factory.mktemp("serving") / "atvg"))


@pytest.mark.slow
def test_saved_model_takes_phone_windows(phone_model, clip, served):
    signatures = tf.saved_model.load(served).signatures
    assert set(signatures) == {"serving_default", "landmarks"}
    serving = signatures["serving_default"]
    assert set(serving.structured_input_signature[1]) == {"phone_windows", "identity_frame", "identity_landmarks"}
    assert serving.structured_input_signature[1]["phone_windows"].shape.as_list() == [None, 28, 40]
    assert set(signatures["landmarks"].structured_input_signature[1]) == {"phone_windows", "identity_landmarks"}

    frame, marks = clip["identity_frame"], clip["identity_landmarks"]
    landmarks = phone_model.predict_landmarks(clip["windows"], marks)
    space = phone_model.landmark_space
    reference = phone_model.vgnet.predict_on_batch({"identity_frame": to_unit(frame)[None], "identity_landmarks": space.vgnet_identity(marks),
                                                    "landmarks": space.vgnet_landmarks(landmarks, marks)})
    served_out = serving(phone_windows=tf.constant(clip["windows"]["phone_windows"]), identity_frame=tf.constant(frame),
                         identity_landmarks=tf.constant(marks))
    assert served_out["frames"].shape == (75, 128, 128, 3)
    np.testing.assert_allclose(served_out["landmarks"].numpy(), landmarks, atol=1e-4)
    np.testing.assert_allclose(served_out["frames"].numpy(), reference["frames"][0], atol=1e-4)
    np.testing.assert_allclose(served_out["attention"].numpy(), reference["attention"][0], atol=1e-4)
    rendered = phone_model.render(frame, marks, landmarks)["frames"]
    assert np.abs(to_uint8(served_out["frames"].numpy()).astype(int) - rendered).max() <= 1
    only = signatures["landmarks"](phone_windows=tf.constant(clip["windows"]["phone_windows"]), identity_landmarks=tf.constant(marks))
    np.testing.assert_allclose(only["landmarks"].numpy(), landmarks, atol=1e-4)


@pytest.mark.slow
def test_make_request_sends_phone_windows_to_saved_model_cli(phone_model, phone_model_dir, served, shared_data, tmp_path):
    """export/make_request.py --model computes the phone windows; saved_model_cli runs them as TF-Serving would."""
    script = os.path.join(REPO, "export", "make_request.py")
    image = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    audio = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    made = subprocess.run([sys.executable, script, "--model", phone_model_dir, "--image", image, "--audio", audio,
                           "--npy", str(tmp_path / "inputs")], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    names = ("phone_windows", "identity_frame", "identity_landmarks")
    assert sorted(os.listdir(tmp_path / "inputs")) == sorted(f"{name}.npy" for name in names)
    sent = {name: np.load(tmp_path / "inputs" / f"{name}.npy") for name in names}
    assert sent["phone_windows"].shape == (150, 28, 40) and sent["phone_windows"].dtype == np.float32
    np.testing.assert_array_equal(sent["phone_windows"], phones.one_hot(phones.phone_windows(load_audio(audio))))
    inputs = ";".join(f"{name}={tmp_path / 'inputs' / name}.npy" for name in names)
    command = ["saved_model_cli", "run", "--dir", served, "--tag_set", "serve", "--signature_def", "serving_default",
               "--inputs", inputs, "--outdir", str(tmp_path / "outputs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    landmarks = phone_model.predict_landmarks({"phone_windows": sent["phone_windows"]}, sent["identity_landmarks"])
    np.testing.assert_allclose(np.load(tmp_path / "outputs" / "landmarks.npy"), landmarks, atol=1e-4)
    assert np.load(tmp_path / "outputs" / "frames.npy").shape == (150, 128, 128, 3)


@pytest.fixture(scope="module")
def exported(phone_model, clip):
    """float32 and int8 (calibrated on the packaged set) TF-Lite models of the phone cascade, beside the avatar."""
    from atvg_tf.export.tflite import export_tflite

    export_tflite(phone_model, clip["folder"], ("float32", "int8"), calibration_count=32)
    return clip["folder"]


@pytest.mark.slow
def test_tflite_files_and_the_phone_window_input(exported, phone_model):
    names = sorted(f for f in os.listdir(exported) if f.endswith(".tflite"))
    assert names == sorted(f"{n}.{v}.tflite" for n in ("identity_encoder", "atnet_step", "vgnet_step") for v in ("float32", "int8"))
    for variant in ("float32", "int8"):
        details = Interpreter(model_path=os.path.join(exported, f"atnet_step.{variant}.tflite")).get_signature_runner().get_input_details()
        assert list(details["phone_window"]["shape"]) == [1, 1, 28, 40] and "mfcc_window" not in details
    with open(os.path.join(exported, "inference.json")) as handle:
        assert json.load(handle) == {"rest_on_silence": True, "silence_frames": 16, "silence_settled": 4,
                                     "hybrid_motion_gain": phone_model.hybrid_motion_gain,
                                     "motion_level": phone_model.motion_level, "motion_gain": phone_model.landmark_space.motion_gain,
                                     "mfcc_normalization": None}


@pytest.mark.slow
def test_tflite_streaming_equals_the_keras_streamer(phone_model, clip, exported):
    """Both subtract the silence offset (rest_on_silence): the TF-Lite engine finds it with atnet_step."""
    frames = 12
    assert np.abs(phone_model.silence_offset(clip["identity_landmarks"])).max() > 0.1  # far above the tolerance below
    expected = phone_model.streamer(clip["identity_frame"], clip["identity_landmarks"])({"phone_windows": clip["windows"]["phone_windows"][:frames]})
    runs = {}
    for variant in ("float32", "int8"):
        engine = LiteTalkingFace(exported, variant)
        assert engine.uses_phones and not engine.uses_mfcc and engine.mfcc is None
        engine.start(clip["identity_frame"], clip["identity_landmarks"])
        steps = [engine.step(phone_ids=clip["phone_ids"][t]) for t in range(frames)]
        runs[variant] = (np.stack([frame for frame, _ in steps]), np.stack([marks for _, marks in steps]))
    np.testing.assert_allclose(runs["float32"][1], expected["landmarks"], atol=1e-2)
    assert psnr(expected["frames"], runs["float32"][0]) >= 40.0
    int8_frames, int8_marks = runs["int8"]
    assert np.isfinite(int8_marks).all() and int8_frames.shape == (frames, 128, 128, 3)
    error, score = float(np.abs(int8_marks - expected["landmarks"]).max()), psnr(expected["frames"], int8_frames)
    print(f"int8 vs Keras: landmarks max error {error:.2f} px, PSNR {score:.1f}")
    assert error < 4.0 and score >= 30.0
    with pytest.raises(ValueError, match="phone ids"):
        engine.step(pcm_window(clip["waveform"], 0))


@pytest.mark.slow
def test_live_frame_inputs_equal_the_recording_windows(clip):
    """Block by block, MFCC and phone inputs come out frame-aligned and equal to the one-shot windows of the recording."""
    engine = types.SimpleNamespace(uses_mfcc=True, uses_phones=True, uses_posteriors=False, uses_embeddings=False, phones=phones)
    live = FrameInputs(engine)
    waveform = clip["waveform"]
    pushed = [inputs for start in range(0, waveform.size, 1000) for inputs in live.push(waveform[start : start + 1000])]
    assert 0 < len(pushed) < frame_count(waveform.size) - 10  # phones hold frames back (up to 0.56 s)
    received = pushed + live.finish()
    assert len(received) == frame_count(waveform.size) == len(clip["phone_ids"])
    for t, inputs in enumerate(received):
        np.testing.assert_array_equal(inputs["pcm"], pcm_window(waveform, t))
        np.testing.assert_array_equal(inputs["phone_ids"], clip["phone_ids"][t])
    assert live.phone_seconds > 0


@pytest.mark.slow
def test_the_mobile_demo_runs_a_phone_export_without_tensorflow(exported, shared_data, tmp_path):
    output = tmp_path / "demo.mp4"
    demo = os.path.join(REPO, "mobile_demo", "demo.py")
    argv = [demo, "--models", exported, "--variant", "float32", "--crop", "--audio",
            os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"), "--output", str(output)]
    runner = f"import sys, runpy; sys.modules['tensorflow'] = None; sys.argv = {argv!r}; runpy.run_path({demo!r}, run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "150 frames, first frame after" in result.stdout and "phone recognition" in result.stdout
    assert output.stat().st_size > 0


@pytest.mark.slow
def test_calibration_from_a_prepared_folder_with_phones(phone_model, prepared_dir):
    from atvg_tf.export.tflite import StreamingGraphs, calibration_samples, prepared_calibration_examples

    examples = prepared_calibration_examples(prepared_dir, phone_model.crop_size, audio_inputs=phone_model.audio_inputs)
    samples = calibration_samples(StreamingGraphs(phone_model), examples, count=20)
    assert {name: len(values) for name, values in samples.items()} == {"identity_encoder": 20, "atnet_step": 20, "vgnet_step": 20}
    window = samples["atnet_step"][0]["phone_window"]
    assert window.shape == (1, 1, 28, 40)
    np.testing.assert_array_equal(window.sum(axis=-1), 1.0)
