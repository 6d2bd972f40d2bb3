"""`atvg export --format tflite`: builtin ops only, streaming parity with Keras, quantized variants.

The packaged default model hears phones and rests on silence (`inference.json`): its export has no
`mfcc.tflite`, and the engine subtracts the silence offset it computes with `atnet_step`. The checks
follow what the default model hears and says; the MFCC front end (`mfcc.tflite`), an MFCC engine and
the silence offset are also tested on the float32 export of an MFCC-only model that rests on silence
(`mfcc_model`, tests/export/conftest.py), whatever the default model is.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from atvg_tf.errors import InputError
from atvg_tf.evaluation.metrics import psnr, ssim
from atvg_tf.frontend import phones
from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.audio_windows import audio_windows
from atvg_tf.generation.model import SILENCE_FRAMES, SILENCE_SETTLED, TalkingFaceModel
from tests.helpers import REPO

sys.path.insert(0, os.path.join(REPO, "mobile_demo"))
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from atvg_lite import LiteTalkingFace, frame_count, pcm_window  # noqa: E402

VARIANTS = ("float32", "float16", "dynamic", "int8")
INFERENCE = {"rest_on_silence": True, "silence_frames": SILENCE_FRAMES, "silence_settled": SILENCE_SETTLED, "hybrid_motion_gain": 1.0}


@pytest.fixture(scope="module")
def exported(shared_data, tmp_path_factory):
    """The default model's TF-Lite models as the README's command writes them (no flags: int8 calibrated
    on the set shipped in the package), plus an avatar."""
    folder = tmp_path_factory.mktemp("tflite")
    command = [sys.executable, "-m", "atvg_tf.cli", "export", "--format", "tflite", "--output", str(folder),
               "--avatar", os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    return str(folder)


@pytest.fixture(scope="module")
def default_model():
    return TalkingFaceModel.load()


@pytest.fixture(scope="module")
def mfcc_exported(mfcc_model, exported, tmp_path_factory):
    """The MFCC-only model's float32 streaming models (and mfcc.tflite), beside the default export's
    avatar (both models align faces alike)."""
    from atvg_tf.export.tflite import export_tflite

    folder = str(tmp_path_factory.mktemp("mfcc_tflite"))
    export_tflite(mfcc_model, folder, ("float32",))
    shutil.copy(os.path.join(exported, "avatar.npz"), folder)
    return folder


@pytest.fixture(scope="module")
def clip(shared_data, exported, default_model):
    """Real speech and the avatar's face, with the Keras models' landmarks (silence offset included) and frames."""
    avatar = np.load(os.path.join(exported, "avatar.npz"))
    waveform = load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[: 16000 * 3]
    landmarks = default_model.predict_landmarks(_live_windows(default_model, waveform), avatar["identity_landmarks"])
    keras_frames = default_model.render(avatar["identity_frame"], avatar["identity_landmarks"], landmarks)["frames"]
    return {"waveform": waveform, "avatar": avatar, "landmarks": landmarks, "keras_frames": keras_frames}


def _live_windows(model, waveform: np.ndarray) -> dict:
    """The model's windows as the engine's `step` sees them: voice normalisation without a lead."""
    normalization = model.mfcc_normalization and {**model.mfcc_normalization, "lead_frames": 1}
    return audio_windows(waveform, model.audio_inputs, None, normalization)


def _step_inputs(engine: LiteTalkingFace, waveform: np.ndarray) -> list[dict]:
    """`engine.step`'s arguments for every frame of a recording: what the export's AT-net hears."""
    count = frame_count(waveform.size)
    ids = phones.phone_windows(waveform, count) if engine.uses_phones else None
    embeddings = engine.embedding.embedding_windows(waveform, count, engine.embedding_activations) if engine.uses_embeddings else None
    return [{**({"pcm": pcm_window(waveform, t)} if engine.uses_mfcc else {}),
             **({"phone_ids": ids[t]} if engine.uses_phones else {}),
             **({"embeddings": embeddings[t]} if engine.uses_embeddings else {})} for t in range(count)]


def _run(folder, avatar, waveform, variant):
    engine = LiteTalkingFace(folder, variant, threads=2)
    engine.start(avatar["identity_frame"], avatar["identity_landmarks"])
    steps = [engine.step(**inputs) for inputs in _step_inputs(engine, waveform)]
    return np.stack([frame for frame, _ in steps]), np.stack([marks for _, marks in steps])


@pytest.mark.slow
def test_only_builtin_ops(exported, default_model, mfcc_exported):
    files = sorted(f for f in os.listdir(exported) if f.endswith(".tflite"))
    front_end = ["mfcc.tflite"] if "mfcc_windows" in default_model.audio_inputs else []  # none for the phones of the packaged model
    assert files == sorted(front_end + [f"{n}.{v}.tflite" for n in ("identity_encoder", "atnet_step", "vgnet_step") for v in VARIANTS])
    mfcc_files = sorted(f for f in os.listdir(mfcc_exported) if f.endswith(".tflite"))
    assert mfcc_files == sorted(["mfcc.tflite", "identity_encoder.float32.tflite", "atnet_step.float32.tflite", "vgnet_step.float32.tflite"])
    for path in [os.path.join(exported, f) for f in files] + [os.path.join(mfcc_exported, f) for f in mfcc_files]:
        interpreter = Interpreter(model_path=path)
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")], (path, ops)
        assert "WHILE" not in ops, path  # unrolled steps: no control flow for the runtime to handle


@pytest.mark.slow
def test_inference_settings_are_written(exported, default_model, mfcc_exported, mfcc_model):
    """inference.json tells the app whether to rest on silence, with the Keras model's silence run,
    the motion gain atnet_step applies and the voice normalisation."""
    expected = {**INFERENCE, "rest_on_silence": default_model.rests_on_silence, "motion_gain": default_model.landmark_space.motion_gain,
                "hybrid_motion_gain": default_model.hybrid_motion_gain, "motion_level": default_model.motion_level,
                "mfcc_normalization": default_model.mfcc_normalization}
    mfcc_expected = {**INFERENCE, "motion_gain": mfcc_model.landmark_space.motion_gain, "hybrid_motion_gain": mfcc_model.hybrid_motion_gain,
                     "motion_level": mfcc_model.motion_level, "mfcc_normalization": mfcc_model.mfcc_normalization}
    for folder, settings in ((exported, expected), (mfcc_exported, mfcc_expected)):
        with open(os.path.join(folder, "inference.json")) as handle:
            assert json.load(handle) == settings
    with open(os.path.join(exported, "README.md")) as handle:
        assert "inference.json" in handle.read()
    for variant in VARIANTS:
        assert LiteTalkingFace(exported, variant).inference == expected


@pytest.mark.slow
def test_the_mfcc_model_equals_the_front_end(mfcc_exported, clip):
    runner = Interpreter(model_path=os.path.join(mfcc_exported, "mfcc.tflite")).get_signature_runner()
    expected = mfcc_windows(clip["waveform"])
    for t in (0, 1, 37, len(expected) - 1):
        window = runner(pcm=pcm_window(clip["waveform"], t))["mfcc_window"][0, 0]
        np.testing.assert_allclose(window, expected[t], atol=2e-3, rtol=1e-4)


@pytest.mark.slow
def test_float32_streaming_equals_keras(exported, clip, default_model, shared_data):
    """Landmarks (silence offset included) and frames of the default model's export equal Keras's."""
    avatar = clip["avatar"]
    if default_model.rests_on_silence:
        offset = default_model.silence_offset(avatar["identity_landmarks"])
        assert np.abs(offset).max() > 0.1  # far above the tolerance below: the comparison sees the offset
    frames, landmarks = _run(exported, avatar, clip["waveform"], "float32")
    assert frames.shape == clip["keras_frames"].shape == (75, 128, 128, 3)
    np.testing.assert_allclose(landmarks, clip["landmarks"], atol=1e-2)
    assert psnr(clip["keras_frames"], frames) >= 40.0
    # A GRID clip's own sound (MPEG audio at 44.1 kHz) as well.
    waveform = load_audio(os.path.join(shared_data, "grid", "s1", "bbaf4p.mpg"))
    expected_marks = default_model.predict_landmarks(_live_windows(default_model, waveform), avatar["identity_landmarks"])
    expected = default_model.render(avatar["identity_frame"], avatar["identity_landmarks"], expected_marks)["frames"]
    frames, landmarks = _run(exported, avatar, waveform, "float32")
    np.testing.assert_allclose(landmarks, expected_marks, atol=1e-2)
    assert len(frames) == len(expected) and psnr(expected, frames) >= 40.0


@pytest.mark.slow
@pytest.mark.parametrize("export", ["default", "mfcc"])
def test_the_engine_rests_on_silence(export, request, clip):
    """start() finds the Keras model's silence offset (zero unless it rests on silence) with atnet_step;
    silence then gives the photo's own landmarks."""
    folder = request.getfixturevalue("exported" if export == "default" else "mfcc_exported")
    model = request.getfixturevalue("default_model" if export == "default" else "mfcc_model")
    avatar = clip["avatar"]
    marks = avatar["identity_landmarks"]
    engine = LiteTalkingFace(folder, "float32")
    engine.start(avatar["identity_frame"], marks)
    np.testing.assert_allclose(engine._offset.reshape(68, 2), model.silence_offset(marks), atol=1e-2)
    if model.rests_on_silence:  # the packaged model and mfcc_model
        assert np.abs(engine._offset).max() > 0.1
        silence = np.zeros(SILENCE_FRAMES * 640, np.float32)
        landmarks = np.stack([engine.step(**inputs)[1] for inputs in _step_inputs(engine, silence)])
        np.testing.assert_allclose(landmarks[SILENCE_SETTLED:].mean(axis=0), marks, atol=1e-3)


