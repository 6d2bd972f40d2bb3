"""Real-time talking avatar from the exported TF-Lite models: no TensorFlow, only LiteRT, numpy and OpenCV.

    python mobile_demo/demo.py --models exported/ --audio speech.wav --output talking.mp4
    python mobile_demo/demo.py --models exported/ --audio speech.wav --window
    python mobile_demo/demo.py --models exported/ --mic 10 --window       # needs sounddevice

`exported/` is what `atvg export --format tflite --avatar PHOTO --output exported/` wrote (the
models and avatar.npz, the photo's aligned face). Frames are generated one at a time as the audio
arrives; at the end it prints the first-frame latency, per-frame latency p50/p95 and the
sustained frames per second. When the export's AT-net hears phones, PocketSphinx labels the audio
as it arrives (`atvg_tf.frontend.phones`, no TensorFlow; frames trail the speech by up to 0.56 s)
and the time it takes per frame is printed too. An MP4 gets the sound through an `ffmpeg` binary ($ATVG_FFMPEG, the
PATH, or the one the optional imageio-ffmpeg package carries); without one it is written silent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from atvg_lite import (  # noqa: E402
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    FrameInputs,
    LiteTalkingFace,
    PcmWindows,
    frame_count,
    pcm_window,
    repository_module,
)

FPS = 25


def read_wav(path: str) -> np.ndarray:
    """16-bit PCM WAV (any rate, mono or stereo) -> 16 kHz mono float32."""
    try:
        with wave.open(path, "rb") as handle:
            if handle.getsampwidth() != 2:
                raise SystemExit(f"demo: error: {path} is not 16-bit PCM; convert it (ffmpeg -i IN -ac 1 -ar 16000 OUT.wav).")
            rate, channels = handle.getframerate(), handle.getnchannels()
            samples = np.frombuffer(handle.readframes(handle.getnframes()), np.int16)
    except (wave.Error, EOFError, FileNotFoundError) as error:
        raise SystemExit(f"demo: error: cannot read {path} as a WAV file ({error}); give a 16-bit PCM .wav.") from None
    mono = samples.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0
    if mono.size == 0:
        raise SystemExit(f"demo: error: {path} has no samples.")
    if rate != SAMPLE_RATE:
        positions = np.arange(int(round(mono.size * SAMPLE_RATE / rate))) * rate / SAMPLE_RATE
        mono = np.interp(positions, np.arange(mono.size), mono).astype(np.float32)
    return mono


def find_ffmpeg() -> str | None:
    explicit = os.environ.get("ATVG_FFMPEG") or shutil.which("ffmpeg")
    if explicit:
        return explicit
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


class Mp4Output:
    """Frames -> MP4 (H.264 with the WAV's sound via ffmpeg, or silent mp4v via OpenCV), renamed when complete."""

    def __init__(self, path: str, size: tuple[int, int], wav_path: str | None):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        handle, self.partial = tempfile.mkstemp(suffix=".mp4", dir=folder, prefix=".demo-")
        os.close(handle)
        ffmpeg = find_ffmpeg()
        width, height = size
        if ffmpeg:
            command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                       "-r", str(FPS), "-i", "-"]
            if wav_path:
                command += ["-i", wav_path, "-c:a", "aac", "-shortest"]
            command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", self.partial]
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE)
            self.writer = None
        else:
            print("demo: no ffmpeg found; writing the video without sound (pip install imageio-ffmpeg, or set ATVG_FFMPEG).",
                  file=sys.stderr)
            self.process = None
            self.writer = cv2.VideoWriter(self.partial, cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))

    def write(self, frame_rgb: np.ndarray) -> None:
        if self.process:
            self.process.stdin.write(np.ascontiguousarray(frame_rgb).tobytes())
        else:
            self.writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    def close(self, keep: bool = True) -> None:
        if self.process:
            self.process.stdin.close()
            keep = self.process.wait() == 0 and keep
        else:
            self.writer.release()
        if keep:
            os.replace(self.partial, self.path)
        elif os.path.exists(self.partial):
            os.remove(self.partial)


def photo_renderer(name: str, avatar, motion_gain: float = 1.0, motion_level: dict | None = None):
    """A function (crop, landmarks, attention) -> full-resolution frame: `hybrid` or `vgnet`, the same
    renderers as `atvg generate --renderer` (atvg_tf/rendering: numpy and OpenCV only); the hybrid one
    with the export's motion gain and motion level (inference.json)."""
    photo, transform, identity = avatar["photo"], avatar["transform"], avatar["identity_landmarks"]
    if name == "hybrid":
        renderer = repository_module("atvg_tf.rendering.hybrid_renderer").HybridRenderer(photo, transform, identity, motion_gain=motion_gain,
                                                                                         motion_level=motion_level)
        return lambda crop, landmarks, attention: renderer.render(crop, landmarks)
    renderer = repository_module("atvg_tf.rendering.vgnet_renderer").VGNetRenderer(photo, transform, identity)
    return renderer.render


