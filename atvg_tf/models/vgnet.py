"""VG-net (ATVGnet Eq. 5-8): landmarks + identity image -> frames, attention maps and motion maps.

Per frame t the landmark attention `att_pt` (32 x 32) says where the face must change; the
bottleneck of [image feature, landmark feature(p_t) - landmark feature(p_p)] runs through a
ConvLSTM2D over time (the release used a conv-GRU); the decoder output is blended with the identity
features by `att_pt` (Eq. 7), decoded to 128 px, and split into a motion/colour map `m_t` (tanh)
and an attention map `a_t` (sigmoid) that blend with the identity image (Eq. 8).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from atvg_tf.models.config import VGNetConfig
from atvg_tf.models.conv_gru import ConvGRU2D
from atvg_tf.models.layers import (
    AttentionBlend,
    PerFrame,
    ReflectionPadding2D,
    TileOverTime,
    conv_block,
    dense,
    residual_block,
    up_block,
    weight_init,
)


def _image_encoders(config: VGNetConfig) -> tuple[keras.Model, keras.Model]:
    c = config.encoder_channels
    size = config.image_size
    image = keras.Input((size, size, 3), name="identity_frame")
    x = ReflectionPadding2D(3, name="reflect")(image)
    x = layers.Conv2D(c[0], 7, use_bias=False, kernel_initializer=weight_init(), name="enc1_conv7")(x)
    x = layers.ReLU(name="enc1_relu0")(layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="enc1_bn0")(x))
    x = conv_block(x, c[1], strides=2, name="enc1_down1")
    x = conv_block(x, c[2], strides=2, name="enc1_down2")
    encoder1 = keras.Model(image, x, name="image_encoder1")
    features = keras.Input(x.shape[1:], name="identity_features")
    y = conv_block(features, c[3], strides=2, name="enc2_down1")
    y = conv_block(y, c[4], strides=2, name="enc2_down2")
    return encoder1, keras.Model(features, y, name="image_encoder2")


def _landmark_encoders(config: VGNetConfig) -> tuple[keras.Model, keras.Model]:
    side = config.image_size // 16
    landmarks = keras.Input((136,), name="landmarks")
    x = dense(side * side, "lmark_fc")(landmarks)
    x = layers.Reshape((side, side, 1), name="lmark_map")(x)
    stage2 = keras.Model(landmarks, conv_block(x, config.landmark_channels[0], name="lmark_stage2"), name="landmark_stage2")
    maps = keras.Input((side, side, config.landmark_channels[0]), name="landmark_maps")
    feature = keras.Model(maps, conv_block(maps, config.landmark_channels[1], name="lmark_feature"), name="landmark_feature")
    return stage2, feature


def _attention(config: VGNetConfig) -> keras.Model:
    side = config.image_size // 16
    pair = keras.Input((side, side, 2 * config.landmark_channels[0]), name="landmark_pair")
    align = config.transposed_alignment
    x = up_block(pair, config.decoder_channels[0], "att_up1", use_bias=True, alignment=align)
    x = up_block(x, config.decoder_channels[1], "att_up2", use_bias=True, alignment=align)
    x = layers.Conv2D(1, 3, padding="same", activation="sigmoid", kernel_initializer=weight_init(), name="att_out")(x)
    return keras.Model(pair, x, name="landmark_attention")


def _bottleneck(config: VGNetConfig) -> keras.Model:
    side = config.image_size // 16
    joint = keras.Input((side, side, config.encoder_channels[4] + config.landmark_channels[1]), name="joint_features")
    return keras.Model(joint, conv_block(joint, config.bottleneck_channels, name="bottleneck"), name="bottleneck")


def _decoders(config: VGNetConfig) -> tuple[keras.Model, keras.Model]:
    side = config.image_size // 16
    hidden = keras.Input((side, side, config.rnn_channels), name="rnn_state")
    x = hidden
    for index in range(config.residual_blocks):
        x = residual_block(x, config.dropout, f"res{index}")
    align = config.transposed_alignment
    x = up_block(x, config.decoder_channels[0], "dec_up1", alignment=align)
    x = up_block(x, config.decoder_channels[1], "dec_up2", alignment=align)
    decoder1 = keras.Model(hidden, x, name="decoder1")
    blended = keras.Input(x.shape[1:], name="blended_features")
    y = up_block(blended, config.decoder_channels[2], "dec_up3", alignment=align)
    y = up_block(y, config.decoder_channels[3], "dec_up4", alignment=align)
    return decoder1, keras.Model(blended, y, name="decoder2")


def _head(channels: int, activation: str, name: str) -> PerFrame:
    conv = layers.Conv2D(channels, 7, padding="same", activation=activation, kernel_initializer=weight_init(), name=f"{name}_conv")
    return PerFrame(conv, name=name)


def _mmcrnn(config: VGNetConfig) -> layers.Layer:
    if config.rnn == "conv_gru":
        return ConvGRU2D(config.rnn_channels, 3, dilation_rate=2, time_major_quirk=config.rnn_time_major_quirk, name="mmcrnn")
    return layers.ConvLSTM2D(config.rnn_channels, 3, padding="same", dilation_rate=2, return_sequences=True, name="mmcrnn")


def vgnet_layers(config: VGNetConfig) -> dict[str, layers.Layer]:
    """Every layer of VG-net, keyed by its name (the names a trained model's layers carry)."""
    if config.image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16, got {config.image_size}.")
    encoder1, encoder2 = _image_encoders(config)
    stage2, feature = _landmark_encoders(config)
    decoder1, decoder2 = _decoders(config)
    parts = {
        "image_encoder1": encoder1,
        "image_encoder2": encoder2,
        "landmark_stage2": stage2,
        "landmark_feature": feature,
        "landmark_stage2_t": PerFrame(stage2, name="landmark_stage2_t"),
        "landmark_pair": layers.Concatenate(name="landmark_pair"),
        "landmark_attention": PerFrame(_attention(config), name="landmark_attention"),
        "landmark_feature_t": PerFrame(feature, name="landmark_feature_t"),
        "landmark_motion": layers.Subtract(name="landmark_motion"),
        "joint": layers.Concatenate(name="joint"),
        "bottleneck": PerFrame(_bottleneck(config), name="bottleneck"),
        "mmcrnn": _mmcrnn(config),
        "decoder1": PerFrame(decoder1, name="decoder1"),
        "feature_blend": AttentionBlend(name="feature_blend"),
        "decoder2": PerFrame(decoder2, name="decoder2"),
        "motion": _head(3, "tanh", "motion"),
        "attention": _head(1, "sigmoid", "attention"),
        "frames": AttentionBlend(name="frames"),
    }
    for name in ("identity_stage2_t", "identity_feature_t", "image_feature_t", "identity_features_t", "identity_frame_t"):
        parts[name] = TileOverTime(name=name)
    return parts


def vgnet_identity(parts: dict, identity_frame, identity_landmarks) -> dict:
    """The identity's encodings, computed once per photo.

    Returns:
        `identity_features` (i'_p, 32 x 32), `image_feature` (8 x 8), `identity_stage2` and
        `identity_feature` (the identity landmarks' maps, 8 x 8).
    """
    identity_features = parts["image_encoder1"](identity_frame)
    identity_stage2 = parts["landmark_stage2"](identity_landmarks)
    return {
        "identity_features": identity_features,
        "image_feature": parts["image_encoder2"](identity_features),
        "identity_stage2": identity_stage2,
        "identity_feature": parts["landmark_feature"](identity_stage2),
    }


def vgnet_render(parts: dict, identity_frame, identity: dict, landmarks, run_recurrent: Callable | None = None) -> dict:
    """Wires the per-frame part of VG-net: landmarks [B, T, 136] -> frames, attention and motion.

    Args:
        identity: the encodings from `vgnet_identity`.
        run_recurrent: `run_recurrent(conv_lstm, x) -> y` runs the MMCRNN; the default calls it as it
            is. The streaming form passes one that feeds and returns its states.
    """
    over_time = lambda name, value: parts[name]([value, landmarks])  # noqa: E731
    stage2_t = parts["landmark_stage2_t"](landmarks)
    pair = parts["landmark_pair"]([stage2_t, over_time("identity_stage2_t", identity["identity_stage2"])])
    landmark_attention = parts["landmark_attention"](pair)
    feature_t = parts["landmark_feature_t"](stage2_t)
    motion_feature = parts["landmark_motion"]([feature_t, over_time("identity_feature_t", identity["identity_feature"])])
    joint = parts["joint"]([over_time("image_feature_t", identity["image_feature"]), motion_feature])
    joint = parts["bottleneck"](joint)
    hidden = run_recurrent(parts["mmcrnn"], joint) if run_recurrent else parts["mmcrnn"](joint)
    decoded = parts["decoder1"](hidden)
    blended = parts["feature_blend"](
        [decoded, over_time("identity_features_t", identity["identity_features"]), landmark_attention]
    )
    decoded = parts["decoder2"](blended)
    motion = parts["motion"](decoded)
    attention = parts["attention"](decoded)
    frames = parts["frames"]([motion, over_time("identity_frame_t", identity_frame), attention])
    return {"frames": frames, "attention": attention, "motion": motion}


def build_vgnet(config: VGNetConfig = VGNetConfig()) -> keras.Model:
    """Builds VG-net.

    Inputs:
        identity_frame: [B, 128, 128, 3] identity image in [-1, 1].
        identity_landmarks: [B, 136] its landmarks (divided by the image size).
        landmarks: [B, T, 136] the landmarks to render.

    Returns:
        A functional model with outputs `frames` [B, T, 128, 128, 3], `attention`
        [B, T, 128, 128, 1] and `motion` [B, T, 128, 128, 3].
    """
    parts = vgnet_layers(config)
    size = config.image_size
    identity_frame = keras.Input((size, size, 3), name="identity_frame")
    identity_landmarks = keras.Input((136,), name="identity_landmarks")
    landmarks = keras.Input((None, 136), name="landmarks")
    identity = vgnet_identity(parts, identity_frame, identity_landmarks)
    outputs = vgnet_render(parts, identity_frame, identity, landmarks)
    inputs = {"identity_frame": identity_frame, "identity_landmarks": identity_landmarks, "landmarks": landmarks}
    return keras.Model(inputs, outputs, name="vgnet")
