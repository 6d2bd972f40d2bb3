"""Options of `atvg prepare`, its error type, and the unit of per-clip work."""

from __future__ import annotations

import dataclasses

from atvg_tf.errors import AtvgError
from atvg_tf.frontend.audio import AudioConfig
from atvg_tf.frontend.face.alignment import AlignmentConfig
from atvg_tf.frontend.face.landmarks import BACKENDS

SPLITS = ("train", "val", "test")


class PrepareError(AtvgError, ValueError):
    """A problem with the whole `prepare` request (not with one clip)."""


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Options of `atvg prepare`.

    Attributes:
        backend: landmark backend, `mediapipe` or `dlib`.
        landmark_fallback: mediapipe without `face_model`: use dlib when MediaPipe's model is not
            on the machine and cannot be downloaded (the backend used is recorded in the settings).
        face_model: the backend's model file (found automatically when None).
        allow_download: mediapipe: allow downloading `face_landmarker.task`.
        pca_path: landmark PCA basis (`.npz` from `atvg fit-pca` or an official `U_*.npy`);
            None takes the basis shipped with the package.
        fps: output frame rate.
        jpeg_quality: quality of the stored crops.
        max_gap_frames: detection gaps up to this length are interpolated; longer ones cut the clip.
        min_segment_frames: shorter segments are dropped (16 = one training sequence).
        split_by: `clip` (stable hash of the clip id) or `speaker` (stable hash of the speaker id).
        speaker_level: which folder names the speaker: 0 = the clip's own folder (GRID `s1/x.mpg`),
            1 = its parent (VoxCeleb `id10001/<video>/00001.mp4`), ...
        val_fraction, test_fraction: share of clips (or speakers) in the val and test splits.
        clips_per_shard: clips per TFRecord shard.
        workers: worker processes (1 runs in-process).
        phones: also write PocketSphinx phone windows (`frontend.phones`), for AT-nets with
            `audio_features` `phones` or `mfcc+phones`.
        phone_posteriors: also write phone posterior windows (`frontend.phones.posterior_windows`),
            for AT-nets with `audio_features` `mfcc+phone_head`; about 5 ms of one core per frame
            and audio variant.
        speech_embeddings: also write speech embedding windows (`frontend.speech_embedding`), for
            AT-nets with `audio_features` `mfcc+embedding_head`; about 1 ms of one core per frame
            and audio variant (needs openwakeword 0.5.1's models).
        audio_variants: augmented copies of each clip's audio features besides the recorded ones
            (`frontend.augment`: reverb, noise, band limits, EQ, pitch), drawn from at training time.
        audio: audio front end configuration.
        alignment: alignment configuration.
    """

    backend: str = "mediapipe"
    landmark_fallback: bool = False
    face_model: str | None = None
    allow_download: bool = False
    pca_path: str | None = None
    fps: float = 25.0
    jpeg_quality: int = 95
    max_gap_frames: int = 5
    min_segment_frames: int = 16
    split_by: str = "clip"
    speaker_level: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    clips_per_shard: int = 32
    workers: int = 2
    phones: bool = True
    phone_posteriors: bool = False
    speech_embeddings: bool = False
    audio_variants: int = 0
    audio: AudioConfig = AudioConfig()
    alignment: AlignmentConfig = AlignmentConfig()

    def to_fields(self) -> dict:
        """Plain-data form, passed to worker processes (which rebuild it with `from_fields`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_fields(cls, fields: dict) -> PrepareConfig:
        fields = dict(fields)
        audio = AudioConfig(**fields.pop("audio"))
        alignment = dict(fields.pop("alignment"))
        alignment["alignment_points"] = tuple(alignment["alignment_points"])
        return cls(**fields, audio=audio, alignment=AlignmentConfig(**alignment))

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise PrepareError(f"unknown landmark backend {self.backend!r}; choose one of {', '.join(BACKENDS)}.")
        if self.split_by not in ("clip", "speaker"):
            raise PrepareError(f"--split-by must be 'clip' or 'speaker', got {self.split_by!r}.")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1):
            raise PrepareError("--val-fraction and --test-fraction must be in [0, 1) and sum to less than 1.")
        if self.workers < 1 or self.clips_per_shard < 1:
            raise PrepareError("--workers and --clips-per-shard must be at least 1.")
        if self.audio_variants < 0:
            raise PrepareError("--audio-variants must be >= 0.")
        if self.speaker_level < 0:
            raise PrepareError("--speaker-level must be >= 0.")
        if self.max_gap_frames < 0 or self.min_segment_frames < 1:
            raise PrepareError("--max-gap-frames must be >= 0 and --min-segment-frames >= 1.")
        if self.fps != 25.0 or self.audio.video_fps != 25:
            raise PrepareError("only 25 fps output is supported (the MFCC windows assume it).")


@dataclasses.dataclass(frozen=True)
class ClipJob:
    """One clip to prepare."""

    path: str
    clip_id: str
    speaker_id: str
    split: str