@pytest.mark.slow
def test_mfcc_float32_streaming_equals_keras(mfcc_exported, mfcc_model, clip, tmp_path):
    """An MFCC export (mfcc.tflite + atnet_step on MFCC windows), offset included; without
    inference.json (an export of an earlier version) the engine leaves the landmarks uncorrected."""
    avatar = clip["avatar"]
    marks = avatar["identity_landmarks"]
    windows = mfcc_windows(clip["waveform"])
    expected_marks = mfcc_model.predict_landmarks(windows, marks)
    expected = mfcc_model.render(avatar["identity_frame"], marks, expected_marks)["frames"]
    engine = LiteTalkingFace(mfcc_exported, "float32")
    assert engine.uses_mfcc and not engine.uses_phones and engine.phones is None
    frames, landmarks = _run(mfcc_exported, avatar, clip["waveform"], "float32")
    assert frames.shape == (75, 128, 128, 3)
    np.testing.assert_allclose(landmarks, expected_marks, atol=1e-2)
    assert psnr(expected, frames) >= 40.0
    offset = mfcc_model.silence_offset(marks)
    assert np.abs(offset).max() > 0.1
    older = tmp_path / "older"
    shutil.copytree(mfcc_exported, older, ignore=shutil.ignore_patterns("inference.json"))
    _, uncorrected = _run(str(older), avatar, clip["waveform"], "float32")
    np.testing.assert_allclose(uncorrected, expected_marks + offset, atol=1e-2)
    engine.start(avatar["identity_frame"], marks)
    with pytest.raises(ValueError, match="PCM"):
        engine.step(phone_ids=np.zeros(28, np.int64))


