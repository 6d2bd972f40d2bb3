"""Turning generated crops into output frames: pasted back into the photo, or panels side by side.

Shared by `atvg generate` (output modes) and the training samples (real | generated | attention | motion).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

from atvg_tf.errors import InputError
from atvg_tf.frontend.face.alignment import invert_transform
from atvg_tf.frontend.image import heat_to_uint8

OUTPUT_MODES = ("paste-back", "crop", "panels")


def composer(mode: str, photo: np.ndarray, transform: np.ndarray, crop_size: int = 128) -> Callable[[dict], Iterable[np.ndarray]]:
    """The function that turns a generated chunk (dict of [n, ...] arrays) into output frames for an output mode.

    Args:
        mode: `paste-back`, `crop` or `panels`.
        photo: the full RGB photo [H, W, 3] (paste-back).
        transform: [2, 3] photo -> crop similarity of its aligned face (paste-back).
    """
    if mode == "paste-back":
        return PasteBack(photo, transform, crop_size)
    if mode == "crop":
        return lambda chunk: chunk["frames"]
    if mode == "panels":
        return panel_frames
    raise InputError(f"unknown output mode {mode!r}; choose one of {', '.join(OUTPUT_MODES)}.")


class PasteBack:
    """Puts generated crops back into the full-resolution photo with a feathered mask (no box edge shows).

    Only the face's bounding box is warped and blended, so the cost per frame does not grow with
    the photo's size beyond one copy.

    Args:
        photo: RGB uint8 [H, W, 3].
        transform: [2, 3] photo -> crop similarity.
        crop_size: side of the generated crops.
    """

    def __init__(self, photo: np.ndarray, transform: np.ndarray, crop_size: int = 128):
        self.image = photo
        height, width = self.image.shape[:2]
        inverse = invert_transform(transform)
        corners = np.array([[0, 0, 1], [crop_size, 0, 1], [0, crop_size, 1], [crop_size, crop_size, 1]], np.float64)
        box = corners @ inverse.T
        self.x0, self.y0 = (max(int(np.floor(box[:, i].min())) - 1, 0) for i in (0, 1))
        self.x1 = min(int(np.ceil(box[:, 0].max())) + 2, width)
        self.y1 = min(int(np.ceil(box[:, 1].max())) + 2, height)
        self.inverse = inverse - np.array([[0, 0, self.x0], [0, 0, self.y0]], np.float64)
        self.size = (self.x1 - self.x0, self.y1 - self.y0)
        mask = np.zeros((crop_size, crop_size), np.float32)
        border = crop_size // 10
        mask[border:-border, border:-border] = 1.0
        mask = cv2.GaussianBlur(mask, (0, 0), border / 2)
        self.mask = cv2.warpAffine(mask, self.inverse, self.size)[..., None]
        self.background = self.image[self.y0 : self.y1, self.x0 : self.x1].astype(np.float32) * (1 - self.mask)
        self._canvas = self.image.copy()

    def __call__(self, chunk: dict) -> Iterable[np.ndarray]:
        """Yields one full-size frame per crop (the same buffer, refilled: encode it before the next)."""
        for crop in chunk["frames"]:
            warped = cv2.warpAffine(crop, self.inverse, self.size, flags=cv2.INTER_LINEAR)
            self._canvas[self.y0 : self.y1, self.x0 : self.x1] = warped * self.mask + self.background
            yield self._canvas


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """uint8 images [..., H, W, 3] of the same height -> one strip [..., H, sum(W), 3]."""
    return np.concatenate(images, axis=-2)


def landmark_sketches(landmarks: np.ndarray, size: int) -> np.ndarray:
    """[n, 68, 2] landmarks (crop px) -> [n, size, size, 3] uint8 white dots on black."""
    sketches = np.zeros((len(landmarks), size, size, 3), np.uint8)
    for sketch, points in zip(sketches, landmarks):
        for x, y in points:
            cv2.circle(sketch, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
    return sketches


def panel_frames(chunk: dict) -> np.ndarray:
    """frame | attention map | motion map | predicted landmarks, side by side (the paper's Fig. 1 view)."""
    frames = chunk["frames"]
    return side_by_side(frames, heat_to_uint8(chunk["attention"]), chunk["motion"], landmark_sketches(chunk["landmarks"], frames.shape[1]))
