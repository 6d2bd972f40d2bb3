"""Moving a trained AT-net into another landmark basis (one fitted on a person's own footage).

AT-net hears its identity as PCA codes and answers in PCA codes of the same basis. Both ends are
affine in the codes, so a change of basis folds into two layers: `landmark_fc1` (the identity's
codes in) and `pca_codes` (the codes out). The rebased network then predicts the old network's
landmarks projected onto the new basis, and fine-tuning starts from there.
"""

from __future__ import annotations

import keras
import numpy as np

from atvg_tf.frontend.face.pca import LandmarkPCA


def code_map(source: LandmarkPCA, target: LandmarkPCA) -> tuple[np.ndarray, np.ndarray]:
    """(M [K_s, K_t], offset [K_t]) with target codes = source codes @ M + offset, through the landmarks.

    Landmarks v (crop px / crop size) are coded as c = (v * scale - mean) @ components.
    """
    ratio = target.scale / source.scale
    matrix = (source.components.T @ target.components) * ratio
    offset = (source.mean * ratio - target.mean) @ target.components
    return matrix.astype(np.float32), offset.astype(np.float32)


def rebase_atnet(trained: keras.Model, model: keras.Model, source: LandmarkPCA, target: LandmarkPCA) -> None:
    """Sets `model`'s weights to `trained`'s (basis `source`), moved into the basis `target`.

    `model` is the same AT-net as `trained` except for the number of codes (`target`'s K).

    Raises:
        ValueError: a basis that is not in crop space, or layers that differ in another way.
    """
    for basis in (source, target):
        if basis.space != "crop":
            raise ValueError(f"only crop-space bases can be rebased between, got a {basis.space} basis.")
    fold_code_maps(trained, model, outward=code_map(source, target), inward=code_map(target, source))


def fold_code_maps(trained: keras.Model, model: keras.Model, outward: tuple[np.ndarray, np.ndarray],
                   inward: tuple[np.ndarray, np.ndarray]) -> None:
    """Sets `model`'s weights to `trained`'s with affine code maps folded into its two code layers.

    Args:
        outward: (M [K_old, K_new], offset [K_new]): the codes `model` answers = trained's @ M + offset.
        inward: (M [K_new, K_old], offset [K_old]): the identity codes trained hears = model's @ M + offset.
    """
    (outward, outward_offset), (inward, inward_offset) = outward, inward
    for layer in model.layers:
        if not layer.weights:
            continue
        weights = trained.get_layer(layer.name).get_weights()
        if layer.name == "pca_codes":  # codes out: h @ W + b in the old basis
            kernel, bias = weights
            weights = [kernel @ outward, bias @ outward + outward_offset]
        elif layer.name == "landmark_fc1":  # the identity's codes in
            kernel, bias = weights
            weights = [inward @ kernel, bias + inward_offset @ kernel]
        layer.set_weights(weights)
