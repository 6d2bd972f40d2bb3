import os

import av
import numpy as np
import pytest

from atvg_tf.frontend.audio import AudioError, load_audio, mfcc, mfcc_windows, num_video_frames, shift_audio
from atvg_tf.frontend.mfcc_graph import Mfcc, MfccWindows
from tests.helpers import grid_clip


def _speech_files(shared):
    return [
        os.path.join(shared, "atvgnet", "audio", "test.wav"),  # 44.1 kHz
        os.path.join(shared, "atvgnet", "audio", "audio_sample.wav"),  # 16 kHz
        grid_clip(shared),  # MP2 audio track of an MPEG-1 clip
        os.path.join(shared, "wild", "retalking_1.mp4"),  # AAC stereo track
    ]


def test_mfcc_matches_python_speech_features_on_real_speech(shared_data):
    """Both front ends: numpy (generation, prepare) and TensorFlow ops (the SavedModel's graph)."""
    from python_speech_features import mfcc as reference_mfcc

    graph = Mfcc()
    for path in _speech_files(shared_data):
        waveform = load_audio(path)
        expected = reference_mfcc(waveform, 16000, winstep=0.01)[:, 1:]
        for ours in (mfcc(waveform), graph(waveform).numpy()):
            assert ours.shape == expected.shape, path
            assert np.abs(ours - expected).max() < 1e-3, path


def test_the_numpy_and_graph_windows_agree(shared_data):
    waveform = load_audio(grid_clip(shared_data))
    for frames in (1, 75, 90):
        np.testing.assert_allclose(mfcc_windows(waveform, frames), MfccWindows()(waveform, frames).numpy(), atol=2e-4)


def test_each_window_is_the_28_mfcc_rows_centred_on_its_frame(shared_data):
    from python_speech_features import mfcc as reference_mfcc

    waveform = load_audio(grid_clip(shared_data))
    windows = mfcc_windows(waveform, 75)
    # Official demo: pad 1920 zeros at both ends, frame t takes rows [4t, 4t + 28).
    padded = np.pad(waveform, 1920)
    rows = reference_mfcc(padded, 16000, winstep=0.01)[:, 1:]
    for t in (0, 1, 37, 70):
        np.testing.assert_allclose(windows[t], rows[4 * t : 4 * t + 28], atol=1e-3)


@pytest.mark.parametrize("num_samples", [1, 300, 640, 999, 12_345, 48_000, 160_001])
def test_one_window_per_video_frame_for_any_length(num_samples):
    waveform = (np.random.default_rng(num_samples).standard_normal(num_samples) * 0.1).astype(np.float32)
    frames = num_video_frames(num_samples)
    assert frames == max(1, round(num_samples / 640))
    assert mfcc_windows(waveform).shape == (frames, 28, 12)
    # Explicit counts beyond the audio are padded with silence.
    assert mfcc_windows(waveform, frames + 7).shape == (frames + 7, 28, 12)
    assert np.isfinite(mfcc_windows(waveform, frames + 7)).all()


def _encode(waveform_16k, path, codec, rate, layout):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=stream.format, layout=layout, rate=rate)
        frame = av.AudioFrame.from_ndarray(waveform_16k[None, :], format="flt", layout="mono")
        frame.sample_rate = 16000
        for converted in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize(
    "suffix, codec, rate, layout",
    [(".flac", "flac", 48000, "stereo"), (".mp3", "libmp3lame", 22050, "mono"), (".m4a", "aac", 8000, "stereo")],
)
def test_compressed_formats_rates_and_layouts_decode_to_16k_mono(shared_data, tmp_path, suffix, codec, rate, layout):
    reference = load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))
    path = tmp_path / ("speech" + suffix)
    _encode(reference, path, codec, rate, layout)
    decoded = load_audio(path)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    # Encoders add priming and padding samples: AAC at 8 kHz adds about two 1024-sample frames.
    assert abs(len(decoded) - len(reference)) < 0.3 * 16000
    assert np.abs(decoded).max() <= 1.0
    # Same speech: the energy envelopes (20 ms) correlate strongly once aligned.
    def envelope(x):
        n = len(x) // 320
        return np.sqrt((x[: n * 320].reshape(n, 320) ** 2).mean(1))

    a, b = envelope(reference), envelope(decoded)
    span = len(a) - 16
    best = max(np.corrcoef(a[:span], b[shift : shift + span])[0, 1] for shift in range(0, 16))
    assert best > 0.9


def test_bad_audio_inputs_raise_actionable_errors(shared_data, tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="no audio stream"):
        load_audio(os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4"))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(os.urandom(2048))
    with pytest.raises(AudioError):
        load_audio(corrupt)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(AudioError):
        load_audio(empty)


def test_float_wavs_with_nan_inf_or_huge_samples(tmp_path):
    """They ended as `avcodec_send_frame() returned 22` after the whole generation (issue 11 item 12):
    NaN/Inf is refused with one line, samples beyond full scale are clipped and the video is written."""
    import scipy.io.wavfile

    from atvg_tf.frontend.video_writer import Mp4Writer

    speech = (0.3 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
    for bad in (np.nan, np.inf):
        damaged = speech.copy()
        damaged[8000] = bad
        scipy.io.wavfile.write(tmp_path / "damaged.wav", 16000, damaged)
        with pytest.raises(AudioError, match="NaN or infinite samples; the recording is damaged"):
            load_audio(tmp_path / "damaged.wav")
    loud = speech * np.float32(1e30)
    scipy.io.wavfile.write(tmp_path / "loud.wav", 16000, loud)
    decoded = load_audio(tmp_path / "loud.wav")
    assert np.abs(decoded).max() == 1.0 and np.isfinite(decoded).all()
    with Mp4Writer(str(tmp_path / "loud.mp4"), str(tmp_path / "loud.wav")) as writer:
        for _ in range(25):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    with av.open(str(tmp_path / "loud.mp4")) as container:
        assert container.streams.audio[0].duration and len(container.streams.video) == 1


def test_shift_audio_moves_the_time_origin():
    waveform = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(shift_audio(waveform, 2 / 16000), waveform[2:])
    np.testing.assert_array_equal(shift_audio(waveform, -2 / 16000), np.r_[0, 0, waveform])
    assert shift_audio(waveform, 0.0) is waveform
