"""The exported graphs' landmark PCA equals the numpy one, in both landmark spaces."""

import os

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.export.pca_ops import PcaOps
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.model import DEFAULT_MODEL_DIR, TalkingFaceModel


@pytest.mark.parametrize("space,mouth_from_basis", [("crop", False), ("procrustes", False), ("crop", True)])
def test_encode_and_relative_decoding_match_numpy(shared_data, space, mouth_from_basis):
    if space == "crop":
        pca = LandmarkPCA.load(os.path.join(DEFAULT_MODEL_DIR, "pca.npz"))
    else:  # the release's LRW basis, as converted official models carry it
        pca = LandmarkPCA.from_official(os.path.join(shared_data, "atvgnet", "basics", "U_lrw1.npy"))
    default = TalkingFaceModel.load()
    model = TalkingFaceModel(default.atnet, default.vgnet, pca, {"inference": {"mouth_from_basis": mouth_from_basis}})
    rng = np.random.default_rng(0)
    identity = pca.decode(np.zeros(6, np.float32)) + rng.normal(0, 1.5, (68, 2)).astype(np.float32)
    codes = rng.normal(0, 0.05, (5, 6)).astype(np.float32)
    ops = PcaOps(pca, 128, mouth_from_basis=mouth_from_basis)
    identity_code = ops.identity_code(tf.constant(identity.reshape(1, 136)))
    np.testing.assert_allclose(identity_code.numpy(), pca.encode(identity)[None], atol=1e-4)
    got = ops.landmarks(tf.constant(codes), identity_code, tf.constant(identity.reshape(1, 136))).numpy()
    np.testing.assert_allclose(got, model.landmarks_from_codes(codes, identity).reshape(5, 136), atol=1e-3)
