"""The `hybrid` renderer: the photo's own lower face, warped at full resolution by the predicted
landmarks, with VG-net painting only the inside of an opening mouth."""

from __future__ import annotations

import cv2
import numpy as np

from atvg_tf.rendering.face_points import (
    ANCHOR_POINTS,
    INNER_LIPS,
    JAW_MOVING,
    LOWER_FACE,
    MOVING_POINTS,
    OUTER_LIPS,
    inner_aperture,
    lower_face_box,
    mouth_width,
    uncross_lips,
)
from atvg_tf.rendering.motion_level import MotionLevel
from atvg_tf.rendering.piecewise_affine import PiecewiseAffineWarp, split_detail

# The warped region reaches this fraction of the jaw's width beyond the lower-face landmarks.
REGION_MARGIN = 0.25
# The motion fades to nothing within this fraction of the jaw's width outside the lower face's hull
# (fixed points there), so the cheeks, the face's outline and the hair beside it stay the photo's.
FALLOFF = 0.15
FALLOFF_POINTS = 32
# Fixed points per side of the warped region (its edge never moves, so no box edge can show).
BORDER_POINTS = 6
# The mouth is filled from VG-net once the inner lips open wider than the photo's by OPEN_FROM
# crop pixels (at 128 px), fully after a further OPEN_RANGE: a closed mouth stays the photo's.
OPEN_FROM, OPEN_RANGE = 0.5, 2.0
# VG-net trained on one speaker paints a faint interior; a real opening darkens towards its middle.
CAVITY_DARKENING = 0.55
# A photo's open mouth closed by the warp squeezes its teeth into the lip seam, where they alias into
# bright dots: the lips cover them instead (`_covering`), from COVER_FROM of the photo's inner-lip
# gap down to fully at COVER_FULL of it (a half-closed mouth still shows its teeth, squeezed).
COVER_FROM, COVER_FULL = 0.4, 0.1


def crop_to_photo(points: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """[..., 2] crop pixels -> photo pixels with the [2, 3] crop -> photo matrix."""
    return np.asarray(points, np.float64) @ inverse[:, :2].T + inverse[:, 2]


def grown_hull(points: np.ndarray, grow: float, count: int = FALLOFF_POINTS) -> np.ndarray:
    """[count, 2] points evenly spaced along the convex hull of `points` [K, 2], pushed `grow` pixels outwards."""
    hull = cv2.convexHull(np.asarray(points, np.float32))[:, 0].astype(np.float64)
    closed = np.concatenate([hull, hull[:1]])
    lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(lengths)])
    spots = np.linspace(0.0, along[-1], count, endpoint=False)
    ring = np.stack([np.interp(spots, along, closed[:, axis]) for axis in (0, 1)], axis=1)
    outwards = ring - hull.mean(axis=0)
    return ring + grow * outwards / np.maximum(np.linalg.norm(outwards, axis=1, keepdims=True), 1e-9)


def border_ring(width: int, height: int, per_side: int = BORDER_POINTS) -> np.ndarray:
    """[4 * (per_side - 1), 2] points along the edge of a (width, height) image, corners included."""
    xs, ys = np.linspace(0, width - 1, per_side), np.linspace(0, height - 1, per_side)
    top, bottom = np.stack([xs, np.zeros_like(xs)], 1), np.stack([xs[::-1], np.full_like(xs, height - 1)], 1)
    right, left = np.stack([np.full_like(ys, width - 1), ys], 1), np.stack([np.zeros_like(ys), ys[::-1]], 1)
    return np.concatenate([top[:-1], right[:-1], bottom[:-1], left[:-1]])


