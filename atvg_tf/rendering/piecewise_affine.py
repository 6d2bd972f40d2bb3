"""A piecewise-affine image warp over a fixed triangulation (OpenCV's Delaunay subdivision)."""

from __future__ import annotations

import cv2
import numpy as np

# The displacement field is computed on a grid of at most this many pixels a side and resized:
# it is piecewise linear, so the cost stays bounded however large the photo is.
FIELD_SIDE = 192
# Pixels that would move less than this (in pixels) keep their exact values.
STILL_BELOW = 0.2
# Moving rectangles up to this many pixels are resampled with detail layers (or Lanczos), larger ones
# bicubically: on small photos every pixel of detail counts, on large ones the time does (the layers
# cost ~1 ms a frame on a 1737 x 994 photo, where bicubic keeps the detail well: ratio ~0.9-1).
SMALL_UP_TO = 256 * 256
# Width (px) of the Gaussian that splits an image into a smooth base and its detail (see `split_detail`).
DETAIL_SIGMA = 1.0
# A destination triangle turned over (a mouth corner crossing the jaw line of a turned face, lips
# closing past each other) or shrunk below this share of its source area has an affine map that, on
# the pixels its rasterised edge hands it, samples far away: dark dots beside and between the lips.
# Turned-over triangles are unfolded where their corners may yield (`unfolded`); what stays turned
# over or shrunk is not drawn (the few pixels only it covers keep their place).
MIN_AREA_RATIO = 0.05
# Halvings of a turned-over triangle's corner motion tried before giving up (8: 1/256 of it is left).
UNFOLD_STEPS = 8


