"""`atvg export --format saved_model`: signatures, parity with the Keras models, saved_model_cli."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.image import to_unit
from atvg_tf.generation.model import TalkingFaceModel
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # the module's fixture runs `atvg export --format saved_model`


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The default model exported by the command, as TF-Serving would find it."""
    base = tmp_path_factory.mktemp("serving") / "atvg"
    result = subprocess.run([sys.executable, "-m", "atvg_tf.cli", "export", "--format", "saved_model", "--output", str(base)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return base


@pytest.fixture(scope="module")
def real_inputs(shared_data):
    """An aligned photo and real speech, as a client would send them."""
    from atvg_tf.generation.talking_face import TalkingFace

    with TalkingFace() as talker:
        face = talker.identity(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")).face
    waveform = load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[:48000]  # 3 s
    return {"waveform": waveform, "identity_frame": face.image, "identity_landmarks": face.landmarks.astype(np.float32)}


def _keras_reference(inputs):
    model = TalkingFaceModel.load()
    windows = mfcc_windows(inputs["waveform"])
    landmarks = model.predict_landmarks(windows, inputs["identity_landmarks"])
    outputs = model.vgnet.predict_on_batch({
        "identity_frame": to_unit(inputs["identity_frame"])[None],
        "identity_landmarks": inputs["identity_landmarks"].reshape(1, 136) / 128.0,
        "landmarks": landmarks.reshape(1, -1, 136) / 128.0,
    })
    return windows, landmarks, outputs


def test_versioned_folder_with_named_signatures(exported):
    assert os.path.isfile(exported / "1" / "saved_model.pb")
    loaded = tf.saved_model.load(str(exported / "1"))
    assert {"serving_default", "generate_from_mfcc", "landmarks"} <= set(loaded.signatures)
    serving = loaded.signatures["serving_default"]
    assert set(serving.structured_input_signature[1]) == {"waveform", "identity_frame", "identity_landmarks"}
    assert set(serving.structured_outputs) == {"frames", "attention", "landmarks"}


def test_signatures_equal_the_keras_models(exported, real_inputs):
    windows, landmarks, reference = _keras_reference(real_inputs)
    signatures = tf.saved_model.load(str(exported / "1")).signatures
    tensors = {name: tf.constant(value) for name, value in real_inputs.items()}
    served = signatures["serving_default"](**tensors)
    assert served["frames"].shape == (75, 128, 128, 3)
    np.testing.assert_allclose(served["landmarks"].numpy(), landmarks, atol=1e-4)
    np.testing.assert_allclose(served["frames"].numpy(), reference["frames"][0], atol=1e-4)
    np.testing.assert_allclose(served["attention"].numpy(), reference["attention"][0], atol=1e-4)
    from_mfcc = signatures["generate_from_mfcc"](
        mfcc_windows=tf.constant(windows), identity_frame=tensors["identity_frame"], identity_landmarks=tensors["identity_landmarks"]
    )
    np.testing.assert_allclose(from_mfcc["frames"].numpy(), reference["frames"][0], atol=1e-4)
    only = signatures["landmarks"](waveform=tensors["waveform"], identity_landmarks=tensors["identity_landmarks"])
    np.testing.assert_allclose(only["landmarks"].numpy(), landmarks, atol=1e-4)


def test_saved_model_cli_runs_the_readme_example(shared_data, exported, real_inputs, tmp_path):
    """The README's request-building command and `saved_model_cli run` command, as written there."""
    script = os.path.join(REPO, "export", "make_request.py")
    image = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    audio = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    made = subprocess.run([sys.executable, script, "--image", image, "--audio", audio, "--json", str(tmp_path / "request.json"),
                           "--npy", str(tmp_path / "inputs")], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    body = json.loads((tmp_path / "request.json").read_text())
    assert body["signature_name"] == "serving_default"
    assert np.array(body["inputs"]["identity_frame"]).shape == (128, 128, 3)
    inputs = ";".join(f"{name}={tmp_path / 'inputs' / name}.npy" for name in ("waveform", "identity_frame", "identity_landmarks"))
    command = ["saved_model_cli", "run", "--dir", str(exported / "1"), "--tag_set", "serve",
               "--signature_def", "serving_default", "--inputs", inputs, "--outdir", str(tmp_path / "outputs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    sent = {name: np.load(tmp_path / "inputs" / f"{name}.npy") for name in ("waveform", "identity_frame", "identity_landmarks")}
    _, landmarks, reference = _keras_reference(sent)
    assert np.load(tmp_path / "outputs" / "frames.npy").shape == (150, 128, 128, 3)
    np.testing.assert_allclose(np.load(tmp_path / "outputs" / "frames.npy"), reference["frames"][0], atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "outputs" / "landmarks.npy"), landmarks, atol=1e-4)


def test_an_existing_version_is_refused(exported):
    result = subprocess.run([sys.executable, "-m", "atvg_tf.cli", "export", "--output", str(exported)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 2
    assert "exists; give another --serving-version" in result.stderr.strip().splitlines()[-1]
