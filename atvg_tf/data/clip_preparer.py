"""Per-clip work of `atvg prepare` (runs in worker processes): one clip -> serialised segments.

Read the audio (16 kHz), its MFCC and phone windows (and those of augmented copies of the audio), follow one face through the frames (25 fps) with the
chosen landmark backend, fill short detection gaps and cut the clip at long ones, align every frame
to a 128 x 128 crop with a temporally smoothed similarity transform, and serialise each segment
(see `records`).
"""

from __future__ import annotations

import hashlib
import os
import time

import cv2
import numpy as np

from atvg_tf.data import records
from atvg_tf.data.discovery import clip_fingerprint, no_sound_advice, sound_source
from atvg_tf.data.prepare_config import ClipJob, PrepareConfig, PrepareError
from atvg_tf.data.segments import fill_gaps, find_segments
from atvg_tf.frontend import phones
from atvg_tf.frontend.audio import AudioError, load_audio, mfcc_windows, shift_audio
from atvg_tf.frontend.augment import speech_augmenter
from atvg_tf.frontend.face.alignment import clip_transforms, transform_points, warp_to_crop
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.speech_embedding import embedding_windows
from atvg_tf.frontend.video import VideoError, probe, read_frames

DEFAULT_PCA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "landmark_pca.npz")


def read_grid_alignment(path: str) -> list[tuple[str, float, float]]:
    """Words of a GRID `.align` file as (word, start, end) in 25 fps frames, silences left out."""
    words = []
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3 and parts[2] not in ("sil", "sp"):
                # Times are in 1/25000 s: 1000 units per video frame.
                words.append((parts[2], int(parts[0]) / 1000.0, int(parts[1]) / 1000.0))
    return words


def load_pca(path: str | None) -> LandmarkPCA:
    """The landmark PCA basis of a run: an explicit file or the one shipped with the package."""
    if path is None:
        if not os.path.isfile(DEFAULT_PCA):
            raise PrepareError("the package's landmark PCA basis is missing; pass --pca FILE.")
        return LandmarkPCA.load(DEFAULT_PCA)
    try:
        return LandmarkPCA.load(path)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise PrepareError(f"cannot load the PCA basis {path}: {error}") from None


def clip_waveform(path: str, sample_rate: int, info=None, delay_seconds: float = 0.0) -> np.ndarray:
    """A clip's sound as prepare hears it: mono float32 at `sample_rate`, starting with the first
    video frame (frames count from there). `info`: the clip's `probe`, when already read;
    `delay_seconds`: the sound is moved that much later (its lead over the picture taken out).

    A clip without an audio stream is heard from the recording beside it (`discovery.sound_beside`),
    which is taken to start with the first frame.

    Raises:
        PrepareError: the clip has no audio stream and no recording beside it.
    """
    info = info or probe(path)
    sound = sound_source(path, info)
    if sound is None:
        raise PrepareError(f"{os.path.basename(path)} has no audio stream; {no_sound_advice(path)}")
    # A recording beside the clip starts with its first frame; the clip's own stream may not.
    lead = info.video_start - info.audio_start if sound == path else 0.0
    return shift_audio(load_audio(sound, sample_rate), lead - delay_seconds, sample_rate)


