"""AT-net's phone head: the closed-form fit, the blend into a trained AT-net, and a model folder with
it through save/load, the Keras streamer, TF-Lite and the mobile demo's live inputs."""

import json
import os
import sys

import numpy as np
import pytest

from atvg_tf.frontend import phones
from atvg_tf.frontend.audio import load_audio
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.models.config import HEAD_INPUTS
from atvg_tf.training.phone_head import HeadStatistics, PhoneHead, fit_phone_head, mfcc_network, model_with_phone_head, with_phone_head
from tests.helpers import IDENTITY, REPO

WINDOW = 28 * phones.NUM_PHONES


def _examples(kernel, bias, count=6, frames=300, seed=0):
    rng = np.random.default_rng(seed)
    for index in range(count):
        windows = rng.dirichlet(np.full(phones.NUM_PHONES, 0.3), (frames, 28)).astype(np.float32)
        codes = windows.reshape(frames, -1) @ kernel + bias + rng.normal(0, 0.01, (frames, len(bias)))
        yield windows, codes, 1.0 + index % 2


def test_the_fit_recovers_a_linear_map_from_windows_to_codes():
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(0, 0.3, (WINDOW, 6)), rng.normal(0, 1, 6)
    head = fit_phone_head(_examples(kernel, bias), ridge=1e-3)
    assert head.frames == 1800 and head.kernel.shape == (WINDOW, 6) and head.kernel.dtype == np.float32
    test = next(_examples(kernel, bias, count=1, seed=5))
    predicted = test[0].reshape(len(test[0]), -1) @ head.kernel + head.bias
    assert np.abs(predicted - test[1]).max() < 0.1
    with pytest.raises(ValueError, match="no examples"):
        fit_phone_head(iter(()))


def test_statistics_add_up_and_weigh_like_repeated_frames():
    # The cross-validation (training/phone_head_cv.py) fits from sums of per-person statistics.
    rng = np.random.default_rng(4)
    kernel, bias = rng.normal(0, 0.3, (WINDOW, 6)), rng.normal(0, 1, 6)
    (a, a_codes, _), (b, b_codes, _) = _examples(kernel, bias, count=2, frames=200)
    summed = (HeadStatistics.of(a, a_codes) + HeadStatistics.of(b, b_codes).weighted(3.0)).solve(10.0)
    repeated = fit_phone_head([(a, a_codes, 1.0)] + [(b, b_codes, 1.0)] * 3, ridge=10.0)
    direct = fit_phone_head([(a, a_codes, 1.0), (b, b_codes, 3.0)], ridge=10.0)
    np.testing.assert_allclose(summed.kernel, direct.kernel, atol=1e-6)
    np.testing.assert_allclose(summed.bias, direct.bias, atol=1e-5)
    np.testing.assert_allclose(summed.kernel, repeated.kernel, atol=1e-6)
    assert summed.frames == 400 and repeated.frames == 800


@pytest.fixture(scope="module")
def packaged():
    return TalkingFaceModel.load()


@pytest.fixture(scope="module")
def head():
    rng = np.random.default_rng(2)
    return PhoneHead(rng.normal(0, 0.05, (WINDOW, 6)).astype(np.float32), rng.normal(0, 0.5, 6).astype(np.float32), 10)


@pytest.fixture(scope="module")
def speech(shared_data):
    return load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[: 16000 * 3]


def test_the_head_is_blended_into_the_trained_codes(packaged, head):
    rng = np.random.default_rng(3)
    inputs = {"mfcc_windows": rng.normal(0, 1, (1, 12, 28, 12)).astype(np.float32),
              "phone_posteriors": rng.dirichlet(np.ones(phones.NUM_PHONES), (1, 12, 28)).astype(np.float32),
              "identity_pca_codes": rng.normal(0, 1, (1, 6)).astype(np.float32)}
    trained = mfcc_network(packaged).predict_on_batch({k: v for k, v in inputs.items() if k != "phone_posteriors"})["pca_codes"]
    head_codes = inputs["phone_posteriors"].reshape(1, 12, -1) @ head.kernel + head.bias
    for weight in (0.0, 0.5, 1.0):
        atnet = with_phone_head(packaged.atnet, "small", head, weight)
        np.testing.assert_allclose(atnet.predict_on_batch(inputs)["pca_codes"], (1 - weight) * trained + weight * head_codes, atol=1e-5)


@pytest.fixture(scope="module")
def head_model_dir(packaged, head, tmp_path_factory):
    # As the `phone_head` recipe writes it.
    folder = str(tmp_path_factory.mktemp("head_model") / "model")
    return model_with_phone_head(packaged, head, 0.5, phone_head={"ridge": 1.0}).save(folder)


