"""A model's motion level: measured on the real speaker's mouth by default, on the predicted one when asked."""

import glob
import os

import numpy as np
import pytest

from atvg_tf.evaluation.evaluate import align_clip
from atvg_tf.evaluation.motion_spread import motion_level
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.rendering.motion_level import moving_spread, normalised_apertures


@pytest.fixture(scope="module")
def clips(shared_data):
    return sorted(glob.glob(os.path.join(shared_data, "grid", "s1", "*.mpg")))[:2]


def test_the_level_is_the_spread_of_the_real_or_the_predicted_mouths(clips):
    model = TalkingFaceModel.load()
    real, predicted = motion_level(clips, model), motion_level(clips, model, mouths="predicted")
    assert real["mouths"] == "real" and predicted["mouths"] == "predicted" and real["measured_on_clips"] == 2
    spreads = []
    with create_landmark_detector(model.landmark_backend, fallback=True) as detector:
        for path in clips:
            clip = align_clip(path, detector, model.alignment, model.audio_inputs)
            spreads.append(moving_spread(normalised_apertures(clip.landmarks, clip.landmarks[0])))
    assert real["aperture_std"] == pytest.approx(np.mean(spreads), abs=1e-5)
    assert predicted["aperture_std"] != real["aperture_std"] and 0.01 < predicted["aperture_std"] < 0.1
