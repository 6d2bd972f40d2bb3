"""PocketSphinx phone windows and phone posterior windows: stable, aligned to the video frames, equal when streamed."""

import os

import numpy as np
import pytest

from atvg_tf.frontend import phones
from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.audio_windows import AudioWindowStream, audio_windows


@pytest.fixture(scope="module")
def speech(shared_data) -> np.ndarray:
    return load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))


def test_same_recording_gives_the_same_phones(speech):
    first, second = phones.phone_windows(speech), phones.phone_windows(speech)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.int32 and first.min() >= 0 and first.max() < phones.NUM_PHONES


def test_a_reused_decoder_gives_what_a_new_one_gives(speech, monkeypatch):
    noise = np.random.default_rng(0).normal(0, 0.05, 48000).astype(np.float32)
    monkeypatch.setattr(phones, "_IDLE_DECODERS", {"allphone": [], "lattice": []})
    for rows_of in (phones.phone_rows, phones.phone_posterior_rows):
        kind = "allphone" if rows_of is phones.phone_rows else "lattice"
        fresh = rows_of(speech)  # a new decoder, kept for the next stream
        assert len(phones._IDLE_DECODERS[kind]) == 1
        other = rows_of(np.concatenate([speech[::-1], noise]))  # moves its cepstral mean
        again = rows_of(speech)
        assert len(phones._IDLE_DECODERS[kind]) == 1  # the same decoder each time
        np.testing.assert_array_equal(again, fresh)
        changed = other[: len(fresh)] != fresh
        assert (changed if changed.ndim == 1 else changed.any(axis=1)).mean() > 0.2


def test_speech_is_recognised_as_phones_and_silence_as_silence(speech):
    rows = phones.phone_rows(speech)
    spoken = rows[rows != 0]
    assert len(spoken) > 0.5 * len(rows)  # a 6 s sample of continuous speech
    assert len(np.unique(spoken)) >= 15  # many different phones, not one label
    np.testing.assert_array_equal(phones.phone_rows(np.zeros(32000, np.float32)), 0)


@pytest.mark.parametrize("seconds", [0.01, 0.5, 1.73, 3.0])
def test_one_window_per_video_frame_for_any_length(speech, seconds):
    waveform = speech[: int(seconds * 16000)]
    windows = phones.phone_windows(waveform)
    assert windows.shape == (len(mfcc_windows(waveform)), 28)
    assert phones.phone_windows(waveform, 40).shape == (40, 28)  # extra frames: silence
    np.testing.assert_array_equal(phones.phone_windows(waveform, 40)[len(windows) + 4:], 0)


def test_windows_are_framed_like_the_mfcc_windows(speech):
    """Frame t's window holds rows [4t - 12, 4t + 16) of the 10 ms phone rows, silence outside."""
    rows = phones.phone_rows(speech)
    windows = phones.phone_windows(speech)
    for t in (0, 1, 10, len(windows) - 1):
        expected = np.zeros(28, np.int32)
        for i, row in enumerate(range(4 * t - 12, 4 * t + 16)):
            if 0 <= row < len(rows):
                expected[i] = rows[row]
        np.testing.assert_array_equal(windows[t], expected)


