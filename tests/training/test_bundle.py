"""`atvg train` runs -> `atvg bundle` -> a model folder that `atvg generate --model` accepts."""

import json
import os

import numpy as np
import pytest

from atvg_tf.cli import main
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.model import DEFAULT_MODEL_DIR, TalkingFaceModel

pytestmark = pytest.mark.slow  # trains on `prepared_dir` (`atvg prepare`)

TINY = ["--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1", "--batch-size", "2", "--quiet"]


def _last_error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_training_runs_bundle_into_a_model_folder_that_generates(prepared_dir, shared_data, tmp_path, capsys):
    atnet_run, vgnet_run, model_dir = (str(tmp_path / name) for name in ("atnet_run", "vgnet_run", "model"))
    assert main(["train", "atnet", prepared_dir, "--output", atnet_run, *TINY]) == 0
    assert f"atvg bundle --atnet {atnet_run}" in capsys.readouterr().out  # the next step is said
    assert main(["train", "vgnet", prepared_dir, "--output", vgnet_run, *TINY]) == 0
    photo = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    speech = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    generate = ["generate", "--image", photo, "--audio", speech, "--runtime", "keras", "--quiet"]

    # A run folder is not a model folder: the error says how to make one.
    assert main([*generate, "--model", atnet_run, "--output", str(tmp_path / "x.mp4")]) == 2
    assert "atvg bundle --atnet RUN_DIR" in _last_error(capsys)
    assert main(["bundle", "--atnet", vgnet_run, "--vgnet", vgnet_run, "--output", model_dir]) == 2
    assert "is a run of `atvg train vgnet`" in _last_error(capsys) and not os.path.exists(model_dir)

    assert main(["bundle", "--atnet", atnet_run, "--vgnet", vgnet_run, "--output", model_dir]) == 0
    info = json.loads(open(os.path.join(model_dir, "training.json")).read())
    assert info["presets"]["atnet"]["lstm_units"] == 128 and info["presets"]["vgnet"]["rnn"] == "conv_lstm"
    assert info["landmark_backend"] == "mediapipe" and info["data"]["clips"]["train"] >= 1
    assert info["runs"]["atnet"]["epochs_run"] == 1 and info["runs"]["vgnet"]["checkpoint"] == "last.keras"
    model = TalkingFaceModel.load(model_dir)
    np.testing.assert_array_equal(model.pca.mean, LandmarkPCA.load(os.path.join(prepared_dir, "pca.npz")).mean)
    assert main(["bundle", "--atnet", atnet_run, "--vgnet", vgnet_run, "--output", model_dir]) == 2
    assert "exists" in _last_error(capsys)

    video = tmp_path / "talking.mp4"
    assert main([*generate, "--model", model_dir, "--output", str(video)]) == 0
    assert video.stat().st_size > 10_000

    # Either network may come from a model folder: here the packaged VG-net with the trained AT-net.
    assert main(["bundle", "--atnet", atnet_run, "--output", str(tmp_path / "mixed")]) == 0
    mixed = TalkingFaceModel.load(str(tmp_path / "mixed"))
    packaged = TalkingFaceModel.load(DEFAULT_MODEL_DIR)
    assert all(np.array_equal(a, b) for a, b in zip(mixed.vgnet.get_weights(), packaged.vgnet.get_weights()))
