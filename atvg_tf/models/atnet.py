"""AT-net (ATVGnet Eq. 3-4): MFCC windows + the identity's landmark code -> landmark PCA codes per frame."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from atvg_tf.models.config import ATNetConfig
from atvg_tf.models.layers import PerFrame, TileOverTime, conv_block, dense


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


def atnet_layers(config: ATNetConfig) -> dict[str, layers.Layer]:
    """Every layer of AT-net, keyed by its name (the names a trained model's layers carry)."""
    parts = {
        "add_channel": layers.Reshape((-1, *config.window_shape, 1), name="add_channel"),
        "audio_encoder": PerFrame(build_audio_encoder(config), name="audio_encoder"),
        "landmark_fc1": dense(config.landmark_dense[0], "landmark_fc1"),
        "landmark_fc2": dense(config.landmark_dense[1], "landmark_fc2"),
        "landmark_over_time": TileOverTime(name="landmark_over_time"),
        "fuse": layers.Concatenate(name="fuse"),
        "pca_codes": PerFrame(dense(config.pca_components, "code_fc", activation=None), name="pca_codes"),
    }
    for index in range(config.lstm_layers):
        parts[f"lstm_{index}"] = layers.LSTM(config.lstm_units, return_sequences=True, name=f"lstm_{index}")
    return parts


def atnet_graph(parts: dict, mfcc_windows, identity_pca_codes, run_recurrent: Callable | None = None):
    """Wires AT-net's layers (from `atnet_layers` or a trained model) on symbolic inputs.

    Args:
        run_recurrent: `run_recurrent(lstm, x) -> y` runs each LSTM; the default calls it as it is.
            The streaming form passes one that feeds and returns the LSTM states.

    Returns:
        The PCA codes [B, T, K].
    """
    audio = parts["audio_encoder"](parts["add_channel"](mfcc_windows))
    identity = parts["landmark_fc2"](parts["landmark_fc1"](identity_pca_codes))
    x = parts["fuse"]([parts["landmark_over_time"]([identity, audio]), audio])
    index = 0
    while f"lstm_{index}" in parts:
        lstm = parts[f"lstm_{index}"]
        x = run_recurrent(lstm, x) if run_recurrent else lstm(x)
        index += 1
    return parts["pca_codes"](x)


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
    codes = atnet_graph(atnet_layers(config), windows, identity_codes)
    return keras.Model({"mfcc_windows": windows, "identity_pca_codes": identity_codes}, {"pca_codes": codes}, name="atnet")
