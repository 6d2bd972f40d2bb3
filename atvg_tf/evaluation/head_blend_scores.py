"""How closely a trained AT-net with a phone head blended in follows real footage, for choosing the
head's settings (`training/phone_head_cv.py`)."""

from __future__ import annotations

import numpy as np

from atvg_tf.evaluation import metrics
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.training.phone_head import PhoneHead, PreparedClip, mfcc_network


class HeadBlendScorer:
    """Scores blends on one prepared clip; the MFCC network's codes are computed once.

    Args:
        model: a model whose AT-net hears MFCC (the head is blended into its MFCC network's codes as
            `layers.HeadBlend` does; a head it has already is left out).
        clip: the footage (`PreparedClip`); its first frame is the identity.
        audio_offset: frame t hears the window of frame t - offset (`TrainConfig.audio_offsets`).
    """

    def __init__(self, model: TalkingFaceModel, clip: PreparedClip, audio_offset: int = 0):
        self.model, self.identity = model, clip.landmarks[0]
        self.posteriors = clip.heard(0).reshape(len(clip.frames), -1)
        audio = {"mfcc_windows": clip.mfcc_windows[None], "identity_pca_codes": model.landmark_space.identity_code(self.identity)}
        self.mfcc_codes = mfcc_network(model).predict_on_batch(audio)["pca_codes"][0]
        # Prediction i (heard from window i) goes with real frame i + offset.
        count = len(clip.frames)
        self.kept = slice(max(0, -audio_offset), count - max(0, audio_offset))
        self.real = clip.landmarks[max(0, audio_offset):count + min(0, audio_offset)]

    def landmarks(self, head: PhoneHead, weight: float) -> np.ndarray:
        """[N', 68, 2] predicted landmarks (crop px) for the frames that have a real partner."""
        codes = (1 - weight) * self.mfcc_codes + weight * (self.posteriors @ head.kernel + head.bias)
        return (self.model.landmarks_from_codes(codes, self.identity) - self.model.silence_offset(self.identity))[self.kept]

    def score(self, head: PhoneHead, weight: float) -> tuple[float, float, float]:
        """(sync_corr, aperture std ratio, mouth LMD) against the real landmarks, the identity frame left out."""
        predicted, real = self.landmarks(head, weight)[1:], self.real[1:]
        aperture, real_aperture = metrics.mouth_aperture(predicted), metrics.mouth_aperture(real)
        lmd = float(np.mean([metrics.landmark_distance(a, b) for a, b in zip(real, predicted)]))
        return metrics.pearson(aperture, real_aperture), metrics.std_ratio(aperture, real_aperture), lmd
