"""Photo + speech -> talking-face frames, streamed chunk by chunk into an MP4 with the speech muxed in.

    from atvg_tf.generation.talking_face import TalkingFace
    with TalkingFace() as talker:               # the packaged default model, MediaPipe landmarks
        talker.write_video("face.jpg", "talk.mp3", "out.mp4")   # any length, bounded memory
        talker.write_video("face.jpg", "talk.mp3", "paper.mp4", renderer="vgnet")  # VG-net's own pixels
        result = talker.generate("face.jpg", "speech.wav")       # short clips: frames in memory
        talker.save(result, "crops.mp4", mode="crop")
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from atvg_tf.frontend.audio import AudioConfig, audio_duration, iter_audio
from atvg_tf.frontend.audio_windows import AudioWindowStream
from atvg_tf.frontend.face.alignment import AlignedFace, align_face
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.frontend.image import load_image
from atvg_tf.frontend.video_writer import Mp4Writer, even_box
from atvg_tf.generation.compose import FaceRenderer, composer

if TYPE_CHECKING:
    from atvg_tf.generation.litert_model import LiteRTModel
    from atvg_tf.generation.model import TalkingFaceModel

FPS = 25


@dataclasses.dataclass(frozen=True)
class Identity:
    """A photo and its aligned face, prepared once and reusable for many recordings."""

    image: np.ndarray
    face: AlignedFace


@dataclasses.dataclass
class Generation:
    """The result of `TalkingFace.generate` (everything in memory: meant for short clips).

    Attributes:
        image: the original RGB photo.
        face: its aligned face (crop, crop landmarks, transform).
        frames: [T, 128, 128, 3] uint8 generated crops.
        landmarks: [T, 68, 2] predicted landmarks (crop pixels).
        attention: [T, 128, 128, 1] attention maps in [0, 1].
        motion: [T, 128, 128, 3] uint8 motion/colour maps.
        audio_path: the speech the frames follow.
    """

    image: np.ndarray
    face: AlignedFace
    frames: np.ndarray
    landmarks: np.ndarray
    attention: np.ndarray
    motion: np.ndarray
    audio_path: str


@dataclasses.dataclass(frozen=True)
class VideoSummary:
    """What `TalkingFace.write_video` wrote."""

    path: str
    frames: int
    seconds: float
    first_frame_seconds: float

    @property
    def duration(self) -> float:
        return self.frames / FPS

    def __str__(self) -> str:
        return (
            f"wrote {self.path}: {self.frames} frames ({self.duration:.2f} s of video) in {self.seconds:.1f} s "
            f"({self.frames / self.seconds:.1f} frames/s, first frame after {self.first_frame_seconds:.2f} s)"
        )


class TalkingFace:
    """Loads a model once and turns (photo, speech) pairs into talking-face videos.

    Args:
        model: a `TalkingFaceModel` or `LiteRTModel` (`atvg_tf.export.litert_runtime.load_model`: the
            networks run in LiteRT), a model folder, or None for the packaged default model (Keras).
        landmarks: landmark backend for the photo (`mediapipe` or `dlib`); by default the model's
            (`TalkingFaceModel.landmark_backend`: dlib for converted official models, else the
            backend its training data was prepared with), which falls back to dlib when MediaPipe's
            model is not on the machine and cannot be downloaded.
        chunk_frames: frames generated per model call; memory grows with it, not with the audio.
        first_chunk_frames: frames of the first call (small, so the first frame comes early).
    """

    def __init__(
        self,
        model: TalkingFaceModel | LiteRTModel | str | None = None,
        landmarks: str | None = None,
        chunk_frames: int = 32,
        first_chunk_frames: int = 4,
    ):
        if min(chunk_frames, first_chunk_frames) < 1:
            raise ValueError(f"chunk sizes must be at least 1, got {chunk_frames} and {first_chunk_frames}.")
        if model is None or isinstance(model, str):
            from atvg_tf.generation.model import TalkingFaceModel  # TensorFlow: not for a LiteRTModel

            model = TalkingFaceModel.load(model)
        self.model = model
        # A backend the user named is used or refused; the default may fall back to dlib offline.
        self.detector = create_landmark_detector(landmarks or self.model.landmark_backend, fallback=landmarks is None)
        self.chunk_frames, self.first_chunk_frames = chunk_frames, first_chunk_frames

    def close(self) -> None:
        """Releases the landmark detector."""
        self.detector.close()

    def __enter__(self) -> TalkingFace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def identity(self, image: str | np.ndarray, face_index: int = 0) -> Identity:
        """Detects and aligns the face of a photo (path or RGB array); `face_index` 0 is the largest."""
        photo = load_image(image) if isinstance(image, str) else np.asarray(image)
        landmarks = self.detector.largest_face(photo, face_index=face_index)
        return Identity(photo, align_face(photo, landmarks, self.model.alignment(landmarks)))

    def stream(self, identity: Identity, audio: str) -> Iterator[dict]:
        """Generates the frames for a speech file chunk by chunk.

        The audio is decoded block by block and the recurrent states carry over from chunk to
        chunk, so the result equals one call on the whole recording and memory stays bounded.

        Yields:
            Dicts with `landmarks` [n, 68, 2], `frames` and `motion` uint8 [n, S, S, 3] and
            `attention` [n, S, S, 1] for the next n <= chunk_frames frames.
        """
        render = self.model.streamer(identity.face.image, identity.face.landmarks)
        chunker = _Chunker(self.first_chunk_frames, self.chunk_frames)
        for windows in _audio_windows(audio, self.model.audio_inputs, self.chunk_frames, self.model.mfcc_normalization):
            for chunk in chunker.add(windows):
                yield render(chunk)
        for chunk in chunker.rest():
            yield render(chunk)

    def generate(self, image: str | np.ndarray, audio: str, face_index: int = 0) -> Generation:
        """Generates all frames for a photo (path or RGB array) and a speech file, in memory."""
        identity = self.identity(image, face_index)
        chunks = list(self.stream(identity, audio))
        joined = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
        return Generation(
            identity.image, identity.face, joined["frames"], joined["landmarks"], joined["attention"], joined["motion"], audio
        )

    def renderer(self, identity: Identity, renderer: str = "hybrid") -> FaceRenderer:
        """The renderer that puts this model's output for `identity` into its photo (`hybrid` or `vgnet`)."""
        face = identity.face
        return FaceRenderer(renderer, identity.image, face.transform, face.landmarks, self.model.crop_size,
                            self.model.hybrid_motion_gain, self.model.motion_level)

    def save(self, generation: Generation, path: str, mode: str = "paste-back", renderer: str = "hybrid") -> None:
        """Writes a `Generation` as an H.264 MP4 with its speech as AAC; the file appears only when complete.

        Args:
            mode: `paste-back` (the full photo), `crop` (128 x 128 crops) or `panels`
                (rendered face | frame | attention | motion | landmarks).
            renderer: `hybrid` (the photo's own face, moved by the landmarks; VG-net paints only an
                opening mouth) or `vgnet` (VG-net's frames where the face changes, the paper's look).
        """
        face = self.renderer(Identity(generation.image, generation.face), renderer)
        compose = composer(mode, face)
        chunk = {"frames": generation.frames, "landmarks": generation.landmarks,
                 "attention": generation.attention, "motion": generation.motion}
        with Mp4Writer(path, generation.audio_path, FPS) as writer:
            for frame in compose(chunk):
                writer.write(frame)

    def write_video(
        self,
        image: str | np.ndarray | Identity,
        audio: str,
        path: str,
        mode: str = "paste-back",
        face_index: int = 0,
        landmarks_out: str | None = None,
        progress: bool = False,
        renderer: str = "hybrid",
        on_frames: Callable[[int, int | None], None] | None = None,
    ) -> VideoSummary:
        """Photo + speech -> MP4, frames encoded as they are generated (any length, bounded memory).

        Args:
            image: photo path, RGB array or a prepared `Identity`.
            audio: speech file (wav, flac, mp3, m4a, ... or a video file's sound).
            path: the MP4 to write (it appears only when complete).
            mode: `paste-back`, `crop` or `panels` (see `save`).
            renderer: `hybrid` or `vgnet` (see `save`).
            face_index: which face when the photo has several (0 = the largest).
            landmarks_out: also save the predicted landmarks [T, 68, 2] (crop px) as .npy.
            progress: show a progress bar.
            on_frames: called after every encoded chunk with (frames written, frames expected from
                the audio's header, or None when it does not say).

        Returns:
            A `VideoSummary` (frames, wall time, time to the first frame).
        """
        started = time.perf_counter()
        identity = image if isinstance(image, Identity) else self.identity(image, face_index)
        face = self.renderer(identity, renderer)
        compose = composer(mode, face)
        # Rendered into the photo, a frame differs from the first only inside the face's box.
        box = even_box(face.changed_box, *identity.image.shape[:2]) if mode == "paste-back" else None
        landmarks: list[np.ndarray] = []
        first_frame = None
        expected = _expected_frames(audio)
        with Mp4Writer(path, audio, FPS) as writer, _progress_bar(expected, progress) as bar:
            # Three threads: the networks, the rendering into the photo, and this one, which encodes.
            chunks = in_background(self.stream(identity, audio), depth=2)
            for (frame, origin), chunk in in_background(_frames_of(chunks, compose, box), depth=FRAMES_AHEAD):
                if origin is None:
                    writer.write(frame)
                else:
                    writer.write_patch(frame, *origin)
                first_frame = first_frame or time.perf_counter() - started
                if chunk is None:
                    continue
                landmarks.append(chunk["landmarks"])
                bar.update(len(chunk["frames"]))
                if on_frames:
                    on_frames(writer.frames_written, expected)
        if landmarks_out:
            np.save(landmarks_out, np.concatenate(landmarks))
        return VideoSummary(path, writer.frames_written, time.perf_counter() - started, first_frame)


