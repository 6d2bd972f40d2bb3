"""Writing frames as an MP4 (H.264, optionally with a speech file's sound as AAC) while they are produced."""

from __future__ import annotations

import os

import av
import cv2
import numpy as np

from atvg_tf.frontend.audio import iter_audio
from atvg_tf.utils.files import publish, remove_stale_temps, temp_path_beside

AUDIO_RATE = 48000
X264_PARAMS = "me=dia:subme=1:trellis=0"


class Mp4Writer:
    """Encodes frames as they come (H.264, yuv420p), with a speech file's sound (AAC, mono 48 kHz) when given.

    The sound is decoded and muxed alongside the frames, so neither is held in memory. The video
    goes to a hidden temporary file in the destination folder and is renamed to `path` by `close`;
    `abort` (or leaving the `with` block on an exception) deletes it, so a failed run leaves nothing.

    Args:
        path: the MP4 to write.
        audio_path: the speech to mux in (any file `iter_audio` reads), or None for a silent video.
        fps: frame rate.
        preset: libx264 speed preset (with `X264_PARAMS` on top).

    Raises:
        PermissionError: the destination folder does not exist or is not writable.
    """

    def __init__(self, path: str, audio_path: str | None, fps: int = 25, preset: str = "veryfast"):
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise PermissionError(f"cannot write {path}: {folder} is not a writable folder.")
        self.path, self.fps, self.preset, self._audio_path = path, fps, preset, audio_path
        self.frames_written = 0
        self._audio_blocks = iter_audio(audio_path, AUDIO_RATE) if audio_path else iter(())
        self._audio_samples = 0
        self._partial: str | None = None
        self._container = None
        # The picture handed to the encoder, reused: libx264 copies a picture in when it is given one,
        # so only a patch's pixels need writing for the next (a fresh 1737 x 994 picture cost 1.3 ms).
        self._picture: av.VideoFrame | None = None
        self._planes: tuple[np.ndarray, ...] = ()  # its Y [H, W], U and V [H / 2, W / 2] pixels

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Encodes one RGB uint8 frame [H, W, 3] (odd sizes lose their last row/column)."""
        if self._container is None:
            self._open(frame.shape[1] // 2 * 2, frame.shape[0] // 2 * 2)
        height, width = self._video.height, self._video.width
        # OpenCV's BT.601 limited-range conversion equals libswscale's default to 1-2 levels at a sixth of the cost.
        converted = cv2.cvtColor(np.ascontiguousarray(frame[:height, :width]), cv2.COLOR_RGB2YUV_I420)
        for target, source in zip(self._planes, _yuv_planes(converted, height, width)):
            target[:] = source
        self._encode()

    def write_patch(self, patch: np.ndarray, x: int, y: int) -> None:
        """Encodes the previous frame with `patch` (RGB uint8 [h, w, 3]) put at column `x`, row `y`.

        Only the patch is converted to YUV (a talking face changes a small part of a large photo);
        the result equals `write` of the whole frame. x, y, w and h must be even (`even_box`) and the
        patch inside the encoded frame.
        """
        if not self.frames_written:
            raise ValueError("write a whole frame before patches.")
        height, width = patch.shape[:2]
        frame_height, frame_width = self._video.height, self._video.width
        if x % 2 or y % 2 or width % 2 or height % 2 or x < 0 or y < 0 or x + width > frame_width or y + height > frame_height:
            raise ValueError(f"a {width} x {height} patch at ({x}, {y}) is not an even box inside the {frame_width} x {frame_height} frame.")
        converted = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2YUV_I420)
        for target, source, step in zip(self._planes, _yuv_planes(converted, height, width), (1, 2, 2)):
            target[y // step : (y + height) // step, x // step : (x + width) // step] = source
        self._encode()

    def _encode(self) -> None:
        self._picture.pts = self.frames_written
        self._container.mux(self._video.encode(self._picture))
        self.frames_written += 1
        self._mux_audio(until_seconds=self.frames_written / self.fps)

    def close(self) -> None:
        """Flushes the encoders, muxes the rest of the sound and moves the file into place."""
        if self._container is None:
            raise ValueError("no frames were written; nothing to save.")
        try:
            self._container.mux(self._video.encode())
            self._mux_audio(until_seconds=None)
            if self._sound is not None:
                self._container.mux(self._sound.encode())
            self._container.close()
            self._container = None
            publish(self._partial, self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        """Stops writing and deletes the partial file."""
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
            self._container = None
        if self._partial and os.path.exists(self._partial):
            os.remove(self._partial)

    def _open(self, width: int, height: int) -> None:
        remove_stale_temps(os.path.dirname(os.path.abspath(self.path)))  # what killed runs left
        self._partial = temp_path_beside(self.path)
        self._container = av.open(self._partial, "w")
        # Lighter motion search and no trellis: 9-15 % more frames/s for `atvg generate` into a
        # 1737 x 994 photo (most of it static), for 5 % larger files and 0.3-0.5 dB PSNR.
        self._video = self._container.add_stream("libx264", rate=self.fps, options={"preset": self.preset, "x264-params": X264_PARAMS})
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        self._picture = av.VideoFrame(width, height, "yuv420p")
        self._planes = tuple(np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
                             for plane in self._picture.planes)
        self._sound = self._container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if self._audio_path else None

    def _mux_audio(self, until_seconds: float | None) -> None:
        target = None if until_seconds is None else until_seconds * AUDIO_RATE
        while target is None or self._audio_samples < target:
            block = next(self._audio_blocks, None)
            if block is None:
                return
            samples = av.AudioFrame.from_ndarray(block[None], format="fltp", layout="mono")
            samples.sample_rate, samples.pts = AUDIO_RATE, self._audio_samples
            self._audio_samples += block.size
            self._container.mux(self._sound.encode(samples))


def _yuv_planes(yuv: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y [H, W], U and V [H / 2, W / 2] planes of an I420 buffer [H * 3 / 2, W]."""
    flat, size = yuv.reshape(-1), height * width
    return (flat[:size].reshape(height, width), flat[size : size + size // 4].reshape(height // 2, width // 2),
            flat[size + size // 4 :].reshape(height // 2, width // 2))


def even_box(box: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) grown to even coordinates and cut to the encoded (even) size of a [height, width] frame."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return (max(x0 // 2 * 2, 0), max(y0 // 2 * 2, 0), min(-(-x1 // 2) * 2, width // 2 * 2), min(-(-y1 // 2) * 2, height // 2 * 2))
