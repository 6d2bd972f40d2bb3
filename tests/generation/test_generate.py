"""`atvg generate` and the `TalkingFace` API: output files, input formats, and bad input."""

import logging
import os
import struct
import subprocess
import sys
import wave

import av
import cv2
import numpy as np
import pytest

from atvg_tf.frontend.image import load_image


def _run(*args):
    return subprocess.run([sys.executable, "-m", "atvg_tf.cli", "generate", *args], capture_output=True, text=True, timeout=900)


def _main(capsys, *args):
    """`atvg generate ...` in this process (the models and libraries stay loaded): exit code, last stderr line."""
    from atvg_tf.cli import main

    code = main(["generate", *args])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, lines[-1] if lines else ""


def _decode(path):
    """Frames (RGB) and the audio track's duration in seconds."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        seconds = float(audio.duration * audio.time_base)
    return frames, seconds


def _photo(shared_data, name="Elektra.jpg"):
    return os.path.join(shared_data, "atvgnet", "image", name)


def _speech(shared_data, name="audio_sample.wav"):
    return os.path.join(shared_data, "atvgnet", "audio", name)


def _write_audio(path, waveform, rate, codec, layout):
    """Encodes a mono float waveform (duplicated for stereo) with PyAV."""
    channels = 2 if layout == "stereo" else 1
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        planar = np.repeat(waveform[None].astype(np.float32), channels, axis=0)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Inserts an EXIF block whose only tag is Orientation (0x0112) after the JPEG's start marker."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.mark.slow
@pytest.mark.parametrize("mode, size", [(("--paste-back",), (994, 1736)), (("--renderer", "vgnet"), (994, 1736)),
                                        (("--crop",), (128, 128)), (("--panels",), (256, 1280))])
def test_generate_writes_a_video_with_sound(shared_data, untrained_model, tmp_path, mode, size):
    output = tmp_path / "out.mp4"
    marks = tmp_path / "marks.npy"
    result = _run("--image", _photo(shared_data, "image_sample.jpg"), "--audio", _speech(shared_data),  # 6 s
                  "--output", str(output), "--model", untrained_model, *mode, "--landmarks-out", str(marks))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"wrote {output}: 150 frames (6.00 s of video)") and "frames/s" in summary
    assert "generating" in result.stderr and "150/150" in result.stderr  # the progress bar
    frames, seconds = _decode(output)
    assert abs(len(frames) - 6.0 * 25) <= 1
    assert frames[0].shape[:2] == size
    assert abs(seconds - 6.0) < 0.1
    assert np.load(marks).shape == (len(frames), 68, 2)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".atvg-")] == []
    assert os.stat(output).st_mode & 0o044 == 0o044  # readable by others, like any file the user writes


@pytest.mark.slow
def test_bad_inputs_fail_with_one_line_and_no_output(shared_data, untrained_model, tmp_path, capsys):
    image, audio = _photo(shared_data), _speech(shared_data)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(os.urandom(500))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    gif = tmp_path / "face.gif"
    gif.write_bytes(b"GIF89a" + os.urandom(100))
    text = tmp_path / "speech.txt"
    text.write_text("not a recording\n" * 50)
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as handle:  # a valid header and no samples
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(16000)
    cases = [
        (["--image", str(tmp_path / "none.jpg"), "--audio", audio], "image not found"),
        (["--image", str(corrupt), "--audio", audio], "cannot decode"),
        (["--image", str(gif), "--audio", audio], "unsupported image type"),
        (["--image", str(blank), "--audio", audio], "no face found"),
        (["--image", image, "--audio", str(tmp_path / "none.wav")], "audio file not found"),
        (["--image", image, "--audio", os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4")], "no audio stream"),
        (["--image", image, "--audio", image], "no audio stream"),
        (["--image", image, "--audio", str(corrupt)], "no audio stream"),
        (["--image", image, "--audio", str(text)], "no audio stream; give a speech recording"),
        (["--image", image, "--audio", str(empty)], "no audio samples"),
    ]
    cases += [
        (["--image", image, "--audio", audio, "--output", "/proc/forbidden/out.mp4"], "not a writable folder"),
        (["--image", image, "--audio", audio, "--output", str(tmp_path / "out.avi")], "must end in .mp4"),
    ]
    output = tmp_path / "out.mp4"
    for args, message in cases:
        if "--output" not in args:
            args = [*args, "--output", str(output)]
        code, last = _main(capsys, *args, "--model", untrained_model)
        assert code == 2 and last.startswith("atvg generate: error:") and message in last, (args, last)
        assert not output.exists()
        assert [p for p in os.listdir(tmp_path) if p.startswith(".atvg-")] == []
    # The same through the installed command: a non-zero exit status and one line on stderr.
    result = _run("--image", str(corrupt), "--audio", audio, "--output", str(output), "--model", untrained_model)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("atvg generate: error: cannot decode")


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.parametrize("case", ["output is the audio", "output is a folder", "landmarks into a missing folder",
                                  "landmarks onto the photo"])
def test_outputs_that_would_replace_an_input_or_miss_their_folder_are_refused_first(shared_data, untrained_model, tmp_path,
                                                                                     capsys, case):
    image, audio = tmp_path / "face.jpg", tmp_path / "clip.mp4"
    image.write_bytes(open(_photo(shared_data), "rb").read())
    audio.write_bytes(open(os.path.join(shared_data, "wild", "retalking_1.mp4"), "rb").read())  # a video with sound
    before = {path.name: path.read_bytes() for path in (image, audio)}
    output, landmarks, expected = tmp_path / "out.mp4", None, "is the --audio file itself"
    if case == "output is a folder":
        output, expected = tmp_path / "videos.mp4", "is a folder"
        output.mkdir()
    elif case == "landmarks into a missing folder":
        landmarks, expected = tmp_path / "missing" / "marks.npy", "not a writable folder"
    elif case == "landmarks onto the photo":
        landmarks, expected = image, "is the --image file itself"
    else:
        output = audio
    args = ["--image", str(image), "--audio", str(audio), "--output", str(output), "--model", untrained_model, "--crop", "--quiet"]
    code, last = _main(capsys, *args, *(["--landmarks-out", str(landmarks)] if landmarks else []))
    assert code == 2 and last.startswith("atvg generate: error:") and expected in last, last
    assert {path.name: path.read_bytes() for path in (image, audio)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["face.jpg", "clip.mp4"] + (["videos.mp4"] if output.is_dir() else []))


def test_several_faces_use_the_largest_with_a_warning_and_face_index_picks(shared_data, untrained_model, tmp_path, capsys, caplog):
    big = cv2.imread(_photo(shared_data))
    small = cv2.resize(cv2.imread(_photo(shared_data, "EzraMiller_00075.jpg")), (180, 180))
    canvas = np.full((max(big.shape[0], 180), big.shape[1] + 200, 3), 255, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big
    canvas[:180, big.shape[1] + 10 : big.shape[1] + 190] = small
    group = tmp_path / "group.png"
    cv2.imwrite(str(group), canvas)
    common = ["--image", str(group), "--audio", _speech(shared_data), "--model", untrained_model, "--crop", "--quiet"]
    with caplog.at_level(logging.WARNING):
        assert _main(capsys, *common, "--output", str(tmp_path / "a.mp4"))[0] == 0
    assert "2 faces found" in caplog.text
    assert _main(capsys, *common, "--output", str(tmp_path / "b.mp4"), "--face-index", "1")[0] == 0
    first, _ = _decode(tmp_path / "a.mp4")
    second, _ = _decode(tmp_path / "b.mp4")
    assert np.abs(first[0].astype(int) - second[0]).mean() > 20  # another person's face
    code, last = _main(capsys, *common, "--output", str(tmp_path / "c.mp4"), "--face-index", "2")
    assert code == 2 and "face index below 2" in last


def test_exif_rotation_is_applied(shared_data, tmp_path):
    upright = cv2.imread(_photo(shared_data))
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)  # as a phone held sideways stores it
    jpeg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    path = tmp_path / "sideways.jpg"
    path.write_bytes(_with_exif_orientation(jpeg, 6))  # 6: rotate 90 degrees clockwise to view
    loaded = load_image(str(path))
    assert loaded.shape == upright.shape
    assert np.abs(loaded.astype(int) - upright[..., ::-1]).mean() < 4


@pytest.fixture(scope="module")
def talker(untrained_model):
    from atvg_tf.generation.talking_face import TalkingFace

    with TalkingFace(untrained_model) as talking_face:
        yield talking_face


@pytest.mark.slow
def test_every_audio_format_and_rate(shared_data, talker, tmp_path):
    from atvg_tf.frontend.audio import load_audio

    speech = _speech(shared_data)
    variants = {
        "mono_8k.wav": (8000, "pcm_s16le", "mono"),
        "stereo_22k.wav": (22050, "pcm_s16le", "stereo"),
        "stereo_44k.mp3": (44100, "libmp3lame", "stereo"),
        "stereo_48k.m4a": (48000, "aac", "stereo"),
        "mono_16k.flac": (16000, "flac", "mono"),
    }
    identity = talker.identity(_photo(shared_data))
    inputs = {}
    for name, (rate, codec, layout) in variants.items():
        resampled = load_audio(speech, rate)[: rate * 3]
        _write_audio(tmp_path / name, resampled, rate, codec, layout)
        inputs[name] = (str(tmp_path / name), 3.0)
    inputs["video_track.mp4"] = (os.path.join(shared_data, "wild", "retalking_1.mp4"), 89773 / 14700)  # AAC stereo 44.1 kHz
    for name, (path, seconds) in inputs.items():
        output = tmp_path / f"{name}.out.mp4"
        summary = talker.write_video(identity, path, str(output), mode="crop")
        frames, audio_seconds = _decode(output)
        assert abs(len(frames) - seconds * 25) <= 1, name
        assert summary.frames == len(frames), name
        assert abs(audio_seconds - seconds) < 0.1, name


@pytest.mark.slow
def test_both_renderers_through_the_api_keep_the_upper_face(shared_data, talker, tmp_path):
    """`save` and `write_video` with each renderer; the rows above the nose stay the photo's (up to H.264)."""
    from atvg_tf.errors import InputError

    result = talker.generate(_photo(shared_data), _speech(shared_data))
    nose = int(talker.renderer(talker.identity(_photo(shared_data))).renderer.box[1])  # the hybrid region's top
    for renderer in ("hybrid", "vgnet"):
        talker.save(result, str(tmp_path / f"{renderer}.mp4"), renderer=renderer)
        frames, _ = _decode(tmp_path / f"{renderer}.mp4")
        assert len(frames) == len(result.frames) and frames[0].shape == result.image.shape
        upper = np.abs(np.stack(frames)[:, :nose].astype(int) - result.image[:nose]).mean()
        assert upper < 3, (renderer, upper)
    summary = talker.write_video(result.image, _speech(shared_data), str(tmp_path / "api.mp4"), renderer="vgnet")
    assert summary.frames == len(result.frames)
    with pytest.raises(InputError, match="unknown renderer 'warp'"):
        talker.save(result, str(tmp_path / "bad.mp4"), renderer="warp")
    assert not (tmp_path / "bad.mp4").exists()


