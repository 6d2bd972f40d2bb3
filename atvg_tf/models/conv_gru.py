"""A convolutional GRU with the ATVGnet release's semantics (its VG-net MMCRNN).

Gates r (reset), z (update), n (new), in that order along the channel axis of both kernels:
    r = sigmoid(W_ir * x + b_ir + W_hr * h + b_hr)
    z = sigmoid(W_iz * x + b_iz + W_hz * h + b_hz)
    n = tanh(W_in * x + b_in + r * (W_hn * h + b_hn))
    h' = n + z * (h - n)
with `*` a 3x3 convolution, dilation 2, "same" padding (2 on every side).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from atvg_tf.models.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvGRU2D(layers.Layer):
    """Convolutional GRU over [B, T, H, W, C] sequences.

    Args:
        filters: hidden channels.
        kernel_size: square kernel side.
        dilation_rate: kernel dilation.
        return_sequences: return every step's state ([B, T, H, W, filters]) or only the last.
        return_state: also return the last state (a list `[outputs, h]`).
        time_major_quirk: reproduce the release, which fed (batch, time, ...) tensors to a
            time-major GRU: the recurrence then runs across the batch axis, so at batch size 1
            every frame starts from a zero state. Only for converted official weights; an
            `initial_state` is ignored in this mode.
        unroll: a Python loop over a static number of steps instead of a symbolic loop (what
            TF-Lite converts to builtin ops).
    """

    state_kinds = ("h",)

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        dilation_rate: int = 2,
        return_sequences: bool = True,
        return_state: bool = False,
        time_major_quirk: bool = False,
        unroll: bool = False,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.dilation_rate = int(filters), int(kernel_size), int(dilation_rate)
        self.return_sequences, self.return_state = return_sequences, return_state
        self.time_major_quirk, self.unroll = time_major_quirk, unroll
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)

    def build(self, inputs_shape, initial_state_shape=None):
        channels = inputs_shape[-1]
        k, gates = self.kernel_size, 3 * self.filters
        self.input_kernel = self.add_weight(name="input_kernel", shape=(k, k, channels, gates), initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(k, k, self.filters, gates), initializer=self.recurrent_initializer
        )
        self.input_bias = self.add_weight(name="input_bias", shape=(gates,), initializer="zeros")
        self.recurrent_bias = self.add_weight(name="recurrent_bias", shape=(gates,), initializer="zeros")
        self.built = True

    def _conv(self, x, kernel, bias):
        return tf.nn.conv2d(x, kernel, 1, "SAME", dilations=self.dilation_rate) + bias

    def _step(self, projected_input, h):
        x_r, x_z, x_n = tf.split(projected_input, 3, axis=-1)
        h_r, h_z, h_n = tf.split(self._conv(h, self.recurrent_kernel, self.recurrent_bias), 3, axis=-1)
        r = tf.sigmoid(x_r + h_r)
        z = tf.sigmoid(x_z + h_z)
        n = tf.tanh(x_n + r * h_n)
        return n + z * (h - n)

    def call(self, inputs, initial_state=None):
        if self.time_major_quirk:
            inputs, initial_state = tf.transpose(inputs, [1, 0, 2, 3, 4]), None
        shape = tf.shape(inputs)
        folded = tf.reshape(inputs, tf.concat([[-1], shape[2:]], 0))
        projected = self._conv(folded, self.input_kernel, self.input_bias)
        projected = tf.reshape(projected, tf.concat([shape[:2], tf.shape(projected)[1:]], 0))
        if initial_state is None:
            h = tf.zeros(tf.concat([shape[:1], shape[2:4], [self.filters]], 0), inputs.dtype)
        else:
            h = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        steps = inputs.shape[1]
        if self.unroll and steps is not None:
            states = []
            for t in range(steps):
                h = self._step(projected[:, t], h)
                states.append(h)
            sequence = tf.stack(states, axis=1)
        else:
            sequence = tf.transpose(tf.scan(lambda state, x: self._step(x, state), tf.transpose(projected, [1, 0, 2, 3, 4]), h), [1, 0, 2, 3, 4])
            h = sequence[:, -1]
        if self.time_major_quirk:
            sequence = tf.transpose(sequence, [1, 0, 2, 3, 4])
            h = sequence[:, -1]
        outputs = sequence if self.return_sequences else sequence[:, -1]
        return [outputs, h] if self.return_state else outputs

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        batch, steps, height, width = inputs_shape[:4]
        state = (batch, height, width, self.filters)
        outputs = (batch, steps, height, width, self.filters) if self.return_sequences else state
        return [outputs, state] if self.return_state else outputs

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "time_major_quirk": self.time_major_quirk,
            "unroll": self.unroll,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
        }
