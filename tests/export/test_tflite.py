"""`atvg export --format tflite`: builtin ops only, streaming parity with Keras, quantized variants."""

import os
import subprocess
import sys

import numpy as np
import pytest

from atvg_tf.evaluation.metrics import psnr, ssim
from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.generation.model import TalkingFaceModel
from tests.helpers import REPO

sys.path.insert(0, os.path.join(REPO, "mobile_demo"))
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from atvg_lite import LiteTalkingFace, frame_count, pcm_window  # noqa: E402

VARIANTS = ("float32", "float16", "dynamic", "int8")


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
def clip(shared_data, exported):
    """Real speech and the avatar's face, with the Keras models' frames for them."""
    avatar = np.load(os.path.join(exported, "avatar.npz"))
    waveform = load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[: 16000 * 3]
    model = TalkingFaceModel.load()
    landmarks = model.predict_landmarks(mfcc_windows(waveform), avatar["identity_landmarks"])
    keras_frames = model.render(avatar["identity_frame"], avatar["identity_landmarks"], landmarks)["frames"]
    return {"waveform": waveform, "avatar": avatar, "landmarks": landmarks, "keras_frames": keras_frames}


def _run(exported, clip, variant):
    engine = LiteTalkingFace(exported, variant, threads=2)
    engine.start(clip["avatar"]["identity_frame"], clip["avatar"]["identity_landmarks"])
    steps = [engine.step(pcm_window(clip["waveform"], t)) for t in range(frame_count(clip["waveform"].size))]
    return np.stack([frame for frame, _ in steps]), np.stack([marks for _, marks in steps])


@pytest.mark.slow
def test_only_builtin_ops(exported):
    files = [f for f in os.listdir(exported) if f.endswith(".tflite")]
    assert len(files) == 1 + 3 * len(VARIANTS)
    for name in files:
        interpreter = Interpreter(model_path=os.path.join(exported, name))
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")], (name, ops)
        assert "WHILE" not in ops, name  # unrolled steps: no control flow for the runtime to handle


@pytest.mark.slow
def test_the_mfcc_model_equals_the_front_end(exported, clip):
    runner = Interpreter(model_path=os.path.join(exported, "mfcc.tflite")).get_signature_runner()
    expected = mfcc_windows(clip["waveform"])
    for t in (0, 1, 37, len(expected) - 1):
        window = runner(pcm=pcm_window(clip["waveform"], t))["mfcc_window"][0, 0]
        np.testing.assert_allclose(window, expected[t], atol=2e-3, rtol=1e-4)


@pytest.mark.slow
def test_float32_streaming_equals_keras(exported, clip, shared_data):
    frames, landmarks = _run(exported, clip, "float32")
    assert frames.shape == clip["keras_frames"].shape == (75, 128, 128, 3)
    np.testing.assert_allclose(landmarks, clip["landmarks"], atol=1e-2)
    assert psnr(clip["keras_frames"], frames) >= 40.0
    # A GRID clip's own sound (MPEG audio at 44.1 kHz) as well.
    grid = {**clip, "waveform": load_audio(os.path.join(shared_data, "grid", "s1", "bbaf4p.mpg"))}
    model = TalkingFaceModel.load()
    avatar = clip["avatar"]
    expected_marks = model.predict_landmarks(mfcc_windows(grid["waveform"]), avatar["identity_landmarks"])
    expected = model.render(avatar["identity_frame"], avatar["identity_landmarks"], expected_marks)["frames"]
    frames, landmarks = _run(exported, grid, "float32")
    np.testing.assert_allclose(landmarks, expected_marks, atol=1e-2)
    assert len(frames) == len(expected) and psnr(expected, frames) >= 40.0


@pytest.mark.slow
def test_quantized_variants_stay_close_to_float32(exported, clip):
    reference, _ = _run(exported, clip, "float32")
    scores = {}
    for variant in VARIANTS[1:]:
        frames, _ = _run(exported, clip, variant)
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
def test_the_mobile_demo_writes_a_video_with_sound_without_tensorflow(exported, shared_data, tmp_path):
    import av
    import imageio_ffmpeg

    output = tmp_path / "demo.mp4"
    demo = os.path.join(REPO, "mobile_demo", "demo.py")
    argv = [demo, "--models", exported, "--variant", "int8", "--audio",
            os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"), "--output", str(output)]
    # TensorFlow made unimportable: the demo must run on LiteRT, numpy and OpenCV alone.
    runner = f"import sys, runpy; sys.modules['tensorflow'] = None; sys.argv = {argv!r}; runpy.run_path({demo!r}, run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "ATVG_FFMPEG": imageio_ffmpeg.get_ffmpeg_exe()})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "150 frames, first frame after" in result.stdout and "p95" in result.stdout
    with av.open(str(output)) as container:
        frames = [f for f in container.decode(video=0)]
        audio = container.streams.audio[0]
        assert abs(float(audio.duration * audio.time_base) - 6.0) < 0.1
    assert len(frames) == 150 and (frames[0].height, frames[0].width) == (224, 224)


@pytest.mark.slow
def test_calibration_from_a_prepared_folder(prepared_dir):
    """--calibration PREPARED_DIR: realistic samples for every network, states carried through each sequence."""
    from atvg_tf.export.tflite import StreamingGraphs, calibration_samples, prepared_calibration_examples

    model = TalkingFaceModel.load()
    samples = calibration_samples(StreamingGraphs(model), prepared_calibration_examples(prepared_dir, model.crop_size), count=20)
    assert {name: len(values) for name, values in samples.items()} == {"identity_encoder": 20, "atnet_step": 20, "vgnet_step": 20}
    frame = samples["identity_encoder"][0]["identity_frame"]
    assert frame.shape == (1, 128, 128, 3) and -1.0 <= frame.min() < frame.max() <= 1.0
    landmarks = samples["atnet_step"][0]["identity_landmarks"]
    assert landmarks.shape == (1, 136) and 10 < landmarks.mean() < 118  # crop pixels, not normalised
    # The second frame of a sequence starts from the first frame's LSTM state, not from zeros.
    assert not np.allclose(samples["atnet_step"][1]["lstm_0_h"], 0)


def test_packaged_calibration_set_is_aligned_by_the_model():
    """The shipped faces are aligned the way the exported model aligns faces, and the speech is real MFCC."""
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
