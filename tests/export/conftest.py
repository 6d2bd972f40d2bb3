"""Fixtures shared by the export tests: a model folder whose AT-net hears MFCC only.

It adds what the packaged MFCC model does not have: rest_on_silence and a motion gain, so the
MFCC signatures (`waveform` in the graph, `generate_from_mfcc`) and `mfcc.tflite` are checked with
the silence offset too.
"""

from __future__ import annotations

import pytest

from tests.helpers import model_folder_with


@pytest.fixture(scope="session")
def mfcc_model_dir(tmp_path_factory) -> str:
    """A fresh (seeded) `small` MFCC AT-net beside the packaged model's VG-net, PCA and training.json,
    with a motion gain and rest_on_silence (so the silence offset runs on MFCC of silence in the graphs too)."""
    import keras

    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig

    keras.utils.set_random_seed(1)
    return model_folder_with(build_atnet(ATNetConfig.preset("small")), tmp_path_factory.mktemp("mfcc_model"))


@pytest.fixture(scope="session")
def mfcc_model(mfcc_model_dir):
    """The MFCC cascade as `TalkingFaceModel.load` reads `mfcc_model_dir`."""
    from atvg_tf.generation.model import TalkingFaceModel

    model = TalkingFaceModel.load(mfcc_model_dir)
    assert model.audio_inputs == ("mfcc_windows",) and model.rests_on_silence
    return model
