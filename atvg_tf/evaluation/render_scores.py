"""What a renderer does to the photo, measured at the photo's resolution (docs/EVALUATION.md).

- `sharpness_ratio`: Laplacian variance of the lower face (the region any renderer may change:
  the hull of jaw, nose base and lips, grown by a tenth of the face's width) in the generated
  frame over the same in the photo; 1 keeps the photo's detail, VG-net's 128 px output scores ~0.1.
- `static_region_error`: mean absolute grey-level difference from the photo inside the face's
  aligned box but outside the mouth/jaw region (grown by 0.15 face widths): eyes, brows, nose,
  forehead and cheeks must stay the photo's.
- `lip_colour_delta_e`: CIEDE2000 between the mean Lab colour of the photo's lips and of the
  generated lips (the ring between the outer and inner lip contours, where the renderer put them)
  over the quarter of frames with the most closed mouth.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000

from atvg_tf.rendering.face_points import INNER_LIPS, LOWER_FACE, OUTER_LIPS, inner_aperture
from atvg_tf.rendering.hybrid_renderer import crop_to_photo

SHARPNESS_GROW = 0.10
STATIC_GROW = 0.15
CLOSED_FRACTION = 0.25
NAMES = ("sharpness_ratio", "static_region_error", "lip_colour_delta_e")


def _hull_mask(points: np.ndarray, shape: tuple[int, int], grow: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(cv2.convexHull(points.astype(np.float32))).astype(np.int32), 1)
    if grow >= 1:
        size = 2 * int(grow) + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return mask.astype(bool)


def _lip_ring(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    outer, inner = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    cv2.fillPoly(outer, [np.round(points[list(OUTER_LIPS)]).astype(np.int32)], 1)
    cv2.fillPoly(inner, [np.round(points[list(INNER_LIPS)]).astype(np.int32)], 1)
    return (outer > 0) & (inner == 0)


def _laplacian_variance(grey: np.ndarray, mask: np.ndarray) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_64F)[mask].var())


def _mean_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return lab[mask].mean(axis=0)


class RenderScorer:
    """Accumulates the scores of one photo's rendered frames.

    Args:
        photo: RGB uint8 [H, W, 3] (what the frames were rendered into).
        transform: [2, 3] photo -> crop similarity of its aligned face.
        identity_landmarks: [68, 2] the photo's landmarks in crop pixels.
        crop_size: the aligned crop's side.
    """

    def __init__(self, photo: np.ndarray, transform: np.ndarray, identity_landmarks: np.ndarray, crop_size: int = 128):
        self.photo = photo
        self.inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
        shape = photo.shape[:2]
        points = crop_to_photo(identity_landmarks, self.inverse)
        width = float(np.linalg.norm(points[14] - points[2]))
        lower = points[list(LOWER_FACE)]
        self.changeable = _hull_mask(lower, shape, SHARPNESS_GROW * width)
        box = crop_to_photo(np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], np.float64), self.inverse)
        self.static = _hull_mask(box, shape, 0) & ~_hull_mask(lower, shape, STATIC_GROW * width)
        self.grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        self.photo_sharpness = _laplacian_variance(self.grey, self.changeable)
        self.photo_lips = _mean_lab(photo, _lip_ring(points, shape))
        self.sharpness, self.static_errors, self.lip_colours, self.apertures = [], [], [], []

    def add(self, frame: np.ndarray, placed_landmarks: np.ndarray) -> None:
        """Scores one rendered frame; `placed_landmarks` [68, 2] (crop px) is where the renderer drew the face."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        self.sharpness.append(_laplacian_variance(grey, self.changeable) / max(self.photo_sharpness, 1e-9))
        self.static_errors.append(float(np.abs(grey[self.static].astype(np.float32) - self.grey[self.static]).mean()))
        points = crop_to_photo(placed_landmarks, self.inverse)
        self.lip_colours.append(_mean_lab(frame, _lip_ring(points, frame.shape[:2])))
        self.apertures.append(float(inner_aperture(placed_landmarks)))

    def result(self) -> dict[str, float]:
        """The three scores (see the module docstring) over the frames added so far."""
        closed = np.argsort(self.apertures)[: max(1, int(round(CLOSED_FRACTION * len(self.apertures))))]
        generated_lips = np.mean([self.lip_colours[i] for i in closed], axis=0)
        return {
            "sharpness_ratio": float(np.mean(self.sharpness)),
            "static_region_error": float(np.mean(self.static_errors)),
            "lip_colour_delta_e": float(deltaE_ciede2000(self.photo_lips, generated_lips)),
        }
