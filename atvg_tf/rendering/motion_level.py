"""Raising the mouth motion of a voice the model moves too little for, up to the level of its training voices.

An AT-net trained with a squared error on few voices predicts a timid mouth for a voice it never
heard: uncertain, it stays near the average. On its training speech the same network opens and
closes the mouth nearly as widely as the speaker did (GRID s1: 0.85 times; 0.77 with a head blended
in from many voices). `MotionLevel` measures, as the frames come, how widely the predicted inner
lips move for this recording, and finds the factor that brings that spread up to the level of the
training speech (the speaker's real mouth: `evaluation.motion_spread`): about 1.1 for voices like
those it learned, more for a voice it hears as foreign. The factor is never below 1 (a lively
prediction is left alone) and changes slowly, so it scales the motion without reshaping it in time.

The factor scales the motion's swing around the recording's own average pose so far, not around the
photo: a photo taken mid-word (an open mouth) that the voice mostly closes would otherwise have that
closing scaled too, into lips pressed shut, and lose the syllables (on real-world clips the
predicted opening then followed the real one less: 0.36 against 0.60 on one clip).
"""

from __future__ import annotations

import numpy as np

from atvg_tf.rendering.face_points import inner_aperture

# Frames whose aperture changed by less than this (over the eye-corner distance) since the last frame
# do not count: a pause would otherwise shrink the measured spread and over-open the next word.
MOVING_STEP = 0.002
# The spread starts at the target, weighted as this many frames, so the first words are not scaled by chance.
PRIOR_FRAMES = 10
MAX_GAIN = 2.0


def normalised_apertures(landmarks: np.ndarray, identity_landmarks: np.ndarray) -> np.ndarray:
    """[..., 68, 2] -> [...] inner-lip openings over the identity's outer eye-corner distance (points 36, 45)."""
    identity_landmarks = np.asarray(identity_landmarks, np.float64)
    eyes = float(np.linalg.norm(identity_landmarks[45] - identity_landmarks[36]))
    return inner_aperture(landmarks) / max(eyes, 1e-9)


def moving_spread(apertures: np.ndarray, step: float = MOVING_STEP) -> float:
    """Standard deviation of a recording's normalised apertures [T] over the frames where the mouth moved
    (the statistic `MotionLevel` follows; measured on a model's training speech, its `aperture_std`)."""
    apertures = np.asarray(apertures, np.float64)
    moving = np.concatenate([[True], np.abs(np.diff(apertures)) > step])
    return float(apertures[moving].std())


class MotionLevel:
    """The factor on one recording's predicted motion, frame by frame (causal: no look-ahead).

    Args:
        identity_landmarks: [68, 2] the photo's landmarks (crop px).
        aperture_std: the target: `moving_spread` of the apertures on the model's training speech (the
            speaker's real ones; the model's predicted ones in folders measured before 2026-11-28).
        max_gain: the largest factor.
        prior_frames: the weight, in frames, of the starting guess (spread = target, factor 1).
        moving_step: see `MOVING_STEP`.
    """

    def __init__(self, identity_landmarks: np.ndarray, aperture_std: float, max_gain: float = MAX_GAIN,
                 prior_frames: int = PRIOR_FRAMES, moving_step: float = MOVING_STEP):
        if aperture_std <= 0 or max_gain < 1 or prior_frames < 1:
            raise ValueError(f"motion level needs aperture_std > 0, max_gain >= 1 and prior_frames >= 1, got "
                             f"{aperture_std}, {max_gain}, {prior_frames}.")
        self.identity_landmarks = np.asarray(identity_landmarks, np.float64)
        self.target, self.max_gain, self.moving_step = float(aperture_std), float(max_gain), float(moving_step)
        self._count = float(prior_frames)
        self._variance = self.target ** 2
        self._mean: float | None = None
        self._previous: float | None = None
        self._frames = 0
        self.mean_motion = np.zeros_like(self.identity_landmarks)
        self.gain = 1.0

    def update(self, landmarks: np.ndarray) -> float:
        """Takes the next frame's predicted landmarks [68, 2] (crop px); returns the factor for it."""
        landmarks = np.asarray(landmarks, np.float64)
        self._frames += 1
        self.mean_motion += (landmarks - self.identity_landmarks - self.mean_motion) / self._frames
        aperture = float(normalised_apertures(landmarks, self.identity_landmarks))
        if self._mean is None:
            self._mean = aperture
        elif abs(aperture - self._previous) > self.moving_step:
            self._count += 1.0
            weight = 1.0 / self._count
            delta = aperture - self._mean
            self._mean += weight * delta
            self._variance = (1.0 - weight) * (self._variance + weight * delta * delta)
        self._previous = aperture
        self.gain = float(np.clip(self.target / np.sqrt(max(self._variance, 1e-12)), 1.0, self.max_gain))
        return self.gain

    def apply(self, motion: np.ndarray) -> np.ndarray:
        """[..., 68, 2] motion (landmarks minus the photo's) -> the same with its swing around the mean
        motion so far scaled by `gain` (as of the last `update`)."""
        return self.mean_motion + self.gain * (np.asarray(motion, np.float64) - self.mean_motion)

    @classmethod
    def from_config(cls, identity_landmarks: np.ndarray, config: dict) -> MotionLevel:
        """From a model folder's `inference.motion_level` ({"aperture_std": ..., optional "max_gain", "prior_frames"})."""
        return cls(identity_landmarks, float(config["aperture_std"]), float(config.get("max_gain", MAX_GAIN)),
                   int(config.get("prior_frames", PRIOR_FRAMES)), float(config.get("moving_step", MOVING_STEP)))
