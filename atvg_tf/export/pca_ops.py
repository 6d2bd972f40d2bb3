"""A model's landmark convention (`generation.landmark_space`) as TensorFlow ops, for exported graphs."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from atvg_tf.frontend.face.alignment import AlignmentConfig
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.landmark_space import OfficialLandmarks
from atvg_tf.rendering.face_points import LOWER_INNER_LIP, MOUTH, UPPER_INNER_LIP


def _similarity(source: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Least-squares similarity from [..., 68, 2] `source` to `target` (as `alignment.similarity_transform`):
    returns a, b (rotation/scale [[a, -b], [b, a]]) and the translation [..., 2]."""
    source_mean = tf.reduce_mean(source, axis=-2, keepdims=True)
    target_mean = tf.reduce_mean(target, axis=-2, keepdims=True)
    s, t = source - source_mean, target - target_mean
    norm = tf.reduce_sum(s**2, axis=[-2, -1])
    a = tf.reduce_sum(s * t, axis=[-2, -1]) / norm
    b = tf.reduce_sum(s[..., 0] * t[..., 1] - s[..., 1] * t[..., 0], axis=-1) / norm
    mx, my = source_mean[..., 0, 0], source_mean[..., 0, 1]
    translation = tf.stack([target_mean[..., 0, 0] - (a * mx - b * my), target_mean[..., 0, 1] - (b * mx + a * my)], axis=-1)
    return a, b, translation


def _apply(points: tf.Tensor, a, b, translation) -> tf.Tensor:
    """[..., 68, 2] points through [[a, -b], [b, a]] + translation (a, b: [...] or scalars)."""
    a, b = a[..., None], b[..., None]
    x, y = points[..., 0], points[..., 1]
    return tf.stack([a * x - b * y + translation[..., None, 0], b * x + a * y + translation[..., None, 1]], axis=-1)


