"""Joint appearance augmentation for VG-net: one random colour and geometry change for a whole example.

The identity frame and the target frames of an example get the same transform, so VG-net can only
produce the target colours by copying them from the identity (instead of memorising the training
speaker's skin and lips), and the landmarks move with the pixels.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AppearanceAugmentation:
    """Ranges of the joint transform (uniformly drawn once per example).

    Attributes:
        brightness: +- added to [-1, 1] pixels (x 2 of tf.image's [0, 1] delta).
        contrast: (low, high) contrast factor around each frame's mean.
        saturation: (low, high) saturation factor.
        hue: +- hue rotation (fraction of the colour circle).
        scale: +- relative zoom about the crop's centre.
        shift: +- translation as a fraction of the crop side.
    """

    brightness: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    saturation: tuple[float, float] = (0.6, 1.4)
    hue: float = 0.05
    scale: float = 0.05
    shift: float = 0.03


def augment_appearance(frames: tf.Tensor, landmarks: tf.Tensor, seed: tf.Tensor,
                       ranges: AppearanceAugmentation = AppearanceAugmentation()) -> tuple[tf.Tensor, tf.Tensor]:
    """Applies one random colour + scale/shift transform to all frames of an example.

    Args:
        frames: [N, S, S, 3] float32 in [-1, 1] (targets and identity together).
        landmarks: [N, 136] float32 landmarks / crop size (x0, y0, x1, ...).
        seed: [2] int stateless seed.

    Returns:
        The transformed frames (still in [-1, 1]) and landmarks.
    """

    def uniform(index: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([], seed + index, low, high)

    images = (frames + 1.0) / 2.0
    images = tf.image.adjust_brightness(images, uniform(11, -ranges.brightness / 2, ranges.brightness / 2))
    images = tf.image.adjust_contrast(images, uniform(12, *ranges.contrast))
    images = tf.image.adjust_saturation(tf.clip_by_value(images, 0.0, 1.0), uniform(13, *ranges.saturation))
    images = tf.image.adjust_hue(images, uniform(14, -ranges.hue, ranges.hue))
    scale = uniform(15, 1.0 - ranges.scale, 1.0 + ranges.scale)
    shift = tf.stack([uniform(16, -ranges.shift, ranges.shift), uniform(17, -ranges.shift, ranges.shift)])
    size = tf.cast(tf.shape(images)[1], tf.float32)
    # Output pixel p samples the input at (p - centre - shift * size) / scale + centre.
    centre = size / 2.0
    offset = centre - (centre + shift * size) / scale
    transform = tf.stack([1.0 / scale, 0.0, offset[0], 0.0, 1.0 / scale, offset[1], 0.0, 0.0])
    count = tf.shape(images)[0]
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.tile(transform[None], [count, 1]), output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )
    points = tf.reshape(landmarks, [-1, 68, 2])
    points = (points - 0.5) * scale + 0.5 + shift
    return tf.clip_by_value(images, 0.0, 1.0) * 2.0 - 1.0, tf.reshape(points, tf.shape(landmarks))
