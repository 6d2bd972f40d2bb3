"""Reading identity photos."""

from __future__ import annotations

import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ImageError(ValueError):
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
