"""Speech embedding and activation windows: stable, one per video frame, equal when streamed, and a clear error without their models."""

import importlib.util
import os

import numpy as np
import pytest

from atvg_tf.frontend import speech_embedding
from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.audio_windows import AudioWindowStream, audio_windows

pytest.importorskip("openwakeword", reason="the speech embedding models come with openwakeword==0.5.1")


@pytest.fixture(scope="module")
def speech(shared_data) -> np.ndarray:
    return load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))


def test_the_same_recording_gives_the_same_windows(speech):
    first, second = speech_embedding.embedding_windows(speech), speech_embedding.embedding_windows(speech.copy())
    assert first.shape == (len(mfcc_windows(speech)), 11, 96) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    # Scaled to about unit spread; frame t's window holds the embeddings of frames t - 5 ... t + 5.
    assert 0.3 < first[:, 5].std(axis=0).mean() < 3.0
    np.testing.assert_array_equal(first[10, 6], first[11, 5])
    np.testing.assert_array_equal(first[0, :6], np.repeat(first[0, 5:6], 6, axis=0))


@pytest.mark.parametrize("seconds", [0.01, 0.5, 1.73, 3.0])
def test_one_window_per_video_frame_for_any_length(speech, seconds):
    clip = speech[: int(16000 * seconds)]
    assert len(speech_embedding.embedding_windows(clip)) == len(mfcc_windows(clip))
    assert speech_embedding.embedding_windows(clip, 40).shape == (40, 11, 96)


@pytest.mark.parametrize("activations, look_ahead_frames", [(False, 18), (True, 13)])
def test_streaming_equals_one_shot_for_any_block_sizes(speech, activations, look_ahead_frames):
    whole = speech_embedding.embedding_windows(speech, activations=activations)
    rng = np.random.default_rng(0)
    stream, parts, position = speech_embedding.SpeechEmbeddingStream(activations), [], 0
    while position < len(speech):
        size = int(rng.integers(1, 12000))
        parts.append(stream.push(speech[position: position + size]))
        position += size
        # The look-ahead is bounded: 0.60 s (activations: 0.40 s) after a frame's centre, plus one mel call's wait (0.1 s).
        assert stream.frames_emitted >= position / 640 - look_ahead_frames
    parts.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_activation_windows_are_the_networks_14th_block_for_the_frames_window(speech):
    """Frame t's activation window is the tensor `ACTIVATION_TENSOR` of the embedding network run on the
    same 76 mel rows as its embedding, read from the unmodified model, scaled; the added output
    leaves the embedding as it was."""
    from ai_edge_litert.interpreter import Interpreter

    activations = speech_embedding.embedding_windows(speech, activations=True)
    embeddings = speech_embedding.embedding_windows(speech)
    assert activations.shape == (len(embeddings), 48, 96) and activations.dtype == np.float32
    assert 0.3 < activations.std(axis=0).mean() < 3.0
    original = Interpreter(speech_embedding.model_path("embedding_model"), experimental_preserve_all_tensors=True)
    original.allocate_tensors()
    tensor = next(d["index"] for d in original.get_tensor_details() if d["name"] == speech_embedding.ACTIVATION_TENSOR)
    samples = np.concatenate([np.zeros(speech_embedding.PAD_SAMPLES, np.float32), speech, np.zeros(speech_embedding.END_SAMPLES, np.float32)])
    rows = speech_embedding._Networks.shared().mel_rows(samples)
    for t in (0, 37, len(embeddings) - 1):
        original.set_tensor(original.get_input_details()[0]["index"], rows[4 + 4 * t: 80 + 4 * t][None, :, :, None])
        original.invoke()
        np.testing.assert_allclose(activations[t], original.get_tensor(tensor).reshape(48, 96) * speech_embedding.ACTIVATION_SCALE,
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(embeddings[t, 5], original.get_tensor(original.get_output_details()[0]["index"]).reshape(96)
                                   * speech_embedding.SCALE, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seconds", [0.01, 1.73])
def test_one_activation_window_per_video_frame_for_any_length(speech, seconds):
    clip = speech[: int(16000 * seconds)]
    assert len(speech_embedding.embedding_windows(clip, activations=True)) == len(mfcc_windows(clip))
    assert speech_embedding.embedding_windows(clip, 40, activations=True).shape == (40, 48, 96)


def test_a_window_does_not_depend_on_distant_sound(speech):
    # The mel model floors each row relative to the loudest row of its input; the reference tone
    # keeps that floor fixed, so a loud sound far away leaves a frame's window as it was.
    loud = speech.copy()
    loud[-16000:] = np.clip(loud[-16000:] * 8, -1, 1)
    np.testing.assert_array_equal(speech_embedding.embedding_windows(loud)[:20], speech_embedding.embedding_windows(speech)[:20])


def test_silence_gives_one_window_whatever_its_length():
    windows = speech_embedding.embedding_windows(np.zeros(16000 * 2, np.float32))
    np.testing.assert_allclose(windows, np.broadcast_to(windows[0, :1], windows.shape), atol=1e-5)
    activations = speech_embedding.embedding_windows(np.zeros(16000 * 2, np.float32), activations=True)
    np.testing.assert_allclose(activations, np.broadcast_to(activations[:1], activations.shape), atol=1e-5)


@pytest.mark.parametrize("inputs", [("mfcc_windows", "speech_embeddings"), ("mfcc_windows", "speech_activations")])
def test_audio_window_stream_gives_embeddings_with_the_mfcc(speech, inputs):
    whole = audio_windows(speech, inputs)
    stream = AudioWindowStream(inputs)
    parts = [stream.push(speech[start: start + 3000]) for start in range(0, len(speech), 3000)] + [stream.finish()]
    for name in inputs:
        np.testing.assert_allclose(np.concatenate([part[name] for part in parts]), whole[name], atol=1e-5)


def test_without_openwakeword_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(speech_embedding.SpeechEmbeddingUnavailable, match=r"pip install openwakeword==0\.5\.1"):
        speech_embedding.model_path("embedding_model")


def test_streams_in_two_threads_give_what_they_give_alone(speech):
    # The app serves two visitors at once, and the streams share the process's interpreters.
    import threading

    recordings = [speech[: 16000 * 4], speech[16000 * 2:]]
    alone = [speech_embedding.embedding_windows(recording) for recording in recordings]
    together = [None, None]

    def run(index):
        for _ in range(3):
            together[index] = speech_embedding.embedding_windows(recordings[index])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for expected, got in zip(alone, together):
        np.testing.assert_array_equal(got, expected)
