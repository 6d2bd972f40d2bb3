"""Reading identity photos, and the one conversion between uint8 images and the networks' [-1, 1] floats."""

from __future__ import annotations

import os
import warnings

import cv2
import numpy as np

from atvg_tf.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Photos above this many pixels are refused before they are decoded (a 20000 x 20000 photo takes
# 1.2 GB decoded and several GB on the way to a video no H.264 encoder accepts).
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
RAISE_LIMIT = "raise ATVG_MAX_IMAGE_PIXELS if this machine has the memory"


def max_image_pixels() -> int:
    """The photo size limit: `ATVG_MAX_IMAGE_PIXELS` from the environment, else 50 megapixels."""
    value = os.environ.get("ATVG_MAX_IMAGE_PIXELS", "")
    try:
        return int(value) if value else DEFAULT_MAX_IMAGE_PIXELS
    except ValueError:
        raise InputError(f"ATVG_MAX_IMAGE_PIXELS must be a whole number of pixels, got {value!r}.") from None


class ImageError(InputError):
    """An identity image that cannot be used."""


def load_image(path: str, max_pixels: int | None = None, raise_limit: str = RAISE_LIMIT) -> np.ndarray:
    """Reads a photo as RGB uint8 (EXIF rotation applied; grayscale, RGBA and 16-bit converted).

    Args:
        max_pixels: refuse photos above this size (default: `max_image_pixels()`).
        raise_limit: how a user may raise the limit, for the message that refuses a photo.
    """
    if not os.path.isfile(path):
        raise ImageError(f"image not found: {path}; check the path.")
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        raise ImageError(f"{path}: unsupported image type; give a {', '.join(e[1:] for e in IMAGE_EXTENSIONS)} file.")
    _check_size(path, max_pixels or max_image_pixels(), raise_limit)
    if path.lower().endswith((".jpg", ".jpeg")) and _is_truncated_jpeg(path):
        # libjpeg would decode it anyway, grey below the cut, with only a notice on stderr.
        raise ImageError(f"{path} is truncated (the JPEG data stops before its end marker); copy or download it again.")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"cannot decode {path} as an image; the file is corrupt or not an image.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_size(path: str, limit: int, raise_limit: str) -> None:
    """Refuses a photo above `limit` pixels from its header, before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    advice = f"scale it down, or {raise_limit}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            with Image.open(path) as header:
                width, height = header.size
    except Image.DecompressionBombError:  # Pillow's hard stop, at twice its own limit
        raise ImageError(f"{path} is over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP, above the limit of {limit / 1e6:g} MP; {advice}.") from None
    except (UnidentifiedImageError, OSError):
        return  # not for Pillow to judge: OpenCV decodes it or reports it
    if width * height > limit:
        raise ImageError(f"{path} is {width} x {height} pixels ({width * height / 1e6:.0f} MP), above the limit of {limit / 1e6:g} MP; {advice}.")


def _is_truncated_jpeg(path: str) -> bool:
    """A JPEG that starts as one but lacks its end-of-image marker (looked for in the last KB: some
    writers append padding). Files that are not JPEG data at all are left to the decoder's error."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\xff\xd8":
            return False
        handle.seek(max(os.path.getsize(path) - 1024, 0))
        return b"\xff\xd9" not in handle.read()


def to_unit(images) -> np.ndarray:
    """uint8 images [..., H, W, C] -> float32 in [-1, 1]."""
    return np.asarray(images).astype(np.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def heat_to_uint8(maps) -> np.ndarray:
    """Maps in [0, 1] [..., H, W, 1] -> uint8 grey images [..., H, W, 3] (rounded, clipped)."""
    return np.repeat(np.clip(np.round(np.asarray(maps) * 255.0), 0, 255).astype(np.uint8), 3, axis=-1)
