"""Which runtime runs a model's networks in `atvg generate`: Keras, or LiteRT or OpenVINO on its cached TF-Lite export.

    from atvg_tf.export.litert_runtime import load_model
    from atvg_tf.generation.talking_face import TalkingFace
    with TalkingFace(load_model(runtime="litert", precision="dynamic")) as talker:
        talker.write_video("face.jpg", "talk.mp3", "out.mp4")

The TF-Lite models of a model folder are built by `export_tflite` on first use and kept in the user
cache (`$ATVG_CACHE_DIR`, else `~/.cache/atvg_tf/litert/`), one folder per (model files, precision,
library versions, export code): a later run finds them and never imports TensorFlow for them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
import shutil
import time
from collections.abc import Callable

from atvg_tf import __version__
from atvg_tf.errors import InputError
from atvg_tf.frontend.face.assets import cache_dir
from atvg_tf.generation.landmark_space import OFFICIAL_FILE
from atvg_tf.generation.litert_model import LiteRTModel
from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR, MODEL_FILES, check_model_folder
from atvg_tf.utils.files import atomic_folder, sha256_file

RUNTIMES = ("auto", "keras", "litert", "openvino")
PRECISIONS = ("float32", "float16", "dynamic", "int8")
OPENVINO_PRECISIONS = ("float32", "bfloat16", "int8")
# The fastest variant within the parity bound with Keras (>= 50 dB PSNR on the frames, README);
# int8 is faster still but only on request (it is further from Keras).
DEFAULT_PRECISION = "dynamic"
# bfloat16 VG-net frames stay within that bound too (>= 50 dB against Keras, tests) where the CPU computes
# it natively; where it does not, OpenVINO computes float32.
DEFAULT_OPENVINO_PRECISION = "bfloat16"
# What the TF-Lite models are made of besides the model files: the code that writes the graphs.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXPORT_CODE = ("export", "models", os.path.join("generation", "landmark_space.py"), os.path.join("frontend", "audio.py"))
# (openvino: the export folder keeps OpenVINO's rewritten models and whether it computes them as LiteRT does.)
_VERSIONED = ("tensorflow", "keras", "ai-edge-litert", "openvino", "nncf")
UNUSED_DAYS = 30.0
# `auto` runs VG-nets up to this size (vgnet.keras) on OpenVINO (`suits_openvino`).
OPENVINO_UP_TO_BYTES = 64 * 2**20
logger = logging.getLogger(__name__)
_CACHE_ENTRY = re.compile(rf"[0-9a-f]{{20}}-(?:{'|'.join(PRECISIONS)})")


def default_runtime(model_dir: str | None = None) -> str:
    """`keras` where TensorFlow sees a GPU; on CPUs `openvino` for a model (None: the packaged one)
    whose VG-net suits it (`suits_openvino`) on x86-64 where it is installed, else `litert`
    (TensorFlow is imported only when a GPU driver is present)."""
    from atvg_tf.generation.openvino_runner import default_on_this_cpu

    cpu = "openvino" if default_on_this_cpu() and suits_openvino(model_dir) else "litert"
    gpus = "/proc/driver/nvidia/gpus"
    if not (os.path.isdir(gpus) and os.listdir(gpus)):
        return cpu
    import tensorflow as tf

    return "keras" if tf.config.list_physical_devices("GPU") else cpu


def load_model(model_dir: str | None = None, runtime: str = "auto", precision: str | None = None, threads: int | None = None,
               progress: Callable[[str], None] | None = None):
    """A model folder (None: the packaged default) ready for `TalkingFace`, on the chosen runtime.

    Args:
        runtime: `keras`, `litert`, `openvino` or `auto` (`default_runtime`).
        precision: litert: float32, float16, dynamic (default) or int8; openvino: bfloat16 (default),
            float32 or int8 (VG-net's step quantized by NNCF, `export.openvino_int8`).
        threads: litert and openvino: threads per network (default: the machine's cores).
        progress: told, once, when the TF-Lite models are built (the first run of a model and precision).

    Returns:
        A `TalkingFaceModel` (keras) or `LiteRTModel` (litert, openvino).
    """
    chosen = runtime
    runtime, precision = resolve_runtime(runtime, precision, model_dir)
    if runtime == "keras":
        from atvg_tf.generation.model import TalkingFaceModel

        return TalkingFaceModel.load(model_dir)
    if runtime == "openvino":
        from atvg_tf.generation.openvino_runner import OpenVINOMismatchError, OpenVINOUnavailableError

        # AT-net and the MFCC on LiteRT: with bfloat16 and int8, the default LiteRT variant's (int8
        # weights; landmarks within its parity bound).
        variant = "float32" if precision == "float32" else DEFAULT_PRECISION
        try:
            float32 = cached_export(model_dir, "float32", progress)
            if precision == "int8":
                from atvg_tf.export.openvino_int8 import openvino_int8_models

                openvino_int8_models(float32, model_dir, progress)
            return LiteRTModel(cached_export(model_dir, variant, progress), variant, model_dir, threads, openvino=(float32, precision))
        except (OpenVINOMismatchError, OpenVINOUnavailableError, OSError) as error:  # OSError: a read-only cache
            if chosen != "auto":
                raise
            logger.warning("%s; running the model on litert instead.", str(error).rsplit("; ", 1)[0])
            precision = "int8" if precision == "int8" else DEFAULT_PRECISION
    return LiteRTModel(cached_export(model_dir, precision, progress), precision, model_dir, threads)


def suits_openvino(model_dir: str | None) -> bool:
    """Whether OpenVINO is the faster CPU runtime for a model: a VG-net of at most
    `OPENVINO_UP_TO_BYTES`, whose step is bound by its arithmetic, which OpenVINO does faster (the
    default model, 8.7 MB: 40 % more frames/s end to end); a larger one is bound by reading its
    weights, which LiteRT's int8 weights do faster (the paper size, 246 MB: the same frames/s, and
    its first frame a second later while OpenVINO compiles it)."""
    path = os.path.join(model_dir or DEFAULT_MODEL_DIR, "vgnet.keras")
    return not os.path.isfile(path) or os.path.getsize(path) <= OPENVINO_UP_TO_BYTES


def resolve_runtime(runtime: str = "auto", precision: str | None = None, model_dir: str | None = None) -> tuple[str, str | None]:
    """Checks a runtime and precision: (`keras`, None), (`litert`, a precision) or (`openvino`,
    float32, bfloat16 or int8). With `auto`, a precision alone picks litert, except bfloat16
    (openvino) and int8 (openvino where it is the CPU default, `default_on_this_cpu`: its int8 step
    is the faster); without one, `auto` is `default_runtime(model_dir)`."""
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    if precision is not None and precision not in PRECISIONS + OPENVINO_PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(dict.fromkeys(PRECISIONS + OPENVINO_PRECISIONS))}.")
    if runtime == "keras" and precision is not None:
        raise InputError("--precision applies to the litert and openvino runtimes only; leave it out or use --runtime litert.")
    if runtime == "auto":
        runtime = default_runtime(model_dir) if precision is None else _runtime_of(precision)
    if runtime == "litert" and precision not in (None, *PRECISIONS):
        raise InputError(f"the litert runtime has no {precision} models; choose one of {', '.join(PRECISIONS)}, or --runtime openvino.")
    if runtime == "openvino" and precision not in (None, *OPENVINO_PRECISIONS):
        raise InputError(f"the openvino runtime runs {', '.join(OPENVINO_PRECISIONS)}, not {precision}; use --runtime litert for it.")
    if runtime == "litert":
        return runtime, precision or DEFAULT_PRECISION
    if runtime == "openvino":
        return runtime, precision or DEFAULT_OPENVINO_PRECISION
    return runtime, None


def _runtime_of(precision: str) -> str:
    """The runtime a precision given alone picks."""
    if precision == "bfloat16":
        return "openvino"
    if precision == "int8":
        from atvg_tf.generation.openvino_runner import default_on_this_cpu

        return "openvino" if default_on_this_cpu() else "litert"
    return "litert"


def cached_export(model_dir: str | None, precision: str, progress: Callable[[str], None] | None = None) -> str:
    """The folder of the model's TF-Lite export at `precision` in the user cache, built if missing."""
    model_dir = model_dir or DEFAULT_MODEL_DIR
    check_model_folder(model_dir)
    folder = os.path.join(litert_cache_dir(), f"{export_key(model_dir, precision)}-{precision}")
    if os.path.isfile(os.path.join(folder, "inference.json")):
        _mark_used(folder)
        return folder
    try:
        os.makedirs(os.path.dirname(folder), exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the LiteRT cache {os.path.dirname(folder)} ({error.strerror}); "
                         f"set ATVG_CACHE_DIR to a writable folder or use --runtime keras.") from error
    if progress:
        progress(f"building the {precision} LiteRT models of {model_dir} (once; cached in {folder})")
    from atvg_tf.export.tflite import export_tflite
    from atvg_tf.generation.model import TalkingFaceModel

    model = TalkingFaceModel.load(model_dir)
    try:
        with atomic_folder(folder) as partial:
            export_tflite(model, partial, [precision])
    except OSError:
        if not os.path.isfile(os.path.join(folder, "inference.json")):  # not another run that finished first
            raise
    prune_litert_cache(os.path.dirname(folder))
    return folder


def prune_litert_cache(cache: str, unused_days: float = UNUSED_DAYS) -> list[str]:
    """Deletes the cached exports (`<key>-<precision>` folders) not used for `unused_days`: those of
    earlier versions, retrained models and models no longer used. Runs when a new export is built;
    returns the folders it deleted. Other names in the cache are left alone."""
    deadline = time.time() - unused_days * 86400
    removed = []
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        if _CACHE_ENTRY.fullmatch(name) and os.path.isdir(path) and os.path.getmtime(path) < deadline:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _mark_used(folder: str) -> None:
    """The folder's time stamp records its last use (`prune_litert_cache` reads it)."""
    try:
        os.utime(folder)
    except OSError:  # a read-only cache still serves
        pass


def litert_cache_dir() -> str:
    """Where the TF-Lite exports are cached: `$ATVG_CACHE_DIR/litert`, else the user cache's `litert/`."""
    return os.path.join(os.environ.get("ATVG_CACHE_DIR") or cache_dir(), "litert")


def export_key(model_dir: str, precision: str) -> str:
    """20 hex digits that change with the model's files, the precision, the libraries and the export code."""
    digest = hashlib.sha256(f"{precision} atvg-tf {__version__}".encode())
    for name in (*MODEL_FILES, "training.json", OFFICIAL_FILE):
        path = os.path.join(model_dir, name)
        digest.update(f"{name}:{sha256_file(path) if os.path.isfile(path) else '-'}".encode())
    for package in _VERSIONED:
        try:
            digest.update(f"{package} {importlib.metadata.version(package)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{package} -".encode())
    for path in _export_sources():
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:20]


def _export_sources() -> list[str]:
    paths = []
    for part in _EXPORT_CODE:
        path = os.path.join(_PACKAGE_DIR, part)
        if os.path.isdir(path):
            paths += sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith(".py"))
        else:
            paths.append(path)
    return paths
