"""Building blocks shared by the three networks: conv blocks and small serializable layers."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

PACKAGE = "atvg_tf"


def weight_init() -> keras.initializers.Initializer:
    """N(0, 0.02), the release's initialisation of conv and dense weights."""
    return keras.initializers.RandomNormal(0.0, 0.02)


def batch_norm(name: str) -> layers.BatchNormalization:
    # PyTorch's defaults (epsilon 1e-5, momentum 0.1 -> Keras 0.9) and the release's gamma N(1, 0.02).
    return layers.BatchNormalization(
        epsilon=1e-5, momentum=0.9, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name
    )


def conv_block(x, filters: int, kernel_size: int = 3, strides: int = 1, name: str = "conv_block", relu: bool = True):
    """Conv (no bias) + BatchNorm + ReLU, padded like PyTorch (k // 2 on every side)."""
    pad = kernel_size // 2
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides, use_bias=False, kernel_initializer=weight_init(), name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def up_block(x, filters: int, name: str, use_bias: bool = False, alignment: str = "keras"):
    """Transposed conv 3x3, stride 2 (doubles the size) + BatchNorm + ReLU.

    Args:
        alignment: `keras` ("same" padding) or `pytorch`: PyTorch's ConvTranspose2d(k3, s2, p1,
            output_padding 1) places output o at 2 i + k - 1, Keras "same" at 2 i + k; a "valid"
            transposed conv (size 2 H + 1) without its first row and column is the PyTorch one.
    """
    if alignment == "pytorch":
        x = layers.Conv2DTranspose(
            filters, 3, 2, padding="valid", use_bias=use_bias, kernel_initializer=weight_init(), name=f"{name}_deconv"
        )(x)
        x = layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_align")(x)
    else:
        x = layers.Conv2DTranspose(
            filters, 3, 2, padding="same", use_bias=use_bias, kernel_initializer=weight_init(), name=f"{name}_deconv"
        )(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def residual_block(x, dropout: float, name: str):
    """conv-BN-ReLU-dropout-conv-BN plus the input."""
    channels = x.shape[-1]
    y = conv_block(x, channels, name=f"{name}_a")
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv_block(y, channels, name=f"{name}_b", relu=False)
    return layers.Add(name=f"{name}_add")([x, y])


def dense(units: int, name: str, activation: str | None = "relu") -> layers.Dense:
    return layers.Dense(units, activation=activation, kernel_initializer=weight_init(), name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReflectionPadding2D(layers.Layer):
    """Pads height and width by reflection (PyTorch's ReflectionPad2d)."""

    def __init__(self, padding: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = lambda size: None if size is None else size + 2 * self.padding  # noqa: E731
        return (b, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PerFrame(layers.Wrapper):
    """Applies a layer (or model) to every frame of [B, T, ...] by folding time into the batch.

    Unlike `TimeDistributed`, which unrolls a Python loop over a static time axis (one copy of the
    inner model per frame in the graph), this is one batched call whatever T is.
    """

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))
        self.built = True

    def call(self, inputs, training=None):
        batch_time = tf.shape(inputs)[:2]
        folded = tf.reshape(inputs, [-1, *inputs.shape[2:]])
        outputs = self.layer(folded, training=training)
        return tf.reshape(outputs, tf.concat([batch_time, tf.shape(outputs)[1:]], 0))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class TileOverTime(layers.Layer):
    """Repeats a per-sequence tensor [B, ...] along the time axis of a sequence [B, T, ...]."""

    def call(self, inputs):
        value, sequence = inputs
        value = tf.expand_dims(value, 1)
        reps = tf.concat([[1, tf.shape(sequence)[1]], tf.ones([len(value.shape) - 2], tf.int32)], 0)
        return tf.tile(value, reps)

    def compute_output_shape(self, input_shape):
        value_shape, sequence_shape = input_shape
        return (value_shape[0], sequence_shape[1], *value_shape[1:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionBlend(layers.Layer):
    """`foreground * attention + background * (1 - attention)` (ATVGnet Eq. 7 and 8)."""

    def call(self, inputs):
        foreground, background, attention = inputs
        return foreground * attention + background * (1.0 - attention)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanOverTime(layers.Layer):
    """Averages [B, T, D] over T -> [B, D]."""

    def call(self, inputs):
        return ops.mean(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowNormalization(layers.Layer):
    """Mean/variance normalisation of each coefficient over the rows of a window: [..., rows, C].

    Cepstral mean and variance normalisation over one 280 ms MFCC window instead of the whole
    utterance, so a streaming model needs no statistics of audio it has not received yet; it removes
    the microphone's and the room's fixed spectral tilt and the recording level.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        mean = ops.mean(inputs, axis=-2, keepdims=True)
        variance = ops.mean(ops.square(inputs - mean), axis=-2, keepdims=True)
        return (inputs - mean) / ops.sqrt(variance + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def lstm_stack(x, units: int, num_layers: int, name: str):
    """Stacked LSTMs returning the full sequence."""
    for index in range(num_layers):
        x = layers.LSTM(units, return_sequences=True, name=f"{name}_{index}")(x)
    return x


@keras.saving.register_keras_serializable(package=PACKAGE)
class HeadBlend(layers.Layer):
    """[codes [B, T, K], head codes [B, T, K]] -> (1 - w) x codes + w x head codes: a second
    prediction of the codes (AT-net's phone head) blended into AT-net's."""

    def __init__(self, head_weight: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.head_weight = float(head_weight)

    def call(self, inputs):
        codes, head_codes = inputs
        return (1.0 - self.head_weight) * codes + self.head_weight * head_codes

    def get_config(self):
        return {**super().get_config(), "head_weight": self.head_weight}
