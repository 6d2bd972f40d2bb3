"""What `atvg app` serves, without the page: models loaded once, one generation per request, limits.

The page (`atvg_tf.app.page`) and its API endpoint call `TalkingFaceService.generate`; everything a
deployer can limit is an `AppLimits` field. No Gradio here, so the service is usable and testable
on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from atvg_tf.errors import InputError
from atvg_tf.export.litert_runtime import load_model
from atvg_tf.frontend.audio import audio_duration, iter_audio
from atvg_tf.frontend.image import load_image
from atvg_tf.generation.compose import OUTPUT_MODES as MODES
from atvg_tf.generation.model_folder import check_model_folder
from atvg_tf.generation.talking_face import FPS, TalkingFace
from atvg_tf.rendering import RENDERERS

DEFAULT_MODEL = "default"


@dataclasses.dataclass(frozen=True)
class AppLimits:
    """What one request may ask of the server (each an `atvg app` option)."""

    max_audio_seconds: float = 60.0
    max_image_pixels: int = 20_000_000
    max_upload_mb: float = 50.0
    concurrency: int = 1  # generations at once; each holds its own copy of the networks' state
    keep_outputs_seconds: float = 3600.0  # results older than this are deleted


@dataclasses.dataclass(frozen=True)
class Result:
    """One request's files and what the run did."""

    video: str  # MP4, H.264 + AAC
    landmarks: str  # .npy [T, 68, 2], crop pixels
    frames: int
    seconds: float
    first_frame_seconds: float
    notes: tuple[str, ...] = ()  # the warnings of the run (several faces, a small face), as the CLI logs them

    @property
    def summary(self) -> str:
        run = (f"{self.frames} frames ({self.frames / FPS:.2f} s of video) in {self.seconds:.1f} s: "
               f"{self.frames / max(self.seconds, 1e-9):.1f} frames/s, first frame after {self.first_frame_seconds:.2f} s")
        return "\n".join([run, *(f"Note: {note}" for note in self.notes)])


@contextmanager
def logged_warnings() -> Iterator[list[str]]:
    """The warnings atvg logs from this thread while the block runs: a request's own, when several
    requests run at once (what `atvg generate` prints as `atvg: WARNING: ...`)."""
    said: list[str] = []
    thread = threading.get_ident()

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                said.append(record.getMessage())

    collector, logger = Collector(logging.WARNING), logging.getLogger("atvg_tf")
    logger.addHandler(collector)
    try:
        yield said
    finally:
        logger.removeHandler(collector)


def find_models(models_dir: str | None) -> dict[str, str | None]:
    """Model name -> folder: `default` (the packaged model, None) and every model folder directly
    under `models_dir` (one holding atnet.keras and vgnet.keras), by its folder name."""
    models: dict[str, str | None] = {DEFAULT_MODEL: None}
    if models_dir is None:
        return models
    if not os.path.isdir(models_dir):
        raise InputError(f"--models-dir {models_dir} is not a folder; give the folder that holds your model folders.")
    for name in sorted(os.listdir(models_dir)):
        folder = os.path.join(models_dir, name)
        if os.path.isfile(os.path.join(folder, "atnet.keras")) and os.path.isfile(os.path.join(folder, "vgnet.keras")):
            check_model_folder(folder)
            models[name if name != DEFAULT_MODEL else f"{name} ({folder})"] = folder
    return models