class HybridRenderer:
    """Renders full-resolution frames of one photo from predicted landmarks and VG-net's crops.

    Everything outside the lower-face region is the photo, pixel for pixel; inside it the photo is
    warped piecewise-affinely so that the lips and jaw follow the predicted landmarks (only the
    jaw and mouth points move; the nose, the upper jaw line, a ring just outside the lower face
    and the region's edge stay), and the inside of an opening mouth comes from VG-net's frame,
    colour-matched to the photo's lips.

    Args:
        photo: RGB uint8 [H, W, 3].
        transform: [2, 3] photo -> crop similarity of the aligned face.
        identity_landmarks: [68, 2] the photo's landmarks in crop pixels.
        crop_size: side of VG-net's crops.
        motion_gain: factor on the vertical part of the predicted motion (predicted minus the photo's
            landmarks; crop y, the aligned face's up-down): what the rendered opening loses against the
            placed one is made good, while the mouth's width (rounded lips) moves as predicted; a
            mouth narrowed further would crumple the photo's lip corners.
        motion_level: a model folder's `inference.motion_level` (`MotionLevel.from_config`): the motion
            of a voice the model moves too little for is raised, frame by frame, to its training
            voices' level; None: the motion as predicted.
    """

    def __init__(self, photo: np.ndarray, transform: np.ndarray, identity_landmarks: np.ndarray, crop_size: int = 128,
                 motion_gain: float = 1.0, motion_level: dict | None = None):
        self.photo = np.ascontiguousarray(photo)
        self.inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
        self.identity_landmarks = np.asarray(identity_landmarks, np.float64)
        self.motion_gain = float(motion_gain)
        self.level = MotionLevel.from_config(self.identity_landmarks, motion_level) if motion_level else None
        self.pixels_per_crop_pixel = float(np.sqrt(abs(np.linalg.det(self.inverse[:, :2]))))
        self.open_scale = crop_size / 128.0
        self.rest_aperture = float(inner_aperture(self.identity_landmarks))
        rest = crop_to_photo(self.identity_landmarks, self.inverse)
        self.box = lower_face_box(rest, self.photo.shape, REGION_MARGIN)
        x0, y0, x1, y1 = self.box
        self.origin = np.array([x0, y0], np.float64)
        self.region = self.photo[y0:y1, x0:x1].copy()
        self.crop_to_region = self.inverse - np.array([[0, 0, x0], [0, 0, y0]], np.float64)
        rest = rest - self.origin
        width, height = x1 - x0, y1 - y0
        def inside(points: np.ndarray) -> np.ndarray:
            return points[(points[:, 0] >= 1) & (points[:, 0] < width - 1) & (points[:, 1] >= 1) & (points[:, 1] < height - 1)]

        jaw_width = float(np.linalg.norm(rest[14] - rest[2]))
        falloff = inside(grown_hull(rest[list(LOWER_FACE)], FALLOFF * jaw_width))
        anchors = inside(rest[list(ANCHOR_POINTS)])
        self.moving = [i for i in MOVING_POINTS if 0 <= rest[i, 0] < width and 0 <= rest[i, 1] < height]
        self.source_points = np.concatenate([rest[self.moving], anchors, falloff, border_ring(width, height)])
        self.warp = PiecewiseAffineWarp(self.source_points, (width, height))
        # A fold gives way at the jaw and the outer lips; the inner lips, where lip-sync is seen, keep
        # their predicted motion.
        self.warp.yielding[: len(self.moving)] = [i not in INNER_LIPS for i in self.moving]
        self._layers = split_detail(self.region)
        self._cover = self._mouth_covered(rest, (width, height))
        self._canvas = self.photo.copy()

    def _mouth_covered(self, rest: np.ndarray, size: tuple[int, int]) -> tuple | None:
        """(box, region, layers): the region with the photo's inner mouth filled in from the lips
        around it (OpenCV's inpainting), for `_covering`; None for a photo whose lips are closed."""
        if self.rest_aperture <= 0:
            return None
        mask = cv2.dilate(_polygon_mask(rest[list(INNER_LIPS)], size), np.ones((3, 3), np.uint8))
        rows, columns = np.nonzero(mask)
        if not len(rows):
            return None
        covered = cv2.inpaint(self.region, mask, 3, cv2.INPAINT_TELEA)
        box = (slice(max(rows.min() - 2, 0), rows.max() + 3), slice(max(columns.min() - 2, 0), columns.max() + 3))
        return box, covered[box], tuple(layer[box] for layer in split_detail(covered))

    def _covering(self, aperture: float) -> tuple[np.ndarray, tuple]:
        """The region and its detail layers to warp for a placed inner-lip gap `aperture` (crop px):
        the photo's, or, as the mouth closes past COVER_FROM of the photo's gap, its inner mouth
        blended towards the lips covering it."""
        hidden = 0.0
        if self._cover is not None:
            hidden = float(np.clip((COVER_FROM * self.rest_aperture - aperture) / ((COVER_FROM - COVER_FULL) * self.rest_aperture),
                                   0.0, 1.0))
        if hidden == 0.0:
            return self.region, self._layers
        box, covered, covered_layers = self._cover
        region, layers = self.region.copy(), tuple(layer.copy() for layer in self._layers)
        for target, cover in zip((region, *layers), (covered, *covered_layers)):
            target[box] = cv2.addWeighted(target[box], 1.0 - hidden, cover, hidden, 0.0)
        return region, layers

    def placed_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """[..., 68, 2] crop px: where the photo's landmarks go for predicted `landmarks`.

        The mouth follows the prediction; the jaw line only moves up and down with it (AT-nets
        trained on one speaker pull an unseen face's jaw sideways towards that speaker's shape,
        which a warp would show as a swollen cheek). The motion level, if any, is as of the last
        rendered frame.
        """
        motion = np.asarray(landmarks, np.float64) - self.identity_landmarks
        scaled = self.level is not None and self.level.gain != 1.0
        if scaled:
            motion = self.level.apply(motion)
        motion[..., 1] *= self.motion_gain
        motion[..., list(JAW_MOVING), 0] = 0.0
        placed = self.identity_landmarks + motion
        return uncross_lips(placed) if scaled or self.motion_gain != 1.0 else placed

    def render(self, crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """One full-resolution frame (a reused buffer: encode or copy it before the next call).

        Args:
            crop: VG-net's frame, RGB uint8 [S, S, 3].
            landmarks: the predicted [68, 2] landmarks in crop pixels.
        """
        if self.level:
            self.level.update(landmarks)
        landmarks = self.placed_landmarks(landmarks)
        moved = crop_to_photo(landmarks, self.crop_to_region)
        destination = self.source_points.copy()
        destination[: len(self.moving)] = moved[self.moving]
        aperture = float(inner_aperture(landmarks))
        region, layers = self._covering(aperture)
        face = self.warp(region, destination, layers)
        opening = (aperture - self.rest_aperture) / self.open_scale
        weight = float(np.clip((opening - OPEN_FROM) / OPEN_RANGE, 0.0, 1.0))
        if self.rest_aperture > 0 and weight > 0:  # a photo with an open mouth: its own teeth, stretched, keep a share
            weight *= 1.0 - self.rest_aperture / aperture
        if weight > 0:
            self._fill_mouth(face, crop, moved, weight)
        x0, y0, x1, y1 = self.box
        self._canvas[y0:y1, x0:x1] = face
        return self._canvas

    def _fill_mouth(self, face: np.ndarray, crop: np.ndarray, moved: np.ndarray, weight: float) -> None:
        """Blends VG-net's mouth interior into `face` (region pixels, in place) inside the inner lips."""
        height, width = face.shape[:2]
        lips = moved[list(OUTER_LIPS)]
        pad = 0.15 * mouth_width(moved)
        left, top = np.maximum(np.floor(lips.min(axis=0) - pad).astype(int), 0)
        right, bottom = np.minimum(np.ceil(lips.max(axis=0) + pad).astype(int), [width, height])
        if right - left < 2 or bottom - top < 2:
            return
        size = (right - left, bottom - top)
        offset = np.array([left, top], np.float64)
        to_box = self.crop_to_region - np.array([[0, 0, left], [0, 0, top]], np.float64)
        painted = cv2.warpAffine(crop, to_box, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inner = _polygon_mask(moved[list(INNER_LIPS)] - offset, size)
        ring = _polygon_mask(lips - offset, size) > 0
        ring &= inner == 0
        patch = face[top:bottom, left:right]
        matched = match_colours(painted, patch, ring) * cavity_shading(inner, CAVITY_DARKENING * weight)[..., None]
        sigma = max(1.0, 0.03 * mouth_width(moved))
        alpha = cv2.GaussianBlur(inner.astype(np.float32), (0, 0), sigma)[..., None] * weight
        patch[:] = np.clip(patch + alpha * (matched - patch.astype(np.float32)) + 0.5, 0, 255).astype(np.uint8)


def cavity_shading(inner: np.ndarray, strength: float) -> np.ndarray:
    """float32 [H, W] factors: 1 at the inner lips' edge, 1 - strength at the deepest point inside."""
    depth = cv2.distanceTransform(inner, cv2.DIST_L2, 3)
    deepest = float(depth.max())
    if deepest <= 0:
        return np.ones(inner.shape, np.float32)
    return 1.0 - strength * np.sqrt(depth / deepest)


def _polygon_mask(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W] mask (1 inside) of a polygon given in pixels of a (width, height) image."""
    mask = np.zeros(size[::-1], np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_AA, shift=4)
    return mask


def match_colours(source: np.ndarray, reference: np.ndarray, where: np.ndarray) -> np.ndarray:
    """`source` recoloured so that its pixels at `where` match `reference`'s there.

    Lightness is scaled (an interior half as light as VG-net's lips stays half as light as the
    photo's lips) and the Lab colour axes are shifted by the difference of the means.

    Args:
        source, reference: RGB uint8 [H, W, 3] of the same size (VG-net's mouth, the photo's).
        where: bool [H, W], the pixels compared (the lips around the opening).

    Returns:
        float32 RGB [H, W, 3] in 0..255.
    """
    if where.sum() < 8:
        return source.astype(np.float32)
    source_lab = cv2.cvtColor(source.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    # Only the compared pixels of the reference are needed (the conversion is per pixel).
    reference_lab = cv2.cvtColor(reference[where][None].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[0]
    source_mean, reference_mean = source_lab[where].mean(axis=0), reference_lab.mean(axis=0)
    matched = source_lab + (reference_mean - source_mean)
    matched[..., 0] = source_lab[..., 0] * np.clip(reference_mean[0] / max(source_mean[0], 1.0), 0.5, 2.0)
    matched[..., 0] = np.clip(matched[..., 0], 0, 100)
    return np.clip(cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0, 0, 255)
