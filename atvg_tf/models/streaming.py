"""Streaming forms of trained AT-net and VG-net: the recurrent states become inputs and outputs.

A long recording is generated chunk by chunk: each call takes the states the previous call
returned (`next_<state>` outputs feed the `<state>` inputs), so the frames equal those of one
call over the whole sequence while memory holds one chunk. The streaming models reuse the
trained layers (the same variables); only the recurrent layers are copies that return their
states, with the trained weights. The same models, with a fixed chunk length and `unroll=True`,
are what the TF-Lite export converts.
"""

from __future__ import annotations

import keras
import numpy as np

from atvg_tf.models.atnet import atnet_graph, audio_inputs
from atvg_tf.models.vgnet import vgnet_identity, vgnet_render

NEXT = "next_"


class _StateWiring:
    """Runs recurrent layers with state inputs, collecting the state inputs and outputs."""

    def __init__(self, unroll: bool):
        self.unroll = unroll
        self.inputs: dict[str, keras.KerasTensor] = {}
        self.outputs: dict[str, keras.KerasTensor] = {}

    def __call__(self, layer: keras.layers.Layer, sequence):
        config = {**layer.get_config(), "return_sequences": True, "return_state": True, "unroll": self.unroll}
        copy = type(layer).from_config(config)
        kinds = getattr(layer, "state_kinds", ("h", "c"))  # LSTMs carry h and c, the conv-GRU only h
        state_shape = layer.compute_output_shape(sequence.shape)[2:]
        states = [keras.Input(state_shape, name=f"{layer.name}_{kind}") for kind in kinds]
        outputs, *next_states = copy(sequence, initial_state=states)
        copy.set_weights(layer.get_weights())
        for kind, state, next_state in zip(kinds, states, next_states):
            self.inputs[f"{layer.name}_{kind}"] = state
            self.outputs[f"{NEXT}{layer.name}_{kind}"] = next_state
        return outputs


def _layers_by_name(model: keras.Model) -> dict:
    return {layer.name: layer for layer in model.layers}


def build_atnet_stream(atnet: keras.Model, steps: int | None = None, unroll: bool = False) -> keras.Model:
    """AT-net with its LSTM states as inputs (`lstm_<i>_h`, `lstm_<i>_c`) and outputs (`next_...`).

    Args:
        atnet: a trained model from `build_atnet`.
        steps: fixed chunk length, or None for any length.
        unroll: unroll the LSTMs (needs `steps`; what TF-Lite converts to builtin ops).

    Returns:
        A functional model: the audio inputs (`mfcc_windows` [B, steps, 28, 12] and/or
        `phone_windows` [B, steps, 28, 40]), `identity_pca_codes` [B, K] and the states ->
        `pca_codes` [B, steps, K] and the next states.
    """
    audio = {name: keras.Input((steps, *atnet.input[name].shape[2:]), name=name) for name in audio_inputs(atnet)}
    identity_codes = keras.Input(atnet.input["identity_pca_codes"].shape[1:], name="identity_pca_codes")
    wiring = _StateWiring(unroll)
    codes = atnet_graph(_layers_by_name(atnet), audio, identity_codes, wiring)
    return keras.Model(
        {**audio, "identity_pca_codes": identity_codes, **wiring.inputs},
        {"pca_codes": codes, **wiring.outputs},
        name="atnet_stream",
    )


def build_vgnet_identity_encoder(vgnet: keras.Model) -> keras.Model:
    """The part of a trained VG-net that depends only on the photo, run once per identity.

    Returns:
        A functional model: `identity_frame`, `identity_landmarks` -> `identity_features`,
        `image_feature`, `identity_stage2`, `identity_feature`.
    """
    frame = keras.Input(vgnet.input["identity_frame"].shape[1:], name="identity_frame")
    landmarks = keras.Input(vgnet.input["identity_landmarks"].shape[1:], name="identity_landmarks")
    encodings = vgnet_identity(_layers_by_name(vgnet), frame, landmarks)
    return keras.Model({"identity_frame": frame, "identity_landmarks": landmarks}, encodings, name="vgnet_identity")


def build_vgnet_stream(vgnet: keras.Model, steps: int | None = None, unroll: bool = False) -> keras.Model:
    """VG-net's per-frame part with the MMCRNN state as inputs (`mmcrnn_h`, `mmcrnn_c`) and outputs.

    Args:
        vgnet: a trained model from `build_vgnet`.
        steps: fixed chunk length, or None for any length.
        unroll: unroll the ConvLSTM (needs `steps`).

    Returns:
        A functional model: `identity_frame`, the outputs of `build_vgnet_identity_encoder`,
        `landmarks` [B, steps, 136] and the states -> `frames`, `attention`, `motion` and the next states.
    """
    encoder = build_vgnet_identity_encoder(vgnet)
    frame = keras.Input(vgnet.input["identity_frame"].shape[1:], name="identity_frame")
    identity = {name: keras.Input(tensor.shape[1:], name=name) for name, tensor in encoder.output.items()}
    landmarks = keras.Input((steps, *vgnet.input["landmarks"].shape[2:]), name="landmarks")
    wiring = _StateWiring(unroll)
    outputs = vgnet_render(_layers_by_name(vgnet), frame, identity, landmarks, wiring)
    return keras.Model(
        {"identity_frame": frame, **identity, "landmarks": landmarks, **wiring.inputs},
        {**outputs, **wiring.outputs},
        name="vgnet_stream",
    )


def initial_states(stream: keras.Model, batch_size: int = 1) -> dict[str, np.ndarray]:
    """Zero states for a streaming model: the values its state inputs take on the first chunk."""
    return {
        name[len(NEXT):]: np.zeros((batch_size, *tensor.shape[1:]), np.float32)
        for name, tensor in stream.output.items()
        if name.startswith(NEXT)
    }


def next_states(outputs: dict) -> dict:
    """The states to feed the next chunk, taken from a streaming model's outputs."""
    return {name[len(NEXT):]: value for name, value in outputs.items() if name.startswith(NEXT)}
