"""The output folder of `atvg prepare`: shards, the progress journal, settings and the manifest.

    <output>/train-00000.tfrecord ...  shards, each renamed into place when closed
    <output>/progress.jsonl           journal: a settings line, then one line per closed shard
                                      (with its clips) and per skipped or failed clip
    <output>/pca.npz                  the landmark PCA basis the codes were computed with
    <output>/manifest.json            summary of the journal, rewritten at the end of every run

Files are written under a temporary name (`.atvg-XXXXXXXX-<name>`, see `atvg_tf.utils.files`)
and renamed when complete; `remove_stale_temps` deletes those a crash left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
from collections.abc import Callable
from importlib.metadata import version

from atvg_tf import __version__
from atvg_tf.data.prepare_config import SPLITS, PrepareConfig
from atvg_tf.data.tfrecord_lib import TFRecordWriter
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.speech_embedding import model_path
from atvg_tf.utils.files import TEMP_PREFIX, atomic_path, atomic_write

MANIFEST = "manifest.json"
PROGRESS = "progress.jsonl"
PCA_FILE = "pca.npz"

_SHARD_NAME = rf"(?:{'|'.join(SPLITS)})-\d{{5}}\.tfrecord"
# atvg's own temporary files in an output folder: the current `atomic_path` names, and the names
# written by earlier versions (`<shard>.tmp`, `manifest.json.tmp`, `pca.npz.partial.npz`).
_STALE_TEMP = re.compile(
    rf"{re.escape(TEMP_PREFIX)}[a-z0-9_-]+-(?:{_SHARD_NAME}|{re.escape(MANIFEST)}|{re.escape(PCA_FILE)})"
    rf"|{_SHARD_NAME}\.tmp|{re.escape(MANIFEST)}\.tmp|{re.escape(PCA_FILE)}\.partial\.npz"
)


class ShardWriter:
    """Writes records of one split to `<split>-NNNNN.tfrecord`, via a temporary file renamed on close.

    `on_close(shard, clips)` is called after each shard is renamed into place, with the shard's
    manifest entry and the entries of the clips it holds.
    """

    def __init__(self, output: str, split: str, first_index: int, on_close: Callable[[dict, list[dict]], None]):
        self.output, self.split, self.next_index, self.on_close = output, split, first_index, on_close
        self.writer, self.clips, self.records, self.frames, self.path = None, [], 0, 0, None
        self._partial = contextlib.ExitStack()

    def add(self, entry: dict, serialised: list[bytes]) -> None:
        if self.writer is None:
            self.path = os.path.join(self.output, f"{self.split}-{self.next_index:05d}.tfrecord")
            self.writer = TFRecordWriter(self._partial.enter_context(atomic_path(self.path)))
        for record in serialised:
            self.writer.write(record)
        self.clips.append(entry)
        self.records += len(serialised)
        self.frames += entry["frames"]

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        self._partial.close()  # renames the temporary file to self.path
        shard = {"file": os.path.basename(self.path), "split": self.split, "records": self.records, "frames": self.frames}
        self.on_close(shard, self.clips)
        self.writer, self.clips, self.records, self.frames = None, [], 0, 0
        self.next_index += 1


def next_shard_index(output: str, split: str) -> int:
    """The first shard number of `split` not taken in `output`."""
    numbers = [int(os.path.basename(p)[len(split) + 1 : len(split) + 6]) for p in glob.glob(os.path.join(output, f"{split}-*.tfrecord"))]
    return max(numbers, default=-1) + 1


def remove_stale_temps(output: str) -> None:
    """Deletes the temporary shard, manifest and PCA files an interrupted run left in `output`."""
    for name in os.listdir(output):
        if _STALE_TEMP.fullmatch(name) and os.path.isfile(os.path.join(output, name)):
            os.remove(os.path.join(output, name))


def run_settings(config: PrepareConfig, detector_info: dict, pca: LandmarkPCA) -> dict:
    """What determines the content of the shards, in the form it takes in the JSON log."""
    settings = {
        "landmarks": detector_info,
        "pca": pca.describe(),
        "alignment": dataclasses.asdict(config.alignment),
        "audio": dataclasses.asdict(config.audio),
        "audio_features": audio_feature_settings(config),
        "fps": config.fps,
        "jpeg_quality": config.jpeg_quality,
        "max_gap_frames": config.max_gap_frames,
        "min_segment_frames": config.min_segment_frames,
        "split": {"by": config.split_by, "val_fraction": config.val_fraction, "test_fraction": config.test_fraction},
    }
    return json.loads(json.dumps(settings))  # tuples become lists, as they come back from the log


def audio_feature_settings(config: PrepareConfig) -> dict:
    """Which audio features the shards carry: `mfcc` always, `phones`, `phone_posteriors` and
    `speech_embeddings` when asked, and the variants."""
    asked = {"phones": config.phones, "phone_posteriors": config.phone_posteriors, "speech_embeddings": config.speech_embeddings}
    written = ["mfcc"] + [name for name, wanted in asked.items() if wanted]
    features = {"features": written, "variants": 1 + config.audio_variants}
    if config.phones:
        features["phone_decoder"] = f"pocketsphinx {version('pocketsphinx')} allphone en-us"
    if config.phone_posteriors:
        features["posterior_decoder"] = f"pocketsphinx {version('pocketsphinx')} phone lattice en-us, 2 s utterances"
    if config.speech_embeddings:
        model_path("embedding_model")  # before any clip: a one-line error without openwakeword
        features["speech_embedding"] = f"openwakeword {version('openwakeword')} melspectrogram + embedding_model, LiteRT"
    if config.audio_variants:
        features["augmentation"] = f"audiomentations {version('audiomentations')}"
    return features


def first_difference(old: dict, new: dict, prefix: str = "") -> str:
    """The first key (dotted path) whose value differs between two nested dicts, with both values."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} before, {b!r} now"
    return ""


