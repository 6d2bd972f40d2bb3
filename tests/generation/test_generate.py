import os
import subprocess
import sys

import av
import numpy as np
import pytest

from tests.evaluation.test_evaluate import untrained_model  # noqa: F401  (fixture)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "atvg_tf.cli", "generate", *args], capture_output=True, text=True, timeout=900)


def _decode(path):
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        seconds = float(audio.duration * audio.time_base)
    return frames, seconds


@pytest.mark.parametrize("mode, size", [("--paste-back", (994, 1736)), ("--crop", (128, 128)), ("--panels", (128, 512))])
def test_generate_writes_a_video_with_sound(shared_data, untrained_model, tmp_path, mode, size):  # noqa: F811
    output = tmp_path / "out.mp4"
    marks = tmp_path / "marks.npy"
    audio = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")  # 6 s
    result = _run("--image", os.path.join(shared_data, "atvgnet", "image", "image_sample.jpg"), "--audio", audio,
                  "--output", str(output), "--model", untrained_model, mode, "--landmarks-out", str(marks))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "frames/s" in result.stdout.splitlines()[-1]
    frames, seconds = _decode(output)
    assert abs(len(frames) - 6.0 * 25) <= 1
    assert frames[0].shape[:2] == size
    assert abs(seconds - 6.0) < 0.1
    assert np.load(marks).shape == (len(frames), 68, 2)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".atvg-")] == []


def test_bad_inputs_fail_with_one_line_and_no_output(shared_data, untrained_model, tmp_path):  # noqa: F811
    image = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    audio = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(os.urandom(500))
    blank = tmp_path / "blank.png"
    import cv2

    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    cases = [
        (["--image", str(tmp_path / "none.jpg"), "--audio", audio], "image not found"),
        (["--image", str(corrupt), "--audio", audio], "cannot decode"),
        (["--image", str(blank), "--audio", audio], "no face found"),
        (["--image", image, "--audio", os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4")], "no audio stream"),
        (["--image", image, "--audio", str(corrupt)], "no audio stream"),
        (["--image", str(tmp_path / "face.gif"), "--audio", audio], "not found"),
    ]
    output = tmp_path / "out.mp4"
    for args, message in cases:
        result = _run(*args, "--output", str(output), "--model", untrained_model)
        assert result.returncode == 2, (args, result.stderr[-500:])
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("atvg generate: error:") and message in last, last
        assert not output.exists()
    result = _run("--image", image, "--audio", audio, "--output", "/proc/forbidden/out.mp4", "--model", untrained_model)
    assert result.returncode == 2 and "not a writable folder" in result.stderr