@pytest.mark.slow
def test_quantized_variants_stay_close_to_float32(exported, clip):
    reference, _ = _run(exported, clip["avatar"], clip["waveform"], "float32")
    scores = {}
    for variant in VARIANTS[1:]:
        frames, _ = _run(exported, clip["avatar"], clip["waveform"], variant)
        scores[variant] = (psnr(reference, frames), float(np.mean([ssim(a, b) for a, b in zip(reference, frames)])))
    print("PSNR / SSIM vs float32:", {k: (round(p, 1), round(s, 3)) for k, (p, s) in scores.items()})
    assert scores["float16"][0] >= 40.0
    assert scores["int8"][0] >= 30.0, scores


@pytest.mark.slow
def test_sizes_shrink_with_quantization(exported):
    size = lambda network, variant: os.path.getsize(os.path.join(exported, f"{network}.{variant}.tflite"))  # noqa: E731
    assert size("vgnet_step", "float16") < 0.6 * size("vgnet_step", "float32")
    assert size("vgnet_step", "int8") < 0.35 * size("vgnet_step", "float32")
    assert size("vgnet_step", "dynamic") < 0.35 * size("vgnet_step", "float32")


@pytest.mark.slow
def test_live_windows_equal_the_recording_windows(clip):
    from atvg_lite import PcmWindows

    live = PcmWindows()
    waveform = clip["waveform"]
    windows = [w for start in range(0, waveform.size, 1000) for w in live.push(waveform[start : start + 1000])]
    assert len(windows) > 60
    for t, window in enumerate(windows):
        np.testing.assert_array_equal(window, pcm_window(waveform, t))


