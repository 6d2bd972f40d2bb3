"""The `openvino` runtime's models (VG-net and its identity encoder): the TF-Lite export with its
fused TRANSPOSE_CONV activations unfused computes the same function, OpenVINO then computes what
LiteRT does, a model it computes differently is caught, and `auto` then uses litert."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def float32_export():
    from atvg_tf.export.litert_runtime import cached_export

    return cached_export(None, "float32")


def _random_inputs(runner) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.uniform(-0.5, 0.5, detail["shape"]).astype(detail["dtype"]) for name, detail in runner.get_input_details().items()}


def _fused_transpose_convs(model_bytes: bytes) -> int:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    return sum(1 for op in model.subgraphs[0].operators
               if max(model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
               == schema.BuiltinOperator.TRANSPOSE_CONV and op.builtinOptions.fusedActivationFunction)


def test_unfused_transpose_convs_compute_the_same_frames(float32_export):
    from ai_edge_litert.interpreter import Interpreter

    from atvg_tf.generation.openvino_runner import unfused_transpose_convs

    with open(os.path.join(float32_export, "vgnet_step.float32.tflite"), "rb") as handle:
        original = handle.read()
    patched = unfused_transpose_convs(original)
    assert _fused_transpose_convs(original) == 6 and _fused_transpose_convs(patched) == 0  # VG-net's six up-samplings
    before = Interpreter(model_content=original).get_signature_runner("serving_default")
    after = Interpreter(model_content=patched).get_signature_runner("serving_default")
    inputs = _random_inputs(before)
    expected, got = before(**inputs), after(**inputs)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    assert unfused_transpose_convs(patched) == patched  # nothing left to change


@pytest.mark.parametrize("network", ["identity_encoder", "vgnet_step"])
def test_openvino_float32_computes_what_litert_does(float32_export, network):
    from ai_edge_litert.interpreter import Interpreter

    from atvg_tf.generation.openvino_runner import OpenVINORunner, openvino_models

    name = f"{network}.float32.tflite"
    litert = Interpreter(model_path=os.path.join(float32_export, name)).get_signature_runner("serving_default")
    openvino = OpenVINORunner(openvino_models(float32_export), name, threads=1, bfloat16=False)
    assert openvino.precision == "f32"
    inputs = _random_inputs(litert)
    expected, got = litert(**inputs), openvino(**inputs)
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key].shape == expected[key].shape
        np.testing.assert_allclose(got[key], expected[key], atol=1e-4, rtol=1e-4, err_msg=f"{network}: {key}")


def test_the_check_catches_a_model_openvino_reads_wrongly(float32_export, tmp_path):
    """Unpatched, VG-net's fused up-sampling ReLUs are lost by OpenVINO's TF-Lite reader: the
    check run when a folder is prepared sees it (and `auto` then falls back to litert)."""
    import json
    import shutil

    from ai_edge_litert.interpreter import Interpreter

    from atvg_tf.generation.openvino_runner import OpenVINORunner, _first_difference, openvino_models

    name = "vgnet_step.float32.tflite"
    folder = tmp_path / "openvino"
    shutil.copytree(openvino_models(float32_export), folder, ignore=shutil.ignore_patterns("cache"))
    shutil.copy(os.path.join(float32_export, name), folder / name)  # the model as exported, activations fused
    litert = Interpreter(model_path=os.path.join(float32_export, name)).get_signature_runner("serving_default")
    assert _first_difference(litert, OpenVINORunner(str(folder), name, threads=1, bfloat16=False)) in ("frame", "attention", "motion")
    assert _first_difference(litert, OpenVINORunner(openvino_models(float32_export), name, threads=1, bfloat16=False)) is None
    signatures = json.loads((folder / "signatures.json").read_text())
    assert "mismatch" not in signatures and set(signatures) == {name, "identity_encoder.float32.tflite"}


def test_auto_falls_back_to_litert_when_openvino_computes_a_model_differently(monkeypatch, caplog):
    from atvg_tf.errors import InputError
    from atvg_tf.export import litert_runtime
    from atvg_tf.generation import openvino_runner

    def mismatch(export_dir):
        raise openvino_runner.OpenVINOMismatchError(f"OpenVINO computes vgnet_step.float32.tflite's frame of {export_dir} "
                                                    "differently from LiteRT; use --runtime litert.")

    monkeypatch.setattr(openvino_runner, "openvino_models", mismatch)
    monkeypatch.setattr(litert_runtime, "default_runtime", lambda model_dir=None: "openvino")
    model = litert_runtime.load_model(runtime="auto")
    assert model.runtime == "litert" and model.precision == "dynamic"
    assert "differently from LiteRT; running the model on litert instead" in caplog.text
    with pytest.raises(InputError, match="use --runtime litert"):
        litert_runtime.load_model(runtime="openvino")


def test_auto_falls_back_to_litert_where_openvino_cannot_start(monkeypatch, caplog):
    import builtins

    from atvg_tf.errors import InputError
    from atvg_tf.export import litert_runtime
    from atvg_tf.generation import openvino_runner

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("libopenvino.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    monkeypatch.setattr(openvino_runner, "_CORE", None)
    monkeypatch.setattr(litert_runtime, "default_runtime", lambda model_dir=None: "openvino")
    model = litert_runtime.load_model(runtime="auto")
    assert model.runtime == "litert"
    assert "OpenVINO cannot run here (libopenvino.so: cannot open shared object file); running the model on litert" in caplog.text
    with pytest.raises(InputError, match="pip install openvino==2026.4.1, or use --runtime litert"):
        litert_runtime.load_model(runtime="openvino")


def test_auto_runs_a_small_vgnet_on_openvino_and_a_paper_size_one_on_litert(monkeypatch, tmp_path):
    from atvg_tf.export import litert_runtime
    from atvg_tf.generation import openvino_runner

    monkeypatch.setattr(openvino_runner, "default_on_this_cpu", lambda: True)
    large = tmp_path / "paper"
    large.mkdir()
    with open(large / "vgnet.keras", "wb") as handle:  # sparse: the size is what counts
        handle.truncate(litert_runtime.OPENVINO_UP_TO_BYTES + 1)
    assert litert_runtime.resolve_runtime("auto") == ("openvino", "bfloat16")  # the packaged model
    assert litert_runtime.resolve_runtime("auto", model_dir=str(large)) == ("litert", "dynamic")
    monkeypatch.setattr(openvino_runner, "default_on_this_cpu", lambda: False)
    assert litert_runtime.resolve_runtime("auto") == ("litert", "dynamic")