def microphone_chunks(seconds: float):
    """16 kHz mono blocks from the default microphone (needs the optional sounddevice package)."""
    try:
        import sounddevice
    except ImportError:
        raise SystemExit("demo: error: --mic needs sounddevice (pip install sounddevice).") from None
    with sounddevice.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", blocksize=SAMPLES_PER_FRAME) as stream:
        for _ in range(int(seconds * FPS)):
            block, _ = stream.read(SAMPLES_PER_FRAME)
            yield block[:, 0]


def file_chunks(waveform: np.ndarray):
    """A recording in blocks of one frame's samples, as the microphone delivers them."""
    for start in range(0, waveform.size, SAMPLES_PER_FRAME):
        yield waveform[start : start + SAMPLES_PER_FRAME]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, metavar="DIR", help="folder written by `atvg export --format tflite`")
    parser.add_argument("--variant", default="int8", choices=["float32", "float16", "dynamic", "int8"])
    parser.add_argument("--avatar", metavar="FILE", help="avatar.npz (default: the one in --models)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--audio", metavar="WAV", help="16-bit PCM WAV speech")
    source.add_argument("--mic", type=float, metavar="SECONDS", help="listen to the microphone for this long")
    parser.add_argument("--output", metavar="OUT.mp4", help="write an MP4 (with the sound when ffmpeg is available)")
    parser.add_argument("--window", action="store_true", help="show the frames in a window as they are made")
    parser.add_argument("--crop", action="store_true", help="the 128 x 128 face only (default: rendered into the photo)")
    parser.add_argument("--renderer", choices=["hybrid", "vgnet"], default="hybrid",
                        help="hybrid: the photo's own face moved by the landmarks, VG-net inside an opening mouth; "
                        "vgnet: VG-net's frames where the face changes")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.output or args.window):
        parser.error("give --output, --window or both.")
    if args.output and not args.output.lower().endswith(".mp4"):
        parser.error(f"--output must end in .mp4, got {args.output}.")
    avatar_path = args.avatar or os.path.join(args.models, "avatar.npz")
    if not os.path.isfile(avatar_path):
        raise SystemExit(f"demo: error: {avatar_path} not found; export with `atvg export --format tflite --avatar PHOTO`.")
    avatar = np.load(avatar_path)

    started = time.perf_counter()
    try:
        engine = LiteTalkingFace(args.models, args.variant, args.threads)
    except (FileNotFoundError, ValueError, ImportError) as error:
        raise SystemExit(f"demo: error: {error}") from None
    engine.start(avatar["identity_frame"], avatar["identity_landmarks"])
    photo = avatar["photo"]
    try:
        render = None if args.crop else photo_renderer(args.renderer, avatar, engine.inference["hybrid_motion_gain"],
                                                       engine.inference["motion_level"])
    except ImportError as error:
        raise SystemExit(f"demo: error: {error}") from None
    size = (128, 128) if args.crop else (photo.shape[1] // 2 * 2, photo.shape[0] // 2 * 2)
    output = Mp4Output(args.output, size, args.audio) if args.output else None

    live = FrameInputs(engine) if engine.uses_phones or engine.uses_posteriors or engine.uses_embeddings else None

    def frames():
        """`engine.step`'s arguments, frame by frame."""
        if live:  # phones: the audio goes through the streaming recogniser, a file as if it were live
            for block in microphone_chunks(args.mic) if args.mic else file_chunks(read_wav(args.audio)):
                yield from live.push(block)
            yield from live.finish()
            return
        if args.audio:
            waveform = read_wav(args.audio)
            for t in range(frame_count(waveform.size)):
                yield {"pcm": pcm_window(waveform, t)}
            return
        pcm = PcmWindows()  # frames trail the speech by 0.175 s, the look-ahead of a window
        for block in microphone_chunks(args.mic):
            for window in pcm.push(block):
                yield {"pcm": window}

    latencies, first_frame = [], None
    try:
        for inputs in frames():
            tick = time.perf_counter()
            crop, landmarks = engine.step(**inputs)
            frame = crop if args.crop else render(crop, landmarks, engine.attention)
            latencies.append(time.perf_counter() - tick)
            first_frame = first_frame or time.perf_counter() - started
            frame = frame[: size[1], : size[0]]
            if output:
                output.write(frame)
            if args.window:
                cv2.imshow("atvg mobile demo", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if cv2.waitKey(max(1, int(1000 / FPS - latencies[-1] * 1000))) == 27:
                    break
    except BaseException:
        if output:
            output.close(keep=False)
        raise
    if output:
        output.close()
    milliseconds = np.array(latencies) * 1000
    print(f"{len(latencies)} frames, first frame after {first_frame * 1000:.0f} ms, per frame p50 {np.percentile(milliseconds, 50):.1f} ms "
          f"/ p95 {np.percentile(milliseconds, 95):.1f} ms, sustained {1000 / milliseconds.mean():.1f} frames/s"
          + (f"; {'phone recognition' if engine.uses_phones or engine.uses_posteriors else 'speech embedding'} "
             f"{live.phone_seconds * 1000 / len(latencies):.1f} ms per frame" if live else "")
          + (f"; wrote {args.output}" if args.output else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