@pytest.mark.slow
@pytest.mark.parametrize("export, variant, renderer", [("default", "int8", "hybrid"), ("mfcc", "float32", "vgnet")])
def test_the_mobile_demo_writes_a_video_with_sound_without_tensorflow(export, variant, renderer, request, shared_data, tmp_path):
    """The default export (the packaged model's) with the hybrid renderer, and an MFCC export resting
    on silence (PCM windows through mfcc.tflite, the silence offset) with the vgnet renderer."""
    import av
    import imageio_ffmpeg

    folder = request.getfixturevalue("exported" if export == "default" else "mfcc_exported")
    model = request.getfixturevalue("default_model" if export == "default" else "mfcc_model")
    with open(os.path.join(folder, "inference.json")) as handle:
        assert json.load(handle)["rest_on_silence"] == model.rests_on_silence
    output = tmp_path / "demo.mp4"
    demo = os.path.join(REPO, "mobile_demo", "demo.py")
    argv = [demo, "--models", folder, "--variant", variant, "--renderer", renderer, "--audio",
            os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"), "--output", str(output)]
    # TensorFlow made unimportable: the demo must run on LiteRT, numpy and OpenCV (and PocketSphinx) alone.
    runner = f"import sys, runpy; sys.modules['tensorflow'] = None; sys.argv = {argv!r}; runpy.run_path({demo!r}, run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "ATVG_FFMPEG": imageio_ffmpeg.get_ffmpeg_exe()})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "150 frames, first frame after" in result.stdout and "p95" in result.stdout
    assert ("phone recognition" in result.stdout) == ("phone_windows" in model.audio_inputs)
    # The embedding and activation heads both run the speech embedding network.
    assert ("speech embedding" in result.stdout) == bool({"speech_embeddings", "speech_activations"} & set(model.audio_inputs))
    with av.open(str(output)) as container:
        frames = [f for f in container.decode(video=0)]
        audio = container.streams.audio[0]
        assert abs(float(audio.duration * audio.time_base) - 6.0) < 0.1
    assert len(frames) == 150 and (frames[0].height, frames[0].width) == (224, 224)


@pytest.mark.slow
def test_calibration_from_a_prepared_folder(prepared_dir, mfcc_model):
    """--calibration PREPARED_DIR: realistic samples for every network, states carried through each sequence
    (an MFCC model here; test_phone_export.py calibrates a phone model on the same folder)."""
    from atvg_tf.export.tflite import StreamingGraphs, calibration_samples, prepared_calibration_examples

    model = mfcc_model
    examples = prepared_calibration_examples(prepared_dir, model.crop_size, audio_inputs=model.audio_inputs)
    samples = calibration_samples(StreamingGraphs(model), examples, count=20)
    assert {name: len(values) for name, values in samples.items()} == {"identity_encoder": 20, "atnet_step": 20, "vgnet_step": 20}
    frame = samples["identity_encoder"][0]["identity_frame"]
    assert frame.shape == (1, 128, 128, 3) and -1.0 <= frame.min() < frame.max() <= 1.0
    landmarks = samples["atnet_step"][0]["identity_landmarks"]
    assert landmarks.shape == (1, 136) and 10 < landmarks.mean() < 118  # crop pixels, not normalised
    # The second frame of a sequence starts from the first frame's LSTM state, not from zeros.
    assert not np.allclose(samples["atnet_step"][1]["lstm_0_h"], 0)
    window = samples["atnet_step"][0]["mfcc_window"]
    assert window.shape == (1, 1, 28, 12) and "phone_window" not in samples["atnet_step"][0]


def test_packaged_calibration_set_is_aligned_by_the_model():
    """The shipped faces are aligned the way the exported model aligns faces, and the speech comes as
    real MFCC and, for a model that hears phones (the default model), one-hot phone windows of the same frames."""
    from atvg_tf.export.tflite import packaged_calibration_examples

    model = TalkingFaceModel.load()
    examples = packaged_calibration_examples(model)
    first = [next(examples) for _ in range(17)]
    assert np.array_equal(first[0]["identity_frame"], first[16]["identity_frame"])  # 16 faces, cycled
    for example in first[:16]:
        landmarks = example["identity_landmarks"].reshape(68, 2)
        eyes = landmarks[36:48].mean(axis=0)
        assert 28 < eyes[1] < 48 and 52 < eyes[0] < 76, eyes  # eyes where the model's template puts them
        assert example["mfcc_windows"].shape == (1, 16, 28, 12) and np.isfinite(example["mfcc_windows"]).all()
        if "phone_windows" in model.audio_inputs:
            assert example["phone_windows"].shape == (1, 16, 28, 40)
            np.testing.assert_array_equal(example["phone_windows"].sum(axis=-1), 1.0)
        if "speech_activations" in model.audio_inputs:  # the packaged model's activation head
            assert example["speech_activations"].shape == (1, 16, 48, 96) and example["speech_activations"].std() > 0.3


def test_calibrating_a_model_whose_head_a_prepared_folder_cannot_feed_is_refused(tmp_path):
    """--calibration reads MFCC and phone windows; the packaged model's activation head would find
    none there, so the export stops before writing and says to use the shipped set."""
    from atvg_tf.export.tflite import export_tflite

    model = TalkingFaceModel.load()
    assert "speech_activations" in model.audio_inputs
    with pytest.raises(InputError, match="leave --calibration out"):
        export_tflite(model, str(tmp_path / "out"), ["int8"], calibration_dir=str(tmp_path))
    assert not (tmp_path / "out").exists()
