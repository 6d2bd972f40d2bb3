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


def dynamic_pixel_loss(real, fake, attention, beta: float = 0.5):
    """Eq. 9: mean(|v - v_hat| * (stop_gradient(a) + beta)); no gradient reaches the attention map."""
    real, fake, attention = _float32(real, fake, attention)
    weight = ops.stop_gradient(attention) + beta
    return ops.mean(ops.abs(real - fake) * weight)


def landmark_loss(predicted, target, mask):
    """Masked landmark regression MSE: mean(((predicted - target) * M)^2)."""
    predicted, target = _float32(predicted, target)
    return ops.mean(ops.square((predicted - target) * mask))


def bce_with_logits(logits, label: float):
    """Binary cross-entropy of a constant label against logits, averaged."""
    (logits,) = _float32(logits)
    labels = ops.full_like(logits, label)
    return ops.mean(ops.binary_crossentropy(labels, logits, from_logits=True))
