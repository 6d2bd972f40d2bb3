"""The audio-video offset of a clip, measured without any trained model.

The reference is speaker-independent: PocketSphinx's phones (`frontend.phones`) mapped to how far
each opens the mouth (open vowels 1.0, P/B/M and silence 0, ...). Its correlation with the real
inner-lip aperture peaks at the lag where the sound meets the picture. The absolute lag includes the
recogniser's own timing (GRID s1's clips peak at 0), so offsets are meant relative to other footage
measured the same way.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator

import numpy as np

from atvg_tf.evaluation.metrics import mouth_aperture, pearson
from atvg_tf.frontend.phones import PHONES

# How far a phone opens the mouth, 0 (closed) to 1 (open vowels); any other consonant 0.3.
_OPENNESS = {"AA": 1.0, "AE": 1.0, "AH": 1.0, "AO": 1.0, "AW": 1.0, "AY": 1.0, "EH": 0.7, "ER": 0.7, "EY": 0.7,
             "OW": 0.7, "OY": 0.7, "UH": 0.7, "IH": 0.4, "IY": 0.4, "UW": 0.4, "F": 0.15, "V": 0.15,
             "P": 0.0, "B": 0.0, "M": 0.0, "SIL": 0.0}
PHONE_OPENNESS = np.array([_OPENNESS.get(phone, 0.3) for phone in PHONES], np.float32)
# Rows of a frame's 28-row phone window that fall inside the frame's own 40 ms.
_OWN_ROWS = slice(12, 16)


def phone_openness(phone_windows: np.ndarray) -> np.ndarray:
    """[N, 28] phone ids (one window per video frame) -> [N] expected mouth openness, lightly smoothed."""
    openness = PHONE_OPENNESS[np.asarray(phone_windows)[:, _OWN_ROWS]].mean(axis=1)
    return np.convolve(openness, [0.25, 0.5, 0.25], mode="same")


def lagged_correlations(driven: np.ndarray, real: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson correlation of `driven[t + lag]` with `real[t]` for lag = -max_lag .. max_lag.

    A peak at a positive lag means the sound-driven curve comes `lag` frames after the picture.
    """
    driven, real = np.asarray(driven, np.float64), np.asarray(real, np.float64)
    n = min(len(driven), len(real))
    out = []
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            out.append(pearson(driven[lag:n], real[: n - lag]))
        else:
            out.append(pearson(driven[: n + lag], real[-lag:n]))
    return np.array(out)


def clip_offset(phone_windows: np.ndarray, landmarks: np.ndarray, max_lag: int = 6) -> tuple[int, np.ndarray]:
    """A clip's audio-video offset in frames and the correlations it was read from.

    Args:
        phone_windows: [N, 28] phone ids of each frame's window (`frontend.phones.phone_windows`).
        landmarks: [N, 68, 2] the real faces' landmarks.
        max_lag: largest offset looked at, in frames.

    Returns:
        (lag of the peak, [2 * max_lag + 1] correlations for lags -max_lag .. max_lag).
    """
    correlations = lagged_correlations(phone_openness(phone_windows), mouth_aperture(landmarks), max_lag)
    if np.all(np.isnan(correlations)):
        return 0, correlations
    return int(np.nanargmax(correlations)) - max_lag, correlations


# Shorter segments give no stable peak.
MIN_SEGMENT_FRAMES = 50
# Below this the reference barely follows the mouth at any lag; the wild clips of `data/` peak at
# 0.19-0.57, one short clip at 0.09 (`benchmarks/bench_av_offset.py`).
MIN_PEAK = 0.1


def prepared_offsets(prepared_dir: str, max_lag: int = 6) -> Iterator[dict]:
    """Each segment of a prepared folder (`atvg prepare` with phones) with its offset.

    Yields:
        {"clip_id", "speaker_id", "frames", "lag", "correlations" [2 * max_lag + 1]} per segment of
        at least `MIN_SEGMENT_FRAMES` frames, one segment in memory at a time.

    Raises:
        InputError: no shards, or shards written without phones.
    """
    import tensorflow as tf

    from atvg_tf.data.records import parse_segment
    from atvg_tf.errors import InputError

    paths = sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord")))
    if not paths:
        raise InputError(f"{prepared_dir} has no shards; give a folder written by `atvg prepare`.")
    for record in tf.data.TFRecordDataset(paths):
        parsed = parse_segment(record)
        phones = parsed["phone_windows"].numpy()
        if not len(phones):
            raise InputError(f"{prepared_dir} was prepared without phones; rerun `atvg prepare` without --no-phones.")
        frames = int(parsed["num_frames"].numpy())
        if frames < MIN_SEGMENT_FRAMES:
            continue
        lag, correlations = clip_offset(phones[0], parsed["landmarks"].numpy(), max_lag)
        yield {"clip_id": parsed["clip_id"].numpy().decode(), "speaker_id": parsed["speaker_id"].numpy().decode(),
               "frames": frames, "lag": lag, "correlations": correlations}


def clip_offsets(prepared_dir: str, max_lag: int = 6, min_peak: float = MIN_PEAK) -> dict[str, int]:
    """The offset of each clip of a prepared folder: the peak of its segments' frame-weighted mean curve.

    A clip whose peak correlation is below `min_peak` (speech the reference cannot follow) or that has
    no segment long enough gets 0.
    """
    curves: dict[str, list] = {}
    for segment in prepared_offsets(prepared_dir, max_lag):
        curves.setdefault(segment["clip_id"], []).append((segment["frames"], segment["correlations"]))
    offsets = {}
    for clip_id, weighted in curves.items():
        weights = np.array([frames for frames, _ in weighted], np.float64)
        stacked = np.stack([correlations for _, correlations in weighted])
        mean = np.nansum(stacked * weights[:, None], axis=0) / weights.sum()
        peak = int(np.nanargmax(mean)) if not np.all(np.isnan(stacked)) else max_lag
        offsets[clip_id] = peak - max_lag if mean[peak] >= min_peak else 0
    return offsets
