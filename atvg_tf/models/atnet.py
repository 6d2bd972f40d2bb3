"""AT-net (ATVGnet Eq. 3-4): MFCC windows + the identity's landmark code -> landmark PCA codes per frame."""

from __future__ import annotations

import keras
from keras import layers

from atvg_tf.models.config import ATNetConfig
from atvg_tf.models.layers import PerFrame, TileOverTime, conv_block, dense, lstm_stack


def build_audio_encoder(config: ATNetConfig) -> keras.Model:
    """One 28 x 12 MFCC window -> an audio feature vector."""
    window = keras.Input((*config.window_shape, 1), name="mfcc_window")
    c = config.conv_channels
    x = conv_block(window, c[0], name="audio_conv1")
    x = conv_block(x, c[1], name="audio_conv2")
    x = layers.MaxPooling2D(3, strides=(1, 2), name="audio_pool1")(x)
    x = conv_block(x, c[2], name="audio_conv3")
    x = conv_block(x, c[3], name="audio_conv4")
    x = conv_block(x, c[4], name="audio_conv5")
    x = layers.MaxPooling2D(3, strides=(2, 2), name="audio_pool2")(x)
    x = layers.Flatten(name="audio_flatten")(x)
    x = dense(config.audio_dense[0], "audio_fc1")(x)
    x = dense(config.audio_dense[1], "audio_fc2")(x)
    return keras.Model(window, x, name="audio_encoder")


def build_atnet(config: ATNetConfig = ATNetConfig()) -> keras.Model:
    """Builds AT-net.

    Inputs:
        mfcc_windows: [B, T, 28, 12] MFCC window of each frame.
        identity_pca_codes: [B, K] landmark code of the identity image.

    Returns:
        A functional model with output `pca_codes` [B, T, K].
    """
    windows = keras.Input((None, *config.window_shape), name="mfcc_windows")
    identity_codes = keras.Input((config.pca_components,), name="identity_pca_codes")
    audio = layers.Reshape((-1, *config.window_shape, 1), name="add_channel")(windows)
    audio = PerFrame(build_audio_encoder(config), name="audio_encoder")(audio)
    identity = dense(config.landmark_dense[0], "landmark_fc1")(identity_codes)
    identity = dense(config.landmark_dense[1], "landmark_fc2")(identity)
    identity = TileOverTime(name="landmark_over_time")([identity, audio])
    x = layers.Concatenate(name="fuse")([identity, audio])
    x = lstm_stack(x, config.lstm_units, config.lstm_layers, "lstm")
    codes = PerFrame(dense(config.pca_components, "code_fc", activation=None), name="pca_codes")(x)
    return keras.Model({"mfcc_windows": windows, "identity_pca_codes": identity_codes}, {"pca_codes": codes}, name="atnet")
