"""Reading identity photos, and the one conversion between uint8 images and the networks' [-1, 1] floats."""

from __future__ import annotations

import os

import cv2
import numpy as np

from atvg_tf.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageError(InputError):
    """An identity image that cannot be used."""


def load_image(path: str) -> np.ndarray:
    """Reads a photo as RGB uint8 (EXIF rotation applied; grayscale, RGBA and 16-bit converted)."""
    if not os.path.isfile(path):
        raise ImageError(f"image not found: {path}; check the path.")
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        raise ImageError(f"{path}: unsupported image type; give a {', '.join(e[1:] for e in IMAGE_EXTENSIONS)} file.")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"cannot decode {path} as an image; the file is corrupt or not an image.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_unit(images) -> np.ndarray:
    """uint8 images [..., H, W, C] -> float32 in [-1, 1]."""
    return np.asarray(images).astype(np.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def heat_to_uint8(maps) -> np.ndarray:
    """Maps in [0, 1] [..., H, W, 1] -> uint8 grey images [..., H, W, 3] (rounded, clipped)."""
    return np.repeat(np.clip(np.round(np.asarray(maps) * 255.0), 0, 255).astype(np.uint8), 3, axis=-1)
