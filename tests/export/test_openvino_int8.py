"""`--runtime openvino --precision int8`: VG-net's step is quantized by NNCF once, beside the float32
model OpenVINO reads, and a machine without NNCF gets a one-line error. (Its frames against Keras:
tests/generation/test_litert_runtime.py.)"""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture()
def float32_export_copy(tmp_path):
    """A private copy of the packaged model's float32 export, without its OpenVINO folder."""
    from atvg_tf.export.litert_runtime import cached_export

    copy = tmp_path / "export"
    shutil.copytree(cached_export(None, "float32"), copy, ignore=shutil.ignore_patterns("openvino"))
    return str(copy)


def test_the_int8_step_is_quantized_once_and_runs(float32_export_copy):
    import numpy as np

    from atvg_tf.export.openvino_int8 import openvino_int8_models
    from atvg_tf.generation.openvino_runner import OpenVINORunner, int8_model_file

    told = []
    folder = openvino_int8_models(float32_export_copy, None, progress=told.append)
    assert folder == os.path.join(float32_export_copy, "openvino") and len(told) == 1 and "vgnet_step" in told[0]
    path = os.path.join(folder, int8_model_file("vgnet_step"))
    with open(path) as handle:
        assert handle.read().count('type="FakeQuantize"') >= 10  # the convolutions' inputs are quantized
    assert os.path.isfile(path[: -len(".xml")] + ".bin") and not [n for n in os.listdir(folder) if "partial" in n or n.endswith(".tmp")]
    assert openvino_int8_models(float32_export_copy, None, progress=told.append) == folder and len(told) == 1  # kept
    runner = OpenVINORunner(folder, "vgnet_step.float32.tflite", threads=1, bfloat16=True, model_file=int8_model_file("vgnet_step"))
    rng = np.random.default_rng(0)
    outputs = runner(**{name: rng.uniform(-0.5, 0.5, d["shape"]).astype(d["dtype"]) for name, d in runner.get_input_details().items()})
    assert outputs.keys() == runner.get_output_details().keys() and all(np.isfinite(v).all() for v in outputs.values())


def test_without_nncf_int8_on_openvino_is_refused_in_one_line(float32_export_copy, monkeypatch):
    import builtins

    from atvg_tf.export.openvino_int8 import openvino_int8_models
    from atvg_tf.generation.openvino_runner import OpenVINOUnavailableError

    real_import = builtins.__import__

    def no_nncf(name, *args, **kwargs):
        if name == "nncf" or name.startswith("nncf."):
            raise ImportError("No module named 'nncf'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nncf)
    with pytest.raises(OpenVINOUnavailableError, match=r"needs NNCF \(No module named 'nncf'\); pip install nncf==3.4.0, or use --runtime litert"):
        openvino_int8_models(float32_export_copy, None)