# Rendered frames (after the first, their face boxes) waiting for the encoder (a whole 1737 x 994 frame: 5 MB).
FRAMES_AHEAD = 8


def _frames_of(chunks: Iterator[dict], compose: Callable[[dict], Iterator[np.ndarray]],
               box: tuple[int, int, int, int] | None = None) -> Iterator[tuple[tuple[np.ndarray, tuple | None], dict | None]]:
    """((a copy of each output frame, None), its chunk on the chunk's last frame, else None).

    With a `box` (x0, y0, x1, y1) outside which every frame equals the first, the frames after the
    first come as (a copy of their box, (x0, y0)): a fifth of a 1737 x 994 photo's bytes.
    """
    first = True
    for chunk in chunks:
        count = len(chunk["frames"])
        for index, frame in enumerate(compose(chunk)):
            if box is None or first:
                item = frame.copy(), None
            else:
                x0, y0, x1, y1 = box
                item = frame[y0:y1, x0:x1].copy(), (x0, y0)
            first = False
            yield item, (chunk if index == count - 1 else None)


def in_background(items: Iterator, depth: int) -> Iterator:
    """Runs an iterator in a background thread, at most `depth` items ahead of the consumer.

    Exceptions in the thread reach the consumer; a consumer that stops early stops the thread.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def hand_over(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
            hand_over((done, None))
        except BaseException as error:  # handed to the consumer, re-raised there
            hand_over((done, error))
        finally:
            if hasattr(items, "close"):  # stops what feeds it too (an `in_background` further up)
                items.close()

    worker = threading.Thread(target=produce, name="atvg-generate", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _audio_windows(audio: str, inputs: tuple[str, ...], frames_per_batch: int,
                   mfcc_normalization: dict | None) -> Iterator[dict[str, np.ndarray]]:
    """Decodes a speech file block by block and yields AT-net's audio windows about `frames_per_batch` at a time."""
    windows = AudioWindowStream(inputs, mfcc_normalization)
    batch_samples = frames_per_batch * AudioConfig().samples_per_video_frame
    pending: list[np.ndarray] = []
    buffered = 0
    for block in iter_audio(audio):
        pending.append(block)
        buffered += block.size
        if buffered >= batch_samples:  # one feature call per batch, not per decoded block
            yield windows.push(np.concatenate(pending))
            pending, buffered = [], 0
    if pending:
        yield windows.push(np.concatenate(pending))
    yield windows.finish()


