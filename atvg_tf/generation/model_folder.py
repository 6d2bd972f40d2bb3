"""What a model folder says besides its networks: its settings (`training.json`) and landmark space.

TensorFlow-free, so that both runtimes read a model folder the same way: Keras
(`TalkingFaceModel`) and LiteRT (`LiteRTModel`, which never imports TensorFlow).
"""

from __future__ import annotations

import json
import os
import zipfile

from atvg_tf.errors import InputError
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.landmark_space import OFFICIAL_FILE, CropLandmarks, OfficialLandmarks

DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "default_model")
MODEL_FILES = ("atnet.keras", "vgnet.keras", "pca.npz")
INFO_FILE = "training.json"


class ModelSettings:
    """The inference-relevant parts of `training.json` (an empty dict for a model without one).

    Args:
        info: the parsed `training.json`.
    """

    def __init__(self, info: dict | None = None):
        self.info = info or {}

    @property
    def landmark_backend(self) -> str:
        """The landmark detector the model was trained with, so photos and clips are aligned as its
        training data: dlib for converted official models, else what `atvg prepare` used."""
        return self.info.get("landmark_backend") or self.info.get("data", {}).get("landmarks") or "mediapipe"

    @property
    def inference(self) -> dict:
        """`inference` settings (`motion_gain`, `mouth_from_basis`, `rest_on_silence`,
        `hybrid_motion_gain`, `motion_level`, `mfcc_normalization`); converted
        official models describe their convention there in words instead, which sets nothing."""
        settings = self.info.get("inference")
        return settings if isinstance(settings, dict) else {}

    @property
    def hybrid_motion_gain(self) -> float:
        """Factor on the vertical motion the hybrid renderer gives the photo, after the motion level
        (default 1): the packaged model's 1.2 makes good what the rendered mouth loses of the placed opening
        (`training/train_default_model.py`, EMBEDDING_HEAD_HYBRID_GAIN)."""
        return float(self.inference.get("hybrid_motion_gain", 1.0))

    @property
    def motion_level(self) -> dict | None:
        """The hybrid renderer's motion level (`rendering.motion_level.MotionLevel.from_config`: the
        spread of the predicted inner lips on the training speech), or None: the motion as predicted."""
        return self.inference.get("motion_level") or None

    @property
    def mfcc_normalization(self) -> dict | None:
        """The voice normalisation of the MFCC windows (`frontend.mfcc_normalization.MfccNormalizer`
        config: the training speech's statistics), or None: AT-net hears raw MFCC, as in the paper."""
        return self.inference.get("mfcc_normalization") or None

    @property
    def rests_on_silence(self) -> bool:
        """Whether silence gives the photo's own mouth (`TalkingFaceModel.silence_offset`)."""
        return bool(self.inference.get("rest_on_silence", False))

    def landmark_space(self, directory: str | None, pca: LandmarkPCA, crop_size: int) -> CropLandmarks:
        """The folder's landmark convention: the release's when it holds `official.npz`, else this project's."""
        official = os.path.join(directory, OFFICIAL_FILE) if directory else None
        if official and os.path.isfile(official):
            return read_part(official, lambda path: OfficialLandmarks.load(path, pca, crop_size))
        return CropLandmarks(pca, crop_size, self.inference.get("motion_gain", 1.0), self.inference.get("mouth_from_basis", False))


def check_model_folder(directory: str) -> None:
    """Raises an `InputError` naming what is missing when `directory` is not a model folder."""
    missing = [name for name in MODEL_FILES if not os.path.isfile(os.path.join(directory, name))]
    if missing and os.path.isfile(os.path.join(directory, "train_config.json")):
        raise InputError(f"{directory} is a training run, not a model folder; make one with "
                         f"`atvg bundle --atnet RUN_DIR --vgnet RUN_DIR --output MODEL_DIR` and pass that to --model.")
    if missing:
        raise InputError(
            f"{directory} is not a model folder (missing {', '.join(missing)}); pass --model with a folder written by "
            f"`atvg bundle`, `atvg finetune` or `atvg convert-official`."
        )


def read_settings(directory: str) -> ModelSettings:
    """A model folder's `training.json` (empty settings when it has none)."""
    path = os.path.join(directory, INFO_FILE)
    return ModelSettings(read_part(path, _read_json) if os.path.isfile(path) else {})


def read_pca(directory: str) -> LandmarkPCA:
    return read_part(os.path.join(directory, "pca.npz"), LandmarkPCA.load)


def read_part(path: str, read):
    """Reads one file of a model folder; a damaged or foreign file is an `InputError` naming it.

    Keras reads `.keras` files in safe mode (no code from the file runs) and numpy without pickle.
    """
    try:
        if path.endswith(".keras") and os.path.isfile(path) and not zipfile.is_zipfile(path):
            raise ValueError("not a .keras archive (a zip file)")  # Keras itself says "File not found"
        return read(path)
    except Exception as error:  # each reader raises its own types for a damaged file
        raise InputError(
            f"cannot read {path} ({_why(error)}); "
            f"the model folder is damaged or was not written by atvg: copy it again or give another --model."
        ) from error


def _why(error: Exception) -> str:
    """The reader's complaint, without advice that would mislead here."""
    message = str(error).splitlines()[0][:200] if str(error) else "no details"
    if "allow_pickle" in message:  # numpy suggests allowing pickles: never for a file from a user
        message = "it holds pickled Python objects, which atvg never loads"
    return f"{error.__class__.__name__}: {message}"


def _read_json(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)