class ClipPreparer:
    """Turns one clip into serialised segments; one instance per worker process."""

    def __init__(self, config: PrepareConfig):
        self.config = config
        self.detector = create_landmark_detector(
            config.backend, config.face_model, config.allow_download, fallback=config.landmark_fallback
        )
        self.pca = load_pca(config.pca_path)
        self.augment = speech_augmenter() if config.audio_variants else None

    def __call__(self, job: ClipJob) -> dict:
        started = time.perf_counter()
        entry = {"id": job.clip_id, "speaker": job.speaker_id, "source": job.path, "split": job.split}
        try:
            entry["sha256"] = clip_fingerprint(job.path)
            serialised = self._prepare(job, entry)
        except (AudioError, VideoError, PrepareError) as error:
            entry.update(status="skipped", reason=str(error))
            serialised = []
        except Exception as error:  # a broken clip must never stop the run; it is retried next time
            entry.update(status="failed", reason=f"{error.__class__.__name__}: {error}")
            serialised = []
        entry["seconds"] = round(time.perf_counter() - started, 3)
        return {"entry": entry, "records": serialised}

    def _prepare(self, job: ClipJob, entry: dict) -> list[bytes]:
        config = self.config
        info = probe(job.path)
        waveform = clip_waveform(job.path, config.audio.sample_rate, info)
        if not info.has_audio:
            entry["sound"] = sound_source(job.path, info)
        raw = list(self.detector.clip_landmarks(read_frames(job.path, config.fps), config.fps))
        total = len(raw)
        found = [points is not None for points in raw]
        kept, dropped = find_segments(found, config.max_gap_frames, config.min_segment_frames)
        entry.update(
            frames_total=total,
            source_fps=round(info.fps, 3),
            frames_without_face=int(total - sum(found)),
            frames_with_several_faces=self.detector.frames_with_several_faces,
            dropped_segments=[list(r) for r in dropped],
            audio_seconds=round(len(waveform) / config.audio.sample_rate, 3),
        )
        notes = []
        if self.detector.frames_with_several_faces:
            notes.append(f"several faces in {self.detector.frames_with_several_faces} frames; the largest was followed")
        if len(waveform) / config.audio.sample_rate < total / config.fps - 0.2:
            notes.append(f"audio ({entry['audio_seconds']} s) shorter than the video ({total / config.fps:.2f} s); silence fills the rest")
        entry["notes"] = notes
        if total < config.min_segment_frames:  # not a face problem: too little video (short, or cut off)
            raise PrepareError(f"only {total} frames ({total / config.fps:.2f} s) decode; clips need at least "
                               f"{config.min_segment_frames}: the file is too short or truncated")
        if not kept:
            raise PrepareError(
                f"face found in {sum(found)}/{total} frames; no run of {config.min_segment_frames} frames to keep"
            )
        mfcc, phone_ids, posteriors, embeddings = self._audio_features(waveform, total, job.clip_id)
        align_path = os.path.splitext(job.path)[0] + ".align"
        words = read_grid_alignment(align_path) if os.path.isfile(align_path) else []

        segments = []
        for start, end in kept:
            landmarks, interpolated = fill_gaps(raw[start:end])
            segments.append((start, end, landmarks, interpolated, clip_transforms(landmarks, config.alignment)))
        crops = self._crops(job.path, segments)

        serialised, summary = [], []
        for index, ((start, end, landmarks, interpolated, transforms), jpegs) in enumerate(zip(segments, crops)):
            crop_landmarks = np.stack([transform_points(p, m) for p, m in zip(landmarks, transforms)])
            segment_words = [(w, s - start, e - start) for w, s, e in words if e > start and s < end]
            serialised.append(
                records.encode_segment(
                    clip_id=job.clip_id,
                    speaker_id=job.speaker_id,
                    source=os.path.basename(job.path),
                    segment=index,
                    start_frame=start,
                    jpeg_frames=jpegs,
                    landmarks=crop_landmarks,
                    pca_codes=self.pca.encode(crop_landmarks),
                    mfcc_windows=mfcc[:, start:end],
                    phone_windows=None if phone_ids is None else phone_ids[:, start:end],
                    phone_posteriors=None if posteriors is None else posteriors[:, start:end],
                    speech_embeddings=None if embeddings is None else embeddings[:, start:end],
                    transforms=transforms.reshape(-1, 6),
                    interpolated=interpolated,
                    words=segment_words,
                )
            )
            summary.append({"start": start, "frames": end - start, "interpolated": int(interpolated.sum())})
        entry.update(status="ok", segments=summary, frames=sum(s["frames"] for s in summary))
        return serialised

    def _audio_features(self, waveform: np.ndarray, num_frames: int, clip_id: str):
        """MFCC windows [V, N, 28, 12], phone windows [V, N, 28], phone posterior windows
        [V, N, 28, 40] and speech embedding windows [V, N, 11, 96] (each of the last three None when
        not asked for) of the recorded audio and its augmented copies; the seeds come from the clip
        id, so a re-run writes the same."""
        waveforms = [waveform]
        if self.augment is not None:
            seed = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:4], "little")
            waveforms += [self.augment(waveform, seed + variant) for variant in range(self.config.audio_variants)]
        mfcc = np.stack([mfcc_windows(w, num_frames, self.config.audio) for w in waveforms])
        ids = np.stack([phones.phone_windows(w, num_frames) for w in waveforms]) if self.config.phones else None
        posteriors = np.stack([phones.posterior_windows(w, num_frames) for w in waveforms]) if self.config.phone_posteriors else None
        embeddings = np.stack([embedding_windows(w, num_frames) for w in waveforms]) if self.config.speech_embeddings else None
        return mfcc, ids, posteriors, embeddings

    def _crops(self, path: str, segments: list) -> list[list[bytes]]:
        """Second decoding pass: warp and JPEG-encode the frames of every segment."""
        crops = [[] for _ in segments]
        lookup = {}
        for index, (start, end, _, _, transforms) in enumerate(segments):
            for frame in range(start, end):
                lookup[frame] = (index, transforms[frame - start])
        quality = [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality]
        size = self.config.alignment.crop_size
        for frame_index, frame in enumerate(read_frames(path, self.config.fps)):
            if frame_index in lookup:
                index, transform = lookup[frame_index]
                crop = warp_to_crop(frame, transform, size)
                ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), quality)
                crops[index].append(encoded.tobytes())
        for (start, end, *_), jpegs in zip(segments, crops):
            if len(jpegs) != end - start:
                raise PrepareError("the second decoding pass returned fewer frames than the first")
        return crops
