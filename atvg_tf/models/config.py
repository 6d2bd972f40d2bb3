"""Configurations of the three networks, as frozen dataclasses with named presets.

`paper` follows the ATVGnet release's layer sizes (docs/METHOD.md); `small` keeps every part of the
architecture but narrows and shortens it so it trains on a CPU and runs faster than real time.
"""

from __future__ import annotations

import dataclasses

from atvg_tf.errors import InputError
from atvg_tf.utils.presets import Presets


@dataclasses.dataclass(frozen=True)
class ATNetConfig(Presets):
    """AT-net (audio -> landmark PCA codes).

    Attributes:
        pca_components: K, size of the landmark codes.
        conv_channels: channels of the five audio conv blocks (max-pools after the 2nd and 5th).
        audio_dense: widths of the two dense layers after the audio convs.
        landmark_dense: widths of the two dense layers of the landmark-code encoder.
        lstm_units: hidden size of each LSTM layer.
        lstm_layers: stacked LSTM layers.
        window_shape: MFCC window (rows, coefficients).
        audio_features: what AT-net hears: `mfcc` (the paper; converted official models),
            `phones` (PocketSphinx phone windows, speaker-independent), `mfcc+phones` (both
            encoders, their features concatenated) or `mfcc+phone_head` (the MFCC network, blended
            with a linear head on phone posterior windows, `frontend.phones.posterior_windows`) or
            `mfcc+embedding_head` (the same with a head on speech embedding windows,
            `frontend.speech_embedding.embedding_windows`) or `mfcc+activation_head` (a head on the
            embedding network's activations, `embedding_windows(..., activations=True)`).
        mfcc_normalisation: `none` (the paper) or `window`: each MFCC window normalised to zero mean
            and unit variance per coefficient (`layers.WindowNormalization`).
        phone_classes: phone symbols per row of a phone window (`frontend.phones.NUM_PHONES`).
        phone_dense: widths of the dense layers that encode a flattened 28-row phone window.
        phone_head_weight: `mfcc+phone_head`: the codes are (1 - w) x the MFCC network's + w x the
            phone head's (`layers.HeadBlend`).
        embedding_head_weight: the same for `mfcc+embedding_head`.
        activation_head_weight: the same for `mfcc+activation_head`.
    """

    pca_components: int = 6
    conv_channels: tuple[int, ...] = (64, 128, 256, 256, 512)
    audio_dense: tuple[int, int] = (2048, 256)
    landmark_dense: tuple[int, int] = (256, 512)
    lstm_units: int = 256
    lstm_layers: int = 3
    window_shape: tuple[int, int] = (28, 12)
    audio_features: str = "mfcc"
    mfcc_normalisation: str = "none"
    phone_classes: int = 40
    phone_dense: tuple[int, ...] = (256, 256)
    phone_head_weight: float = 0.5
    embedding_head_weight: float = 0.4
    activation_head_weight: float = 0.5

    # `official`: the release's AT-net has the paper's sizes.
    PRESETS = {
        "paper": {},
        "official": {},
        "small": dict(conv_channels=(32, 64, 64, 64, 128), audio_dense=(256, 128), landmark_dense=(64, 128),
                      lstm_units=128, lstm_layers=2),
    }

    def __post_init__(self):
        if self.audio_features not in AUDIO_FEATURES:
            raise InputError(f"audio_features must be one of {', '.join(AUDIO_FEATURES)}, got {self.audio_features!r}.")
        if self.mfcc_normalisation not in ("none", "window"):
            raise InputError(f"mfcc_normalisation must be none or window, got {self.mfcc_normalisation!r}.")

    @property
    def head_weight(self) -> float:
        """The share of AT-net's codes its head (phone, embedding or activation) predicts."""
        return getattr(self, HEAD_WEIGHT_FIELDS.get(self.audio_features, "phone_head_weight"))

    @property
    def audio_inputs(self) -> tuple[str, ...]:
        """Names of AT-net's audio inputs, in order: `mfcc_windows`, `phone_windows`, `phone_posteriors`,
        `speech_embeddings`, `speech_activations`."""
        return AUDIO_FEATURES[self.audio_features]


# audio_features -> the AT-net inputs it needs.
AUDIO_FEATURES = {"mfcc": ("mfcc_windows",), "phones": ("phone_windows",), "mfcc+phones": ("mfcc_windows", "phone_windows"),
                  "mfcc+phone_head": ("mfcc_windows", "phone_posteriors"), "mfcc+embedding_head": ("mfcc_windows", "speech_embeddings"),
                  "mfcc+activation_head": ("mfcc_windows", "speech_activations")}