def test_a_model_folder_with_a_phone_head_round_trips_and_streams(packaged, head, head_model_dir, speech):
    model = TalkingFaceModel.load(head_model_dir)
    assert model.audio_inputs == ("mfcc_windows", "phone_posteriors")
    with open(os.path.join(head_model_dir, "training.json")) as handle:
        presets = json.load(handle)["presets"]["atnet"]
    assert presets["audio_features"] == "mfcc+phone_head" and presets["phone_head_weight"] == 0.5
    assert model.info["phone_head"] == {"ridge": 1.0} and model.info["runs"] == packaged.info["runs"]
    windows = model.audio_windows(speech)
    assert windows["phone_posteriors"].shape == (75, 28, phones.NUM_PHONES)
    identity = IDENTITY
    expected = with_phone_head(packaged.atnet, "small", head, 0.5)
    codes = expected.predict_on_batch({**{k: v[None] for k, v in windows.items()},
                                      "identity_pca_codes": model.landmark_space.identity_code(identity)})["pca_codes"][0]
    np.testing.assert_allclose(model.predict_landmarks(windows, identity), model.landmarks_from_codes(codes, identity, True), atol=1e-4)
    # The streaming models (the Keras streamer, what the exports are built from) equal the one-shot call.
    frame = np.full((128, 128, 3), 128, np.uint8)
    streamer = model.streamer(frame, identity)
    streamed = np.concatenate([streamer({k: v[start: start + 20] for k, v in windows.items()})["landmarks"] for start in range(0, 75, 20)])
    np.testing.assert_allclose(streamed, model.predict_landmarks(windows, identity), atol=1e-3)


def _live_export(model_dir: str, speech: np.ndarray, folder, variants: tuple[str, ...]):
    """The model folder exported to TF-Lite, LiteRT started on a grey face, the live `FrameInputs` of
    `speech` (4,000-sample blocks), the frames' landmarks and the Keras streamer's."""
    from atvg_tf.export.tflite import export_tflite

    sys.path.insert(0, os.path.join(REPO, "mobile_demo"))
    from atvg_lite import FrameInputs, LiteTalkingFace

    model = TalkingFaceModel.load(model_dir)
    export_tflite(model, str(folder), variants)
    engine = LiteTalkingFace(str(folder), "float32")
    identity, frame = IDENTITY, np.full((128, 128, 3), 128, np.uint8)
    engine.start(frame, identity)
    live = FrameInputs(engine)
    inputs = [step for start in range(0, speech.size, 4000) for step in live.push(speech[start: start + 4000])] + live.finish()
    landmarks = np.stack([engine.step(**step)[1] for step in inputs])
    expected = model.streamer(frame, identity)(model.audio_windows(speech))["landmarks"]
    return engine, inputs, landmarks, expected


@pytest.mark.slow
def test_tflite_and_the_live_inputs_of_a_phone_head_export(head_model_dir, speech, tmp_path):
    """atnet_step takes `phone_posterior`; LiteRT on the live posterior windows equals the Keras streamer."""
    engine, inputs, landmarks, expected = _live_export(head_model_dir, speech, tmp_path, ("float32",))
    assert engine.uses_mfcc and engine.uses_posteriors and not engine.uses_phones
    assert len(inputs) == 75 and set(inputs[0]) == {"pcm", "posteriors"}
    np.testing.assert_allclose(landmarks, expected, atol=1e-2)
    with pytest.raises(ValueError, match="posterior window"):
        engine.step(pcm=inputs[0]["pcm"])


# The heads on the speech embedding network: (audio_features, input, window rows, what a missing window's error names).
FEATURE_HEADS = {"embedding": ("mfcc+embedding_head", "speech_embeddings", 11, "speech embedding window"),
                 "activation": ("mfcc+activation_head", "speech_activations", 48, "speech activation window")}


@pytest.fixture(scope="module", params=sorted(FEATURE_HEADS))
def feature_head(request):
    features, name, rows, message = FEATURE_HEADS[request.param]
    rng = np.random.default_rng(6)
    head = PhoneHead(rng.normal(0, 0.02 * np.sqrt(11 / rows), (rows * 96, 6)).astype(np.float32), rng.normal(0, 0.5, 6).astype(np.float32), 10)
    return features, name, rows, message, head


@pytest.fixture(scope="module")
def feature_head_model_dir(packaged, feature_head, tmp_path_factory):
    pytest.importorskip("openwakeword", reason="the speech embedding models come with openwakeword==0.5.1")
    features, name, _, _, head = feature_head
    # As the `embedding_head` and `activation_head` recipes write it.
    folder = str(tmp_path_factory.mktemp("feature_head_model") / "model")
    return model_with_phone_head(packaged, head, 0.4, features, phone_head={"features": name}).save(folder)


