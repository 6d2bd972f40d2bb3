"""The release's landmark convention for converted official models, in numpy and in TF ops."""

import os

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.convert.convert_official import official_inference_arrays
from atvg_tf.export.pca_ops import OfficialOps
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.landmark_space import OfficialLandmarks


@pytest.fixture(scope="module")
def official(shared_data):
    basics = os.path.join(shared_data, "atvgnet", "basics")
    pca = LandmarkPCA.from_official(os.path.join(basics, "U_lrw1.npy"))
    return OfficialLandmarks(pca, 128, **official_inference_arrays(basics)), basics


def _lip_gap(shape):
    shape = np.asarray(shape).reshape(68, 2)
    return float(np.mean(shape[65:68, 1] - shape[61:64, 1]))  # inner lower lip minus inner upper lip


def test_the_identity_shape_is_the_mean_shape_with_the_mouth_closed(official):
    space, basics = official
    mean_shape = np.load(os.path.join(basics, "mean_shape_norm.npy"))
    assert _lip_gap(space.identity_shape) < _lip_gap(mean_shape)
    assert np.abs(space.identity_shape.ravel() - mean_shape.ravel()).max() < 0.02  # only the mouth moves, slightly
    # Its code is what AT-net gets whatever the photo: the release ignores the photo's own shape.
    assert np.array_equal(space.identity_code(np.zeros((68, 2))), space.identity_code(np.ones((68, 2))))


def test_codes_are_boosted_and_round_trip_between_crop_pixels_and_vgnet_units(official, shared_data):
    space, _ = official
    rng = np.random.default_rng(0)
    identity = space.identity_shape * 400 + 64 + rng.normal(0, 0.5, (68, 2))  # a face in crop pixels
    codes = rng.normal(0, 0.1, (4, 6)).astype(np.float32)
    pixels = space.landmarks(codes, identity)
    model_units = space.vgnet_landmarks(pixels, identity)[0]
    expected = (codes * space.code_boost) @ space.pca.components.T + space.pca.mean
    np.testing.assert_allclose(model_units, expected, atol=1e-4)
    unboosted = space.landmarks(codes * 0, identity)  # zero codes: the mean shape placed on the face
    assert np.abs(unboosted[0] - identity).mean() < 10.0
    ops = OfficialOps(space, 128)
    identity_tf = tf.constant(identity.reshape(1, 136), tf.float32)
    got = ops.landmarks(tf.constant(codes), ops.identity_code(identity_tf), identity_tf).numpy()
    np.testing.assert_allclose(got, pixels.reshape(4, 136), atol=1e-3)
    np.testing.assert_allclose(ops.vgnet_landmarks(tf.constant(got), identity_tf).numpy(), expected, atol=1e-3)


def test_photos_are_aligned_on_the_release_template(official, shared_data):
    from atvg_tf.frontend.face.alignment import align_face
    from atvg_tf.frontend.face.landmarks import create_landmark_detector
    from atvg_tf.frontend.image import load_image

    space, basics = official
    photo = load_image(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"))
    with create_landmark_detector("dlib") as detector:
        marks = detector.largest_face(photo)
    config = space.alignment(marks)
    assert config.alignment_points == tuple(range(27, 45))
    face = align_face(photo, marks, config)
    template = (np.load(os.path.join(basics, "base_68.npy")) - 1.0)[27:45]  # eyes open on this photo
    aligned = face.landmarks[27:45]
    # A least-squares similarity puts the points' centroid on the template's and matches their spread.
    np.testing.assert_allclose(aligned.mean(0), template.mean(0), atol=0.01)
    spread = lambda p: np.sqrt(((p - p.mean(0)) ** 2).sum(1)).mean()  # noqa: E731
    assert abs(spread(aligned) - spread(template)) < 0.05 * spread(template)
    assert np.abs(aligned - template).mean() < 4.0  # the rest is this face's own shape


def test_a_mouth_from_the_basis_keeps_the_photos_place_and_face_and_takes_the_decoded_shape():
    from atvg_tf.generation.landmark_space import CropLandmarks
    from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR, ModelSettings
    from atvg_tf.rendering.face_points import MOUTH

    pca = LandmarkPCA.load(os.path.join(DEFAULT_MODEL_DIR, "pca.npz"))
    rng = np.random.default_rng(1)
    photo = pca.decode(np.zeros(pca.num_components, np.float32))[0] + rng.normal(0, 1.0, (68, 2)).astype(np.float32)
    codes = rng.normal(0, 0.05, (4, pca.num_components)).astype(np.float32)
    kept = CropLandmarks(pca, 128).landmarks(codes, photo)
    space = ModelSettings({"inference": {"mouth_from_basis": True}}).landmark_space(None, pca, 128)
    assert space.mouth_from_basis
    dropped = space.landmarks(codes, photo)
    mouth, face = list(MOUTH), [i for i in range(68) if i not in MOUTH]
    np.testing.assert_allclose(dropped[:, face], kept[:, face])  # the rest of the face as before
    np.testing.assert_allclose(dropped[:, mouth].mean(1), kept[:, mouth].mean(1), atol=1e-4)  # the mouth where it was
    decoded = pca.decode(codes)[:, mouth]
    centred = lambda points: points - points.mean(1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(centred(dropped[:, mouth]), centred(decoded), atol=1e-4)  # its shape: the codes'
    assert np.abs(centred(kept[:, mouth]) - centred(decoded)).max() > 0.5  # which the photo's noise moved before
