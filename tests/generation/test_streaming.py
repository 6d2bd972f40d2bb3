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
    assert set(atnet.input) == {"mfcc_windows", "identity_pca_codes", "lstm_0_h", "lstm_0_c", "lstm_1_h", "lstm_1_c"}
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
    landmarks = default_model.predict_landmarks(mfcc_windows(load_audio(audio)), face.landmarks)
    whole = default_model.render(face.image, face.landmarks, landmarks)
    np.testing.assert_allclose(streamed["landmarks"], landmarks, atol=1e-3)
    assert np.abs(streamed["frames"].astype(int) - whole["frames"]).max() <= 1
    np.testing.assert_allclose(streamed["attention"], whole["attention"], atol=1e-3)

    # The carried state matters: restarting the networks at every chunk gives other frames.
    restarted = np.concatenate([
        default_model.render(face.image, face.landmarks, landmarks[start : start + 7])["frames"]
        for start in range(0, len(landmarks), 7)
    ])
    # (measured: 0.59 grey levels on average against 4e-6 for the carried state)
    assert np.abs(restarted.astype(int) - whole["frames"]).mean() > 0.2
    assert np.abs(streamed["frames"].astype(int) - whole["frames"]).mean() < 0.01
