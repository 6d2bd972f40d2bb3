"""AT-net (ATVGnet Eq. 3-4): audio windows + the identity's landmark code -> landmark PCA codes per frame.

The audio is MFCC windows (the paper), phone windows (`frontend.phones`), or both, as
`ATNetConfig.audio_features` says; the model's inputs are named after what it hears. With
`mfcc+phone_head` (`mfcc+embedding_head`, `mfcc+activation_head`) the recurrent network hears MFCC
and a linear head on phone posterior windows, `phone_posteriors` (speech embedding windows,
`speech_embeddings`; the embedding network's activations, `speech_activations`), predicts the codes
too; the two are blended (`layers.HeadBlend`).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from atvg_tf.frontend.audio_windows import AUDIO_INPUTS
from atvg_tf.frontend.speech_embedding import ACTIVATION_ROWS, EMBEDDING_SIZE, WINDOW_FRAMES
from atvg_tf.models.config import HEAD_INPUTS, ATNetConfig
from atvg_tf.models.layers import HeadBlend, PerFrame, TileOverTime, WindowNormalization, conv_block, dense


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
    parts = {}
    if "mfcc_windows" in config.audio_inputs:
        if config.mfcc_normalisation == "window":
            parts["mfcc_normalisation"] = WindowNormalization(name="mfcc_normalisation")
        parts["add_channel"] = layers.Reshape((-1, *config.window_shape, 1), name="add_channel")
        parts["audio_encoder"] = PerFrame(build_audio_encoder(config), name="audio_encoder")
    if "phone_windows" in config.audio_inputs:
        parts["phone_flatten"] = layers.Reshape((-1, config.window_shape[0] * config.phone_classes), name="phone_flatten")
        for index, width in enumerate(config.phone_dense):
            parts[f"phone_fc{index + 1}"] = dense(width, f"phone_fc{index + 1}")
    for name, head in HEAD_INPUTS.items():
        if name in config.audio_inputs:
            parts[f"{head}_flatten"] = layers.Reshape((-1, int(np.prod(input_shapes(config)[name]))), name=f"{head}_flatten")
            parts[head] = layers.Dense(config.pca_components, name=head)
            parts[f"{head}_blend"] = HeadBlend(config.head_weight, name=f"{head}_blend")
    if len([name for name in config.audio_inputs if name not in HEAD_INPUTS]) > 1:
        parts["audio_fuse"] = layers.Concatenate(name="audio_fuse")
    parts |= {
        "landmark_fc1": dense(config.landmark_dense[0], "landmark_fc1"),
        "landmark_fc2": dense(config.landmark_dense[1], "landmark_fc2"),
        "landmark_over_time": TileOverTime(name="landmark_over_time"),
        "fuse": layers.Concatenate(name="fuse"),
        "pca_codes": PerFrame(dense(config.pca_components, "code_fc", activation=None), name="pca_codes"),
    }
    for index in range(config.lstm_layers):
        parts[f"lstm_{index}"] = layers.LSTM(config.lstm_units, return_sequences=True, name=f"lstm_{index}")
    return parts


def audio_graph(parts: dict, audio: dict):
    """The per-frame audio feature [B, T, F] of the audio inputs (`mfcc_windows`, `phone_windows`)."""
    encoded = []
    if "mfcc_windows" in audio:
        mfcc = audio["mfcc_windows"]
        if "mfcc_normalisation" in parts:
            mfcc = parts["mfcc_normalisation"](mfcc)
        encoded.append(parts["audio_encoder"](parts["add_channel"](mfcc)))
    if "phone_windows" in audio:
        x = parts["phone_flatten"](audio["phone_windows"])
        index = 1
        while f"phone_fc{index}" in parts:
            x = parts[f"phone_fc{index}"](x)
            index += 1
        encoded.append(x)
    return parts["audio_fuse"](encoded) if len(encoded) > 1 else encoded[0]


def atnet_graph(parts: dict, audio: dict, identity_pca_codes, run_recurrent: Callable | None = None):
    """Wires AT-net's layers (from `atnet_layers` or a trained model) on symbolic inputs.

    Args:
        audio: the audio inputs by name (`mfcc_windows` [B, T, 28, 12], `phone_windows` or
            `phone_posteriors` [B, T, 28, 40]).
        run_recurrent: `run_recurrent(lstm, x) -> y` runs each LSTM; the default calls it as it is.
            The streaming form passes one that feeds and returns the LSTM states.

    Returns:
        The PCA codes [B, T, K].
    """
    heard = audio_graph(parts, audio)
    identity = parts["landmark_fc2"](parts["landmark_fc1"](identity_pca_codes))
    x = parts["fuse"]([parts["landmark_over_time"]([identity, heard]), heard])
    index = 0
    while f"lstm_{index}" in parts:
        lstm = parts[f"lstm_{index}"]
        x = run_recurrent(lstm, x) if run_recurrent else lstm(x)
        index += 1
    codes = parts["pca_codes"](x)
    for name, head in HEAD_INPUTS.items():
        if head in parts:
            codes = parts[f"{head}_blend"]([codes, parts[head](parts[f"{head}_flatten"](audio[name]))])
    return codes


def build_atnet(config: ATNetConfig = ATNetConfig()) -> keras.Model:
    """Builds AT-net.

    Inputs (as `config.audio_features` says):
        mfcc_windows: [B, T, 28, 12] MFCC window of each frame.
        phone_windows: [B, T, 28, 40] one-hot phone window of each frame.
        phone_posteriors: [B, T, 28, 40] phone posterior window of each frame.
        speech_embeddings: [B, T, 11, 96] speech embedding window of each frame.
        speech_activations: [B, T, 48, 96] the embedding network's activations of each frame.
        identity_pca_codes: [B, K] landmark code of the identity image.

    Returns:
        A functional model with output `pca_codes` [B, T, K].
    """
    shapes = input_shapes(config)
    audio = {name: keras.Input((None, *shapes[name]), name=name) for name in config.audio_inputs}
    identity_codes = keras.Input((config.pca_components,), name="identity_pca_codes")
    codes = atnet_graph(atnet_layers(config), audio, identity_codes)
    return keras.Model({**audio, "identity_pca_codes": identity_codes}, {"pca_codes": codes}, name="atnet")


def input_shapes(config: ATNetConfig) -> dict[str, tuple[int, int]]:
    """The per-frame shape of each audio input."""
    phone_window = (config.window_shape[0], config.phone_classes)
    return {"mfcc_windows": config.window_shape, "phone_windows": phone_window, "phone_posteriors": phone_window,
            "speech_embeddings": (WINDOW_FRAMES, EMBEDDING_SIZE), "speech_activations": (ACTIVATION_ROWS, EMBEDDING_SIZE)}


def audio_inputs(atnet: keras.Model) -> tuple[str, ...]:
    """The audio inputs a built or loaded AT-net takes (`frontend.audio_windows.AUDIO_INPUTS`)."""
    return tuple(name for name in AUDIO_INPUTS if name in atnet.input)
