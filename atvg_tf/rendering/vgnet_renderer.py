"""The `vgnet` renderer: VG-net's frames pasted back into the photo only where the face changes."""

from __future__ import annotations

import cv2
import numpy as np

from atvg_tf.rendering.face_points import LOWER_FACE, lower_face_box
from atvg_tf.rendering.hybrid_renderer import crop_to_photo

# Attention above this counts fully as "changes" (VG-net's sigmoid rarely reaches 1 away from the mouth).
ATTENTION_FULL = 0.5
# The blended region reaches this fraction of the jaw's width beyond the photo's lower-face landmarks
# (room for the predicted motion and the feathering; the mask is zero beyond it).
REGION_MARGIN = 0.3


class VGNetRenderer:
    """Pastes VG-net's crops into the full-resolution photo through a mask of what changes.

    The mask is VG-net's attention (where its colour map replaces the identity frame) inside the
    hull of the lower face (jaw, chin, cheeks beside the mouth, lips) of the photo's and the
    predicted landmarks, feathered; everywhere else the frame is the photo, pixel for pixel.

    Args:
        photo: RGB uint8 [H, W, 3].
        transform: [2, 3] photo -> crop similarity of the aligned face.
        identity_landmarks: [68, 2] the photo's landmarks in crop pixels.
        crop_size: side of VG-net's crops.
    """

    def __init__(self, photo: np.ndarray, transform: np.ndarray, identity_landmarks: np.ndarray, crop_size: int = 128):
        self.photo = np.ascontiguousarray(photo)
        self.crop_size = crop_size
        self.identity_landmarks = np.asarray(identity_landmarks, np.float64)
        inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
        photo_points = crop_to_photo(self.identity_landmarks, inverse)
        self.box = lower_face_box(photo_points, self.photo.shape, REGION_MARGIN)  # (x0, y0, x1, y1) photo px
        self.x0, self.y0, self.x1, self.y1 = self.box
        self.inverse = inverse - np.array([[0, 0, self.x0], [0, 0, self.y0]], np.float64)
        self.size = (self.x1 - self.x0, self.y1 - self.y0)
        self.region = self.photo[self.y0 : self.y1, self.x0 : self.x1].astype(np.float32)
        self.feather = crop_size / 40.0
        self._canvas = self.photo.copy()

    def placed_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """Where VG-net draws the face: the predicted landmarks as they are."""
        return np.asarray(landmarks, np.float64)

    def mask(self, landmarks: np.ndarray, attention: np.ndarray | None) -> np.ndarray:
        """float32 [S, S] in 0..1 (crop pixels): where this frame shows VG-net."""
        points = np.concatenate([self.identity_landmarks[list(LOWER_FACE)], np.asarray(landmarks, np.float64)[list(LOWER_FACE)]])
        hull = np.zeros((self.crop_size, self.crop_size), np.float32)
        cv2.fillConvexPoly(hull, np.round(cv2.convexHull(points.astype(np.float32)) * 16).astype(np.int32), 1.0, cv2.LINE_AA, shift=4)
        hull = cv2.GaussianBlur(hull, (0, 0), self.feather)
        if attention is None:
            return hull
        changes = np.clip(np.asarray(attention, np.float32).reshape(self.crop_size, self.crop_size) / ATTENTION_FULL, 0.0, 1.0)
        return hull * cv2.GaussianBlur(changes, (0, 0), self.feather / 2)

    def render(self, crop: np.ndarray, landmarks: np.ndarray, attention: np.ndarray | None = None) -> np.ndarray:
        """One full-resolution frame (a reused buffer: encode or copy it before the next call).

        Args:
            crop: VG-net's frame, RGB uint8 [S, S, 3].
            landmarks: the predicted [68, 2] landmarks in crop pixels.
            attention: VG-net's attention [S, S, 1] in 0..1 (None: the lower-face hull alone).
        """
        mask = cv2.warpAffine(self.mask(landmarks, attention), self.inverse, self.size, flags=cv2.INTER_LINEAR)[..., None]
        warped = cv2.warpAffine(crop, self.inverse, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        blended = self.region + mask * (warped.astype(np.float32) - self.region)
        self._canvas[self.y0 : self.y1, self.x0 : self.x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return self._canvas
