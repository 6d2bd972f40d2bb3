"""TF-Lite step models run by OpenVINO, for the `openvino` runtime of `atvg generate`.

OpenVINO reads the same cached TF-Lite export the `litert` runtime runs (its float32 variant) and
compiles it for the CPU with oneDNN, in bfloat16 where the CPU computes it natively (AMX or
AVX512-BF16) and float32 elsewhere. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import platform
import sys

import numpy as np

from atvg_tf.errors import InputError, one_line
from atvg_tf.utils.files import atomic_folder

# TF-Lite's fused activations (ActivationFunctionType) -> the op that applies each on its own.
_ACTIVATION_OPS = {1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}


def openvino_available() -> bool:
    """True when the `openvino` package can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def native_bfloat16() -> bool:
    """True when this machine's CPU computes bfloat16 natively (OpenVINO's CPU plugin reports `BF16`)."""
    return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def default_on_this_cpu() -> bool:
    """Whether `auto` picks OpenVINO: installed, on an x86-64 CPU (measured there, README)."""
    return platform.machine().lower() in ("x86_64", "amd64") and openvino_available()


class OpenVINOMismatchError(InputError):
    """OpenVINO computes one of an export's models differently from LiteRT."""


class OpenVINOUnavailableError(InputError):
    """The openvino package is missing or cannot start on this machine."""


_CORE = None


def _core():
    global _CORE
    if _CORE is None:
        try:
            import openvino

            _CORE = openvino.Core()
        except (ImportError, RuntimeError) as error:  # not installed, or its libraries do not load here
            raise OpenVINOUnavailableError(f"OpenVINO cannot run here ({one_line(error)}); pip install openvino==2026.4.1, "
                                           "or use --runtime litert.") from error
    return _CORE