# Phone ids: frames come out at most 0.56 s (14 frames) after their audio; posteriors 2.16 s (54).
@pytest.mark.parametrize("posteriors, lookahead_frames", [(False, 14), (True, 54)])
def test_streaming_equals_one_shot_for_any_block_sizes(speech, posteriors, lookahead_frames):
    whole = phones.posterior_windows(speech) if posteriors else phones.phone_windows(speech)
    rng = np.random.default_rng(0)
    stream, parts, position = phones.PhoneWindowStream(posteriors=posteriors), [], 0
    while position < len(speech):
        size = int(rng.integers(1, 20000 if posteriors else 12000))
        parts.append(stream.push(speech[position: position + size]))
        position += size
        assert stream.frames_emitted >= position / 640 - lookahead_frames - 1  # the look-ahead is bounded
    parts.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_restarting_the_decoder_keeps_the_rows_aligned(speech):
    """Long recordings restart the decoder utterance (bounded memory); the row count stays exact."""
    stream = phones.PhoneStream(max_utterance_rows=150)
    rows = np.concatenate([stream.push(speech), stream.finish()])
    assert len(rows) == len(phones.phone_rows(speech)) == -(-len(speech) // 160)
    # Most rows agree with one long utterance: restarts only disturb their surroundings.
    assert np.mean(rows == phones.phone_rows(speech)) > 0.7


def test_audio_window_stream_gives_every_input_for_the_same_frames(speech):
    inputs = ("mfcc_windows", "phone_windows", "phone_posteriors")
    whole = audio_windows(speech, inputs)
    assert whole["phone_windows"].shape == whole["phone_posteriors"].shape == (len(whole["mfcc_windows"]), 28, phones.NUM_PHONES)
    np.testing.assert_array_equal(whole["phone_windows"].sum(axis=-1), 1.0)  # one-hot
    np.testing.assert_array_equal(whole["phone_posteriors"], phones.posterior_windows(speech))
    stream, parts = AudioWindowStream(inputs), []
    for start in range(0, len(speech), 7000):
        part = stream.push(speech[start: start + 7000])
        assert len(part["mfcc_windows"]) == len(part["phone_windows"]) == len(part["phone_posteriors"])
        parts.append(part)
    parts.append(stream.finish())
    for name in inputs:
        np.testing.assert_allclose(np.concatenate([p[name] for p in parts]), whole[name], atol=1e-4)


def test_posteriors_are_stable_sum_to_one_and_follow_the_best_phones(speech):
    rows = phones.phone_posterior_rows(speech)
    np.testing.assert_array_equal(phones.phone_posterior_rows(speech), rows)
    assert rows.shape == (-(-len(speech) // 160), phones.NUM_PHONES) and rows.dtype == np.float32
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-5)
    assert rows.min() >= 0.0
    assert (rows[:, 0] < 0.5).mean() > 0.5  # a 6 s sample of continuous speech
    assert len(np.unique(rows.argmax(axis=1))) >= 15
    # The same acoustic model: the most likely phone is mostly the allphone search's best one.
    assert np.mean(rows.argmax(axis=1) == phones.phone_rows(speech)) > 0.4


def test_silence_has_the_posteriors_of_silence():
    """Digital silence too (exact zeros, which the decoder alone takes for phones)."""
    quiet = np.random.default_rng(0).normal(0, 1e-3, 32000).astype(np.float32)
    for waveform in (np.zeros(32000, np.float32), quiet):
        assert phones.phone_posterior_rows(waveform)[:, 0].mean() > 0.95


@pytest.mark.parametrize("seconds", [0.01, 0.5, 2.0, 2.37, 4.1])
def test_one_posterior_window_per_video_frame_for_any_length(speech, seconds):
    """Frame t's window holds posterior rows [4t - 12, 4t + 16), silence outside; utterance ends (2 s) included."""
    waveform = speech[: int(seconds * 16000)]
    rows, windows = phones.phone_posterior_rows(waveform), phones.posterior_windows(waveform)
    assert windows.shape == (len(mfcc_windows(waveform)), 28, phones.NUM_PHONES)
    silence = np.eye(phones.NUM_PHONES, dtype=np.float32)[0]
    for t in sorted({0, len(windows) // 2, len(windows) - 1}):
        expected = np.stack([rows[row] if 0 <= row < len(rows) else silence for row in range(4 * t - 12, 4 * t + 16)])
        np.testing.assert_array_equal(windows[t], expected)
    longer = phones.posterior_windows(waveform, len(windows) + 10)
    np.testing.assert_array_equal(longer[: len(windows)], windows)
    np.testing.assert_array_equal(longer[len(windows) + 4:], np.broadcast_to(silence, longer[len(windows) + 4:].shape))

