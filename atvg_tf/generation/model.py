"""A trained cascade (AT-net + VG-net + landmark PCA) loaded from a model folder.

A model folder holds `atnet.keras`, `vgnet.keras` (the generator), `pca.npz` and `training.json`.
The package ships one (`atvg_tf/assets/default_model`), used whenever no folder is given.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.models import layers as _custom_layers  # noqa: F401  (registers the custom layers for loading)

DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "default_model")
MODEL_FILES = ("atnet.keras", "vgnet.keras", "pca.npz")


def to_unit(frames: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [-1, 1]."""
    return frames.astype(np.float32) / 127.5 - 1.0


def to_uint8(frames) -> np.ndarray:
    """float images in [-1, 1] -> uint8."""
    return np.clip(np.round((np.asarray(frames) + 1.0) * 127.5), 0, 255).astype(np.uint8)


class TalkingFaceModel:
    """AT-net, VG-net and the PCA basis they were trained with.

    Args:
        atnet: model from `build_atnet` (trained).
        vgnet: model from `build_vgnet` (trained generator).
        pca: the landmark basis of AT-net's codes.
        info: what `training.json` says about the model.
    """

    def __init__(self, atnet: keras.Model, vgnet: keras.Model, pca: LandmarkPCA, info: dict | None = None):
        self.atnet, self.vgnet, self.pca, self.info = atnet, vgnet, pca, info or {}
        self.crop_size = int(vgnet.input["identity_frame"].shape[1])

    @classmethod
    def load(cls, directory: str | None = None) -> "TalkingFaceModel":
        """Loads a model folder (the packaged default model when `directory` is None)."""
        directory = directory or DEFAULT_MODEL_DIR
        missing = [name for name in MODEL_FILES if not os.path.isfile(os.path.join(directory, name))]
        if missing:
            raise FileNotFoundError(
                f"{directory} is not a model folder (missing {', '.join(missing)}); pass --model with a folder "
                f"written by training/train_default_model.py."
            )
        info_path = os.path.join(directory, "training.json")
        info = json.load(open(info_path)) if os.path.isfile(info_path) else {}
        return cls(
            keras.saving.load_model(os.path.join(directory, "atnet.keras")),
            keras.saving.load_model(os.path.join(directory, "vgnet.keras")),
            LandmarkPCA.load(os.path.join(directory, "pca.npz")),
            info,
        )

    def predict_landmarks(self, mfcc_windows: np.ndarray, identity_landmarks: np.ndarray, relative: bool = True) -> np.ndarray:
        """AT-net: [T, 28, 12] windows + [68, 2] identity landmarks (crop px) -> [T, 68, 2] landmarks (crop px).

        Args:
            relative: add the predicted motion (decoded codes minus the identity's decoded code) to
                the identity's own landmarks, so the face keeps its shape; False returns the decoded
                codes as they are (the paper's form). A model trained on one speaker knows only that
                speaker's face shape, so relative is the default.
        """
        identity_code = self.pca.encode(identity_landmarks)[None]
        codes = self.atnet.predict_on_batch(
            {"mfcc_windows": np.asarray(mfcc_windows, np.float32)[None], "identity_pca_codes": identity_code}
        )["pca_codes"][0]
        if not relative:
            return self.pca.decode(codes)
        return identity_landmarks[None] + self.pca.decode(codes) - self.pca.decode(identity_code)

    def render(self, identity_frame: np.ndarray, identity_landmarks: np.ndarray, landmarks: np.ndarray) -> dict:
        """VG-net: identity crop (uint8) + landmarks (crop px) -> uint8 frames, attention and motion maps."""
        scale = 1.0 / self.crop_size
        outputs = self.vgnet.predict_on_batch({
            "identity_frame": to_unit(identity_frame)[None],
            "identity_landmarks": (identity_landmarks.reshape(1, 136) * scale).astype(np.float32),
            "landmarks": (landmarks.reshape(1, -1, 136) * scale).astype(np.float32),
        })
        return {
            "frames": to_uint8(outputs["frames"][0]),
            "attention": np.asarray(outputs["attention"][0]),
            "motion": to_uint8(outputs["motion"][0]),
        }