def unfused_transpose_convs(model_bytes: bytes) -> bytes:
    """A TF-Lite model with each TRANSPOSE_CONV's fused activation moved into an op of its own.

    OpenVINO's TF-Lite reader (2026.4) drops the activation fused into TRANSPOSE_CONV (the
    converter fuses VG-net's up-sampling ReLUs into it), which changes every frame; as separate
    ops it reads them. The result computes the same function.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)

    def opcode(builtin: int) -> int:
        for index, code in enumerate(model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    transpose_conv = schema.BuiltinOperator.TRANSPOSE_CONV
    changed = False
    for subgraph in model.subgraphs:
        operators = []
        for op in subgraph.operators:
            operators.append(op)
            code = model.operatorCodes[op.opcodeIndex]
            activation = getattr(op.builtinOptions, "fusedActivationFunction", 0)
            if max(code.builtinCode, code.deprecatedBuiltinCode) != transpose_conv or not activation:
                continue
            if activation not in _ACTIVATION_OPS:
                raise ValueError(f"unexpected fused activation {activation} on a TRANSPOSE_CONV.")
            output = subgraph.tensors[op.outputs[0]]
            before = schema.TensorT()
            before.shape, before.type, before.buffer = output.shape, output.type, 0
            before.shapeSignature = output.shapeSignature
            before.name = (output.name or b"") + b"/before_activation"
            subgraph.tensors.append(before)
            activation_op = schema.OperatorT()
            activation_op.opcodeIndex = opcode(getattr(schema.BuiltinOperator, _ACTIVATION_OPS[activation]))
            activation_op.inputs, activation_op.outputs = [len(subgraph.tensors) - 1], [op.outputs[0]]
            op.outputs = [len(subgraph.tensors) - 1]
            op.builtinOptions.fusedActivationFunction = 0
            operators.append(activation_op)
            changed = True
        subgraph.operators = operators
    if not changed:
        return model_bytes
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def openvino_models(export_dir: str) -> str:
    """The export's TF-Lite models as OpenVINO reads them (`unfused_transpose_convs`), with their
    signatures (`signatures.json`), in `export_dir/openvino/`: written once, then only read, so a
    later start parses and patches nothing. (OpenVINO's own cache of compiled models is not used:
    for the paper-size VG-net it wrote 239 MB and loaded in 1.3 s, against 0.9 s to compile.)

    When they are written, each model is run once by LiteRT and by OpenVINO (float32) on the same
    random inputs; their outputs must agree (`_first_difference`), or the folder records which did not.

    Raises:
        OpenVINOMismatchError: a model's outputs differ (an operation OpenVINO's TF-Lite reader
            gets wrong): use the litert runtime for this model.
    """
    folder = os.path.join(export_dir, "openvino")
    if not os.path.isfile(os.path.join(folder, "signatures.json")):
        _write_openvino_models(export_dir, folder)
    with open(os.path.join(folder, "signatures.json")) as handle:
        mismatch = json.load(handle).get("mismatch")
    if mismatch:
        raise OpenVINOMismatchError(f"OpenVINO computes {mismatch} of {export_dir} differently from LiteRT; use --runtime litert.")
    return folder


def _first_difference(litert_runner, openvino_runner) -> str | None:
    """None when both give the same outputs (to 1e-3) for random inputs, else the first output that differs."""
    rng = np.random.default_rng(0)
    inputs = {name: rng.uniform(-0.5, 0.5, detail["shape"]).astype(detail["dtype"]) for name, detail in litert_runner.get_input_details().items()}
    expected, got = litert_runner(**inputs), openvino_runner(**inputs)
    for name, value in expected.items():
        if not np.allclose(got[name], value, atol=1e-3, rtol=1e-3):
            return name
    return None


def _write_openvino_models(export_dir: str, folder: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    signatures, litert_runners = {}, {}
    try:
        with atomic_folder(folder) as partial:
            for name in (f"{network}.float32.tflite" for network in OPENVINO_NETWORKS):
                with open(os.path.join(export_dir, name), "rb") as handle:
                    model_bytes = unfused_transpose_convs(handle.read())
                with open(os.path.join(partial, name), "wb") as handle:
                    handle.write(model_bytes)
                reader = Interpreter(model_content=model_bytes)
                litert_runners[name] = runner = reader.get_signature_runner("serving_default")
                tensors = reader._get_full_signature_list()["serving_default"]  # signature name -> tensor index
                signatures[name] = {
                    part: {key: {"tensor": reader._get_tensor_details(index, 0)["name"],
                                 "shape": [int(v) for v in details[key]["shape"]], "dtype": np.dtype(details[key]["dtype"]).name}
                           for key, index in tensors[part].items()}
                    for part, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details()))}
            path = os.path.join(partial, "signatures.json")
            with open(path, "w") as handle:  # OpenVINORunner reads it
                json.dump(signatures, handle, indent=1)
            for name, litert_runner in litert_runners.items():
                differs = _first_difference(litert_runner, OpenVINORunner(partial, name, threads=1, bfloat16=False))
                if differs:
                    with open(path, "w") as handle:
                        json.dump({**signatures, "mismatch": f"{name}'s {differs}"}, handle, indent=1)
                    break
    except OSError:
        if not os.path.isfile(os.path.join(folder, "signatures.json")):  # not another run that finished first
            raise


class OpenVINORunner:
    """One TF-Lite model's `serving_default` signature compiled by OpenVINO, called like LiteRT's
    signature runner: `runner(**inputs) -> {output name: array}`.

    Compiling starts in a thread at once (0.1 s for the default VG-net, 0.9 s for the paper size),
    so that it overlaps finding the face and decoding the speech; the first call waits for it.

    Args:
        folder: `openvino_models(export_dir)`.
        name: the model's file name there (`vgnet_step.float32.tflite`).
        threads: CPU threads for its inference.
        bfloat16: compute in bfloat16 where the CPU does so natively (float32 elsewhere).
        model_file: compile this file of `folder` instead, a model with `name`'s inputs and outputs
            (`int8_model_file`).
    """

    compiles_in_background = True  # `LiteTalkingFace.warm_up` leaves it alone

    def __init__(self, folder: str, name: str, threads: int, bfloat16: bool, model_file: str | None = None):
        from concurrent.futures import ThreadPoolExecutor

        with open(os.path.join(folder, "signatures.json")) as handle:
            signature = json.load(handle)[name]
        self._details = {part: {key: {"shape": np.array(spec["shape"]), "dtype": np.dtype(spec["dtype"])} for key, spec in specs.items()}
                         for part, specs in signature.items()}
        self._by_tensor = {part: {spec["tensor"]: key for key, spec in specs.items()} for part, specs in signature.items()}
        config = {"INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "bf16" if bfloat16 and native_bfloat16() else "f32"}
        compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atvg-openvino")
        self._compiling = compiler.submit(_core().compile_model, os.path.join(folder, model_file or name), "CPU", config)
        compiler.shutdown(wait=False)
        self._request = None
        self._tensor = sys.modules["openvino"].Tensor  # imported by `_core`; looked up once, not per frame

    @property
    def precision(self) -> str:
        """What OpenVINO computes in: `bf16` or `f32`."""
        return self._compiling.result().get_property("INFERENCE_PRECISION_HINT").to_string()

    def get_input_details(self) -> dict:
        return self._details["inputs"]

    def get_output_details(self) -> dict:
        return self._details["outputs"]

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        if self._request is None:
            compiled = self._compiling.result()
            self._inputs = [(self._by_tensor["inputs"][port.get_any_name()], port) for port in compiled.inputs]
            self._outputs = [(next(self._by_tensor["outputs"][n] for n in port.get_names() if n in self._by_tensor["outputs"]), port)
                             for port in compiled.outputs]
            self._request = compiled.create_infer_request()
        for name, port in self._inputs:
            array = np.ascontiguousarray(inputs[name], self._details["inputs"][name]["dtype"])
            self._request.set_tensor(port, self._tensor(array))
        self._request.infer()
        return {name: self._request.get_tensor(port).data.copy() for name, port in self._outputs}


# The networks OpenVINO runs: the convolutional ones, where oneDNN (and bfloat16 on AMX) gains most.
# AT-net, a recurrent network whose step is bound by reading its weights, is faster on LiteRT with
# int8 weights (the paper size: 1.6 ms against 13.6 ms float32 and 4.2 ms bfloat16 on OpenVINO).
OPENVINO_NETWORKS = ("identity_encoder", "vgnet_step")
# The networks `--precision int8` quantizes (`export.openvino_int8`): the per-frame one; the identity
# encoder runs once per photo.
INT8_NETWORKS = ("vgnet_step",)


def int8_model_file(network: str) -> str:
    """The file name of a network's int8 OpenVINO model in `openvino_models`'s folder."""
    return f"{network}.int8.xml"


def openvino_runner_factory(export_dir: str, precision: str, threads: int):
    """`LiteTalkingFace`'s `runner` for the `openvino` runtime: the export's `OPENVINO_NETWORKS`,
    compiling in the background; None for the others, which LiteRT runs.

    Args:
        export_dir: the model's float32 TF-Lite export.
        precision: float32; bfloat16 (where the CPU computes it natively); int8: the `INT8_NETWORKS`
            quantized (`export.openvino_int8.openvino_int8_models`, which must have run), the rest as bfloat16.
    """
    folder = openvino_models(export_dir)
    runners = {network: OpenVINORunner(folder, f"{network}.float32.tflite", threads, precision != "float32",
                                       int8_model_file(network) if precision == "int8" and network in INT8_NETWORKS else None)
               for network in OPENVINO_NETWORKS}
    return runners.get
