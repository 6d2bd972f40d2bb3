"""Which of the 68 landmarks move when a person speaks, and the mouth measures renderers need.

Indices follow the iBUG 68-point scheme: jaw 0-16, nose 27-35, eyes 36-47, outer lips 48-59,
inner lips 60-67.
"""

from __future__ import annotations

import numpy as np

JAW_MOVING = tuple(range(3, 14))  # the chin and the jaw line beside the mouth
MOUTH = tuple(range(48, 68))
MOVING_POINTS = JAW_MOVING + MOUTH
# Points that hold the warp still around the lower face: upper jaw line and the nose.
ANCHOR_POINTS = (1, 2, 14, 15, *range(29, 36))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
LOWER_FACE = (*range(2, 15), *range(31, 36), *MOUTH)
# The inner-lip points facing each other: 61-67, 62-66, 63-65.
UPPER_INNER_LIP, LOWER_INNER_LIP = (61, 62, 63), (67, 66, 65)


def inner_aperture(landmarks: np.ndarray) -> np.ndarray:
    """Mean vertical gap between the inner lips (pairs 61-67, 62-66, 63-65), in the landmarks' pixels.

    Args:
        landmarks: [..., 68, 2].

    Returns:
        [...] apertures (negative when the lips overlap).
    """
    landmarks = np.asarray(landmarks, np.float64)
    return np.mean(landmarks[..., LOWER_INNER_LIP, 1] - landmarks[..., UPPER_INNER_LIP, 1], axis=-1)


def uncross_lips(landmarks: np.ndarray) -> np.ndarray:
    """[..., 68, 2] landmarks (y down) with each pair of facing inner-lip points that overlap (the
    upper point below the lower one) moved to meet halfway; other points unchanged.

    Motion scaled up (a motion gain) closes an open photo's mouth past closed; lips cannot pass
    through each other, and crossed points fold the renderers' warps.
    """
    out = np.array(landmarks, copy=True)
    upper, lower = out[..., UPPER_INNER_LIP, 1], out[..., LOWER_INNER_LIP, 1]
    middle = (upper + lower) / 2
    out[..., UPPER_INNER_LIP, 1] = np.minimum(upper, middle)
    out[..., LOWER_INNER_LIP, 1] = np.maximum(lower, middle)
    return out


def mouth_width(landmarks: np.ndarray) -> float:
    """Distance between the mouth corners (48, 54) of [68, 2] landmarks."""
    return float(np.linalg.norm(np.asarray(landmarks)[54] - np.asarray(landmarks)[48]))


def lower_face_box(points: np.ndarray, image_shape: tuple[int, ...], margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the lower-face points grown by `margin` x the face's width, clipped to the image.

    Args:
        points: [68, 2] landmarks in image pixels.
        image_shape: (H, W, ...) of the image.
        margin: fraction of the jaw width (points 2-14) added on every side.
    """
    points = np.asarray(points, np.float64)
    lower = points[list(LOWER_FACE)]
    grow = margin * float(np.linalg.norm(points[14] - points[2]))
    height, width = image_shape[:2]
    x0, y0 = np.floor(lower.min(axis=0) - grow).astype(int)
    x1, y1 = np.ceil(lower.max(axis=0) + grow).astype(int)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