def split_detail(image: np.ndarray, sigma: float = DETAIL_SIGMA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [H, W, C] -> (base, lighter, darker), all uint8, with base + lighter - darker == image.

    The base is the image blurred by a Gaussian of `sigma` px; the detail (skin grain, stubble,
    the fine edges of a small photo) is the rest, split by sign so that it stays uint8 (OpenCV's
    saturating uint8 arithmetic is the fast path).
    """
    base = cv2.GaussianBlur(image, (0, 0), sigma)
    return base, cv2.subtract(image, base), cv2.subtract(base, image)


class PiecewiseAffineWarp:
    """Moves an image's points to new positions; each triangle between them is warped affinely.

    The triangulation is the Delaunay triangulation of the source points, computed once. Pixels
    that no triangle covers, and triangles whose corners do not move, keep their exact values.

    Args:
        source_points: [K, 2] points in the image's pixels (include fixed points on the border of
            the image so that the warp fades to nothing there).
        size: (width, height) of the images it warps.
    """

    def __init__(self, source_points: np.ndarray, size: tuple[int, int]):
        self.source = np.asarray(source_points, np.float64)
        self.size = (int(size[0]), int(size[1]))
        self.triangles = delaunay_triangles(self.source, self.size)
        self._source_areas = signed_areas(self.source, self.triangles)
        # Points whose motion gives way when a triangle turns over (all by default).
        self.yielding = np.ones(len(self.source), bool)
        width, height = self.size
        self.step = max(1.0, max(width, height) / FIELD_SIDE)
        self.field_size = (max(2, int(np.ceil(width / self.step))), max(2, int(np.ceil(height / self.step))))
        field_x = (np.arange(self.field_size[0]) + 0.5) * width / self.field_size[0] - 0.5
        field_y = (np.arange(self.field_size[1]) + 0.5) * height / self.field_size[1] - 0.5
        self._field_x, self._field_y = np.meshgrid(field_x.astype(np.float32), field_y.astype(np.float32))
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self._grid_x, self._grid_y = grid_x, grid_y

    def area_ratios(self, destination_points: np.ndarray) -> np.ndarray:
        """[n] each triangle's destination area / source area (negative: turned over)."""
        sized = np.abs(self._source_areas) > 1e-9
        return np.divide(signed_areas(destination_points, self.triangles), self._source_areas, out=np.ones(len(sized)), where=sized)

    def unfolded(self, destination_points: np.ndarray) -> np.ndarray:
        """[K, 2] destination points where the yielding corners (`yielding`) of turned-over triangles
        keep half their motion, halved again until none is turned over (at most `UNFOLD_STEPS` times)."""
        destination = np.array(destination_points, np.float64)
        for _ in range(UNFOLD_STEPS):
            folded = self.area_ratios(destination) < 0
            corners = np.unique(self.triangles[folded])
            corners = corners[self.yielding[corners]]
            if not len(corners):
                break
            destination[corners] = 0.5 * (destination[corners] + self.source[corners])
        return destination

    def displacement(self, destination_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backward displacement (source - destination position) per output pixel: two [H, W] float32
        (turned-over triangles unfolded first, shrunk ones not drawn: `MIN_AREA_RATIO`)."""
        destination = self.unfolded(destination_points)
        labels = np.full(self.field_size[::-1], -1, np.int32)
        # A triangle whose corners all stay is the identity: only the others are drawn and solved.
        moved = np.abs(destination - self.source).max(axis=1) > 1e-6
        triangles = self.triangles[moved[self.triangles].any(axis=1) & (self.area_ratios(destination) >= MIN_AREA_RATIO)]
        scale = np.array([self.field_size[0] / self.size[0], self.field_size[1] / self.size[1]])
        for index, corners in enumerate((destination[triangles] + 0.5) * scale - 0.5):
            cv2.fillConvexPoly(labels, np.round(corners * 16).astype(np.int32), index, lineType=cv2.LINE_8, shift=4)
        # The affine map destination -> source of each triangle, as [n, 2, 3].
        corners_destination = np.concatenate([destination[triangles], np.ones((len(triangles), 3, 1))], axis=2)
        solvable = np.abs(np.linalg.det(corners_destination)) > 1e-9
        affine = np.zeros((len(triangles), 2, 3))
        affine[:, 0, 0] = affine[:, 1, 1] = 1.0
        affine[solvable] = np.linalg.solve(corners_destination[solvable], self.source[triangles][solvable]).transpose(0, 2, 1)
        motion = affine - np.array([[1.0, 0, 0], [0, 1.0, 0]])  # source - destination, still affine
        covered = labels >= 0
        coefficients = motion[labels[covered]]
        x, y = self._field_x[covered], self._field_y[covered]
        field = np.zeros((2, *labels.shape), np.float32)
        for axis in (0, 1):
            field[axis][covered] = coefficients[:, axis, 0] * x + coefficients[:, axis, 1] * y + coefficients[:, axis, 2]
        # Rasterised triangle edges can hand a border pixel to a moving neighbour: the image's edge stays put.
        field[:, [0, -1], :] = 0.0
        field[:, :, [0, -1]] = 0.0
        # Resampling softens a pixel even for a tiny shift; below a visible fraction of a pixel keep it as it is.
        field[:, np.hypot(field[0], field[1]) < STILL_BELOW] = 0.0
        if self.field_size == self.size:
            return field[0], field[1]
        return tuple(cv2.resize(part, self.size, interpolation=cv2.INTER_LINEAR) for part in field)

    def __call__(self, image: np.ndarray, destination_points: np.ndarray,
                 layers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Warps `image` [H, W, C] uint8 so that its source points land on `destination_points` [K, 2].

        Only the rectangle of pixels that move is resampled (a bilinear resampling visibly softens
        skin texture); every other pixel is copied exactly.

        Args:
            layers: `split_detail(image)`, for an image warped many times. A small moving rectangle
                then has its base resampled bicubically and its detail moved to the nearest pixel
                (without layers: Lanczos). Every interpolating kernel attenuates detail at sub-pixel
                shifts (a small photo's lower face loses a quarter of its Laplacian energy under
                Lanczos); a detail layer off by under half a pixel on a smoothly moving base cannot
                be seen.
        """
        dx, dy = self.displacement(destination_points)
        warped = image.copy()
        moving = (dx != 0) | (dy != 0)
        rows, columns = np.nonzero(moving.any(axis=1))[0], np.nonzero(moving.any(axis=0))[0]
        if not len(rows):
            return warped
        top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
        map_x = self._grid_x[top:bottom, left:right] + dx[top:bottom, left:right]
        map_y = self._grid_y[top:bottom, left:right] + dy[top:bottom, left:right]
        fixed, fraction = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)  # fixed point (1/32 px): a faster remap
        small = (bottom - top) * (right - left) <= SMALL_UP_TO
        if small and layers is not None:
            base, lighter, darker = layers
            nearest, _ = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2, nninterpolation=True)
            moved = cv2.remap(base, fixed, fraction, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            moved = cv2.add(moved, cv2.remap(lighter, nearest, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE))
            warped[top:bottom, left:right] = cv2.subtract(
                moved, cv2.remap(darker, nearest, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE))
            return warped
        interpolation = cv2.INTER_LANCZOS4 if small else cv2.INTER_CUBIC
        warped[top:bottom, left:right] = cv2.remap(image, fixed, fraction, interpolation, borderMode=cv2.BORDER_REPLICATE)
        return warped


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """[n] signed areas of the triangles [n, 3] (point indices) of points [K, 2]."""
    a, b, c = (points[triangles[:, i]] for i in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def delaunay_triangles(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[n, 3] point indices of the Delaunay triangles of [K, 2] points inside a (width, height) image."""
    points = np.asarray(points, np.float64)
    low, high = np.minimum(points.min(axis=0), 0) - 1, np.maximum(points.max(axis=0), size) + 1
    subdivision = cv2.Subdiv2D((int(np.floor(low[0])), int(np.floor(low[1])), int(np.ceil(high[0] - low[0])) + 1,
                                int(np.ceil(high[1] - low[1])) + 1))
    vertex_of_point = [subdivision.insert((float(x), float(y))) for x, y in points]
    point_of_vertex = {vertex: index for index, vertex in enumerate(vertex_of_point)}
    triangles = []
    for x0, y0, x1, y1, x2, y2 in subdivision.getTriangleList():
        corners = []
        for x, y in ((x0, y0), (x1, y1), (x2, y2)):
            vertex, _ = subdivision.findNearest((float(x), float(y)))
            corners.append(point_of_vertex.get(vertex, -1))
        if min(corners) >= 0 and len(set(corners)) == 3:
            triangles.append(corners)
    return np.array(triangles, np.int64).reshape(-1, 3)
