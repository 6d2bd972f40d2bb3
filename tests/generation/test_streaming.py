"""Chunked generation: the recurrent states carry over, so chunks equal one call on the whole clip."""

import os

import numpy as np
import pytest

from atvg_tf.frontend.audio import MfccWindowStream, iter_audio, load_audio, mfcc_windows
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.models.streaming import build_atnet_stream, build_vgnet_identity_encoder, build_vgnet_stream, initial_states


@pytest.fixture(scope="module")
def default_model():
    return TalkingFaceModel.load()


def _speech(shared_data, name="audio_sample.wav"):
    return os.path.join(shared_data, "atvgnet", "audio", name)


@pytest.mark.parametrize("block", [1000, 7919, None])
def test_mfcc_windows_from_blocks_equal_the_whole_recording(shared_data, block):
    waveform = load_audio(_speech(shared_data, "test.wav"))  # 26 s, 44.1 kHz
    stream = MfccWindowStream()
    if block is None:  # the decoder's own blocks
        parts = [stream.push(chunk) for chunk in iter_audio(_speech(shared_data, "test.wav"))]
    else:
        parts = [stream.push(waveform[i : i + block]) for i in range(0, waveform.size, block)]
    streamed = np.concatenate(parts + [stream.finish()])
    whole = mfcc_windows(waveform)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


@pytest.mark.parametrize("samples", [1, 639, 641, 4000])
def test_mfcc_window_stream_handles_recordings_shorter_than_a_window(samples):
    waveform = np.random.default_rng(samples).normal(0, 0.1, samples).astype(np.float32)
    stream = MfccWindowStream()
    streamed = np.concatenate([stream.push(waveform), stream.finish()])
    np.testing.assert_allclose(streamed, mfcc_windows(waveform), atol=1e-4)


def test_streaming_models_have_named_state_inputs_and_outputs(default_model):
    atnet = build_atnet_stream(default_model.atnet)
    assert set(atnet.input) == {*default_model.audio_inputs, "identity_pca_codes", "lstm_0_h", "lstm_0_c", "lstm_1_h", "lstm_1_c"}
    assert set(atnet.output) == {"pca_codes", "next_lstm_0_h", "next_lstm_0_c", "next_lstm_1_h", "next_lstm_1_c"}
    vgnet = build_vgnet_stream(default_model.vgnet)
    encoder = build_vgnet_identity_encoder(default_model.vgnet)
    assert set(vgnet.input) == {"identity_frame", "landmarks", "mmcrnn_h", "mmcrnn_c", *encoder.output}
    assert set(vgnet.output) == {"frames", "attention", "motion", "next_mmcrnn_h", "next_mmcrnn_c"}
    assert initial_states(vgnet)["mmcrnn_h"].shape == (1, 8, 8, 128)
    # The streaming models share the trained variables instead of copying them (the LSTMs excepted).
    assert vgnet.get_layer("decoder2") is default_model.vgnet.get_layer("decoder2")


@pytest.mark.slow
def test_chunked_generation_equals_one_call_on_the_whole_clip(shared_data, default_model):
    from atvg_tf.generation.talking_face import TalkingFace

    audio = _speech(shared_data)
    with TalkingFace(default_model, chunk_frames=7, first_chunk_frames=3) as talker:
        identity = talker.identity(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"))
        chunks = list(talker.stream(identity, audio))
    assert [len(chunk["frames"]) for chunk in chunks] == [3] + [7] * 21
    streamed = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}

    face = identity.face
    landmarks = default_model.predict_landmarks(default_model.audio_windows(load_audio(audio)), face.landmarks)
    whole = default_model.render(face.image, face.landmarks, landmarks)
    np.testing.assert_allclose(streamed["landmarks"], landmarks, atol=1e-3)
    assert np.abs(streamed["frames"].astype(int) - whole["frames"]).max() <= 1
    np.testing.assert_allclose(streamed["attention"], whole["attention"], atol=1e-3)
    chunked = default_model.render(face.image, face.landmarks, landmarks, chunk_frames=7)  # what evaluate uses
    assert np.abs(chunked["frames"].astype(int) - whole["frames"]).max() <= 1

    # The carried state matters: restarting the networks at every chunk gives other frames.
    restarted = np.concatenate([
        default_model.render(face.image, face.landmarks, landmarks[start : start + 7])["frames"]
        for start in range(0, len(landmarks), 7)
    ])
    # (measured: 0.59 grey levels on average against 4e-6 for the carried state)
    assert np.abs(restarted.astype(int) - whole["frames"]).mean() > 0.2
    assert np.abs(streamed["frames"].astype(int) - whole["frames"]).mean() < 0.01


