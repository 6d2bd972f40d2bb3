"""A converted official model as the start of a fine-tune in this project's landmark convention.

The release's networks hear and answer landmarks in its own space: AT-net in codes of its LRW
basis (Procrustes-normalised shapes x 5, codes boosted before decoding), VG-net in shapes x 5 that
the identity's similarity places on the face. A fine-tune trains in crop pixels (`CropLandmarks`).
Fix that similarity to S0, the one placing the release's identity shape on this project's
alignment template, and each of the release's spaces is an affine function of crop pixels, so each
map folds exactly into the layer that reads or writes it: AT-net's `landmark_fc1` and `pca_codes`
(`rebase.fold_code_maps`) and VG-net's `lmark_fc`. The folded networks answer as the release's do
for a face that sits on the template; fine-tuning learns the rest (the person, and this project's
alignment, which differs from the release's by 3 % in scale and 3 px).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from atvg_tf.frontend.face.alignment import invert_transform, similarity_transform
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.landmark_space import CropLandmarks, OfficialLandmarks
from atvg_tf.generation.model import TalkingFaceModel, network_configs
from atvg_tf.models.atnet import build_atnet
from atvg_tf.models.vgnet import build_vgnet
from atvg_tf.training.rebase import fold_code_maps

# VG-net's first layer on landmarks (inside `landmark_stage2`, which both landmark inputs pass through).
VGNET_LANDMARK_LAYER = ("landmark_stage2", "lmark_fc")


def _pointwise(transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A [2, 3] point transform as (L [136, 136], t [136]) acting on flattened [68, 2] rows: x @ L + t."""
    return np.kron(np.eye(68), transform[:, :2].T), np.tile(transform[:, 2], 68)


@dataclasses.dataclass(frozen=True)
class OfficialMaps:
    """The affine maps between crop pixels and the release's spaces (S0 fixed), as folded.

    Attributes:
        codes_out: (M [6, K], offset [K]): the release's AT-net codes -> codes of the target basis.
        codes_in: (M [K, 6], offset [6]): target codes of an identity -> the release's codes of it.
        vgnet_in: (M [136, 136], offset [136]): VG-net's crop landmarks / crop size -> release shapes x 5.
    """

    codes_out: tuple[np.ndarray, np.ndarray]
    codes_in: tuple[np.ndarray, np.ndarray]
    vgnet_in: tuple[np.ndarray, np.ndarray]


def official_maps(space: OfficialLandmarks, target: LandmarkPCA, template: np.ndarray) -> OfficialMaps:
    """The maps for a converted model's landmark space and a crop-space target basis.

    Args:
        template: [68, 2] crop px, where this project's alignment puts a face's landmarks.
    """
    placement = similarity_transform(space.identity_shape, template)  # S0: release shape -> crop px
    place, shift = _pointwise(placement)
    unplace, unshift = _pointwise(invert_transform(placement))
    basis, mean, scale = space.pca.components, space.pca.mean, space.pca.scale
    t_basis, t_mean, t_scale, crop = target.components, target.mean, target.scale, float(space.crop_size)
    # Out: crop px = ((c * boost) @ basis.T + mean) / scale, placed; target code = (px / crop * t_scale - t_mean) @ t_basis.
    codes_out = ((space.code_boost[:, None] * basis.T) @ place @ t_basis * (t_scale / (scale * crop)),
                 ((mean / scale) @ place + shift) @ t_basis * (t_scale / crop) - t_mean @ t_basis)
    # In: crop px = (c_t @ t_basis.T + t_mean) / t_scale * crop; release code = (scale * unplaced px - mean) @ basis.
    codes_in = (t_basis.T @ unplace @ basis * (scale * crop / t_scale),
                (scale * ((t_mean * crop / t_scale) @ unplace + unshift) - mean) @ basis)
    vgnet_in = (unplace * (scale * crop), unshift * scale)
    return OfficialMaps(*(tuple(np.asarray(part, np.float32) for part in pair) for pair in (codes_out, codes_in, vgnet_in)))


def fold_vgnet_input(vgnet: keras.Model, matrix: np.ndarray, offset: np.ndarray) -> None:
    """Makes `vgnet` hear x @ matrix + offset wherever it heard landmarks x (in place)."""
    layer = vgnet.get_layer(VGNET_LANDMARK_LAYER[0]).get_layer(VGNET_LANDMARK_LAYER[1])
    kernel, bias = layer.get_weights()
    layer.set_weights([matrix @ kernel, offset @ kernel + bias])


def crop_convention_model(official: TalkingFaceModel, target: LandmarkPCA, template: np.ndarray) -> TalkingFaceModel:
    """The converted model's networks moved into `CropLandmarks` with the basis `target` (in memory).

    Its AT-net has the release's sizes with `target`'s number of codes; its VG-net keeps the
    release's architecture (`official` preset: conv-GRU with the release's time-major quirk).
    """
    if not isinstance(official.landmark_space, OfficialLandmarks):
        raise ValueError("crop_convention_model takes a converted official model (with official.npz).")
    maps = official_maps(official.landmark_space, target, template)
    atnet_config, vgnet_config = network_configs(official.info, official.atnet)
    atnet_config = dataclasses.replace(atnet_config, pca_components=target.num_components)
    atnet = build_atnet(atnet_config)
    fold_code_maps(official.atnet, atnet, outward=maps.codes_out, inward=maps.codes_in)
    vgnet = build_vgnet(vgnet_config)
    vgnet.set_weights(official.vgnet.get_weights())
    fold_vgnet_input(vgnet, *maps.vgnet_in)
    info = {
        "source": f"{official.info.get('source', 'a converted official model')}, moved into this project's landmark convention",
        "landmark_backend": official.landmark_backend,
        "inference": {},
        "presets": {"atnet": dataclasses.asdict(atnet_config), "vgnet": dataclasses.asdict(vgnet_config)},
    }
    return TalkingFaceModel(atnet, vgnet, target, info, CropLandmarks(target, official.crop_size))
