"""Damaged model folders: one line that names the file and says what is wrong, nothing misleading."""

import os
import shutil

import numpy as np
import pytest

from atvg_tf.errors import InputError
from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR, read_part, read_pca, read_settings


@pytest.fixture
def folder(tmp_path):
    for name in ("training.json", "pca.npz", "vgnet.keras"):
        shutil.copy(os.path.join(DEFAULT_MODEL_DIR, name), tmp_path / name)
    return tmp_path


def _error(read) -> str:
    with pytest.raises(InputError) as raised:
        read()
    message = str(raised.value)
    assert "\n" not in message and "copy it again or give another --model" in message
    return message


def test_a_damaged_keras_file_is_not_reported_as_missing(folder):
    import keras

    (folder / "vgnet.keras").write_text("garbage")
    message = _error(lambda: read_part(str(folder / "vgnet.keras"), keras.saving.load_model))
    assert str(folder / "vgnet.keras") in message and "not a .keras archive" in message
    assert "not found" not in message.lower()


def test_a_pickled_basis_is_refused_without_suggesting_allow_pickle(folder):
    np.savez(folder / "pca.npz", mean=np.array([{"code": "runs on load"}], dtype=object))
    message = _error(lambda: read_pca(str(folder)))
    assert str(folder / "pca.npz") in message and "pickled Python objects" in message
    assert "allow_pickle" not in message


def test_a_broken_training_json_is_named(folder):
    (folder / "training.json").write_text("{not json")
    message = _error(lambda: read_settings(str(folder)))
    assert str(folder / "training.json") in message and "JSONDecodeError" in message


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_a_model_folder_saves_what_it_loads(preset, tmp_path):
    """save -> load gives the same networks, basis, settings and outputs; the configurations are recorded
    (the official preset's round trip is in tests/convert/test_convert_official.py)."""
    import json

    from atvg_tf.generation.model import TalkingFaceModel, network_configs
    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig, VGNetConfig
    from atvg_tf.models.vgnet import build_vgnet
    from tests.helpers import assert_same_outputs

    if preset == "default":
        model = TalkingFaceModel.load()
    else:
        packaged = TalkingFaceModel.load()
        model = TalkingFaceModel(build_atnet(ATNetConfig.preset("paper")), build_vgnet(VGNetConfig.preset("paper")), packaged.pca,
                                 {"presets": {"atnet": "paper", "vgnet": "paper"}, "inference": {"motion_gain": 1.3}})
    model.save(str(tmp_path / "saved"))
    loaded = TalkingFaceModel.load(str(tmp_path / "saved"))
    assert_same_outputs(model, loaded)
    assert network_configs(loaded.info) == network_configs(model.info, model.atnet)
    assert loaded.landmark_space.motion_gain == model.landmark_space.motion_gain
    assert json.loads((tmp_path / "saved" / "training.json").read_text())["presets"]["vgnet"]["rnn_channels"] == (
        128 if preset == "default" else 512)
    # Saving what was loaded writes the same folder again; an existing folder is never overwritten.
    loaded.save(str(tmp_path / "again"))
    assert (tmp_path / "again" / "training.json").read_text() == (tmp_path / "saved" / "training.json").read_text()
    with pytest.raises(FileExistsError):
        loaded.save(str(tmp_path / "saved"))
