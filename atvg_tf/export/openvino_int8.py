"""VG-net's step in int8 for the `openvino` runtime (`--runtime openvino --precision int8`).

The float32 export's step model, as OpenVINO reads it (`openvino_models`), is quantized by NNCF's
post-training quantization: int8 weights and activations, calibrated on the same samples as the
LiteRT int8 export (the real faces and speech shipped in the package, run through the float Keras
streaming models). Its convolutions then run on the CPU's int8 units (VNNI, AMX): the paper-size
step in 5.5 ms against 9.1 ms in bfloat16 and 10.2 ms for LiteRT's int8 model on two threads.
The quantized model is written beside the float32 one, `<export>/openvino/<network>.int8.xml`
(+ `.bin`), once; later starts only compile it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Callable

import numpy as np

from atvg_tf.errors import one_line
from atvg_tf.generation.openvino_runner import INT8_NETWORKS, OpenVINOUnavailableError, int8_model_file, openvino_models

CALIBRATION_COUNT = 128


def openvino_int8_models(export_dir: str, model_dir: str | None, progress: Callable[[str], None] | None = None,
                         count: int = CALIBRATION_COUNT) -> str:
    """`openvino_models(export_dir)` with the `INT8_NETWORKS` quantized beside them; returns that folder.

    Args:
        export_dir: the model's float32 TF-Lite export (`cached_export(model_dir, "float32")`).
        model_dir: the model folder it was made from (None: the packaged default); calibration runs its Keras networks.
        progress: told, once, when the models are quantized.
        count: calibration samples per network.
    """
    folder = openvino_models(export_dir)
    missing = [network for network in INT8_NETWORKS if not os.path.isfile(os.path.join(folder, int8_model_file(network)))]
    if not missing:
        return folder
    if progress:
        progress(f"quantizing {', '.join(missing)} to int8 for OpenVINO (once; kept in {folder})")
    try:
        import nncf
    except ImportError as error:
        raise OpenVINOUnavailableError(f"int8 on OpenVINO needs NNCF ({one_line(error)}); pip install nncf==3.4.0, "
                                       "or use --runtime litert.") from error
    import openvino as ov

    from atvg_tf.export.tflite import StreamingGraphs, calibration_samples, packaged_calibration_examples
    from atvg_tf.generation.model import TalkingFaceModel

    nncf.set_log_level(logging.ERROR)
    model = TalkingFaceModel.load(model_dir)
    samples = calibration_samples(StreamingGraphs(model), packaged_calibration_examples(model), count)
    with open(os.path.join(folder, "signatures.json")) as handle:
        signatures = json.load(handle)
    core = ov.Core()
    for network in missing:
        name = f"{network}.float32.tflite"
        tensors = {key: spec["tensor"] for key, spec in signatures[name]["inputs"].items()}
        data = [{tensors[key]: np.asarray(sample[key], np.float32) for key in tensors} for sample in samples[network]]
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
            quantized = nncf.quantize(core.read_model(os.path.join(folder, name)), nncf.Dataset(data), subset_size=len(data))
        # OpenVINO reads <name>.bin beside <name>.xml: the .xml, moved in last, means the pair is complete.
        final, partial = (os.path.join(folder, int8_model_file(network))[: -len(".xml")] + suffix for suffix in ("", ".partial"))
        ov.save_model(quantized, partial + ".xml", compress_to_fp16=False)
        os.replace(partial + ".bin", final + ".bin")
        os.replace(partial + ".xml", final + ".xml")
    return folder