def test_silence_gives_a_closed_mouth_and_speech_opens_it(shared_data, default_model):
    from atvg_tf.evaluation.metrics import mouth_aperture
    from atvg_tf.frontend.face.alignment import align_face
    from atvg_tf.frontend.face.landmarks import create_landmark_detector
    from atvg_tf.frontend.image import load_image

    photo = load_image(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"))
    with create_landmark_detector(default_model.landmark_backend) as detector:
        face = align_face(photo, detector.largest_face(photo))
    silence = default_model.predict_landmarks(default_model.audio_windows(np.zeros(3 * 16000, np.float32)), face.landmarks)
    speech = default_model.predict_landmarks(default_model.audio_windows(load_audio(_speech(shared_data))), face.landmarks)
    closed, talking = mouth_aperture(silence), mouth_aperture(speech)
    # Inner-lip opening over the eye-corner distance: ~0 closed, 0.1-0.3 for open vowels.
    assert closed.max() < 0.05, closed.max()
    assert np.percentile(talking, 90) > closed.max() + 0.05


@pytest.fixture(scope="module")
def phone_model(default_model):
    """A phones AT-net (fresh weights) with the default VG-net, resting on silence, motion gain 1.6."""
    import dataclasses

    import keras

    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig

    keras.utils.set_random_seed(3)
    atnet = build_atnet(dataclasses.replace(ATNetConfig.preset("small"), audio_features="phones"))
    info = {"inference": {"motion_gain": 1.6, "rest_on_silence": True}}
    return TalkingFaceModel(atnet, default_model.vgnet, default_model.pca, info)


def test_a_model_that_rests_on_silence_keeps_the_photos_mouth_in_silence(shared_data, phone_model):
    from atvg_tf.frontend.face.alignment import align_face
    from atvg_tf.frontend.face.landmarks import create_landmark_detector
    from atvg_tf.frontend.image import load_image

    assert phone_model.rests_on_silence and phone_model.landmark_space.motion_gain == 1.6
    photo = load_image(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"))
    with create_landmark_detector("mediapipe") as detector:
        face = align_face(photo, detector.largest_face(photo))
    silence = phone_model.predict_landmarks(phone_model.audio_windows(np.zeros(3 * 16000, np.float32)), face.landmarks)
    assert np.abs(silence[4:] - face.landmarks).max() < 0.5  # pixels at 128: the photo's own face
    raw = phone_model.predict_landmarks(phone_model.audio_windows(np.zeros(3 * 16000, np.float32)), face.landmarks, relative=False)
    assert np.abs(raw - face.landmarks).max() > 1.0  # what the offset corrects (fresh weights: far off)
    # The streamer applies the same offset: chunks equal one call.
    speech = load_audio(_speech(shared_data))[: 2 * 16000]
    whole = phone_model.predict_landmarks(phone_model.audio_windows(speech), face.landmarks)
    streamer = phone_model.streamer(face.image, face.landmarks)
    windows = phone_model.audio_windows(speech)
    chunks = [streamer({name: w[start: start + 9] for name, w in windows.items()})["landmarks"] for start in range(0, len(whole), 9)]
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-3)
