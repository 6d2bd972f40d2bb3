"""The audio-video offset of a clip, measured without any trained model.

The reference is speaker-independent: PocketSphinx's phones (`frontend.phones`) mapped to how far
each opens the mouth (open vowels 1.0, P/B/M and silence 0, ...). Its correlation with the real
inner-lip aperture peaks at the lag where the sound meets the picture. The absolute lag includes the
recogniser's own timing (GRID s1's clips peak at 0), so offsets are meant relative to other footage
measured the same way.
"""

from __future__ import annotations

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
