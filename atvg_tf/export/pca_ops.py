"""The landmark PCA as TensorFlow ops, for graphs that go into exported models."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from atvg_tf.frontend.face.alignment import AlignmentConfig
from atvg_tf.frontend.face.pca import LandmarkPCA


def _fit_similarity(shapes: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Maps each [B, 68, 2] shape onto `target` [68, 2] by its least-squares similarity transform
    (as `alignment.similarity_transform` + `transform_points`)."""
    source = shapes - tf.reduce_mean(shapes, axis=1, keepdims=True)
    target_mean = tf.reduce_mean(target, axis=0)
    centred = target - target_mean
    norm = tf.reduce_sum(source**2, axis=[1, 2])
    a = tf.reduce_sum(source * centred, axis=[1, 2]) / norm
    b = tf.reduce_sum(source[..., 0] * centred[:, 1] - source[..., 1] * centred[:, 0], axis=1) / norm
    a, b = a[:, None], b[:, None]
    x = a * source[..., 0] - b * source[..., 1] + target_mean[0]
    y = b * source[..., 0] + a * source[..., 1] + target_mean[1]
    return tf.stack([x, y], axis=-1)


class PcaOps:
    """Encoding identity landmarks and decoding AT-net's codes relative to them, in TF ops.

    Both landmark spaces of `LandmarkPCA` are supported: `crop` (the bases `atvg fit-pca` writes)
    and `procrustes` (the release's bases, for converted official models).

    Args:
        pca: the basis.
        crop_size: side of the crop the landmarks are measured in.
    """

    def __init__(self, pca: LandmarkPCA, crop_size: int):
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

    def relative(self, codes: tf.Tensor, identity_code: tf.Tensor, identity_landmarks: tf.Tensor) -> tf.Tensor:
        """[T, K] codes -> [T, 136] landmarks (crop px): the identity's landmarks plus the decoded
        motion, as `TalkingFaceModel.landmarks_from_codes(relative=True)`."""
        return identity_landmarks + self._decode(codes) - self._decode(identity_code)
