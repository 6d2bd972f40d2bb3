"""`atvg prepare`: talking-face clips -> aligned, labelled training shards (TFRecord) + a manifest.

Per clip (in worker processes): read the audio (16 kHz) and its MFCC windows, follow one face
through the frames (25 fps) with the chosen landmark backend, fill short detection gaps and cut
the clip at long ones, align every frame to a 128 x 128 crop with a temporally smoothed similarity
transform, and serialise each segment (see `records`). The parent process writes shards.

Resumable: finished shards are renamed into place and logged in `progress.jsonl` together with the
clips they hold (and the clips that were skipped, with the reason); a rerun of the same command
skips every logged clip, and an interrupted run keeps every shard closed before the interruption
(Ctrl-C closes the open shards cleanly).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import glob
import hashlib
import json
import multiprocessing
import os
import time

import cv2
import numpy as np
import tensorflow as tf

from atvg_tf import __version__
from atvg_tf.data import records
from atvg_tf.frontend.audio import AudioConfig, AudioError, MfccWindows, load_audio, shift_audio
from atvg_tf.frontend.face import assets
from atvg_tf.frontend.face.alignment import AlignmentConfig, clip_transforms, transform_points, warp_to_crop
from atvg_tf.frontend.face.landmarks import BACKENDS, create_landmark_detector
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.video import VIDEO_EXTENSIONS, VideoError, probe, read_frames

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
PROGRESS = "progress.jsonl"
PCA_FILE = "pca.npz"
DEFAULT_PCA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "landmark_pca.npz")


class PrepareError(ValueError):
    """A problem with the whole `prepare` request (not with one clip)."""


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Options of `atvg prepare`.

    Attributes:
        backend: landmark backend, `mediapipe` or `dlib`.
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
        audio: audio front end configuration.
        alignment: alignment configuration.
    """

    backend: str = "mediapipe"
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
    audio: AudioConfig = AudioConfig()
    alignment: AlignmentConfig = AlignmentConfig()

    def to_fields(self) -> dict:
        """Plain-data form (for worker processes that must not import this module to unpickle it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_fields(cls, fields: dict) -> "PrepareConfig":
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


# ---------------------------------------------------------------------------------------------
# Discovering clips


def discover_clips(inputs: list[str], speaker_level: int = 0) -> list[tuple[str, str, str]]:
    """Finds clips in files and folders.

    Returns:
        Sorted (path, clip_id, speaker_id) triples. The clip id is the path relative to the
        folder that holds the input, without extension (`s1/bbaf4p` for `.../grid/s1`); the speaker
        id is the name of the clip's folder (`speaker_level` folders further up when > 0). A file
        reached through several inputs is taken once.

    Raises:
        PrepareError: an input does not exist, nothing was found, or two different files would get
            the same clip id.
    """
    found: dict[str, tuple[str, str, str]] = {}
    seen: set[str] = set()
    for item in inputs:
        if not os.path.exists(item):
            raise PrepareError(f"input not found: {item}")
        item = os.path.abspath(item)
        if os.path.isdir(item):
            paths = [
                p for p in glob.glob(os.path.join(item, "**", "*"), recursive=True)
                if os.path.isfile(p) and p.lower().endswith(VIDEO_EXTENSIONS)
            ]
            root = os.path.dirname(item)
        else:
            paths, root = [item], os.path.dirname(os.path.dirname(item))
        for path in sorted(paths):
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            clip_id = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")
            if clip_id in found:
                raise PrepareError(
                    f"{found[clip_id][0]} and {path} would both get the clip id {clip_id!r}; "
                    f"rename one or prepare them into separate outputs."
                )
            folder = os.path.dirname(path)
            for _ in range(speaker_level):
                folder = os.path.dirname(folder)
            found[clip_id] = (path, clip_id, os.path.basename(folder))
    if not found:
        raise PrepareError(f"no video clips ({', '.join(VIDEO_EXTENSIONS)}) found in {', '.join(inputs)}.")
    return sorted(found.values(), key=lambda item: item[1])


def assign_split(clip_id: str, speaker_id: str, config: PrepareConfig) -> str:
    """Stable split of a clip: a hash of its id (or its speaker's) mapped to [0, 1)."""
    key = clip_id if config.split_by == "clip" else speaker_id
    position = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32
    if position < config.test_fraction:
        return "test"
    if position < config.test_fraction + config.val_fraction:
        return "val"
    return "train"


# ---------------------------------------------------------------------------------------------
# Per-clip work (runs in worker processes)


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


def find_segments(found: list[bool], max_gap: int, min_length: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Splits a clip at detection gaps.

    Args:
        found: per frame, whether a face was detected.
        max_gap: interior gaps up to this many frames are bridged.
        min_length: segments shorter than this are dropped.

    Returns:
        (kept, dropped) lists of [start, end) frame ranges; kept ranges start and end on detected frames.
    """
    runs, start, gap_start = [], None, None
    for index, hit in enumerate(found):
        if hit:
            if start is None:
                start = index
            elif gap_start is not None and index - gap_start > max_gap:
                runs.append((start, gap_start))
                start = index
            gap_start = None
        elif start is not None and gap_start is None:
            gap_start = index
    if start is not None:
        runs.append((start, gap_start if gap_start is not None else len(found)))
    kept = [r for r in runs if r[1] - r[0] >= min_length]
    dropped = [r for r in runs if r[1] - r[0] < min_length]
    return kept, dropped


def fill_gaps(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolates missing landmarks inside a segment (its ends are detected).

    Returns:
        ([N, 68, 2] landmarks, [N] int flags, 1 where interpolated).
    """
    found = np.array([points is not None for points in landmarks])
    known = np.flatnonzero(found)
    stacked = np.zeros((len(landmarks), 68, 2), np.float32)
    stacked[known] = np.stack([landmarks[i] for i in known])
    for missing in np.flatnonzero(~found):
        after = known[np.searchsorted(known, missing)]
        before = known[np.searchsorted(known, missing) - 1]
        weight = (missing - before) / (after - before)
        stacked[missing] = (1 - weight) * stacked[before] + weight * stacked[after]
    return stacked, (~found).astype(np.int64)


class ClipPreparer:
    """Turns one clip into serialised segments; one instance per worker process."""

    def __init__(self, config: PrepareConfig):
        self.config = config
        self.detector = create_landmark_detector(config.backend, config.face_model, config.allow_download)
        self.pca = load_pca(config.pca_path)
        self.windows = MfccWindows(config.audio)

    def __call__(self, job: ClipJob) -> dict:
        started = time.perf_counter()
        entry = {"id": job.clip_id, "speaker": job.speaker_id, "source": job.path, "split": job.split}
        try:
            entry["sha256"] = assets.file_sha256(job.path)
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
        if not info.has_audio:
            raise PrepareError("no audio stream")
        waveform = load_audio(job.path, config.audio.sample_rate)
        # Frames count from the first video frame: give the audio the same time origin.
        waveform = shift_audio(waveform, info.video_start - info.audio_start, config.audio.sample_rate)
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
        if not kept:
            raise PrepareError(
                f"face found in {sum(found)}/{total} frames; no run of {config.min_segment_frames} frames to keep"
            )
        windows = self.windows(tf.constant(waveform), tf.constant(total, tf.int32)).numpy()
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
                    mfcc_windows=windows[start:end],
                    transforms=transforms.reshape(-1, 6),
                    interpolated=interpolated,
                    words=segment_words,
                )
            )
            summary.append({"start": start, "frames": end - start, "interpolated": int(interpolated.sum())})
        entry.update(status="ok", segments=summary, frames=sum(s["frames"] for s in summary))
        return serialised

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


