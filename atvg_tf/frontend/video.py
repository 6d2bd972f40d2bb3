"""Reading talking-face clips with PyAV: stream facts and RGB frames resampled to 25 fps."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import av
import numpy as np

from atvg_tf.errors import InputError

VIDEO_EXTENSIONS = (".mpg", ".mpeg", ".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


class VideoError(InputError):
    """A clip that cannot be read; the message says why."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """Facts about a clip.

    Attributes:
        path: the file.
        width, height: frame size in pixels.
        fps: average frame rate of the video stream.
        duration: seconds (video stream, else container).
        has_audio: whether the file has an audio stream.
        video_start, audio_start: start times of the two streams in seconds (0 when unknown); the
            audio is shifted by their difference so that it lines up with the frames.
    """

    path: str
    width: int
    height: int
    fps: float
    duration: float
    has_audio: bool
    video_start: float = 0.0
    audio_start: float = 0.0


def _start(stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Reads a clip's stream facts without decoding it.

    Raises:
        VideoError: missing or unreadable file, or no video stream.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"video file not found: {path}")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            return VideoInfo(
                path=path,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=fps,
                duration=duration,
                has_audio=bool(container.streams.audio),
                video_start=_start(stream),
                audio_start=_start(container.streams.audio[0]) if container.streams.audio else 0.0,
            )
    except av.error.FFmpegError as error:
        raise VideoError(f"cannot read {path} as video ({error.__class__.__name__}: {error})") from None


def read_frames(path: str | os.PathLike, fps: float = 25.0) -> Iterator[np.ndarray]:
    """Decodes a clip to RGB uint8 frames at `fps`, nearest source frame per output time.

    A 25 fps source comes out frame for frame; 29.97 or 30 fps sources drop frames, slower ones
    repeat them. Frames are copies (PyAV reuses its buffers).

    Raises:
        VideoError: the file cannot be opened or its first frame cannot be decoded. A stream that
            breaks off later ends the iteration early.
    """
    path = os.fspath(path)
    try:
        container = av.open(path)
    except av.error.FFmpegError as error:
        raise VideoError(f"cannot read {path} as video ({error.__class__.__name__}: {error})") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        source_fps = float(stream.average_rate or stream.guessed_rate or fps)
        start = None
        previous, previous_time = None, 0.0
        emitted = 0
        decoded = 0
        try:
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else decoded / source_fps
                decoded += 1
                if start is None:
                    start = time
                time -= start
                if previous is not None:
                    # Output times before the midpoint of two source frames take the earlier one.
                    midpoint = (previous_time + time) / 2.0
                    while emitted / fps < midpoint:
                        yield previous
                        emitted += 1
                previous = frame.to_ndarray(format="rgb24").copy()
                previous_time = time
        except (av.error.FFmpegError, ValueError) as error:
            if previous is None:
                raise VideoError(f"cannot decode {path} ({error.__class__.__name__}: {error})") from None
        if previous is None:
            raise VideoError(f"{path} contains no decodable video frames")
        end = previous_time + 0.5 / source_fps
        while emitted / fps < end:
            yield previous
            emitted += 1
