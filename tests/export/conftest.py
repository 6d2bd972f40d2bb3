"""Fixtures shared by the export tests: a model folder whose AT-net hears MFCC only.

The packaged default model hears phones, so the MFCC signatures (`waveform` in the graph,
`generate_from_mfcc`) and `mfcc.tflite` are exported from this folder instead.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest


@pytest.fixture(scope="session")
def mfcc_model_dir(tmp_path_factory) -> str:
    """A fresh (seeded) `small` MFCC AT-net beside the packaged model's VG-net, PCA and training.json,
    with `inference` settings as the default model's: a motion gain and rest_on_silence (so the
    silence offset runs on MFCC of silence in the graphs too)."""
    import keras

    from atvg_tf.generation.model import DEFAULT_MODEL_DIR
    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig

    folder = tmp_path_factory.mktemp("mfcc_model")
    keras.utils.set_random_seed(1)
    build_atnet(ATNetConfig.preset("small")).save(str(folder / "atnet.keras"))  # audio_features "mfcc": the preset's default
    for name in ("vgnet.keras", "pca.npz"):
        shutil.copy(os.path.join(DEFAULT_MODEL_DIR, name), folder / name)
    with open(os.path.join(DEFAULT_MODEL_DIR, "training.json")) as handle:
        info = json.load(handle)  # its landmark backend decides the alignment, as for the default model
    info["inference"] = {"motion_gain": 1.6, "rest_on_silence": True}
    with open(folder / "training.json", "w") as handle:
        json.dump(info, handle)
    return str(folder)


@pytest.fixture(scope="session")
def mfcc_model(mfcc_model_dir):
    """The MFCC cascade as `TalkingFaceModel.load` reads `mfcc_model_dir`."""
    from atvg_tf.generation.model import TalkingFaceModel

    model = TalkingFaceModel.load(mfcc_model_dir)
    assert model.audio_inputs == ("mfcc_windows",) and model.rests_on_silence
    return model
