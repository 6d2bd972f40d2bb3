"""Loading the official ATVGnet PyTorch weights into this project's Keras networks.

The release's modules (AT_net, VG_net, GL_Discriminator) map tensor by tensor onto `build_atnet`
(`paper`), `build_vgnet` (`official`: conv-GRU, PyTorch transposed-conv alignment, the release's
time-major quirk) and `build_discriminator` (`paper`). Layout changes: conv (out, in, kh, kw) ->
(kh, kw, in, out); transposed conv (in, out, kh, kw) -> (kh, kw, out, in); Linear (out, in) ->
(in, out), and the first Linear after a flatten also reorders its inputs from PyTorch's (C, H, W)
to Keras' (H, W, C); LSTM: transposed kernels, the two biases summed (gate order i, f, g, o is
Keras' i, f, c, o); BatchNorm: weight, bias, running mean, running variance.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from atvg_tf.errors import InputError
from atvg_tf.models.layers import PerFrame

# BatchNorm's step counters carry no weights; the discriminator's `decoder` is never called.
IGNORED = {"atnet": ("num_batches_tracked",), "vgnet": ("num_batches_tracked",),
           "discriminator": ("num_batches_tracked", "decoder.")}


class CheckpointError(InputError):
    """A checkpoint that does not fit the network it is loaded into."""


def _conv(prefix: str, bias: bool = False) -> Callable[[dict], list]:
    return lambda s: [s[f"{prefix}.weight"].transpose(2, 3, 1, 0)] + ([s[f"{prefix}.bias"]] if bias else [])


def _batch_norm(prefix: str) -> Callable[[dict], list]:
    return lambda s: [s[f"{prefix}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]


def _dense(prefix: str, flattened: tuple[int, int, int] | None = None) -> Callable[[dict], list]:
    """Linear -> Dense; `flattened` = (C, H, W) of a PyTorch-flattened input to reorder to (H, W, C)."""

    def convert(s):
        kernel = s[f"{prefix}.weight"].T
        if flattened:
            c, h, w = flattened
            kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
        return [kernel, s[f"{prefix}.bias"]]

    return convert


def _lstm(prefix: str, layer: int) -> Callable[[dict], list]:
    return lambda s: [
        s[f"{prefix}.weight_ih_l{layer}"].T,
        s[f"{prefix}.weight_hh_l{layer}"].T,
        s[f"{prefix}.bias_ih_l{layer}"] + s[f"{prefix}.bias_hh_l{layer}"],
    ]


def _conv_gru(prefix: str) -> Callable[[dict], list]:
    return lambda s: [
        s[f"{prefix}.weight_ih_l0"].transpose(2, 3, 1, 0),
        s[f"{prefix}.weight_hh_l0"].transpose(2, 3, 1, 0),
        s[f"{prefix}.bias_ih_l0"],
        s[f"{prefix}.bias_hh_l0"],
    ]


def _conv_block(keras_name: str, prefix: str) -> dict:
    return {f"{keras_name}_conv": _conv(f"{prefix}.0"), f"{keras_name}_bn": _batch_norm(f"{prefix}.1")}


def atnet_mapping(lstm_layers: int = 3) -> dict[str, Callable]:
    """Keras layer name -> function of the state dict giving that layer's weights."""
    mapping = {"landmark_fc1": _dense("lmark_encoder.0"), "landmark_fc2": _dense("lmark_encoder.2")}
    for index, torch_index in enumerate((0, 1, 3, 4, 5), start=1):
        mapping.update(_conv_block(f"audio_conv{index}", f"audio_eocder.{torch_index}"))
    mapping["audio_fc1"] = _dense("audio_eocder_fc.0", flattened=(512, 12, 2))
    mapping["audio_fc2"] = _dense("audio_eocder_fc.2")
    for index in range(lstm_layers):
        mapping[f"lstm_{index}"] = _lstm("lstm", index)
    mapping["code_fc"] = _dense("lstm_fc.0")
    return mapping


