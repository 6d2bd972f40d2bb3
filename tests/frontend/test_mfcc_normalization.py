import json
import os

import numpy as np
import pytest
import scipy.signal

from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.audio_windows import AudioWindowStream, audio_windows
from atvg_tf.frontend.mfcc_graph import normalize_mfcc_windows as graph_normalize
from atvg_tf.frontend.mfcc_normalization import MfccNormalizer, fit_mfcc_statistics, normalize_mfcc_windows
from tests.helpers import grid_clip


def _speech(shared):
    return load_audio(os.path.join(shared, "wild", "retalking_1.mp4"))


def _config(shared, **settings):
    statistics = fit_mfcc_statistics([mfcc_windows(load_audio(grid_clip(shared)))])
    return MfccNormalizer(**statistics, **settings).get_config()


def test_streamed_one_shot_and_graph_normalisation_are_equal(shared_data):
    config = _config(shared_data, lead_frames=30)
    waveform = _speech(shared_data)[: 16000 * 4]
    one_shot = audio_windows(waveform, ("mfcc_windows",), None, config)["mfcc_windows"]
    assert np.abs(one_shot - mfcc_windows(waveform)).max() > 1.0  # it does change the windows
    np.testing.assert_allclose(graph_normalize(mfcc_windows(waveform), config).numpy(), one_shot, atol=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(2):
        stream, parts, at = AudioWindowStream(("mfcc_windows",), config), [], 0
        while at < waveform.size:
            size = int(rng.integers(100, 9000))
            parts.append(stream.push(waveform[at:at + size])["mfcc_windows"])
            at += size
        parts.append(stream.finish()["mfcc_windows"])
        np.testing.assert_allclose(np.concatenate(parts), one_shot, atol=1e-5)
    # Inputs shorter than the lead are normalised with all they have.
    short = mfcc_windows(waveform[:16000])
    np.testing.assert_allclose(normalize_mfcc_windows(short, config), graph_normalize(short, config).numpy(), atol=1e-4)


def test_silence_stays_silence_and_the_training_voice_is_kept(shared_data):
    config = _config(shared_data)
    silence = mfcc_windows(np.zeros(16000, np.float32))
    np.testing.assert_array_equal(normalize_mfcc_windows(silence, config), silence)
    # The speech the statistics come from is moved far less than another microphone's speech is.
    grid = mfcc_windows(load_audio(grid_clip(shared_data)))
    moved = np.abs(normalize_mfcc_windows(grid, config) - grid).mean()
    assert moved < 0.3 * np.abs(grid).mean()


def test_a_microphone_colouring_is_largely_undone(shared_data):
    """A channel (here a telephone-like band-pass) shifts every cepstrum; normalisation removes most of it."""
    config = _config(shared_data)
    waveform = _speech(shared_data)[: 16000 * 6]
    coloured = scipy.signal.sosfilt(scipy.signal.butter(2, [300, 3400], "bandpass", fs=16000, output="sos"), waveform).astype(np.float32)
    raw = np.abs(mfcc_windows(coloured) - mfcc_windows(waveform)).mean()
    normalized = np.abs(normalize_mfcc_windows(mfcc_windows(coloured), config) - normalize_mfcc_windows(mfcc_windows(waveform), config)).mean()
    assert normalized < 0.6 * raw, (normalized, raw)


def test_config_round_trip_and_bad_configs(shared_data):
    config = _config(shared_data, prior_rows=10, lead_frames=5, fitted_on={"clips": 1})
    assert MfccNormalizer.from_config(json.loads(json.dumps(config))).get_config() == config
    with pytest.raises(ValueError, match="positive `std`"):
        MfccNormalizer(config["mean"], [0.0] * 12)
    with pytest.raises(ValueError, match="no speech rows"):
        fit_mfcc_statistics([np.zeros((5, 28, 12), np.float32)])


def test_a_model_folder_setting_reaches_atnet_and_can_be_turned_off(shared_data, tmp_path):
    """training.json's inference.mfcc_normalization reaches AT-net's windows; None (`--raw-mfcc`) gives
    the paper's raw MFCC; the packaged model has none."""
    import shutil

    from atvg_tf.generation.model import DEFAULT_MODEL_DIR, TalkingFaceModel

    assert TalkingFaceModel.load().mfcc_normalization is None
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "model")
    info = json.loads((tmp_path / "model" / "training.json").read_text())
    info["inference"] = {"mfcc_normalization": _config(shared_data)}
    (tmp_path / "model" / "training.json").write_text(json.dumps(info))
    model = TalkingFaceModel.load(str(tmp_path / "model"))
    waveform = _speech(shared_data)[: 16000 * 3]
    np.testing.assert_array_equal(model.audio_windows(waveform)["mfcc_windows"], normalize_mfcc_windows(mfcc_windows(waveform), _config(shared_data)))
    model.mfcc_normalization = None
    np.testing.assert_array_equal(model.audio_windows(waveform)["mfcc_windows"], mfcc_windows(waveform))
