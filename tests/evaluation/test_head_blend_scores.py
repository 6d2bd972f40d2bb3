"""The scorer that chooses the phone head's settings blends codes as the model folder's AT-net does."""

import numpy as np

from atvg_tf.evaluation.head_blend_scores import HeadBlendScorer
from atvg_tf.frontend import phones
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.training.phone_head import PhoneHead, PreparedClip, model_with_phone_head
from tests.helpers import IDENTITY


def test_scored_landmarks_are_the_blended_models_and_the_offset_pairs_frames():
    packaged = TalkingFaceModel.load()
    rng = np.random.default_rng(0)
    frames = 40
    head = PhoneHead(rng.normal(0, 0.05, (28 * phones.NUM_PHONES, 6)).astype(np.float32), rng.normal(0, 0.5, 6).astype(np.float32), 1)
    landmarks = IDENTITY[None] + rng.normal(0, 0.3, (frames, 68, 2)).astype(np.float32)
    clip = PreparedClip({"id": "clip"}, np.arange(frames), np.zeros((frames, 6), np.float32), landmarks,
                        rng.normal(0, 1, (frames, 28, 12)).astype(np.float32),
                        rng.dirichlet(np.ones(phones.NUM_PHONES), (frames, 28)).astype(np.float32))
    blended = model_with_phone_head(packaged, head, 0.4)
    expected = blended.predict_landmarks({"mfcc_windows": clip.mfcc_windows, "phone_posteriors": clip.posteriors}, landmarks[0])
    for offset in (0, 2, -3):
        scorer = HeadBlendScorer(packaged, clip, offset)
        got = scorer.landmarks(head, 0.4)
        # Prediction i goes with real frame i + offset: both curves lose |offset| frames at one end.
        assert len(got) == len(scorer.real) == frames - abs(offset)
        np.testing.assert_allclose(got, expected[max(0, -offset):frames - max(0, offset)], atol=1e-3)
        np.testing.assert_array_equal(scorer.real, landmarks[max(0, offset):frames + min(0, offset)])
    sync, std, lmd = HeadBlendScorer(packaged, clip).score(head, 0.4)
    assert -1 <= sync <= 1 and std > 0 and lmd > 0