class TalkingFaceService:
    """Turns (photo, speech) into a video in a fresh folder per request, within `AppLimits`.

    Each model is loaded on first use (its TF-Lite export built once and cached) into up to
    `limits.concurrency` workers: a worker streams one video at a time because the networks keep
    the recurrent state of the video they are making.

    Args:
        models: name -> model folder (None: the packaged model), as `find_models` gives.
        outputs_dir: where each request's folder is made.
        limits: the deployer's limits.
        runtime, precision: as `atvg generate --runtime/--precision`.
    """

    def __init__(self, models: dict[str, str | None], outputs_dir: str, limits: AppLimits = AppLimits(),
                 runtime: str = "auto", precision: str | None = None):
        if limits.concurrency < 1:
            raise InputError(f"--concurrency must be 1 or more, got {limits.concurrency}.")
        self.models, self.outputs_dir, self.limits = dict(models), outputs_dir, limits
        self.runtime, self.precision = runtime, precision
        os.makedirs(outputs_dir, exist_ok=True)
        self._workers: dict[str, queue.Queue] = {}
        self._made: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    def generate(self, photo: str, speech: str, model: str = DEFAULT_MODEL, renderer: str = "hybrid",
                 mode: str = "paste-back", on_frames: Callable[[int, int | None], None] | None = None) -> Result:
        """One request: checks the inputs against the limits, then writes the video and landmarks.

        Raises:
            AtvgError (or OSError): bad input, with the same one-line message as `atvg generate`.
        """
        self.remove_old_outputs()
        if not photo:
            raise InputError("no photo: upload a photo of a face (or take one with the webcam).")
        if not speech:
            raise InputError("no speech: upload a recording (wav, mp3, m4a, flac or a video with sound) or record one.")
        if model not in self.models:
            raise InputError(f"unknown model {model!r}; choose one of {', '.join(self.models)}.")
        if renderer not in RENDERERS or mode not in MODES:
            raise InputError(f"renderer must be one of {', '.join(RENDERERS)} and mode one of {', '.join(MODES)}.")
        image = load_image(photo, self.limits.max_image_pixels, "ask the page's owner to raise atvg app --max-image-pixels")
        self._check_speech(speech)
        folder = os.path.join(self.outputs_dir, uuid.uuid4().hex)  # unguessable: one request's files
        os.makedirs(folder)
        try:
            with self._worker(model) as talker, logged_warnings() as notes:
                summary = talker.write_video(image, speech, os.path.join(folder, "talking.mp4"), mode,
                                             landmarks_out=os.path.join(folder, "landmarks.npy"),
                                             renderer=renderer, on_frames=on_frames)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Result(summary.path, os.path.join(folder, "landmarks.npy"), summary.frames, summary.seconds,
                      summary.first_frame_seconds, tuple(notes))

    def preload(self, model: str = DEFAULT_MODEL) -> None:
        """Loads one worker of `model` now (its TF-Lite export is built if not cached yet), so the
        first visitor does not wait for it."""
        with self._worker(model):
            pass

    def _check_speech(self, speech: str) -> None:
        """Refuses speech longer than the limit (from the header, or by decoding up to the limit)."""
        limit = self.limits.max_audio_seconds
        seconds = audio_duration(speech)
        if seconds is None:
            samples = 0
            for block in iter_audio(speech):
                samples += len(block)
                if samples > limit * 16000:
                    seconds = samples / 16000
                    break
        else:
            next(iter_audio(speech))  # decodable: fails now, in one line, not after the model loads
        if seconds is not None and seconds > limit:
            raise InputError(f"the speech is {seconds:.1f} s long; this page takes up to {limit:g} s: cut it shorter "
                             f"(or ask the page's owner to raise atvg app --max-audio-seconds).")

    @contextmanager
    def _worker(self, model: str) -> Iterator[TalkingFace]:
        """A free worker for `model` (made on demand, at most `concurrency`), returned after use."""
        with self._lock:
            pool = self._workers.setdefault(model, queue.Queue())
            make = pool.empty() and self._made.get(model, 0) < self.limits.concurrency
            if make:
                self._made[model] = self._made.get(model, 0) + 1
        if make:
            try:
                threads = max(1, (os.cpu_count() or 1) // self.limits.concurrency)
                talker = TalkingFace(load_model(self.models[model], self.runtime, self.precision, threads=threads))
            except BaseException:
                with self._lock:
                    self._made[model] -= 1
                raise
        else:
            talker = pool.get()
        try:
            yield talker
        finally:
            pool.put(talker)

    def remove_old_outputs(self) -> None:
        """Deletes request folders older than `limits.keep_outputs_seconds`."""
        cutoff = time.time() - self.limits.keep_outputs_seconds
        for entry in os.scandir(self.outputs_dir):
            try:
                if entry.is_dir(follow_symlinks=False) and len(entry.name) == 32 and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except FileNotFoundError:  # another request removed it first
                continue