class _Chunker:
    """Cuts audio windows ({input: [n, ...]}), as they arrive, into chunks: a short first one (an
    early first frame), then full ones."""

    def __init__(self, first: int, size: int):
        self.size, self.next_size = size, first
        self.buffer: dict[str, np.ndarray] = {}

    def _buffered(self) -> int:
        return len(next(iter(self.buffer.values()))) if self.buffer else 0

    def add(self, windows: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Adds windows; returns the chunks that are now complete."""
        self.buffer = {name: np.concatenate([self.buffer[name], w]) if self.buffer else w for name, w in windows.items()}
        chunks = []
        while self._buffered() >= self.next_size:
            chunks.append({name: w[: self.next_size] for name, w in self.buffer.items()})
            self.buffer = {name: w[self.next_size :] for name, w in self.buffer.items()}
            self.next_size = self.size
        return chunks

    def rest(self) -> list[dict[str, np.ndarray]]:
        """The last, shorter chunk (if any windows are left)."""
        rest, self.buffer = self.buffer, {}
        return [rest] if rest and len(next(iter(rest.values()))) else []


def _expected_frames(audio: str) -> int | None:
    seconds = audio_duration(audio)
    return round(seconds * FPS) if seconds else None


def _progress_bar(total: int | None, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="generating", disable=not enabled, dynamic_ncols=True)