# ---------------------------------------------------------------------------------------------
# Output folder: settings, shards, progress log, manifest


class _ShardWriter:
    """Writes records of one split to `<split>-NNNNN.tfrecord`, via a `.tmp` file renamed on close."""

    def __init__(self, output: str, split: str, first_index: int, on_close):
        self.output, self.split, self.next_index, self.on_close = output, split, first_index, on_close
        self.writer, self.clips, self.records, self.frames, self.path = None, [], 0, 0, None

    def add(self, entry: dict, serialised: list[bytes]) -> None:
        if self.writer is None:
            self.path = os.path.join(self.output, f"{self.split}-{self.next_index:05d}.tfrecord")
            self.writer = tf.io.TFRecordWriter(self.path + ".tmp")
        for record in serialised:
            self.writer.write(record)
        self.clips.append(entry)
        self.records += len(serialised)
        self.frames += entry["frames"]

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        os.replace(self.path + ".tmp", self.path)
        shard = {"file": os.path.basename(self.path), "split": self.split, "records": self.records, "frames": self.frames}
        self.on_close(shard, self.clips)
        self.writer, self.clips, self.records, self.frames = None, [], 0, 0
        self.next_index += 1


def _settings(config: PrepareConfig, detector_info: dict, pca: LandmarkPCA) -> dict:
    """What determines the content of the shards, in the form it takes in the JSON log."""
    settings = {
        "landmarks": detector_info,
        "pca": pca.describe(),
        "alignment": dataclasses.asdict(config.alignment),
        "audio": dataclasses.asdict(config.audio),
        "fps": config.fps,
        "jpeg_quality": config.jpeg_quality,
        "max_gap_frames": config.max_gap_frames,
        "min_segment_frames": config.min_segment_frames,
        "split": {"by": config.split_by, "val_fraction": config.val_fraction, "test_fraction": config.test_fraction},
    }
    return json.loads(json.dumps(settings))  # tuples become lists, as they come back from the log


