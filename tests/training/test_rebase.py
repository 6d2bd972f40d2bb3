"""An AT-net moved into another landmark basis predicts the same landmarks (`training/rebase.py`)."""

import dataclasses

import keras
import numpy as np
import pytest

from atvg_tf.errors import InputError
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.models.atnet import build_atnet
from atvg_tf.models.config import ATNetConfig
from atvg_tf.training.rebase import rebase_atnet
from atvg_tf.training.train import initialise_from

RNG = np.random.default_rng(0)
SMALL = ATNetConfig.preset("small")


def _orthonormal(rows: int, columns: int) -> np.ndarray:
    return np.linalg.qr(RNG.normal(size=(rows, columns)))[0]


def _bases(extra: int) -> tuple[LandmarkPCA, LandmarkPCA]:
    """A 6-code basis, and one of 6 + `extra` codes at another scale whose span holds it (components rotated, mean moved)."""
    directions = _orthonormal(136, 6 + extra)
    old_mean = RNG.normal(0.5, 0.1, 136)
    old = LandmarkPCA(old_mean, directions[:, :6], 1.0, "crop", 128)
    rotated = np.concatenate([directions[:, :6] @ _orthonormal(6, 6), directions[:, 6:]], axis=1)
    new = LandmarkPCA(2.0 * (old_mean + directions[:, :6] @ RNG.normal(0, 0.05, 6)), rotated, 2.0, "crop", 128)
    return old, new


def _landmarks(atnet: keras.Model, basis: LandmarkPCA, identity: np.ndarray, mfcc: np.ndarray) -> np.ndarray:
    codes = atnet.predict({"mfcc_windows": mfcc, "identity_pca_codes": basis.encode(identity)[None]}, verbose=0)["pca_codes"]
    return basis.decode(codes[0])


@pytest.mark.parametrize("extra", [0, 2])
def test_a_rebased_atnet_predicts_the_same_landmarks(extra):
    old, new = _bases(extra)
    keras.utils.set_random_seed(1)
    trained = build_atnet(SMALL)
    rebased = build_atnet(dataclasses.replace(SMALL, pca_components=6 + extra))
    rebase_atnet(trained, rebased, old, new)
    identity = old.decode(RNG.normal(0, 0.05, 6))  # a face both bases hold exactly
    mfcc = RNG.normal(size=(1, 5, 28, 12)).astype("float32")
    expected = _landmarks(trained, old, identity, mfcc)
    np.testing.assert_allclose(_landmarks(rebased, new, identity, mfcc), expected, atol=1e-3)
    assert np.abs(expected - identity).max() > 0.1  # the codes moved the face: the check is not empty


def test_init_from_a_model_folder_of_another_basis_rebases(tmp_path):
    old, new = _bases(0)
    keras.utils.set_random_seed(2)
    trained = build_atnet(SMALL)
    trained.save(str(tmp_path / "atnet.keras"))
    old.save(str(tmp_path / "pca.npz"))
    identity = old.decode(RNG.normal(0, 0.05, 6))
    mfcc = RNG.normal(size=(1, 5, 28, 12)).astype("float32")
    model = build_atnet(SMALL)
    initialise_from(model, "atnet", str(tmp_path), basis=new)
    np.testing.assert_allclose(_landmarks(model, new, identity, mfcc), _landmarks(trained, old, identity, mfcc), atol=1e-3)
    # The same basis: the weights as they are.
    same = build_atnet(SMALL)
    initialise_from(same, "atnet", str(tmp_path), basis=old)
    assert all(np.array_equal(a, b) for a, b in zip(same.get_weights(), trained.get_weights()))
    procrustes = LandmarkPCA(new.mean, new.components, 5.0, "procrustes", 128)
    with pytest.raises(InputError, match="cannot be moved"):
        initialise_from(build_atnet(SMALL), "atnet", str(tmp_path), basis=procrustes)
