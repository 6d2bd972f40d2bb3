"""Losses of ATVGnet (Eq. 9, 12, 13)."""

from __future__ import annotations

import numpy as np
from keras import ops

# Flat indices of the mouth landmarks' y values (points 48-67 -> 97, 99, ..., 135).
MOUTH_Y_INDICES = tuple(range(97, 136, 2))


def landmark_mask(mouth_weight: float = 100.0) -> np.ndarray:
    """The mask M_p: 1 everywhere, `mouth_weight` on the mouth y values."""
    mask = np.ones(136, np.float32)
    mask[list(MOUTH_Y_INDICES)] = mouth_weight
    return mask


def _float32(*tensors):
    # Losses are computed in float32 also when the models run in mixed precision.
    return [ops.cast(t, "float32") for t in tensors]


def dynamic_pixel_loss(real, fake, attention, beta: float = 0.5, region_weight=None):
    """Eq. 9: mean(|v - v_hat| * (stop_gradient(a) + beta)); no gradient reaches the attention map.

    Args:
        region_weight: optional extra per-pixel weight (e.g. `1 + w * mouth_mask`), broadcast
            against the frames; None is the paper's loss.
    """
    real, fake, attention = _float32(real, fake, attention)
    weight = ops.stop_gradient(attention) + beta
    if region_weight is not None:
        weight = weight * region_weight
    return ops.mean(ops.abs(real - fake) * weight)


def mouth_mask(landmarks, size: int, margin: float = 0.04):
    """1 inside each frame's mouth box (points 48-67 plus `margin`), 0 elsewhere.

    Args:
        landmarks: [..., 136] landmarks divided by the image size.
        size: image side in pixels.

    Returns:
        [..., size, size, 1] float32 masks.
    """
    points = ops.reshape(ops.cast(landmarks, "float32"), (*ops.shape(landmarks)[:-1], 68, 2))[..., 48:68, :]
    low = ops.min(points, axis=-2) - margin
    high = ops.max(points, axis=-2) + margin
    grid = (ops.arange(size, dtype="float32") + 0.5) / size
    inside_x = (grid >= low[..., 0:1]) & (grid <= high[..., 0:1])  # [..., size]
    inside_y = (grid >= low[..., 1:2]) & (grid <= high[..., 1:2])
    mask = ops.expand_dims(inside_y, -1) & ops.expand_dims(inside_x, -2)
    return ops.expand_dims(ops.cast(mask, "float32"), -1)


def landmark_loss(predicted, target, mask):
    """Masked landmark regression MSE: mean(((predicted - target) * M)^2)."""
    predicted, target = _float32(predicted, target)
    return ops.mean(ops.square((predicted - target) * mask))


def bce_with_logits(logits, label: float):
    """Binary cross-entropy of a constant label against logits, averaged."""
    (logits,) = _float32(logits)
    labels = ops.full_like(logits, label)
    return ops.mean(ops.binary_crossentropy(labels, logits, from_logits=True))
