"""A converted official model moved into crop pixels: the folded networks answer as the release's do."""

import os

import numpy as np
import pytest

from atvg_tf.avatar.official_start import crop_convention_model
from atvg_tf.convert.convert_official import BASIS_FILES, official_inference_arrays
from atvg_tf.frontend.face.alignment import AlignmentConfig, invert_transform, similarity_transform, transform_points
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.landmark_space import CropLandmarks, OfficialLandmarks
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR
from atvg_tf.models.atnet import build_atnet
from atvg_tf.models.config import ATNetConfig, VGNetConfig
from atvg_tf.models.vgnet import build_vgnet


def official_model(basics: str, seed: int = 3) -> TalkingFaceModel:
    """A converted official model with random weights (the release's architecture, basis and convention)."""
    import keras

    keras.utils.set_random_seed(seed)
    pca = LandmarkPCA.from_official(os.path.join(basics, BASIS_FILES[0]), os.path.join(basics, BASIS_FILES[1]))
    arrays = official_inference_arrays(basics)
    space = OfficialLandmarks(pca, 128, arrays["identity_shape"], arrays["code_boost"], arrays["template_open"],
                              arrays["template_closed"])
    info = {"source": "random weights in the release's layout", "presets": {"atnet": "paper", "vgnet": "official"},
            "landmark_backend": "dlib"}
    return TalkingFaceModel(build_atnet(ATNetConfig.preset("paper")), build_vgnet(VGNetConfig.preset("official")), pca, info, space)


@pytest.fixture(scope="module")
def official(shared_data):
    return official_model(os.path.join(shared_data, "atvgnet", "basics"))


def _face(seed):
    """[68, 2] crop px: the template, moved a little as a real face would be."""
    rng = np.random.default_rng(seed)
    return AlignmentConfig(crop_size=128).template() + rng.normal(0, 1.5, (68, 2)).astype(np.float32)


def test_folded_networks_answer_as_the_release_does_for_faces_on_the_template(official):
    target = LandmarkPCA.load(os.path.join(DEFAULT_MODEL_DIR, "pca.npz"))
    template = AlignmentConfig(crop_size=128).template()
    moved = crop_convention_model(official, target, template)
    assert isinstance(moved.landmark_space, CropLandmarks) and moved.pca is target
    assert moved.info["presets"]["vgnet"]["rnn"] == "conv_gru" and moved.info["presets"]["atnet"]["pca_components"] == target.num_components
    space = official.landmark_space
    placement = similarity_transform(space.identity_shape, template)
    release_shapes = lambda px: transform_points(px, invert_transform(placement)) * space.pca.scale  # noqa: E731

    # VG-net: crop px / 128 in the folded net = the release's shapes x 5 in the converted one.
    identity, frames = _face(0), np.stack([_face(1), _face(2)])
    image = np.random.default_rng(4).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    ours = moved.vgnet({"identity_frame": image, "identity_landmarks": identity.reshape(1, 136) / 128,
                        "landmarks": frames.reshape(1, 2, 136) / 128})["frames"]
    release = official.vgnet({"identity_frame": image, "identity_landmarks": release_shapes(identity).reshape(1, 136),
                              "landmarks": release_shapes(frames).reshape(1, 2, 136)})["frames"]
    np.testing.assert_allclose(ours, release, atol=2e-4)
    # The folded layer itself, where the landmarks count most (random weights pass little of them to the frames).
    stage2 = lambda model, vectors: np.asarray(model.vgnet.get_layer("landmark_stage2")(vectors))  # noqa: E731
    ours, release = stage2(moved, frames.reshape(2, 136) / 128), stage2(official, release_shapes(frames).reshape(2, 136))
    np.testing.assert_allclose(ours, release, atol=1e-6)
    assert float(np.abs(release[0] - release[1]).max()) > 1e-4

    # AT-net: the folded net's landmarks = the release's, placed by S0 and projected onto the target basis.
    mfcc = np.random.default_rng(5).normal(0, 1, (1, 4, 28, 12)).astype(np.float32)
    code = target.encode(identity)[None]
    ours = target.decode(moved.atnet({"mfcc_windows": mfcc, "identity_pca_codes": code})["pca_codes"].numpy()[0])
    heard = release_shapes(target.decode(code)[0]).reshape(1, 136)
    release_code = (heard - space.pca.mean) @ space.pca.components
    answer = official.atnet({"mfcc_windows": mfcc, "identity_pca_codes": release_code.astype(np.float32)})["pca_codes"].numpy()[0]
    placed = transform_points(space._model_space(answer * space.code_boost).reshape(-1, 68, 2) / space.pca.scale, placement)
    np.testing.assert_allclose(ours, target.decode(target.encode(placed)), atol=2e-3)
    assert float(np.abs(placed - identity).max()) > 0.5  # the comparison is not between two resting faces
