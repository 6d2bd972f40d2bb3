"""Turning generated chunks into output frames: rendered into the photo, crops, or panels side by side.

Shared by `atvg generate` (output modes) and the training samples (real | generated | attention | motion).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

from atvg_tf.errors import InputError
from atvg_tf.frontend.image import heat_to_uint8
from atvg_tf.rendering import RENDERERS
from atvg_tf.rendering.hybrid_renderer import HybridRenderer
from atvg_tf.rendering.vgnet_renderer import VGNetRenderer

OUTPUT_MODES = ("paste-back", "crop", "panels")
# Panels are drawn at this multiple of the crop size (the rendered face keeps some of its detail).
PANEL_SCALE = 2


class FaceRenderer:
    """One photo's renderer (`hybrid` or `vgnet`) applied to generated chunks.

    Args:
        renderer: `hybrid` (the photo's own face warped by the landmarks, VG-net inside an opening
            mouth) or `vgnet` (VG-net's frames where the face changes).
        photo: RGB uint8 [H, W, 3].
        transform: [2, 3] photo -> crop similarity of the aligned face.
        identity_landmarks: [68, 2] the photo's landmarks in crop pixels.
        crop_size: side of the generated crops.
        motion_gain: hybrid: factor on the vertical part of the predicted motion (`TalkingFaceModel.hybrid_motion_gain`).
        motion_level: hybrid: the model's motion level (`TalkingFaceModel.motion_level`), or None.
    """

    def __init__(self, renderer: str, photo: np.ndarray, transform: np.ndarray, identity_landmarks: np.ndarray,
                 crop_size: int = 128, motion_gain: float = 1.0, motion_level: dict | None = None):
        if renderer not in RENDERERS:
            raise InputError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}.")
        self.name, self.crop_size = renderer, crop_size
        self.transform = np.asarray(transform, np.float64)
        if renderer == "hybrid":
            self.renderer = HybridRenderer(photo, transform, identity_landmarks, crop_size, motion_gain, motion_level)
        else:
            self.renderer = VGNetRenderer(photo, transform, identity_landmarks, crop_size)

    @property
    def changed_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) photo px: every frame equals the photo outside this box."""
        return tuple(int(v) for v in self.renderer.box)

    def placed_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        """Where this renderer draws the face for predicted landmarks [..., 68, 2] (crop px)."""
        return self.renderer.placed_landmarks(landmarks)

    def frame(self, chunk: dict, index: int) -> np.ndarray:
        """The full-resolution frame of `chunk`'s frame `index` (a reused buffer)."""
        crop, landmarks = chunk["frames"][index], chunk["landmarks"][index]
        if self.name == "hybrid":
            return self.renderer.render(crop, landmarks)
        attention = chunk["attention"][index] if "attention" in chunk else None
        return self.renderer.render(crop, landmarks, attention)

    def __call__(self, chunk: dict) -> Iterable[np.ndarray]:
        """Yields one full-size frame per generated frame (the same buffer, refilled: encode it before the next)."""
        for index in range(len(chunk["frames"])):
            yield self.frame(chunk, index)


def composer(mode: str, face: FaceRenderer) -> Callable[[dict], Iterable[np.ndarray]]:
    """The function that turns a generated chunk (dict of [n, ...] arrays) into output frames for an output mode.

    Args:
        mode: `paste-back` (full photo), `crop` (VG-net's crops) or `panels`.
        face: the photo's renderer (paste-back and panels).
    """
    if mode == "paste-back":
        return face
    if mode == "crop":
        return lambda chunk: chunk["frames"]
    if mode == "panels":
        return lambda chunk: panel_frames(chunk, face)
    raise InputError(f"unknown output mode {mode!r}; choose one of {', '.join(OUTPUT_MODES)}.")


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """uint8 images [..., H, W, 3] of the same height -> one strip [..., H, sum(W), 3]."""
    return np.concatenate(images, axis=-2)


def landmark_sketches(landmarks: np.ndarray, size: int, scale: float = 1.0) -> np.ndarray:
    """[n, 68, 2] landmarks (crop px) -> [n, size, size, 3] uint8 white dots on black (points x scale)."""
    sketches = np.zeros((len(landmarks), size, size, 3), np.uint8)
    for sketch, points in zip(sketches, landmarks):
        for x, y in points * scale:
            cv2.circle(sketch, (int(round(x)), int(round(y))), max(1, int(scale)), (255, 255, 255), -1)
    return sketches


def panel_frames(chunk: dict, face: FaceRenderer | None = None) -> np.ndarray:
    """rendered face | VG-net frame | attention map | motion map | predicted landmarks, side by side
    (the paper's Fig. 1 view, plus what the renderer made of it when `face` is given)."""
    frames = chunk["frames"]
    size = frames.shape[1] * PANEL_SCALE

    def enlarge(images: np.ndarray) -> np.ndarray:
        return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR) for image in images]).reshape(len(images), size, size, -1)

    panels = [enlarge(frames), enlarge(heat_to_uint8(chunk["attention"])), enlarge(chunk["motion"]),
              landmark_sketches(chunk["landmarks"], size, PANEL_SCALE)]
    if face is not None:
        to_panel = face.transform * (size / face.crop_size)  # photo -> the panel's aligned crop
        rendered = np.stack([cv2.warpAffine(face.frame(chunk, i), to_panel, (size, size), flags=cv2.INTER_AREA)
                             for i in range(len(frames))])
        panels.insert(0, rendered)
    return side_by_side(*panels)
