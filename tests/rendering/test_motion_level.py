"""The motion level: a timid voice's mouth motion raised to the model's level, a lively one left alone (no model)."""

import numpy as np
import pytest

from atvg_tf.generation.model_folder import ModelSettings
from atvg_tf.rendering.face_points import inner_aperture
from atvg_tf.rendering.hybrid_renderer import HybridRenderer
from atvg_tf.rendering.motion_level import MotionLevel, moving_spread, normalised_apertures
from tests.helpers import IDENTITY, TRANSFORM, synthetic_photo

EYES = float(np.linalg.norm(IDENTITY[45] - IDENTITY[36]))
LOWER_INNER_LIP = [65, 66, 67]


def speaking(openings):
    """[T, 68, 2]: IDENTITY with the lower inner lip lowered by each of `openings` (crop px)."""
    frames = np.repeat(IDENTITY[None].astype(np.float64), len(openings), axis=0)
    frames[:, LOWER_INNER_LIP, 1] += np.asarray(openings, np.float64)[:, None]
    return frames


def syllables(frames, depth, seed=0):
    """Openings of a voice that opens and closes the mouth about four times a second, up to `depth` px."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)
    return depth * np.clip(np.sin(2 * np.pi * t / 6.25 + rng.uniform(0, 1)), 0, None) * rng.uniform(0.6, 1.0, frames)


def gains_of(level, frames):
    return np.array([level.update(f) for f in frames])


def test_a_voice_moved_as_widely_as_the_training_speech_keeps_its_motion():
    frames = speaking(syllables(500, 6.0))
    target = moving_spread(normalised_apertures(frames, IDENTITY))
    gains = gains_of(MotionLevel(IDENTITY, target), frames)
    assert gains.max() < 1.15 and gains[-100:].mean() < 1.05


def test_a_timid_voice_is_raised_to_the_level_and_a_lively_one_is_never_damped():
    target = moving_spread(normalised_apertures(speaking(syllables(500, 6.0)), IDENTITY))
    timid = speaking(syllables(500, 3.0, seed=1))
    gains = gains_of(MotionLevel(IDENTITY, target, max_gain=3.0), timid)
    assert gains[0] == 1.0  # nothing heard yet
    assert 1.8 < gains[-100:].mean() < 2.2  # half the spread: about twice the motion
    assert np.all(np.diff(gains[200:]) < 0.02)  # it settles, it does not follow each syllable
    capped = gains_of(MotionLevel(IDENTITY, target, max_gain=1.5), timid)
    assert capped.max() == pytest.approx(1.5)
    lively = gains_of(MotionLevel(IDENTITY, target), speaking(syllables(500, 12.0, seed=2)))
    np.testing.assert_array_equal(lively, 1.0)


def test_pauses_do_not_count_so_the_first_word_after_one_is_not_overdone():
    target = moving_spread(normalised_apertures(speaking(syllables(500, 6.0)), IDENTITY))
    openings = np.concatenate([syllables(100, 6.0), np.zeros(200), syllables(25, 6.0, seed=3)])
    gains = gains_of(MotionLevel(IDENTITY, target), speaking(openings))
    assert gains[100:300].max() - gains[99] < 1e-9  # a still mouth leaves the factor as it was
    assert gains.max() < 1.15


def test_the_hybrid_renderer_places_the_raised_motion_and_keeps_lips_from_crossing():
    photo = synthetic_photo()
    target = moving_spread(normalised_apertures(speaking(syllables(400, 6.0)), IDENTITY))
    timid = speaking(syllables(400, 3.0, seed=4))
    crop = np.zeros((128, 128, 3), np.uint8)
    plain = HybridRenderer(photo, TRANSFORM, IDENTITY)
    levelled = HybridRenderer(photo, TRANSFORM, IDENTITY, motion_level={"aperture_std": target})
    plain_openings, levelled_openings = [], []
    for landmarks in timid:
        plain.render(crop, landmarks)
        plain_openings.append(inner_aperture(plain.placed_landmarks(landmarks)))
        levelled.render(crop, landmarks)
        levelled_openings.append(inner_aperture(levelled.placed_landmarks(landmarks)))
    np.testing.assert_allclose(plain_openings, inner_aperture(timid))  # without a level: as predicted
    ratio = np.std(levelled_openings[-150:]) / np.std(plain_openings[-150:])
    assert 1.7 < ratio < 2.1
    closing = IDENTITY.copy()
    closing[LOWER_INNER_LIP, 1] -= 1.0  # predicted a little above the photo's own lip line
    levelled.level.gain = 2.0
    assert inner_aperture(levelled.placed_landmarks(closing)) >= -1e-9  # raised, they meet rather than cross


def test_a_model_folder_sets_the_level_and_without_one_there_is_none():
    assert ModelSettings({}).motion_level is None
    settings = ModelSettings({"inference": {"motion_level": {"aperture_std": 0.04, "max_gain": 1.5}}})
    level = MotionLevel.from_config(IDENTITY, settings.motion_level)
    assert (level.target, level.max_gain) == (0.04, 1.5)
    with pytest.raises(ValueError, match="aperture_std > 0"):
        MotionLevel(IDENTITY, 0.0)
    lowered, rest = normalised_apertures(speaking([EYES / 10, 0.0]), IDENTITY)
    assert lowered - rest == pytest.approx(0.1)  # in outer eye-corner distances


def test_the_swing_is_scaled_around_the_recordings_own_pose_not_the_photos():
    """A photo taken mid-word (open mouth) that the voice mostly closes keeps its average pose; only the swing grows."""
    open_photo = speaking([5.0])[0]
    target = moving_spread(normalised_apertures(speaking(syllables(400, 6.0)), open_photo))
    voice = speaking(1.0 + syllables(400, 2.0, seed=5))  # around 1.5 px open: mostly closing the photo's 5 px
    renderer = HybridRenderer(synthetic_photo(), TRANSFORM, open_photo, motion_level={"aperture_std": target})
    crop = np.zeros((128, 128, 3), np.uint8)
    placed = []
    for landmarks in voice:
        renderer.render(crop, landmarks)
        placed.append(inner_aperture(renderer.placed_landmarks(landmarks)))
    predicted = inner_aperture(voice)
    assert renderer.level.gain > 1.5
    assert abs(np.mean(placed[-200:]) - np.mean(predicted[-200:])) < 0.3  # not pressed shut
    assert np.std(placed[-200:]) > 1.4 * np.std(predicted[-200:])
    assert np.corrcoef(placed[-200:], predicted[-200:])[0, 1] > 0.99  # the syllables survive
