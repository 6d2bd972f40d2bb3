"""Talking-face metrics (docs/EVALUATION.md): LMD, SSIM, PSNR and the release's wrapped "legacy" PSNR."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MOUTH = slice(48, 68)


def landmark_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """LMD of one frame pair: mean distance per mouth point after removing each mouth's centroid.

    Args:
        real, generated: [68, 2] landmarks in pixels of the 128 px crops.

    Returns:
        Mean over the 20 mouth points, in pixels (the release sums them; the paper's ~1.3 values are
        means per point).
    """
    a = real[MOUTH] - real[MOUTH].mean(0)
    b = generated[MOUTH] - generated[MOUTH].mean(0)
    return float(np.linalg.norm(a - b, axis=1).mean())


def psnr(real: np.ndarray, generated: np.ndarray) -> float:
    """Correct PSNR of uint8 images (float arithmetic), in dB; inf for identical images."""
    mse = np.mean((real.astype(np.float64) - generated.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def psnr_legacy(real: np.ndarray, generated: np.ndarray) -> float:
    """The ATVGnet release's PSNR: `(a - b) ** 2` on uint8 arrays wraps modulo 256.

    Never below 24.1 dB and about 27.9 dB for two random images; only for comparison with the
    paper's numbers.
    """
    wrapped = (real.astype(np.uint8) - generated.astype(np.uint8)) ** 2  # uint8 arithmetic, wraps
    mse = wrapped.astype(np.float64).mean()
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(real: np.ndarray, generated: np.ndarray) -> float:
    """Mean SSIM over the colour channels of two uint8 images (Gaussian 11 x 11 window, sigma 1.5)."""
    value = tf.image.ssim(tf.constant(real, tf.float32)[None], tf.constant(generated, tf.float32)[None], max_val=255.0)
    return float(value.numpy()[0])


# Inner-lip point pairs (upper, lower) of the 68-point layout and the outer eye corners.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
OUTER_EYE_CORNERS = (36, 45)


def mouth_aperture(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening divided by the outer eye-corner distance (scale-free).

    Args:
        landmarks: [..., 68, 2] landmarks.

    Returns:
        [...] mean distance of the three inner-lip point pairs over the distance of points 36 and 45.
    """
    landmarks = np.asarray(landmarks, np.float64)
    opening = np.mean([np.linalg.norm(landmarks[..., a, :] - landmarks[..., b, :], axis=-1) for a, b in INNER_LIP_PAIRS], axis=0)
    eyes = np.linalg.norm(landmarks[..., OUTER_EYE_CORNERS[0], :] - landmarks[..., OUTER_EYE_CORNERS[1], :], axis=-1)
    return opening / eyes


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two curves over the entries where both are finite; NaN when it is undefined
    (fewer than 3 such entries, or a constant curve)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def std_ratio(generated: np.ndarray, real: np.ndarray) -> float:
    """Standard deviation of `generated` over that of `real`, over the entries where both are finite."""
    generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    keep = np.isfinite(generated) & np.isfinite(real)
    if keep.sum() < 3 or real[keep].std() == 0:
        return float("nan")
    return float(generated[keep].std() / real[keep].std())
