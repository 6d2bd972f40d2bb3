"""The renderer scores at the photo's resolution, on the synthetic photo of the renderer tests."""

import cv2
import numpy as np

from atvg_tf.evaluation.render_scores import RenderScorer
from atvg_tf.rendering.face_points import OUTER_LIPS
from tests.helpers import IDENTITY, SCALE, SHIFT, TRANSFORM, synthetic_photo


def scores(photo, frames):
    scorer = RenderScorer(photo, TRANSFORM, IDENTITY)
    for frame in frames:
        scorer.add(frame, IDENTITY)
    return scorer.result()


def test_the_photo_itself_scores_perfectly():
    photo = synthetic_photo()
    result = scores(photo, [photo, photo.copy()])
    assert result == {"sharpness_ratio": 1.0, "static_region_error": 0.0, "lip_colour_delta_e": 0.0}


def test_a_blurred_lower_face_loses_sharpness_but_not_the_upper_face():
    photo = synthetic_photo()
    blurred = photo.copy()
    nose = int(IDENTITY[33, 1] * SCALE + SHIFT[1])
    blurred[nose:] = cv2.GaussianBlur(photo, (0, 0), 2.0)[nose:]
    result = scores(photo, [blurred])
    assert result["sharpness_ratio"] < 0.3
    assert result["static_region_error"] < 3  # the cheeks beside the nose only


def test_changed_eyes_and_lip_colour_are_measured():
    photo = synthetic_photo()
    changed = photo.copy()
    eyes = slice(int(IDENTITY[37, 1] * SCALE + SHIFT[1]) - 10, int(IDENTITY[41, 1] * SCALE + SHIFT[1]) + 10)
    changed[eyes] = np.clip(changed[eyes].astype(int) + 30, 0, 255)
    assert scores(photo, [changed])["static_region_error"] > 3
    recoloured = photo.copy()
    cv2.fillPoly(recoloured, [np.round(IDENTITY[list(OUTER_LIPS)] * SCALE + SHIFT).astype(np.int32)], (150, 60, 60))
    assert scores(photo, [recoloured])["lip_colour_delta_e"] > 8
