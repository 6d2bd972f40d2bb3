"""Face alignment: a similarity transform that puts the nose-bridge and eye landmarks onto a fixed
template, and the 128 x 128 crop it produces.

The ATVGnet release crops a square around the face, resizes it to 163 px, warps points 27..44 onto
its template and keeps pixels [1:129]. Crop-then-warp is itself one similarity transform, so here it
is estimated in one step from the source image to the 128 px crop; large downscales go through an
area resize first so the crop does not alias. The 2 x 3 matrix maps source pixels to crop pixels
(its inverse pastes a generated crop back into the source image).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import cv2
import numpy as np

from atvg_tf.frontend.face.template import TEMPLATE_68, TEMPLATE_SIZE
from atvg_tf.utils.presets import Presets


@dataclasses.dataclass(frozen=True)
class AlignmentConfig(Presets):
    """How faces are aligned.

    Attributes:
        crop_size: side of the aligned crop in pixels.
        alignment_points: landmark indices matched to the template (nose bridge and eyes).
        smoothing_sigma: Gaussian sigma, in frames, applied over time to clip transforms.
        template_points: another 68-point template (136 values, x0, y0, ..., in pixels of a
            128-px crop) instead of this project's, e.g. the release's `base_68` for converted models.
    """

    crop_size: int = 128
    alignment_points: tuple[int, ...] = tuple(range(27, 48))
    smoothing_sigma: float = 2.0
    template_points: tuple[float, ...] | None = None

    # `paper`: this project's template, nose + both eyes. `official`: the release's point set 27..44.
    PRESETS = {"paper": {}, "official": {"alignment_points": tuple(range(27, 45))}}

    def template(self) -> np.ndarray:
        """The 68-point template scaled to `crop_size`."""
        if self.template_points is not None:
            return np.asarray(self.template_points, np.float64).reshape(68, 2) * (self.crop_size / 128.0)
        return TEMPLATE_68 * (self.crop_size / TEMPLATE_SIZE)


class AlignedFace(NamedTuple):
    """An aligned face crop.

    Attributes:
        image: [crop, crop, 3] uint8 crop.
        landmarks: [68, 2] float32 landmarks in crop pixels.
        transform: [2, 3] float32 matrix mapping source pixels to crop pixels.
    """

    image: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping `source` onto `target`.

    Args:
        source, target: [K, 2] corresponding points.

    Returns:
        [2, 3] float64 matrix [[a, -b, tx], [b, a, ty]].
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(0), target.mean(0)
    s, t = source - source_mean, target - target_mean
    norm = (s**2).sum()
    if norm <= 0:
        raise ValueError("degenerate landmarks: all alignment points coincide.")
    a = (s * t).sum() / norm
    b = (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum() / norm
    rotation_scale = np.array([[a, -b], [b, a]])
    translation = target_mean - rotation_scale @ source_mean
    return np.concatenate([rotation_scale, translation[:, None]], axis=1)


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Applies a [2, 3] affine matrix to [..., 2] points."""
    points = np.asarray(points, np.float64)
    return (points @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def invert_transform(transform: np.ndarray) -> np.ndarray:
    """Inverse of a [2, 3] affine matrix (crop pixels -> source pixels)."""
    return cv2.invertAffineTransform(np.asarray(transform, np.float64))


def estimate_transform(landmarks: np.ndarray, config: AlignmentConfig = AlignmentConfig()) -> np.ndarray:
    """Source-image -> crop similarity for one face's [68, 2] landmarks."""
    points = list(config.alignment_points)
    return similarity_transform(np.asarray(landmarks)[points], config.template()[points])


def warp_to_crop(image: np.ndarray, transform: np.ndarray, crop_size: int = 128) -> np.ndarray:
    """Warps `image` with a source -> crop matrix into a [crop_size, crop_size] crop."""
    transform = np.asarray(transform, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if scale < 0.5:
        # Shrink by an area resize first so the bilinear warp samples a band-limited image.
        factor = 0.5 / scale
        height, width = image.shape[:2]
        small = (max(1, int(round(width / factor))), max(1, int(round(height / factor))))
        image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        undo = np.diag([width / small[0], height / small[1], 1.0])
        transform = transform @ undo
    return cv2.warpAffine(
        image, transform, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def align_face(image: np.ndarray, landmarks: np.ndarray, config: AlignmentConfig = AlignmentConfig()) -> AlignedFace:
    """Aligns one face of an image.

    Args:
        image: [H, W, 3] uint8 image.
        landmarks: [68, 2] landmarks of the face in image pixels.
        config: alignment configuration.

    Returns:
        The crop, its landmarks and the source -> crop transform.
    """
    transform = estimate_transform(landmarks, config)
    crop = warp_to_crop(image, transform, config.crop_size)
    return AlignedFace(crop, transform_points(landmarks, transform), transform.astype(np.float32))


def smooth_transforms(transforms: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time of similarity matrices [N, 2, 3] (parameters a, b, tx, ty)."""
    transforms = np.asarray(transforms, np.float64)
    if sigma <= 0 or len(transforms) < 2:
        return transforms
    parameters = np.stack(
        [transforms[:, 0, 0], transforms[:, 1, 0], transforms[:, 0, 2], transforms[:, 1, 2]], axis=1
    )
    from scipy.ndimage import gaussian_filter1d  # 0.4 s to import: only clips need it, not photos

    a, b, tx, ty = gaussian_filter1d(parameters, sigma, axis=0, mode="nearest").T
    return np.stack([np.stack([a, -b, tx], -1), np.stack([b, a, ty], -1)], axis=1)


def clip_transforms(landmarks: np.ndarray, config: AlignmentConfig = AlignmentConfig()) -> np.ndarray:
    """Per-frame source -> crop transforms of a clip, smoothed over time so the crop does not jitter.

    Args:
        landmarks: [N, 68, 2] landmarks of consecutive frames (gaps already filled).

    Returns:
        [N, 2, 3] float64 matrices.
    """
    raw = np.stack([estimate_transform(points, config) for points in landmarks])
    return smooth_transforms(raw, config.smoothing_sigma)
