import numpy as np
import pytest

from atvg_tf.evaluation.av_offset import clip_offset, lagged_correlations, phone_openness
from atvg_tf.frontend.phones import PHONES


def _faces(aperture: np.ndarray) -> np.ndarray:
    """[N, 68, 2] landmarks whose eye corners are 1 apart and whose inner lips are `aperture` apart."""
    faces = np.zeros((len(aperture), 68, 2), np.float32)
    faces[:, 45, 0] = 1.0
    faces[:, [65, 66, 67], 1] = aperture[:, None]  # the lower inner lip; the upper one stays at 0
    return faces


def _speech(frames: int, seed: int = 0) -> np.ndarray:
    """[N, 28] phone-id windows of a random phone sequence, 4 rows per frame, framed like `frontend.phones`."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(rng.integers(0, len(PHONES), size=frames + 8), 4 * rng.integers(1, 3, size=frames + 8))[: 4 * frames + 28]
    return np.stack([rows[4 * t: 4 * t + 28] for t in range(frames)])


@pytest.mark.parametrize("offset", [-3, 0, 2])
def test_the_offset_between_sound_and_picture_is_found(offset):
    windows = _speech(200)
    openness = phone_openness(windows)
    # The picture shows at frame t what the sound says at frame t + offset.
    picture = np.roll(openness, -offset) + 0.01
    lag, correlations = clip_offset(windows, _faces(picture))
    assert lag == offset
    assert correlations.shape == (13,) and correlations[lag + 6] > 0.9


def test_lagged_correlations_read_the_sound_driven_curve_later_at_positive_lags():
    curve = np.sin(np.linspace(0, 12, 120)) + np.random.default_rng(1).normal(0, 0.05, 120)
    later = np.concatenate([np.zeros(3), curve[:-3]])  # the same curve, 3 frames after
    correlations = lagged_correlations(later, curve, 5)
    assert int(np.argmax(correlations)) - 5 == 3


def test_silence_expects_a_closed_mouth():
    assert phone_openness(np.zeros((10, 28), int)).max() == 0.0
