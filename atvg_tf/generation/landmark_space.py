"""How a model's landmarks relate to the photo: the two conventions a model folder can follow.

`CropLandmarks` (this project's models): AT-net's codes are decoded relative to the photo's own
landmarks, in crop pixels, and VG-net sees landmarks divided by the crop size.

`OfficialLandmarks` (models converted from the release, with `official.npz`): as the release's
demo, AT-net starts from a fixed closed-mouth mean shape whatever the photo, its codes 1-5 are
boosted and decoded absolutely, and VG-net sees landmarks in the release's normalised space
(Procrustes-normalised shape x 5). For display the shapes are placed on the photo's face by the
similarity that maps the mean shape onto the photo's landmarks.
"""

from __future__ import annotations

import os

import numpy as np

from atvg_tf.frontend.face.alignment import (
    AlignmentConfig,
    invert_transform,
    similarity_transform,
    transform_points,
)
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.rendering.face_points import MOUTH, uncross_lips

OFFICIAL_FILE = "official.npz"
# The release aligns on points 27-44 and calls eyes open when sum(y[37:39] - y[40:42]) < -9 px.
OFFICIAL_POINTS = tuple(range(27, 45))
EYES_OPEN_BELOW = -9.0


class CropLandmarks:
    """Identity-relative landmarks in crop pixels (this project's training convention).

    Args:
        motion_gain: factor on AT-net's motion (decoded codes minus the identity's decoded code).
            MSE-trained AT-nets under-predict how far an unseen speaker's mouth moves, and VG-net
            loses part of the motion on faces it never saw; the model folder sets it
            (`training.json`: inference.motion_gain), chosen on clips AT-net did not train on.
        mouth_from_basis: the mouth's shape is the decoded one, the photo's mouth outside the basis
            dropped (its place still follows the photo). For a basis fitted on the person's own
            footage (`atvg finetune --person-basis`), where what the basis cannot hold of one frame
            is that frame's noise, not the person's mouth (`training.json`: inference.mouth_from_basis).
    """

    def __init__(self, pca: LandmarkPCA, crop_size: int, motion_gain: float = 1.0, mouth_from_basis: bool = False):
        self.pca, self.crop_size, self.motion_gain = pca, crop_size, float(motion_gain)
        self.mouth_from_basis = bool(mouth_from_basis)

    def alignment(self, source_landmarks: np.ndarray) -> AlignmentConfig:
        return AlignmentConfig(crop_size=self.crop_size)

    def save(self, directory: str) -> None:
        """Writes what a model folder needs besides the basis (nothing: `motion_gain` lives in training.json)."""

    def describe_alignment(self, alignment: AlignmentConfig) -> str:
        """A short name of an alignment this space chose (for reports)."""
        return "atvg template" if alignment.template_points is None else "custom template"

    def identity_code(self, identity_landmarks: np.ndarray) -> np.ndarray:
        """[68, 2] crop px -> [1, K]."""
        return self.pca.encode(identity_landmarks)[None]

    def landmarks(self, codes: np.ndarray, identity_landmarks: np.ndarray, relative: bool = True) -> np.ndarray:
        """[T, K] codes -> [T, 68, 2] crop px."""
        if not relative:
            return self.pca.decode(codes)
        rest = self.pca.decode(self.identity_code(identity_landmarks))[0]
        landmarks = identity_landmarks[None] + self.motion_gain * (self.pca.decode(codes) - rest)
        if self.mouth_from_basis:
            outside = identity_landmarks[list(MOUTH)] - rest[list(MOUTH)]
            landmarks[:, list(MOUTH)] -= outside - outside.mean(axis=0)
        return uncross_lips(landmarks)

    def vgnet_identity(self, identity_landmarks: np.ndarray) -> np.ndarray:
        """VG-net's `identity_landmarks` input [1, 136]."""
        return (np.asarray(identity_landmarks, np.float32).reshape(1, 136) / self.crop_size).astype(np.float32)

    def vgnet_landmarks(self, landmarks: np.ndarray, identity_landmarks: np.ndarray) -> np.ndarray:
        """[T, 68, 2] crop px -> VG-net's `landmarks` input [1, T, 136]."""
        return (np.asarray(landmarks, np.float32).reshape(1, -1, 136) / self.crop_size).astype(np.float32)