def test_a_model_folder_with_an_embedding_or_activation_head_round_trips_and_streams(packaged, feature_head, feature_head_model_dir,
                                                                                     speech):
    features, name, rows, _, head = feature_head
    model = TalkingFaceModel.load(feature_head_model_dir)
    assert model.audio_inputs == ("mfcc_windows", name)
    with open(os.path.join(feature_head_model_dir, "training.json")) as handle:
        presets = json.load(handle)["presets"]["atnet"]
    weight_field = "embedding_head_weight" if name == "speech_embeddings" else "activation_head_weight"
    assert presets["audio_features"] == features and presets[weight_field] == 0.4
    windows = model.audio_windows(speech)
    assert windows[name].shape == (75, rows, 96)
    identity = IDENTITY
    trained = mfcc_network(packaged).predict_on_batch({"mfcc_windows": windows["mfcc_windows"][None],
                                               "identity_pca_codes": model.landmark_space.identity_code(identity)})["pca_codes"][0]
    head_codes = windows[name].reshape(75, -1) @ head.kernel + head.bias
    expected = model.landmarks_from_codes(0.6 * trained + 0.4 * head_codes, identity, True)
    np.testing.assert_allclose(model.predict_landmarks(windows, identity), expected, atol=1e-3)
    frame = np.full((128, 128, 3), 128, np.uint8)
    streamer = model.streamer(frame, identity)
    streamed = np.concatenate([streamer({k: v[start: start + 20] for k, v in windows.items()})["landmarks"] for start in range(0, 75, 20)])
    np.testing.assert_allclose(streamed, model.predict_landmarks(windows, identity), atol=1e-3)


@pytest.mark.slow
def test_tflite_and_the_live_inputs_of_an_embedding_or_activation_head_export(feature_head, feature_head_model_dir, speech, tmp_path):
    """atnet_step takes `speech_embedding` (`speech_activation`); LiteRT on the live windows equals the Keras streamer."""
    _, name, _, message, _ = feature_head
    engine, inputs, landmarks, expected = _live_export(feature_head_model_dir, speech, tmp_path, ("float32", "int8"))
    assert engine.uses_mfcc and engine.uses_embeddings and not engine.uses_phones and not engine.uses_posteriors
    assert engine.embedding_activations == (name == "speech_activations")
    assert len(inputs) == 75 and set(inputs[0]) == {"pcm", "embeddings"}
    np.testing.assert_allclose(landmarks, expected, atol=1e-2)
    with pytest.raises(ValueError, match=message):
        engine.step(pcm=inputs[0]["pcm"])
    assert os.path.isfile(os.path.join(tmp_path, "atnet_step.int8.tflite"))


def test_a_fine_tuned_mfcc_network_gets_the_base_models_head_back(packaged, speech):
    """What `atvg finetune` does with the packaged model: the MFCC network alone is trained, then the
    base's head (weights and share) is put back; with the network unchanged that is the base itself."""
    from atvg_tf.training.phone_head import with_head_of

    pytest.importorskip("openwakeword", reason="the speech embedding models come with openwakeword==0.5.1")
    assert packaged.audio_inputs[0] == "mfcc_windows" and packaged.audio_inputs[1] in HEAD_INPUTS
    alone = TalkingFaceModel(mfcc_network(packaged), packaged.vgnet, packaged.pca, {"inference": packaged.inference})
    assert alone.audio_inputs == ("mfcc_windows",)
    rebuilt = with_head_of(alone, packaged)
    assert rebuilt.audio_inputs == packaged.audio_inputs
    windows = packaged.audio_windows(speech)
    np.testing.assert_allclose(rebuilt.predict_landmarks(windows, IDENTITY), packaged.predict_landmarks(windows, IDENTITY), atol=1e-4)
    assert with_head_of(alone, alone) is alone  # a base without a head leaves the model as it is


def test_a_model_in_another_basis_gets_the_head_moved_into_it(packaged, speech):
    """`atvg finetune --person-basis`: the MFCC network moved into another basis, then the base's head put
    back. A basis spanning the same shapes (codes reordered, signs flipped, mean shifted) must give the
    base's landmarks exactly; the head kept in the base's basis would not."""
    import dataclasses

    from atvg_tf.frontend.face.pca import LandmarkPCA
    from atvg_tf.generation.model import network_configs
    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.training.phone_head import with_head_of
    from atvg_tf.training.rebase import rebase_atnet

    pytest.importorskip("openwakeword", reason="the speech embedding models come with openwakeword==0.5.1")
    source = packaged.pca
    order = np.arange(source.num_components)[::-1]
    other = LandmarkPCA(source.mean + 0.01, source.components[:, order] * np.where(order % 2, -1.0, 1.0), source.scale,
                        source.space, source.crop_size)
    config, _ = network_configs(packaged.info, packaged.atnet)
    rebased = build_atnet(dataclasses.replace(config, audio_features="mfcc"))
    rebase_atnet(mfcc_network(packaged), rebased, source, other)
    alone = TalkingFaceModel(rebased, packaged.vgnet, other, {"inference": packaged.inference})
    moved = with_head_of(alone, packaged)
    windows = packaged.audio_windows(speech)
    expected = packaged.predict_landmarks(windows, IDENTITY)
    np.testing.assert_allclose(moved.predict_landmarks(windows, IDENTITY), expected, atol=1e-3)
    head_input = next(name for name in packaged.audio_inputs if name in HEAD_INPUTS)
    kernel, bias = packaged.atnet.get_layer(HEAD_INPUTS[head_input]).get_weights()
    unmoved = model_with_phone_head(alone, PhoneHead(kernel, bias, 0), config.head_weight, config.audio_features)
    assert np.abs(unmoved.predict_landmarks(windows, IDENTITY) - expected).max() > 0.5
