"""A model's motion level: how widely the inner lips move on its training speech, the real speaker's
(the default) or as the model predicts them.

The hybrid renderer raises a timid voice's motion to this level (`rendering.motion_level.MotionLevel`);
measured once per model and stored in its `training.json` (`inference.motion_level`).
"""

from __future__ import annotations

import numpy as np

from atvg_tf.errors import AtvgError, InputError
from atvg_tf.evaluation.evaluate import align_clip
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.rendering.motion_level import MAX_GAIN, moving_spread, normalised_apertures


def motion_level(videos: list[str], model, backend: str | None = None, max_gain: float = MAX_GAIN, mouths: str = "real") -> dict:
    """`inference.motion_level` of a model, measured on clips of its training speech (their own sound).

    The spread (`moving_spread`) of the normalised apertures of each clip is averaged over the clips:
    of the real speaker's mouth (`mouths="real"`), so that the renderer raises a voice's motion to
    how widely people move their lips; or of the model's predicted mouth (`"predicted"`, each clip's
    first frame as the photo), the level before 2026-11-28. An AT-net with a head blended in
    predicts its training speaker's motion narrower than the speaker moved (0.77 of the spread,
    against 0.85 for the MFCC network), so a predicted level would hold every voice below real width.

    Args:
        videos: clips with sound, e.g. the train split of the model's training data.
        model: a `TalkingFaceModel`.
        backend: landmark backend (None: the model's).
        max_gain: the largest factor the renderer may apply.
        mouths: `real` or `predicted`.

    Raises:
        InputError: no clip could be used.
    """
    spreads, used = [], []
    with create_landmark_detector(backend or model.landmark_backend, fallback=backend is None) as detector:
        for path in videos:
            try:
                clip = align_clip(path, detector, model.alignment, model.audio_inputs,
                                  mfcc_normalization=model.mfcc_normalization)
            except AtvgError:
                continue
            moving = clip.landmarks if mouths == "real" else model.predict_landmarks(clip.windows, clip.landmarks[0])
            spreads.append(moving_spread(normalised_apertures(moving, clip.landmarks[0])))
            used.append(path)
    if not spreads:
        raise InputError(f"none of the {len(videos)} clips has a face and sound to measure the motion level on.")
    return {"aperture_std": round(float(np.mean(spreads)), 5), "max_gain": max_gain, "measured_on_clips": len(used), "mouths": mouths}
