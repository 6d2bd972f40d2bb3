"""Official-checkpoint import: PyTorch modules built from the specification, converted, compared."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the official-checkpoint tests need PyTorch: pip install '.[convert]'")

from atvg_tf.convert.official_weights import CheckpointError, load_state_dict  # noqa: E402
from atvg_tf.models.atnet import build_atnet  # noqa: E402
from atvg_tf.models.config import ATNetConfig, DiscriminatorConfig, VGNetConfig  # noqa: E402
from atvg_tf.models.discriminator import build_discriminator  # noqa: E402
from atvg_tf.models.vgnet import build_vgnet  # noqa: E402
from tests.convert.official_torch import ATNet, Discriminator, VGNet, randomize  # noqa: E402


def _state(module):
    return {name: tensor.numpy() for name, tensor in module.state_dict().items()}


def _nhwc(tensor):
    return np.moveaxis(tensor.detach().numpy(), -3, -1)


def test_atnet_equals_the_release():
    reference = randomize(ATNet(), seed=0)
    model = build_atnet(ATNetConfig.preset("paper"))
    load_state_dict(model, _state(reference), "atnet")
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(2, 6)).astype(np.float32)
    audio = rng.normal(size=(2, 5, 28, 12)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.tensor(codes), torch.tensor(audio)).numpy()
    got = model.predict_on_batch({"mfcc_windows": audio, "identity_pca_codes": codes})["pca_codes"]
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.slow
def test_vgnet_equals_the_release_including_its_conv_gru_call():
    reference = randomize(VGNet(), seed=1)
    model = build_vgnet(VGNetConfig.preset("official"))
    load_state_dict(model, _state(reference), "vgnet")
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, size=(1, 3, 128, 128)).astype(np.float32)
    example = rng.uniform(0.2, 0.8, size=(1, 136)).astype(np.float32)
    landmarks = (example[:, None] + rng.normal(0, 0.02, size=(1, 4, 136))).astype(np.float32)
    with torch.no_grad():
        frames, attention, motion = reference(torch.tensor(image), torch.tensor(landmarks), torch.tensor(example))
    got = model.predict_on_batch({"identity_frame": np.moveaxis(image, 1, -1), "identity_landmarks": example, "landmarks": landmarks})
    for name, expected in (("frames", frames), ("attention", attention), ("motion", motion)):
        assert np.abs(got[name] - _nhwc(expected)).max() < 1e-4, name


def test_discriminator_equals_the_release():
    reference = randomize(Discriminator(), seed=2)
    model = build_discriminator(DiscriminatorConfig.preset("paper"))
    load_state_dict(model, _state(reference), "discriminator")
    rng = np.random.default_rng(2)
    frames = rng.uniform(-1, 1, size=(2, 3, 3, 128, 128)).astype(np.float32)
    example = rng.uniform(0.2, 0.8, size=(2, 136)).astype(np.float32)
    with torch.no_grad():
        landmarks, decision = reference(torch.tensor(frames), torch.tensor(example))
    got = model.predict_on_batch({"frames": np.moveaxis(frames, 2, -1), "identity_landmarks": example})
    assert np.abs(got["landmarks"] - landmarks.numpy()).max() < 1e-4
    assert np.abs(got["realness_logit"] - decision.numpy()).max() < 1e-4


@pytest.mark.slow
def test_mismatched_checkpoints_are_refused_with_a_clear_error():
    state = _state(randomize(ATNet(), seed=3))
    model = build_atnet(ATNetConfig.preset("paper"))
    before = [w.copy() for w in model.get_weights()]
    missing = {k: v for k, v in state.items() if k != "lstm.bias_hh_l2"}
    with pytest.raises(CheckpointError, match="'lstm.bias_hh_l2' is missing"):
        load_state_dict(model, missing, "atnet")
    with pytest.raises(CheckpointError, match="unexpected tensors"):
        load_state_dict(model, {**state, "extra.weight": np.zeros(3, np.float32)}, "atnet")
    with pytest.raises(CheckpointError, match="shapes"):
        load_state_dict(model, {**state, "lstm_fc.0.weight": np.zeros((7, 256), np.float32)}, "atnet")
    with pytest.raises(CheckpointError, match="missing"):
        load_state_dict(build_vgnet(VGNetConfig.preset("official")), state, "vgnet")  # another model's checkpoint
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # nothing half-assigned
