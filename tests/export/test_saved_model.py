"""`atvg export --format saved_model`: signatures, parity with the Keras models, saved_model_cli.

The packaged default model hears phones: its signatures take the audio windows the client computes
(`model.audio_windows`), and export/README.md's example sends them. The checks of the default model
follow what it hears; the MFCC signatures (front end in the graph, `generate_from_mfcc`) are exported
from an MFCC-only model folder (`mfcc_model_dir`, tests/export/conftest.py) whatever the default is.
Both rest on silence, so parity includes the silence offset the graph computes.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.export.saved_model import signature_names
from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.image import to_unit
from atvg_tf.generation.model import TalkingFaceModel
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # the module's fixtures export SavedModels (one with `atvg export --format saved_model`)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The default model exported by the command, as TF-Serving would find it."""
    base = tmp_path_factory.mktemp("serving") / "atvg"
    result = subprocess.run([sys.executable, "-m", "atvg_tf.cli", "export", "--format", "saved_model", "--output", str(base)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return base


@pytest.fixture(scope="module")
def served(exported):
    """The default model's SavedModel, loaded once (keep the object: its signatures need it)."""
    return tf.saved_model.load(str(exported / "1"))


@pytest.fixture(scope="module")
def default_model():
    return TalkingFaceModel.load()


@pytest.fixture(scope="module")
def mfcc_exported(mfcc_model, tmp_path_factory):
    """The MFCC-only model's version folder."""
    from atvg_tf.export.saved_model import export_saved_model

    return export_saved_model(mfcc_model, str(tmp_path_factory.mktemp("mfcc_serving") / "atvg"))


@pytest.fixture(scope="module")
def mfcc_served(mfcc_exported):
    return tf.saved_model.load(mfcc_exported)


@pytest.fixture(scope="module")
def real_inputs(shared_data):
    """An aligned photo and real speech, as a client would send them."""
    from atvg_tf.generation.talking_face import TalkingFace

    with TalkingFace() as talker:
        face = talker.identity(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")).face
    waveform = load_audio(os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav"))[:48000]  # 3 s
    return {"waveform": waveform, "identity_frame": face.image, "identity_landmarks": face.landmarks.astype(np.float32)}


def _keras_reference(model, windows, identity_frame, identity_landmarks):
    """`predict_landmarks` (with the silence offset) and VG-net's outputs for them."""
    landmarks = model.predict_landmarks(windows, identity_landmarks)
    space = model.landmark_space
    outputs = model.vgnet.predict_on_batch({
        "identity_frame": to_unit(identity_frame)[None],
        "identity_landmarks": space.vgnet_identity(identity_landmarks),
        "landmarks": space.vgnet_landmarks(landmarks, identity_landmarks),
    })
    return landmarks, outputs


def _request_audio(model, waveform):
    """The audio as the model's signatures take it (as export/make_request.py sends it): the waveform
    for an AT-net that hears MFCC only, else its audio windows (the packaged model: `phone_windows`)."""
    return {"waveform": waveform} if model.audio_inputs == ("mfcc_windows",) else model.audio_windows(waveform)


def _readme_cli_inputs():
    """The input names of export/README.md's `saved_model_cli run` example."""
    with open(os.path.join(REPO, "export", "README.md")) as handle:
        match = re.search(r'saved_model_cli run [^\n]*--signature_def serving_default \\\n\s*--inputs "([^"]+)"', handle.read())
    assert match, "export/README.md has no `saved_model_cli run ... --inputs` example"
    return [item.split("=")[0] for item in match.group(1).split(";")]


def _assert_offset_matters(model, identity_landmarks):
    """The silence offset is far above the parity tolerance, so parity shows the graph subtracts it."""
    offset = model.silence_offset(identity_landmarks)
    assert np.abs(offset).max() > 1e-2, offset


def test_versioned_folder_with_named_signatures(exported, served, default_model, mfcc_served, mfcc_model):
    assert os.path.isfile(exported / "1" / "saved_model.pb")
    # The packaged model hears phones: its signatures take the client's audio windows.
    audio = set(_request_audio(default_model, np.zeros(6400, np.float32)))
    signatures = served.signatures
    assert set(signatures) == set(signature_names(default_model))
    serving = signatures["serving_default"]
    assert set(serving.structured_input_signature[1]) == audio | {"identity_frame", "identity_landmarks"}
    if "phone_windows" in audio:
        assert serving.structured_input_signature[1]["phone_windows"].shape.as_list() == [None, 28, 40]
    assert set(serving.structured_outputs) == {"frames", "attention", "landmarks"}
    assert set(signatures["landmarks"].structured_input_signature[1]) == audio | {"identity_landmarks"}
    # An MFCC-only model keeps the front end in the graph.
    signatures = mfcc_served.signatures
    assert set(signatures) == set(signature_names(mfcc_model)) == {"serving_default", "generate_from_mfcc", "landmarks"}
    inputs = {name: set(signature.structured_input_signature[1]) for name, signature in signatures.items()}
    assert inputs == {"serving_default": {"waveform", "identity_frame", "identity_landmarks"},
                      "generate_from_mfcc": {"mfcc_windows", "identity_frame", "identity_landmarks"},
                      "landmarks": {"waveform", "identity_landmarks"}}
    assert set(signatures["serving_default"].structured_outputs) == {"frames", "attention", "landmarks"}


def test_signatures_equal_the_keras_models(served, default_model, real_inputs):
    frame, marks = real_inputs["identity_frame"], real_inputs["identity_landmarks"]
    if default_model.rests_on_silence:  # the packaged model does
        _assert_offset_matters(default_model, marks)
    landmarks, reference = _keras_reference(default_model, default_model.audio_windows(real_inputs["waveform"]), frame, marks)
    signatures = served.signatures
    audio = {name: tf.constant(value) for name, value in _request_audio(default_model, real_inputs["waveform"]).items()}
    out = signatures["serving_default"](**audio, identity_frame=tf.constant(frame), identity_landmarks=tf.constant(marks))
    assert out["frames"].shape == (75, 128, 128, 3)
    np.testing.assert_allclose(out["landmarks"].numpy(), landmarks, atol=1e-4)
    np.testing.assert_allclose(out["frames"].numpy(), reference["frames"][0], atol=1e-4)
    np.testing.assert_allclose(out["attention"].numpy(), reference["attention"][0], atol=1e-4)
    only = signatures["landmarks"](**audio, identity_landmarks=tf.constant(marks))
    np.testing.assert_allclose(only["landmarks"].numpy(), landmarks, atol=1e-4)


def test_mfcc_signatures_equal_the_keras_models(mfcc_served, mfcc_model, real_inputs):
    """The waveform signatures (MFCC front end in the graph), `generate_from_mfcc` and `landmarks`,
    with the motion gain and the silence offset computed in the graph."""
    frame, marks = real_inputs["identity_frame"], real_inputs["identity_landmarks"]
    _assert_offset_matters(mfcc_model, marks)
    assert mfcc_model.landmark_space.motion_gain == 1.6
    windows = mfcc_windows(real_inputs["waveform"])
    landmarks, reference = _keras_reference(mfcc_model, windows, frame, marks)
    signatures = mfcc_served.signatures
    tensors = {name: tf.constant(value) for name, value in real_inputs.items()}
    out = signatures["serving_default"](**tensors)
    assert out["frames"].shape == (75, 128, 128, 3)
    np.testing.assert_allclose(out["landmarks"].numpy(), landmarks, atol=1e-4)
    np.testing.assert_allclose(out["frames"].numpy(), reference["frames"][0], atol=1e-4)
    np.testing.assert_allclose(out["attention"].numpy(), reference["attention"][0], atol=1e-4)
    from_mfcc = signatures["generate_from_mfcc"](
        mfcc_windows=tf.constant(windows), identity_frame=tensors["identity_frame"], identity_landmarks=tensors["identity_landmarks"]
    )
    np.testing.assert_allclose(from_mfcc["landmarks"].numpy(), landmarks, atol=1e-4)
    np.testing.assert_allclose(from_mfcc["frames"].numpy(), reference["frames"][0], atol=1e-4)
    only = signatures["landmarks"](waveform=tensors["waveform"], identity_landmarks=tensors["identity_landmarks"])
    np.testing.assert_allclose(only["landmarks"].numpy(), landmarks, atol=1e-4)


def test_saved_model_cli_runs_the_readme_example(shared_data, exported, served, default_model, tmp_path):
    """The README's request-building command and `saved_model_cli run` command, as written there
    (for the packaged model the request carries its phone windows)."""
    script = os.path.join(REPO, "export", "make_request.py")
    image = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    audio = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    made = subprocess.run([sys.executable, script, "--image", image, "--audio", audio, "--json", str(tmp_path / "request.json"),
                           "--npy", str(tmp_path / "inputs")], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    names = _readme_cli_inputs()
    serving = served.signatures["serving_default"]
    assert set(serving.structured_input_signature[1]) == set(names)  # the README's example fits the packaged model
    body = json.loads((tmp_path / "request.json").read_text())
    assert body["signature_name"] == "serving_default"
    assert set(body["inputs"]) == set(names)
    assert np.array(body["inputs"]["identity_frame"]).shape == (128, 128, 3)
    assert sorted(os.listdir(tmp_path / "inputs")) == sorted(f"{name}.npy" for name in names)
    inputs = ";".join(f"{name}={tmp_path / 'inputs' / name}.npy" for name in names)
    command = ["saved_model_cli", "run", "--dir", str(exported / "1"), "--tag_set", "serve",
               "--signature_def", "serving_default", "--inputs", inputs, "--outdir", str(tmp_path / "outputs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    sent = {name: np.load(tmp_path / "inputs" / f"{name}.npy") for name in names}
    waveform = load_audio(audio)
    for name, value in _request_audio(default_model, waveform).items():
        np.testing.assert_array_equal(sent[name], value)
    landmarks, reference = _keras_reference(default_model, default_model.audio_windows(waveform), sent["identity_frame"], sent["identity_landmarks"])
    assert np.load(tmp_path / "outputs" / "frames.npy").shape == (150, 128, 128, 3)
    np.testing.assert_allclose(np.load(tmp_path / "outputs" / "frames.npy"), reference["frames"][0], atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "outputs" / "landmarks.npy"), landmarks, atol=1e-4)


def test_make_request_sends_the_waveform_to_an_mfcc_model(shared_data, mfcc_served, mfcc_model, mfcc_model_dir):
    """make_request.py --model MODEL_DIR for a model that hears MFCC only: the request is the waveform,
    and serving_default on it gives the Keras models' frames."""
    spec = importlib.util.spec_from_file_location("make_request", os.path.join(REPO, "export", "make_request.py"))
    make_request = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_request)
    audio = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    inputs = make_request.request_inputs(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"), audio, mfcc_model_dir)
    assert set(inputs) == {"waveform", "identity_frame", "identity_landmarks"}
    np.testing.assert_array_equal(inputs["waveform"], load_audio(audio))
    inputs["waveform"] = inputs["waveform"][:32000]  # 2 s are enough here
    outputs = mfcc_served.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    landmarks, reference = _keras_reference(mfcc_model, mfcc_windows(inputs["waveform"]), inputs["identity_frame"], inputs["identity_landmarks"])
    assert outputs["frames"].shape == (50, 128, 128, 3)
    np.testing.assert_allclose(outputs["landmarks"].numpy(), landmarks, atol=1e-4)
    np.testing.assert_allclose(outputs["frames"].numpy(), reference["frames"][0], atol=1e-4)


def test_an_existing_version_is_refused(exported):
    result = subprocess.run([sys.executable, "-m", "atvg_tf.cli", "export", "--output", str(exported)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 2
    assert "exists; give another --serving-version" in result.stderr.strip().splitlines()[-1]
