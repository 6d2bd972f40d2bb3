"""Regression-based discriminator (ATVGnet Eq. 10-11).

Per frame an image feature, with the identity landmarks' feature, runs through stacked LSTMs; Dp
regresses the frame's 136 landmark values (a tanh residual on the identity landmarks) and Ds scores
each frame, averaged over time into one realness logit per sequence.
"""

from __future__ import annotations

import keras
from keras import layers

from atvg_tf.models.config import DiscriminatorConfig
from atvg_tf.models.layers import MeanOverTime, PerFrame, TileOverTime, conv_block, dense, lstm_stack, weight_init


def _image_encoder(config: DiscriminatorConfig) -> keras.Model:
    size = config.image_size
    frame = keras.Input((size, size, 3), name="frame")
    c = config.conv_channels
    x = layers.ZeroPadding2D(1, name="dis_conv1_pad")(frame)
    x = layers.Conv2D(c[0], 3, 2, kernel_initializer=weight_init(), name="dis_conv1_conv")(x)
    x = layers.ReLU(name="dis_conv1_relu")(x)
    for index, channels in enumerate(c[1:], start=2):
        x = conv_block(x, channels, strides=2, name=f"dis_conv{index}")
    x = layers.Flatten(name="dis_flatten")(x)
    x = dense(config.image_dense, "dis_image_fc")(x)
    return keras.Model(frame, x, name="frame_encoder")


def build_discriminator(config: DiscriminatorConfig = DiscriminatorConfig()) -> keras.Model:
    """Builds the discriminator.

    Inputs:
        frames: [B, T, 128, 128, 3] real or generated frames in [-1, 1].
        identity_landmarks: [B, 136] landmarks of the identity image.

    Returns:
        A functional model with outputs `landmarks` [B, T, 136] (Dp) and `realness_logit` [B, 1] (Ds
        before the sigmoid; the losses apply it).
    """
    size = config.image_size
    frames = keras.Input((None, size, size, 3), name="frames")
    identity_landmarks = keras.Input((136,), name="identity_landmarks")
    image = PerFrame(_image_encoder(config), name="frame_encoder")(frames)
    identity = dense(config.landmark_dense[0], "dis_lmark_fc1")(identity_landmarks)
    identity = dense(config.landmark_dense[1], "dis_lmark_fc2")(identity)
    x = layers.Concatenate(name="fuse")([TileOverTime(name="identity_over_time")([identity, image]), image])
    x = lstm_stack(x, config.lstm_units, config.lstm_layers, "dis_lstm")
    offsets = PerFrame(dense(136, "dp_fc", activation="tanh"), name="dp")(x)
    regressed = layers.Add(name="landmarks")([offsets, TileOverTime(name="identity_landmarks_t")([identity_landmarks, x])])
    scores = PerFrame(dense(1, "ds_fc", activation=None), name="ds")(x)
    realness = MeanOverTime(name="realness_logit")(scores)
    return keras.Model(
        {"frames": frames, "identity_landmarks": identity_landmarks},
        {"landmarks": regressed, "realness_logit": realness},
        name="discriminator",
    )