def _read_progress(output: str) -> tuple[dict | None, list[dict]]:
    path = os.path.join(output, PROGRESS)
    if not os.path.exists(path):
        return None, []
    header, events = None, []
    with open(path) as handle:
        for line in handle:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if event.get("type") == "settings":
                header = event["settings"]
            else:
                events.append(event)
    return header, events


def _first_difference(old: dict, new: dict, prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} before, {b!r} now"
    return ""


def _append(output: str, event: dict) -> None:
    path = os.path.join(output, PROGRESS)
    cut = False
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            cut = handle.read(1) != b"\n"  # a crash cut the last line short
    with open(path, "a") as handle:
        handle.write(("\n" if cut else "") + json.dumps(event) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def build_manifest(output: str, settings: dict, events: list[dict], clips_found: int) -> dict:
    """Assembles the manifest from the progress log."""
    shards, clips, skipped, failed = [], [], [], {}
    for event in events:
        if event["type"] == "shard":
            shards.append(event["shard"])
            clips.extend(event["clips"])
        elif event["type"] == "skipped":
            skipped.append({k: event["clip"].get(k) for k in ("id", "source", "sha256", "reason")})
        elif event["type"] == "failed":
            failed[event["clip"]["id"]] = {k: event["clip"].get(k) for k in ("id", "source", "reason")}
    prepared_ids = {c["id"] for c in clips}
    failed = [entry for clip_id, entry in sorted(failed.items()) if clip_id not in prepared_ids]
    frames = {split: sum(s["frames"] for s in shards if s["split"] == split) for split in SPLITS}
    clip_counts = {split: sum(1 for c in clips if c["split"] == split) for split in SPLITS}
    return {
        "format": "atvg-tf prepared clips",
        "version": 1,
        "atvg_tf_version": __version__,
        "settings": settings,
        "pca_file": PCA_FILE,
        "counts": {
            "clips_found": clips_found,
            "clips_prepared": len(clips),
            "clips_skipped": len(skipped),
            "clips_failed": len(failed),
            "segments": sum(len(c["segments"]) for c in clips),
            "frames": frames,
            "clips": clip_counts,
        },
        "shards": shards,
        "clips": sorted(clips, key=lambda c: c["id"]),
        "skipped": sorted(skipped, key=lambda c: c["id"]),
        "failed": failed,
    }


def _write_json(path: str, data: dict) -> None:
    partial = path + ".tmp"
    with open(partial, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(partial, path)


def prepare(inputs: list[str], output: str, config: PrepareConfig = PrepareConfig(), progress: bool = True) -> dict:
    """Prepares talking-face clips into shards; see the module docstring.

    Args:
        inputs: clip files and folders (searched recursively).
        output: output folder (created; reused to resume).
        config: options.
        progress: show a progress bar.

    Returns:
        The manifest (also written to `<output>/manifest.json`).

    Raises:
        PrepareError: bad options, no clips, or an output folder prepared with other settings.
    """
    config.validate()
    clips = discover_clips(inputs, config.speaker_level)
    pca = load_pca(config.pca_path)
    settings = _settings(config, _check_landmark_model(config), pca)
    if os.path.exists(output) and not os.path.isdir(output):
        raise PrepareError(f"--output {output} exists and is not a folder.")
    os.makedirs(output, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise PrepareError(f"cannot write to {output}; choose a writable --output.")
    previous, events = _read_progress(output)
    if previous is not None and previous != settings:
        raise PrepareError(
            f"{output} was prepared with other settings ({_first_difference(previous, settings)}); "
            f"rerun with the same options or choose a new --output."
        )
    if previous is None:
        pca.save(os.path.join(output, PCA_FILE))
        _append(output, {"type": "settings", "settings": settings})
    for stale in glob.glob(os.path.join(output, "*-*.tfrecord.tmp")) + glob.glob(os.path.join(output, MANIFEST + ".tmp")):
        os.remove(stale)

    done = set()
    for event in events:
        if event["type"] == "shard":
            done.update(c["id"] for c in event["clips"])
        elif event["type"] == "skipped":
            done.add(event["clip"]["id"])
    jobs = [
        ClipJob(path, clip_id, speaker, assign_split(clip_id, speaker, config))
        for path, clip_id, speaker in clips
        if clip_id not in done
    ]
    manifest_path = os.path.join(output, MANIFEST)

    def on_close(shard: dict, shard_clips: list[dict]) -> None:
        event = {"type": "shard", "shard": shard, "clips": shard_clips}
        _append(output, event)
        events.append(event)

    def log_event(kind: str, entry: dict) -> None:
        event = {"type": kind, "clip": entry}
        _append(output, event)
        events.append(event)

    writers = {split: _ShardWriter(output, split, _next_free(output, split), on_close) for split in SPLITS}

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="clip", disable=not progress or not jobs, dynamic_ncols=True)
    frames_done, started = 0, time.perf_counter()
    try:
        for result in _results(jobs, config):
            entry = result["entry"]
            if entry["status"] == "ok":
                writer = writers[entry["split"]]
                writer.add(entry, result["records"])
                frames_done += entry["frames"]
                for note in entry["notes"]:
                    bar.write(f"warning: {entry['id']}: {note}")
                if len(writer.clips) >= config.clips_per_shard:
                    writer.close()
            else:
                log_event(entry["status"], entry)
                bar.write(f"{entry['status']} {entry['id']}: {entry['reason']}")
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{frames_done / (time.perf_counter() - started):.0f}")
    finally:
        # Also on Ctrl-C or a crash: close the open shards so the clips already in them are kept,
        # and bring the manifest up to date with them.
        for writer in writers.values():
            writer.close()
        bar.close()
        manifest = build_manifest(output, settings, events, len(clips))
        _write_json_if_changed(manifest_path, manifest)
    return manifest


def _check_landmark_model(config: PrepareConfig) -> dict:
    """Loads the landmark backend once in this process, so a bad model file is one clear error."""
    model_path = (
        assets.find_face_landmarker_model(config.face_model, config.allow_download)
        if config.backend == "mediapipe"
        else assets.find_dlib_predictor(config.face_model)
    )
    try:
        with create_landmark_detector(config.backend, model_path) as detector:
            detector.image_landmarks(np.zeros((64, 64, 3), np.uint8))
    except Exception as error:
        raise PrepareError(f"cannot use {model_path} as the {config.backend} landmark model ({error.__class__.__name__}); give the right file.") from None
    return {"backend": config.backend, "model_file": os.path.basename(model_path), "model_sha256": assets.file_sha256(model_path)}


def _write_json_if_changed(path: str, data: dict) -> None:
    if os.path.exists(path):
        with open(path) as handle:
            try:
                if json.load(handle) == data:
                    return
            except json.JSONDecodeError:
                pass
    _write_json(path, data)


def _next_free(output: str, split: str) -> int:
    numbers = [int(os.path.basename(p)[len(split) + 1 : len(split) + 6]) for p in glob.glob(os.path.join(output, f"{split}-*.tfrecord"))]
    return max(numbers, default=-1) + 1


def _results(jobs: list[ClipJob], config: PrepareConfig):
    """Yields per-clip results as they finish, from worker processes (or in-process for one worker)."""
    if not jobs:
        return
    if config.workers == 1:
        preparer = ClipPreparer(config)
        try:
            for job in jobs:
                yield preparer(job)
        finally:
            preparer.detector.close()
        return
    from atvg_tf.data import _worker

    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=config.workers, mp_context=context, initializer=_worker.init, initargs=(config.to_fields(),)
    )
    running: dict = {}
    try:
        # Bounded look-ahead keeps memory flat however many clips there are.
        for job in jobs:
            running[pool.submit(_worker.run, dataclasses.astuple(job))] = job
            if len(running) >= 2 * config.workers:
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    running.pop(future)
                    yield future.result()
        for future in concurrent.futures.as_completed(list(running)):
            running.pop(future)
            yield future.result()
    except concurrent.futures.process.BrokenProcessPool:
        names = ", ".join(job.clip_id for job in running.values())
        raise PrepareError(
            f"a worker process died (native crash or out of memory) while preparing one of: {names}; "
            f"finished clips are kept: rerun to continue, or move the culprit out of the input."
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