def _fit_similarity(shapes: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Each [B, 68, 2] shape mapped onto `target` [68, 2] by its own least-squares similarity."""
    return _apply(shapes, *_similarity(shapes, target))


def _uncross_lips(landmarks: tf.Tensor) -> tf.Tensor:
    """`face_points.uncross_lips` on [T, 136] landmarks (x, y interleaved)."""
    upper = tf.gather(landmarks, [2 * point + 1 for point in UPPER_INNER_LIP], axis=-1)
    lower = tf.gather(landmarks, [2 * point + 1 for point in LOWER_INNER_LIP], axis=-1)
    middle = (upper + lower) / 2
    moves = tf.concat([tf.minimum(upper, middle) - upper, tf.maximum(lower, middle) - lower], axis=-1)
    placement = np.zeros((6, 136), np.float32)
    placement[np.arange(6), [2 * point + 1 for point in UPPER_INNER_LIP + LOWER_INNER_LIP]] = 1.0
    return landmarks + tf.matmul(moves, tf.constant(placement))


class PcaOps:
    """This project's convention in TF ops: identity-relative decoding in crop pixels, VG-net sees
    landmarks / crop size. Both landmark spaces of `LandmarkPCA` (crop, procrustes) are supported.

    Args:
        pca: the basis.
        crop_size: side of the crop the landmarks are measured in.
        motion_gain, mouth_from_basis: as `landmark_space.CropLandmarks`'s.
    """

    def __init__(self, pca: LandmarkPCA, crop_size: int, motion_gain: float = 1.0, mouth_from_basis: bool = False):
        self.motion_gain, self.mouth_from_basis = float(motion_gain), bool(mouth_from_basis)
        self.space = pca.space
        self.components = tf.constant(pca.components.astype(np.float32))  # [136, K]
        self.mean = tf.constant(pca.mean.astype(np.float32))
        self.scale, self.crop = float(pca.scale), float(crop_size)
        self.reference = tf.constant((pca.mean / pca.scale).reshape(68, 2).astype(np.float32))
        self.template = tf.constant(AlignmentConfig(crop_size=crop_size).template().astype(np.float32))

    def _to_space(self, landmarks: tf.Tensor) -> tf.Tensor:
        if self.space == "crop":
            return landmarks / self.crop
        return tf.reshape(_fit_similarity(tf.reshape(landmarks, [-1, 68, 2]), self.reference), [-1, 136])

    def _decode(self, codes: tf.Tensor) -> tf.Tensor:
        vectors = (tf.matmul(codes, self.components, transpose_b=True) + self.mean) / self.scale
        if self.space == "crop":
            return vectors * self.crop
        return tf.reshape(_fit_similarity(tf.reshape(vectors, [-1, 68, 2]), self.template), [-1, 136])

    def encode(self, landmarks: tf.Tensor) -> tf.Tensor:
        """[B, 136] landmarks (crop px) -> [B, K] codes."""
        return tf.matmul(self._to_space(landmarks) * self.scale - self.mean, self.components)

    def identity_code(self, identity_landmarks: tf.Tensor) -> tf.Tensor:
        """[1, 136] crop px -> AT-net's `identity_pca_codes` [1, K]."""
        return self.encode(identity_landmarks)

    def landmarks(self, codes: tf.Tensor, identity_code: tf.Tensor, identity_landmarks: tf.Tensor) -> tf.Tensor:
        """[T, K] codes -> [T, 136] crop px, as `TalkingFaceModel.landmarks_from_codes`."""
        rest = self._decode(identity_code)
        landmarks = identity_landmarks + self.motion_gain * (self._decode(codes) - rest)
        if self.mouth_from_basis:
            outside = tf.reshape(identity_landmarks - rest, [68, 2])[MOUTH[0]:MOUTH[-1] + 1]
            landmarks -= tf.reshape(tf.pad(outside - tf.reduce_mean(outside, axis=0), [[MOUTH[0], 67 - MOUTH[-1]], [0, 0]]), [1, 136])
        return _uncross_lips(landmarks)

    def vgnet_identity(self, identity_landmarks: tf.Tensor) -> tf.Tensor:
        return identity_landmarks / self.crop

    def vgnet_landmarks(self, landmarks: tf.Tensor, identity_landmarks: tf.Tensor) -> tf.Tensor:
        return landmarks / self.crop


class OfficialOps(PcaOps):
    """The release's convention (`landmark_space.OfficialLandmarks`) in TF ops."""

    def __init__(self, space: OfficialLandmarks, crop_size: int):
        super().__init__(space.pca, crop_size)
        self.boost = tf.constant(space.code_boost)
        self.shape = tf.constant(space.identity_shape.astype(np.float32))  # [68, 2]
        self.code = tf.constant(space.identity_code(None))
        self.identity_vector = tf.constant(space.vgnet_identity(None))

    def _placement(self, identity_landmarks: tf.Tensor):
        return _similarity(self.shape, tf.reshape(identity_landmarks, [68, 2]))

    def identity_code(self, identity_landmarks: tf.Tensor) -> tf.Tensor:
        return self.code

    def landmarks(self, codes: tf.Tensor, identity_code: tf.Tensor, identity_landmarks: tf.Tensor) -> tf.Tensor:
        shapes = (tf.matmul(codes * self.boost, self.components, transpose_b=True) + self.mean) / self.scale
        return tf.reshape(_apply(tf.reshape(shapes, [-1, 68, 2]), *self._placement(identity_landmarks)), [-1, 136])

    def vgnet_identity(self, identity_landmarks: tf.Tensor) -> tf.Tensor:
        return self.identity_vector

    def vgnet_landmarks(self, landmarks: tf.Tensor, identity_landmarks: tf.Tensor) -> tf.Tensor:
        a, b, translation = self._placement(identity_landmarks)
        determinant = a**2 + b**2
        points = tf.reshape(landmarks, [-1, 68, 2]) - translation
        shapes = _apply(points, a / determinant, -b / determinant, tf.zeros(2))
        return tf.reshape(shapes, [-1, 136]) * self.scale


def landmark_ops(model) -> PcaOps:
    """The TF ops of a `TalkingFaceModel`'s landmark convention."""
    if isinstance(model.landmark_space, OfficialLandmarks):
        return OfficialOps(model.landmark_space, model.crop_size)
    return PcaOps(model.pca, model.crop_size, model.landmark_space.motion_gain, model.landmark_space.mouth_from_basis)
