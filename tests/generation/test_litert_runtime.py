"""`atvg generate --runtime litert|openvino`: the cached TF-Lite models equal Keras within the parity
bounds, are built once per model and precision, and are loaded without TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from atvg_tf.evaluation.metrics import psnr
from atvg_tf.generation.model import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras_talker():
    from atvg_tf.generation.talking_face import TalkingFace

    with TalkingFace() as talker:
        yield talker


def _generations(talker, shared_data, gain=None):
    """The default model on Elektra.jpg + a real-world clip's speech (5 s), as the Keras runtime renders it."""
    photo = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    speech = os.path.join(shared_data, "wild", "retalking_3.mp4")
    if gain is not None:
        talker.model.landmark_space.motion_gain = gain
    return talker.generate(photo, speech)


@pytest.mark.parametrize("runtime, precision, bound_db", [("litert", "float32", 60.0), ("litert", "float16", 50.0), ("litert", "dynamic", 50.0),
                                                          ("openvino", "float32", 60.0), ("openvino", "bfloat16", 50.0),
                                                          ("openvino", "int8", 45.0)])
def test_litert_equals_keras_within_the_parity_bound(keras_talker, shared_data, runtime, precision, bound_db):
    from atvg_tf.export.litert_runtime import load_model
    from atvg_tf.generation.talking_face import TalkingFace

    expected = _generations(keras_talker, shared_data)
    with TalkingFace(load_model(runtime=runtime, precision=precision)) as talker:
        got = _generations(talker, shared_data)
    assert got.frames.shape == expected.frames.shape
    scores = {key: psnr(getattr(expected, key), getattr(got, key)) for key in ("frames", "motion")}
    print(runtime, precision, {k: round(v, 1) for k, v in scores.items()}, "landmarks", float(np.abs(got.landmarks - expected.landmarks).max()))
    assert scores["frames"] >= bound_db and scores["motion"] >= bound_db - 15.0
    assert np.abs(got.landmarks - expected.landmarks).max() < 0.5  # crop px
    assert np.abs(got.attention - expected.attention).max() < 0.1


def test_a_motion_gain_moves_litert_landmarks_as_keras(keras_talker, shared_data):
    """atnet_step has the model's gain built in; a user's gain rescales the motion before VG-net, as in Keras."""
    from atvg_tf.export.litert_runtime import load_model
    from atvg_tf.generation.talking_face import TalkingFace

    default_gain = keras_talker.model.landmark_space.motion_gain
    try:
        expected = _generations(keras_talker, shared_data, gain=1.7)
    finally:
        keras_talker.model.landmark_space.motion_gain = default_gain
    with TalkingFace(load_model(runtime="litert", precision="float32")) as talker:
        got = _generations(talker, shared_data, gain=1.7)
    assert np.abs(got.landmarks - expected.landmarks).max() < 0.5
    assert psnr(expected.frames, got.frames) >= 50.0


def test_the_export_is_built_once_and_keyed_by_the_model_files(tmp_path, monkeypatch):
    from atvg_tf.export import litert_runtime

    monkeypatch.setenv("ATVG_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    built = []
    first = litert_runtime.cached_export(str(model), "float32", progress=built.append)
    month_ago = time.time() - 40 * 86400
    os.utime(first, (month_ago, month_ago))
    again = litert_runtime.cached_export(str(model), "float32", progress=built.append)
    assert os.path.getmtime(first) > time.time() - 60  # its use is recorded
    assert first == again and len(built) == 1 and first.startswith(str(tmp_path / "cache" / "litert"))
    assert sorted(os.listdir(tmp_path / "cache" / "litert")) == [os.path.basename(first)]  # no partial folder left
    with open(os.path.join(first, "inference.json")) as handle:
        assert json.load(handle)["motion_gain"] == pytest.approx(1.0)
    # Another precision, or a changed model file, is another export.
    assert litert_runtime.export_key(str(model), "float16") != litert_runtime.export_key(str(model), "float32")
    info = json.loads((model / "training.json").read_text())
    info.setdefault("inference", {})["motion_gain"] = 1.25
    (model / "training.json").write_text(json.dumps(info))
    assert litert_runtime.export_key(str(model), "float32") != os.path.basename(first).rsplit("-", 1)[0]
    # Exports unused for 30 days (earlier versions, retrained models) are pruned; other names are not.
    cache = tmp_path / "cache" / "litert"
    for name, age_days in (("a" * 20 + "-int8", 40), ("b" * 20 + "-dynamic", 1), ("my-notes", 40)):
        (cache / name).mkdir()
        os.utime(cache / name, (time.time() - age_days * 86400,) * 2)
    assert litert_runtime.prune_litert_cache(str(cache)) == [str(cache / ("a" * 20 + "-int8"))]
    assert sorted(os.listdir(cache)) == sorted([os.path.basename(first), "b" * 20 + "-dynamic", "my-notes"])


@pytest.mark.parametrize("runtime, exports", [("litert", ("dynamic",)), ("openvino", ("dynamic", "float32"))])
def test_generate_on_litert_runs_without_tensorflow(shared_data, tmp_path, runtime, exports):
    """`atvg generate` with a warm cache writes its video in a process where importing TensorFlow
    or Keras fails: nothing on the litert or openvino path needs them (they cost seconds of start-up)."""
    from atvg_tf.export.litert_runtime import cached_export

    for precision in exports:  # openvino: VG-net from the float32 export, AT-net from the dynamic one
        cached_export(None, precision)
    output = tmp_path / "talking.mp4"
    blocker = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
        "            raise ImportError(f'{name} imported on the litert path')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from atvg_tf.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    photo = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    speech = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    result = subprocess.run([sys.executable, "-c", blocker, "generate", "--image", photo, "--audio", speech, "--output", str(output),
                             "--runtime", runtime, "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert output.stat().st_size > 10_000 and "wrote" in result.stdout


@pytest.mark.parametrize("runtime, precision, message", [
    ("keras", "int8", "--precision applies to the litert and openvino runtimes only"),
    ("litert", "bfloat16", "the litert runtime has no bfloat16 models"),
    ("openvino", "float16", "the openvino runtime runs float32, bfloat16, int8, not float16")])
def test_a_precision_the_runtime_lacks_is_refused(capsys, runtime, precision, message):
    from atvg_tf.cli import main

    code = main(["generate", "--image", "x.jpg", "--audio", "y.wav", "--output", "out.mp4", "--runtime", runtime, "--precision", precision])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and message in error


def test_a_precision_alone_picks_its_runtime():
    from atvg_tf.export.litert_runtime import resolve_runtime
    from atvg_tf.generation.openvino_runner import default_on_this_cpu

    # int8: OpenVINO's quantized VG-net step where OpenVINO is the CPU's default (x86-64), else LiteRT's int8 models.
    assert resolve_runtime("auto", "int8") == ("openvino" if default_on_this_cpu() else "litert", "int8")
    assert resolve_runtime("auto", "bfloat16") == ("openvino", "bfloat16")
    assert resolve_runtime("openvino") == ("openvino", "bfloat16")
    assert resolve_runtime("litert") == ("litert", "dynamic")