# The audio inputs a linear head reads -> the head's layer name.
HEAD_INPUTS = {"phone_posteriors": "phone_head", "speech_embeddings": "embedding_head", "speech_activations": "activation_head"}
# The audio_features whose AT-net is an MFCC network with a head blended in.
HEADED_FEATURES = ("mfcc+phone_head", "mfcc+embedding_head", "mfcc+activation_head")
# A headed audio_features -> its ATNetConfig weight field.
HEAD_WEIGHT_FIELDS = {"mfcc+phone_head": "phone_head_weight", "mfcc+embedding_head": "embedding_head_weight",
                      "mfcc+activation_head": "activation_head_weight"}


@dataclasses.dataclass(frozen=True)
class VGNetConfig(Presets):
    """VG-net (landmarks + identity image -> frames).

    Attributes:
        image_size: side of the square frames.
        encoder_channels: channels of image encoder 1 (7x7, stride-2, stride-2) and 2 (two stride-2).
        landmark_channels: channels of the landmark stage-2 map and the landmark feature.
        bottleneck_channels: channels of the conv-RNN input.
        rnn_channels: conv-RNN hidden channels.
        residual_blocks: residual blocks at the start of the decoder.
        decoder_channels: channels after the four transposed convolutions (32 -> 128 px).
        dropout: dropout rate inside the residual blocks.
        rnn: the MMCRNN: `conv_lstm` (Keras ConvLSTM2D, this project's default) or `conv_gru`
            (the release's conv-GRU).
        rnn_time_major_quirk: with `conv_gru`, reproduce the release feeding (batch, time, ...) to a
            time-major GRU (each frame starts from a zero state at batch size 1); for converted
            official weights only.
        transposed_alignment: `keras` (Conv2DTranspose "same") or `pytorch` (the alignment of
            PyTorch's ConvTranspose2d(k3, s2, p1, output_padding 1), needed by converted weights).
    """

    image_size: int = 128
    encoder_channels: tuple[int, ...] = (64, 64, 128, 256, 512)
    landmark_channels: tuple[int, int] = (256, 512)
    bottleneck_channels: int = 128
    rnn_channels: int = 512
    residual_blocks: int = 9
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)
    dropout: float = 0.5
    rnn: str = "conv_lstm"
    rnn_time_major_quirk: bool = False
    transposed_alignment: str = "keras"

    # `paper`: release sizes, ConvLSTM. `official`: the release exactly (conv-GRU, PyTorch alignment,
    # its time-major quirk), what `atvg convert-official` builds.
    PRESETS = {
        "paper": {},
        "official": dict(rnn="conv_gru", rnn_time_major_quirk=True, transposed_alignment="pytorch"),
        "small": dict(encoder_channels=(16, 32, 64, 64, 128), landmark_channels=(64, 128), bottleneck_channels=64,
                      rnn_channels=128, residual_blocks=2, decoder_channels=(64, 64, 32, 16), dropout=0.0),
    }

    def __post_init__(self):
        if self.rnn not in ("conv_lstm", "conv_gru"):
            raise InputError(f"rnn must be conv_lstm or conv_gru, got {self.rnn!r}.")
        if self.transposed_alignment not in ("keras", "pytorch"):
            raise InputError(f"transposed_alignment must be keras or pytorch, got {self.transposed_alignment!r}.")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig(Presets):
    """Regression-based discriminator (frames + identity landmarks -> landmarks, realness).

    Attributes:
        image_size: side of the square frames.
        conv_channels: channels of the four stride-2 convs (the first without BatchNorm).
        image_dense: width of the dense layer on the flattened image features.
        landmark_dense: widths of the identity-landmark encoder.
        lstm_units: hidden size of each LSTM layer.
        lstm_layers: stacked LSTM layers.
    """

    image_size: int = 128
    conv_channels: tuple[int, ...] = (64, 128, 256, 512)
    image_dense: int = 512
    landmark_dense: tuple[int, int] = (256, 512)
    lstm_units: int = 256
    lstm_layers: int = 3

    # `official`: the release ships no discriminator; fine-tuning its generator uses the paper's.
    PRESETS = {
        "paper": {},
        "official": {},
        "small": dict(conv_channels=(16, 32, 64, 64), image_dense=128, landmark_dense=(64, 128), lstm_units=128, lstm_layers=2),
    }
