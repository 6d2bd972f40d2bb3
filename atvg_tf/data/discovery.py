"""Finding the clips of `atvg prepare` and assigning each one a stable split."""

from __future__ import annotations

import glob
import hashlib
import os

from atvg_tf.data.prepare_config import PrepareConfig, PrepareError
from atvg_tf.frontend.video import VIDEO_EXTENSIONS, probe
from atvg_tf.utils.files import sha256_file

# A recording beside a clip, under the clip's name, is its sound when the clip has none of its own
# (corpora such as EDTalk's and many phone recordings keep the two apart).
SOUND_EXTENSIONS = (".wav", ".flac")


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


def sound_beside(path: str) -> str | None:
    """The recording next to the clip `path` under the same name (`clip.wav`, `clip.flac`), if any."""
    stem = os.path.splitext(path)[0]
    return next((stem + extension for extension in SOUND_EXTENSIONS if os.path.isfile(stem + extension)), None)


def sound_source(path: str, info=None) -> str | None:
    """The file a clip's sound is read from: the clip itself when it has an audio stream, else the
    recording beside it (`sound_beside`), else None. `info`: the clip's `probe`, when already read."""
    return path if (info or probe(path)).has_audio else sound_beside(path)


def no_sound_advice(path: str) -> str:
    """How to give a soundless clip its sound, for the one-line errors that refuse it."""
    stem = os.path.basename(os.path.splitext(path)[0])
    return f"put its recording beside it as {stem}.wav or {stem}.flac"


def clip_fingerprint(path: str) -> str:
    """The sha256 of a clip's file, joined by that of the recording beside it when that is its sound
    (the video has no audio stream): a clip skipped for having no sound is tried again once a
    recording is put beside it.

    Raises:
        OSError: unreadable file; VideoError: a recording lies beside a file that is no video.
    """
    sound = sound_beside(path)
    if sound is None or probe(path).has_audio:  # no probe without a recording: any file has a hash
        return sha256_file(path)
    return f"{sha256_file(path)}+{sha256_file(sound)}"
