import dataclasses

import keras
import numpy as np
import pytest

from atvg_tf.errors import InputError
from atvg_tf.models.atnet import audio_inputs, build_atnet
from atvg_tf.models.config import ATNetConfig, DiscriminatorConfig, VGNetConfig
from atvg_tf.models.discriminator import build_discriminator
from atvg_tf.models.vgnet import build_vgnet


def _inputs(batch=2, frames=3, size=128, components=6, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "mfcc_windows": rng.standard_normal((batch, frames, 28, 12)).astype("float32"),
        "phone_windows": np.eye(40, dtype="float32")[rng.integers(0, 40, (batch, frames, 28))],
        "identity_pca_codes": rng.standard_normal((batch, components)).astype("float32") * 0.1,
        "identity_frame": rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"),
        "identity_landmarks": rng.uniform(0.2, 0.8, (batch, 136)).astype("float32"),
        "landmarks": rng.uniform(0.2, 0.8, (batch, frames, 136)).astype("float32"),
        "frames": rng.uniform(-1, 1, (batch, frames, size, size, 3)).astype("float32"),
    }


def _select(model, inputs):
    return {name: inputs[name] for name in model.input}


@pytest.mark.slow
def test_paper_parameter_counts_match_the_release():
    # The release: AT-net 30.07 M; VG-net 58.36 M with a conv-GRU, whose 8.85 M parameters become
    # 11.80 M in a ConvLSTM2D of the same size (4 gates instead of 3): 61.31 M; discriminator
    # 21.49 M, of which 0.59 M is a `decoder` (1024 -> 512 -> 136) its forward pass never uses.
    assert build_atnet(ATNetConfig.preset("paper")).count_params() == pytest.approx(30.07e6, rel=1e-3)
    assert build_vgnet(VGNetConfig.preset("paper")).count_params() == pytest.approx(61.31e6, rel=1e-3)
    assert build_discriminator(DiscriminatorConfig.preset("paper")).count_params() == pytest.approx(21.49e6 - 0.59e6, rel=1e-3)


def test_small_preset_is_much_smaller():
    assert build_atnet(ATNetConfig.preset("small")).count_params() < 2e6
    assert build_vgnet(VGNetConfig.preset("small")).count_params() < 3e6
    assert build_discriminator(DiscriminatorConfig.preset("small")).count_params() < 1.5e6


@pytest.mark.parametrize("preset", ["small", pytest.param("paper", marks=pytest.mark.slow)])
def test_output_shapes_and_ranges(preset):
    inputs = _inputs()
    atnet = build_atnet(ATNetConfig.preset(preset))
    assert atnet(_select(atnet, inputs))["pca_codes"].shape == (2, 3, 6)
    vgnet = build_vgnet(VGNetConfig.preset(preset))
    out = vgnet(_select(vgnet, inputs))
    assert out["frames"].shape == (2, 3, 128, 128, 3)
    assert out["attention"].shape == (2, 3, 128, 128, 1) and out["motion"].shape == (2, 3, 128, 128, 3)
    attention = np.asarray(out["attention"])
    assert attention.min() >= 0 and attention.max() <= 1
    assert np.abs(np.asarray(out["frames"])).max() <= 1.0 + 1e-5
    # Eq. 8: where the attention is a, the frame is a * motion + (1 - a) * identity image.
    expected = attention * np.asarray(out["motion"]) + (1 - attention) * inputs["identity_frame"][:, None]
    np.testing.assert_allclose(out["frames"], expected, atol=1e-5)
    discriminator = build_discriminator(DiscriminatorConfig.preset(preset))
    d_out = discriminator(_select(discriminator, inputs))
    assert d_out["landmarks"].shape == (2, 3, 136) and d_out["realness_logit"].shape == (2, 1)


def test_named_inputs_become_signature_keys():
    assert set(build_atnet(ATNetConfig.preset("small")).input) == {"mfcc_windows", "identity_pca_codes"}
    assert set(build_vgnet(VGNetConfig.preset("small")).input) == {"identity_frame", "identity_landmarks", "landmarks"}
    assert set(build_discriminator(DiscriminatorConfig.preset("small")).input) == {"frames", "identity_landmarks"}


def test_audio_features_choose_the_audio_inputs():
    for features, inputs in (("mfcc", {"mfcc_windows"}), ("phones", {"phone_windows"}), ("mfcc+phones", {"mfcc_windows", "phone_windows"})):
        atnet = build_atnet(dataclasses.replace(ATNetConfig.preset("small"), audio_features=features))
        assert set(atnet.input) == inputs | {"identity_pca_codes"}
        assert audio_inputs(atnet) == tuple(sorted(inputs))
        assert atnet(_select(atnet, _inputs()))["pca_codes"].shape == (2, 3, 6)
    with pytest.raises(InputError, match="audio_features"):
        ATNetConfig(audio_features="wav2vec")


PHONES = dataclasses.replace(ATNetConfig.preset("small"), audio_features="phones")
BOTH = dataclasses.replace(ATNetConfig.preset("small"), audio_features="mfcc+phones", mfcc_normalisation="window")


@pytest.mark.parametrize(
    "builder, config",
    [(build_atnet, ATNetConfig.preset("small")), (build_atnet, PHONES), (build_atnet, BOTH), (build_vgnet, VGNetConfig.preset("small")),
     (build_discriminator, DiscriminatorConfig.preset("small"))],
)
def test_keras_save_and_load_round_trips_exactly(tmp_path, builder, config):
    model = builder(config)
    inputs = _select(model, _inputs(frames=2))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for key, value in model(inputs).items():
        np.testing.assert_array_equal(np.asarray(loaded(inputs)[key]), np.asarray(value))


def test_unknown_presets_are_rejected():
    for config in (ATNetConfig, VGNetConfig, DiscriminatorConfig):
        with pytest.raises(ValueError, match="choose one of"):
            config.preset("huge")
