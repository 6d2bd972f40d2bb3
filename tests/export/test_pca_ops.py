"""The exported graphs' landmark PCA equals the numpy one, in both landmark spaces."""

import os

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.export.pca_ops import PcaOps
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.model import DEFAULT_MODEL_DIR, TalkingFaceModel
from atvg_tf.rendering.face_points import inner_aperture


@pytest.mark.parametrize("space,mouth_from_basis,motion_gain", [("crop", False, 1.0), ("procrustes", False, 1.0), ("crop", True, 1.0),
                                                                 ("crop", False, 4.0)])
def test_encode_and_relative_decoding_match_numpy(shared_data, space, mouth_from_basis, motion_gain):
    if space == "crop":
        pca = LandmarkPCA.load(os.path.join(DEFAULT_MODEL_DIR, "pca.npz"))
    else:  # the release's LRW basis, as converted official models carry it
        pca = LandmarkPCA.from_official(os.path.join(shared_data, "atvgnet", "basics", "U_lrw1.npy"))
    default = TalkingFaceModel.load()
    model = TalkingFaceModel(default.atnet, default.vgnet, pca, {"inference": {"mouth_from_basis": mouth_from_basis,
                                                                               "motion_gain": motion_gain}})
    rng = np.random.default_rng(0)
    identity = pca.decode(np.zeros(6, np.float32)) + rng.normal(0, 1.5, (68, 2)).astype(np.float32)
    codes = rng.normal(0, 0.05, (5, 6)).astype(np.float32)
    ops = PcaOps(pca, 128, motion_gain, mouth_from_basis=mouth_from_basis)
    identity_code = ops.identity_code(tf.constant(identity.reshape(1, 136)))
    np.testing.assert_allclose(identity_code.numpy(), pca.encode(identity)[None], atol=1e-4)
    got = ops.landmarks(tf.constant(codes), identity_code, tf.constant(identity.reshape(1, 136))).numpy()
    np.testing.assert_allclose(got, model.landmarks_from_codes(codes, identity).reshape(5, 136), atol=1e-3)
    if motion_gain > 1:  # scaled up, some of these motions close the mouth past closed: the lips meet instead
        assert (inner_aperture(got.reshape(5, 68, 2)) >= -1e-4).all()
        model.landmark_space.motion_gain = 1.0
        crossing = identity + motion_gain * (model.landmarks_from_codes(codes, identity) - identity)
        assert (inner_aperture(crossing) < -0.5).any()