@pytest.mark.slow
def test_a_failed_run_leaves_no_file(shared_data, talker, tmp_path, monkeypatch):
    output = tmp_path / "out.mp4"
    identity = talker.identity(_photo(shared_data))

    def failing_stream(*args):
        yield from talker.__class__.stream(talker, *args)
        raise RuntimeError("interrupted")

    monkeypatch.setattr(talker, "stream", failing_stream)
    with pytest.raises(RuntimeError, match="interrupted"):
        talker.write_video(identity, _speech(shared_data), str(output), mode="crop")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_memory_does_not_grow_with_the_length_of_the_audio(shared_data, tmp_path):
    """Peak RSS of `atvg generate` for 48 s of speech stays within 15 % of that for 8 s (the
    benchmark measures 10 s against 10 minutes)."""
    from benchmarks.bench_generate import run, write_speech

    peaks = {}
    for seconds in (8, 48):
        speech = str(tmp_path / f"speech_{seconds}.wav")
        write_speech(_speech(shared_data, "test.wav"), seconds, speech)
        row = run("default", None, _photo(shared_data), speech, seconds, "crop", str(tmp_path))
        assert row["frames"] == seconds * 25
        peaks[seconds] = row["peak_rss_mb"]
    assert peaks[48] < 1.15 * peaks[8], peaks