# ---------------------------------------------------------------------------------------------
# Progress journal


def read_progress(output: str) -> tuple[dict | None, list[dict]]:
    """(the settings of the journal, or None without one; its other events in order)."""
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
            if not isinstance(event, dict) or "type" not in event:
                continue  # not an atvg event
            if event.get("type") == "settings":
                header = event["settings"]
            else:
                events.append(event)
    return header, events


def foreign_files(output: str) -> list[str]:
    """Names in `output` that are not atvg's own temporaries (an empty list for a missing folder)."""
    if not os.path.isdir(output):
        return []
    return sorted(name for name in os.listdir(output) if not _STALE_TEMP.fullmatch(name))


def append_event(output: str, event: dict) -> None:
    """Appends one event to the journal and syncs it to disk."""
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


def logged_clips(events: list[dict]) -> dict[str, str | None]:
    """The clips a rerun need not prepare again: {id: None} for those in a closed shard, {id: the
    clip's fingerprint then (`discovery.clip_fingerprint`)} for those skipped (a changed file, or a
    recording put beside a silent one, is tried again); failed ones are retried."""
    done = {}
    for event in events:
        if event["type"] == "shard":
            done.update((c["id"], None) for c in event["clips"])
        elif event["type"] == "skipped":
            done[event["clip"]["id"]] = event["clip"].get("sha256") or ""
    return done


# ---------------------------------------------------------------------------------------------
# Manifest


def build_manifest(output: str, settings: dict, events: list[dict], clips_found: int) -> dict:
    """Assembles the manifest from the progress log."""
    shards, clips, skipped, failed = [], [], {}, {}
    for event in events:
        if event["type"] == "shard":
            shards.append(event["shard"])
            clips.extend(event["clips"])
        elif event["type"] == "skipped":  # the latest verdict on a clip counts (a fixed file is tried again)
            skipped[event["clip"]["id"]] = {k: event["clip"].get(k) for k in ("id", "source", "sha256", "reason")}
        elif event["type"] == "failed":
            failed[event["clip"]["id"]] = {k: event["clip"].get(k) for k in ("id", "source", "reason")}
    prepared_ids = {c["id"] for c in clips}
    failed = [entry for clip_id, entry in sorted(failed.items()) if clip_id not in prepared_ids]
    skipped = [entry for clip_id, entry in sorted(skipped.items()) if clip_id not in prepared_ids]
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


def write_manifest(output: str, manifest: dict) -> None:
    """Writes `<output>/manifest.json` atomically, leaving the file untouched when it is already up to date."""
    path = os.path.join(output, MANIFEST)
    if os.path.exists(path):
        with open(path) as handle:
            try:
                if json.load(handle) == manifest:
                    return
            except json.JSONDecodeError:
                pass
    with atomic_write(path) as handle:
        json.dump(manifest, handle, indent=1)