class OfficialLandmarks(CropLandmarks):
    """The release's convention (see the module docstring).

    Args:
        pca: the release's basis (procrustes space, scale 5).
        crop_size: crop side.
        identity_shape: [136] the fixed normalised identity shape.
        code_boost: [K] factors applied to AT-net's codes before decoding.
        template_open, template_closed: [136] the release's templates in 128-px crop pixels.
    """

    def __init__(self, pca, crop_size, identity_shape, code_boost, template_open, template_closed):
        super().__init__(pca, crop_size)
        self.identity_shape = np.asarray(identity_shape, np.float64).reshape(68, 2)
        self.code_boost = np.asarray(code_boost, np.float32)
        self.templates = (tuple(np.asarray(template_open, float).ravel()), tuple(np.asarray(template_closed, float).ravel()))

    @classmethod
    def load(cls, path: str, pca: LandmarkPCA, crop_size: int) -> OfficialLandmarks:
        with np.load(path) as data:
            return cls(pca, crop_size, data["identity_shape"], data["code_boost"], data["template_open"], data["template_closed"])

    def save(self, directory: str) -> None:
        """Writes `official.npz` into a model folder (what `load` reads)."""
        np.savez(os.path.join(directory, OFFICIAL_FILE), identity_shape=self.identity_shape.ravel(), code_boost=self.code_boost,
                 template_open=np.asarray(self.templates[0]), template_closed=np.asarray(self.templates[1]))

    def alignment(self, source_landmarks: np.ndarray) -> AlignmentConfig:
        opened = AlignmentConfig(crop_size=self.crop_size, alignment_points=OFFICIAL_POINTS, template_points=self.templates[0])
        points = list(OFFICIAL_POINTS)
        aligned = transform_points(source_landmarks, similarity_transform(source_landmarks[points], opened.template()[points]))
        if np.sum(aligned[37:39, 1] - aligned[40:42, 1]) < EYES_OPEN_BELOW * self.crop_size / 128.0:
            return opened
        return AlignmentConfig(crop_size=self.crop_size, alignment_points=OFFICIAL_POINTS, template_points=self.templates[1])

    def describe_alignment(self, alignment: AlignmentConfig) -> str:
        names = {self.templates[0]: "release base_68", self.templates[1]: "release base_68_close"}
        return names.get(alignment.template_points, super().describe_alignment(alignment))

    def identity_code(self, identity_landmarks: np.ndarray) -> np.ndarray:
        vector = self.identity_shape.reshape(1, 136) * self.pca.scale - self.pca.mean
        return (vector @ self.pca.components).astype(np.float32)

    def _placement(self, identity_landmarks: np.ndarray) -> np.ndarray:
        return similarity_transform(self.identity_shape, identity_landmarks)

    def _model_space(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes, np.float32) @ self.pca.components.T + self.pca.mean

    def landmarks(self, codes: np.ndarray, identity_landmarks: np.ndarray, relative: bool = True) -> np.ndarray:
        """Boosted, absolutely decoded shapes placed on the photo's face (`relative` does not apply)."""
        shapes = self._model_space(np.asarray(codes) * self.code_boost) / self.pca.scale
        return transform_points(shapes.reshape(-1, 68, 2), self._placement(identity_landmarks))

    def vgnet_identity(self, identity_landmarks: np.ndarray) -> np.ndarray:
        return self._model_space(self.identity_code(identity_landmarks)).astype(np.float32)

    def vgnet_landmarks(self, landmarks: np.ndarray, identity_landmarks: np.ndarray) -> np.ndarray:
        shapes = transform_points(np.asarray(landmarks).reshape(-1, 68, 2), invert_transform(self._placement(identity_landmarks)))
        return (shapes.reshape(1, -1, 136) * self.pca.scale).astype(np.float32)