def vgnet_mapping(residual_blocks: int = 9) -> dict[str, Callable]:
    mapping = {"enc1_conv7": _conv("image_encoder1.1.0"), "enc1_bn0": _batch_norm("image_encoder1.1.1")}
    mapping.update(_conv_block("enc1_down1", "image_encoder1.2"))
    mapping.update(_conv_block("enc1_down2", "image_encoder1.3"))
    mapping.update(_conv_block("enc2_down1", "image_encoder2.0"))
    mapping.update(_conv_block("enc2_down2", "image_encoder2.1"))
    mapping["lmark_fc"] = _dense("landmark_encoder.0")
    mapping.update(_conv_block("lmark_stage2", "landmark_encoder_stage2.0"))
    mapping.update({
        "att_up1_deconv": _conv("lmark_att.0", bias=True), "att_up1_bn": _batch_norm("lmark_att.1"),
        "att_up2_deconv": _conv("lmark_att.3", bias=True), "att_up2_bn": _batch_norm("lmark_att.4"),
        "att_out": _conv("lmark_att.6.0", bias=True),
    })
    mapping.update(_conv_block("lmark_feature", "lmark_feature.0"))
    mapping.update(_conv_block("bottleneck", "bottle_neck.0"))
    mapping["mmcrnn"] = _conv_gru("convGRU")
    for index in range(residual_blocks):
        block = f"generator1.{index}.conv_block"
        mapping.update({f"res{index}_a_conv": _conv(f"{block}.0"), f"res{index}_a_bn": _batch_norm(f"{block}.1"),
                        f"res{index}_b_conv": _conv(f"{block}.4"), f"res{index}_b_bn": _batch_norm(f"{block}.5")})
    up = residual_blocks
    mapping.update({
        "dec_up1_deconv": _conv(f"generator1.{up}"), "dec_up1_bn": _batch_norm(f"generator1.{up + 1}"),
        "dec_up2_deconv": _conv(f"generator1.{up + 3}"), "dec_up2_bn": _batch_norm(f"generator1.{up + 4}"),
        "dec_up3_deconv": _conv("base.0"), "dec_up3_bn": _batch_norm("base.1"),
        "dec_up4_deconv": _conv("base.3"), "dec_up4_bn": _batch_norm("base.4"),
        "motion_conv": _conv("generator_color.0", bias=True),
        "attention_conv": _conv("generator_attention.0", bias=True),
    })
    return mapping


def discriminator_mapping(lstm_layers: int = 3) -> dict[str, Callable]:
    mapping = {"dis_conv1_conv": _conv("image_encoder_dis.0.0", bias=True)}
    for index in (1, 2, 3):
        mapping.update(_conv_block(f"dis_conv{index + 1}", f"image_encoder_dis.{index}"))
    mapping.update({"dis_lmark_fc1": _dense("encoder.0"), "dis_lmark_fc2": _dense("encoder.2"),
                    "dis_image_fc": _dense("img_fc.0", flattened=(512, 8, 8))})
    for index in range(lstm_layers):
        mapping[f"dis_lstm_{index}"] = _lstm("lstm", index)
    mapping.update({"dp_fc": _dense("lstm_fc.0"), "ds_fc": _dense("decision.0")})
    return mapping


def all_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Every layer of a model by name, nested models and `PerFrame` wrappers included."""
    found: dict[str, keras.layers.Layer] = {}

    def visit(layer):
        found.setdefault(layer.name, layer)
        if isinstance(layer, PerFrame):
            visit(layer.layer)
        for inner in getattr(layer, "layers", []):
            visit(inner)

    for layer in model.layers:
        visit(layer)
    return found


def load_state_dict(model: keras.Model, state: dict[str, np.ndarray], what: str) -> None:
    """Assigns an official state dict (numpy arrays) to a Keras network.

    Args:
        model: built with the matching preset (see the module docstring).
        state: tensor name -> array, without the `module.` prefix.
        what: `atnet`, `vgnet` or `discriminator`.

    Raises:
        CheckpointError: a tensor is missing, unexpected, or has the wrong shape (nothing is
            assigned then).
    """
    mapping = {"atnet": atnet_mapping, "vgnet": vgnet_mapping, "discriminator": discriminator_mapping}[what]()
    layers = all_layers(model)
    used: set[str] = set()

    class Recorder(dict):
        def __getitem__(self, key):
            if key not in state:
                raise CheckpointError(f"{what}: tensor {key!r} is missing; is this the official {what} checkpoint?")
            used.add(key)
            return np.asarray(state[key], np.float32)

    recorder = Recorder()
    assignments = []
    for name, convert in mapping.items():
        if name not in layers:
            raise CheckpointError(f"{what}: the Keras model has no layer {name!r}; build it with the `official`/`paper` preset.")
        weights = convert(recorder)
        expected = [tuple(v.shape) for v in layers[name].weights]
        if [w.shape for w in weights] != expected:
            raise CheckpointError(
                f"{what}: tensors for {name!r} have shapes {[w.shape for w in weights]}, the model expects {expected}; "
                f"the checkpoint does not match the official architecture."
            )
        assignments.append((layers[name], weights))
    unexpected = sorted(k for k in state if k not in used and not any(part in k for part in IGNORED[what]))
    if unexpected:
        raise CheckpointError(
            f"{what}: {len(unexpected)} unexpected tensors (e.g. {unexpected[0]!r}); is this a checkpoint of another model?"
        )
    for layer, weights in assignments:
        layer.set_weights(weights)