@pytest.mark.slow
def test_sigterm_mid_generation_leaves_nothing_and_stale_temporaries_are_cleaned(shared_data, untrained_model, tmp_path):
    """SIGTERM (kill, timeout, docker stop) left a hidden `.atvg-*.mp4`, exit 143 and no message, and
    temporaries of killed runs stayed forever (issue 11 item 5)."""
    import signal
    import time

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs: what a SIGKILLed run leaves in its temporaries' names
    stale = [tmp_path / f".atvg-{gone.pid}-k1ll3d-old.mp4", tmp_path / f".atvg-{gone.pid}-k1ll3d-old.npy"]
    for path in stale:
        path.write_bytes(b"partial")
    alive = tmp_path / f".atvg-{os.getpid()}-running-other.mp4"  # a live process's file is not touched
    alive.write_bytes(b"in use")
    command = [sys.executable, "-m", "atvg_tf.cli", "generate", "--image", _photo(shared_data), "--audio",
               os.path.join(shared_data, "wild", "edtalk_pose_source2_60s.mp4"), "--output", str(tmp_path / "out.mp4"),
               "--model", untrained_model, "--runtime", "keras", "--quiet"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not [p for p in os.listdir(tmp_path) if p.startswith(f".atvg-{run.pid}-")] and time.time() < deadline:
        time.sleep(0.1)  # until the video is being written
    assert run.poll() is None, run.stderr.read()
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "atvg generate: stopped by SIGTERM; no output was written."
    assert sorted(os.listdir(tmp_path)) == [alive.name]


def test_stopping_the_encoder_stops_the_rendering_and_network_threads():
    """`write_video` chains two `in_background` threads (networks -> rendering -> this thread's encoder):
    an encoder that stops (an error, a full disk) must leave neither behind nor keep the source running."""
    import threading

    from atvg_tf.generation.talking_face import in_background

    closed = threading.Event()

    def source():
        try:
            yield from range(10_000)
        finally:
            closed.set()

    frames = in_background((item * 2 for item in in_background(source(), depth=2)), depth=8)
    assert [next(frames) for _ in range(3)] == [0, 2, 4]
    frames.close()
    assert closed.wait(5)
    assert not [thread for thread in threading.enumerate() if thread.name == "atvg-generate"]
