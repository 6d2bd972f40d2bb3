"""Cutting a clip at face-detection gaps and filling the short gaps (pure numpy).

Shared by `atvg prepare` (per clip) and `atvg evaluate` (per generated or reference video).
"""

from __future__ import annotations

import numpy as np


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
