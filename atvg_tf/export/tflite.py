"""A trained cascade as streaming TF-Lite models an app drives frame by frame (builtin ops only).

Four models (three for an AT-net that hears phones only), each with one signature (`serving_default`) and named inputs and outputs:
  - `mfcc.tflite` (always float32; only for AT-nets that hear MFCC): `pcm` [1, 4880] raw 16 kHz
    samples -> `mfcc_window` [1, 1, 28, 12]. Frame t reads the samples [640 t - 2080, 640 t + 2800)
    of the recording (zeros before its start and after its end): 0.175 s of look-ahead.
  - `identity_encoder.tflite`, once per photo: `identity_frame` [1, 128, 128, 3] in [-1, 1],
    `identity_landmarks` [1, 136] crop pixels -> `identity_features`, `image_feature`,
    `identity_stage2`, `identity_feature`.
  - `atnet_step.tflite`, per frame: the frame's audio window(s) as the AT-net hears them
    (`mfcc_window` [1, 1, 28, 12] and/or `phone_window` or `phone_posterior` [1, 1, 28, 40], or
    beside `mfcc_window` a head's `speech_embedding` [1, 1, 11, 96] or `speech_activation`
    [1, 1, 48, 96]), `identity_landmarks` and the LSTM states (`lstm_<i>_h`, `lstm_<i>_c`) ->
    `landmarks` [1, 136] crop pixels and `next_lstm_<i>_h/c`. `phone_window` is the one-hot of the
    frame's 28 phone ids from PocketSphinx (`atvg_tf.frontend.phones.PhoneWindowStream`, run on the
    device beside the models: 0.56 s of look-ahead); `phone_posterior` its posteriors
    (`PhoneWindowStream(posteriors=True)`); `speech_embedding` and `speech_activation` come from
    `atvg_tf.frontend.speech_embedding.SpeechEmbeddingStream` (0.60 s and 0.40 s of look-ahead).
  - `vgnet_step.tflite`, per frame: `identity_frame`, `identity_landmarks`, the identity
    encodings, `landmarks` [1, 136] crop pixels and `mmcrnn_h`, `mmcrnn_c` -> `frame` [1, 128, 128, 3] in [-1, 1],
    `attention` [1, 128, 128, 1], `motion` [1, 128, 128, 3] in [-1, 1] (the motion/colour map, for
    panels), `next_mmcrnn_h`, `next_mmcrnn_c`.
States start at zero; feed each `next_*` output back as the `*` input of the next frame.
`inference.json` says whether the model rests on silence (`TalkingFaceModel.silence_offset`): if
`rest_on_silence`, run `atnet_step` on `silence_frames` frames of silence from zero states when a
photo is set, take the mean of `landmarks - identity_landmarks` from frame `silence_settled` on,
and subtract it from every frame's `landmarks` before `vgnet_step` (mobile_demo/atvg_lite.py does).
`hybrid_motion_gain` is the factor on the vertical motion the hybrid renderer gives the photo, and `motion_level`
(or null) the level the hybrid renderer raises a timid voice's motion to
(`atvg_tf.rendering.motion_level.MotionLevel`); `motion_gain`
the factor on AT-net's motion that `atnet_step` already applies. `mfcc_normalization`, when present,
is the voice normalisation of the MFCC windows before `atnet_step`
(`atvg_tf.frontend.mfcc_normalization.MfccNormalizer`; the engine applies it with no lead for live audio).

Variants of the three networks: float32, float16 (weights), dynamic (int8 weights, float
activations) and int8 (int8 weights and activations calibrated on the real faces and speech shipped
in the package, or on a prepared folder; float inputs and outputs; ops without an int8 kernel stay float).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import tensorflow as tf

from atvg_tf._native import quiet_stderr
from atvg_tf.errors import InputError
from atvg_tf.export.pca_ops import landmark_ops
from atvg_tf.frontend.audio import AudioConfig, cepstra_matrix, mel_filter_bank
from atvg_tf.frontend.audio_windows import EMBEDDING_INPUTS, STEP_INPUTS
from atvg_tf.frontend.face.alignment import align_face
from atvg_tf.frontend.image import to_unit
from atvg_tf.frontend.phones import one_hot
from atvg_tf.generation.model import SILENCE_FRAMES, SILENCE_SETTLED, TalkingFaceModel
from atvg_tf.models.streaming import build_atnet_stream, build_vgnet_identity_encoder, build_vgnet_stream
from atvg_tf.utils.files import atomic_path, atomic_write

VARIANTS = ("float32", "float16", "dynamic", "int8")
NETWORKS = ("identity_encoder", "atnet_step", "vgnet_step")
INFERENCE_FILE = "inference.json"


def pcm_window_samples(config: AudioConfig = AudioConfig()) -> int:
    """Samples `mfcc.tflite` reads per frame: 29 MFCC rows (one extra for pre-emphasis)."""
    return config.frame_step + config.frame_length + config.frame_step * (config.window_mfcc_frames - 1)


class MfccFrontEnd(tf.Module):
    """One frame's MFCC window from raw PCM, with matrix products in place of the FFT and DCT.

    Equal (to float32 rounding) to `frontend.audio.MfccWindows` for the same frame; built from
    ops every TF-Lite runtime has (gather, matmul, log).
    """

    def __init__(self, config: AudioConfig = AudioConfig()):
        super().__init__(name="mfcc_front_end")
        c = self.config = config
        rows = np.arange(1, c.window_mfcc_frames + 1)[:, None] * c.frame_step
        # Emphasised sample i of the window is sample i + 1 of the PCM (sample 0 only feeds it).
        self.frame_indices = tf.constant((rows + np.arange(c.frame_length)[None] - 1).astype(np.int32))
        bins = np.arange(c.fft_length // 2 + 1)
        angle = 2 * np.pi * np.outer(np.arange(c.frame_length), bins) / c.fft_length
        self.dft_real = tf.constant(np.cos(angle).astype(np.float32))
        self.dft_imag = tf.constant(np.sin(angle).astype(np.float32))
        self.filter_bank = tf.constant(mel_filter_bank(c))
        self.dct = tf.constant(cepstra_matrix(c))

    def __call__(self, pcm: tf.Tensor) -> tf.Tensor:
        """[1, 4880] PCM -> [1, 1, 28, 12] MFCC window."""
        c = self.config
        emphasized = pcm[0, 1:] - c.preemphasis * pcm[0, :-1]
        frames = tf.gather(emphasized, self.frame_indices)
        power = (tf.matmul(frames, self.dft_real) ** 2 + tf.matmul(frames, self.dft_imag) ** 2) / c.fft_length
        mel = tf.maximum(tf.matmul(power, self.filter_bank), np.finfo(np.float64).eps)
        return tf.reshape(tf.matmul(tf.math.log(mel), self.dct), [1, 1, c.window_mfcc_frames, c.num_coefficients])


class StreamingGraphs:
    """The per-frame functions that become the TF-Lite models (and their input signatures)."""

    def __init__(self, model: TalkingFaceModel):
        self.pca = landmark_ops(model)
        self.model = model
        self.audio_inputs = model.audio_inputs
        self.front_end = MfccFrontEnd()
        self.atnet = build_atnet_stream(model.atnet, steps=1, unroll=True)
        self.encoder = build_vgnet_identity_encoder(model.vgnet)
        self.vgnet = build_vgnet_stream(model.vgnet, steps=1, unroll=True)
        self.crop = float(model.crop_size)

    @staticmethod
    def _spec(tensor, name=None):
        return tf.TensorSpec([1, *tensor.shape[1:]], tf.float32, name=name or tensor.name)

    def functions(self) -> dict[str, tuple[Callable, list, object]]:
        """name -> (function of named tensors returning a dict, its input specs, what holds its variables)."""
        size = self.model.crop_size
        state_specs = lambda model: {n: self._spec(t, n) for n, t in model.input.items() if n.endswith(("_h", "_c"))}  # noqa: E731
        marks = tf.TensorSpec([1, 136], tf.float32, name="identity_landmarks")
        frame = tf.TensorSpec([1, size, size, 3], tf.float32, name="identity_frame")
        encodings = {n: self._spec(t, n) for n, t in self.encoder.output.items()}

        def mfcc(pcm):
            return {"mfcc_window": self.front_end(pcm)}

        def identity_encoder(identity_frame, identity_landmarks):
            return self.encoder({"identity_frame": identity_frame, "identity_landmarks": self.pca.vgnet_identity(identity_landmarks)})

        def atnet_step(identity_landmarks, **inputs):
            identity_code = self.pca.identity_code(identity_landmarks)
            audio = {name: inputs.pop(STEP_INPUTS[name]) for name in self.audio_inputs}
            out = self.atnet({**audio, "identity_pca_codes": identity_code, **inputs})
            return {"landmarks": self.pca.landmarks(out["pca_codes"][:, 0], identity_code, identity_landmarks),
                    **{n: v for n, v in out.items() if n.startswith("next_")}}

        def vgnet_step(identity_frame, identity_landmarks, landmarks, **inputs):
            vgnet_landmarks = self.pca.vgnet_landmarks(landmarks, identity_landmarks)[:, None]
            out = self.vgnet({"identity_frame": identity_frame, "landmarks": vgnet_landmarks, **inputs})
            return {"frame": out["frames"][:, 0], "attention": out["attention"][:, 0], "motion": out["motion"][:, 0],
                    **{n: v for n, v in out.items() if n.startswith("next_")}}

        pcm = tf.TensorSpec([1, pcm_window_samples()], tf.float32, name="pcm")
        windows = [tf.TensorSpec([1, *self.atnet.input[name].shape[1:]], tf.float32, name=STEP_INPUTS[name]) for name in self.audio_inputs]
        landmarks = tf.TensorSpec([1, 136], tf.float32, name="landmarks")
        functions = {
            "identity_encoder": (identity_encoder, [frame, marks], self.encoder),
            "atnet_step": (atnet_step, [*windows, marks, *state_specs(self.atnet).values()], self.atnet),
            "vgnet_step": (vgnet_step, [frame, marks, landmarks, *encodings.values(), *state_specs(self.vgnet).values()], self.vgnet),
        }
        if "mfcc_windows" in self.audio_inputs:
            functions = {"mfcc": (mfcc, [pcm], self.front_end), **functions}
        return functions


def convert(function: Callable, specs: list, variant: str, calibration: Iterable[dict] | None = None, keep: object = None) -> bytes:
    """One function -> TF-Lite flatbuffer bytes (builtin ops only), with a `serving_default`
    signature whose input keys are the spec names and output keys the function's dict keys.

    Args:
        keep: an object holding the variables the function uses (a Keras model or tf.Module).
    """
    names = [spec.name for spec in specs]
    module = tf.Module()
    # Keras 3 variables wrap tf.Variables; the SavedModel must track the wrapped ones.
    module.weights = [variable.value for variable in getattr(keep, "weights", [])]
    module.run = tf.function(lambda *args: function(**dict(zip(names, args))), input_signature=specs)
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(module, folder, signatures={"serving_default": module.run.get_concrete_function()})
        converter = _configure(tf.lite.TFLiteConverter.from_saved_model(folder), names, variant, calibration)
        # The converter and its calibration interpreter print C++ progress lines and a deprecation
        # warning on every call; keep them for --verbose (logging at INFO).
        with quiet_stderr(not logging.getLogger().isEnabledFor(logging.INFO)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"[\s\S]*tf.lite.Interpreter is deprecated")
            return converter.convert()


def _configure(converter, names: list[str], variant: str, calibration: Iterable[dict] | None):
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if calibration is None:
            raise InputError("int8 needs calibration samples.")
        samples = list(calibration)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({n: np.asarray(sample[n], np.float32) for n in names} for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    elif variant != "float32":
        raise InputError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}.")
    return converter


CALIBRATION_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "calibration.npz")


def packaged_calibration_examples(model: TalkingFaceModel, path: str = CALIBRATION_FILE) -> Iterator[dict]:
    """Endless calibration examples from the set shipped in the package (tools/make_calibration_set.py).

    Each face is aligned the way `model` aligns faces and paired, in turn, with a run of 16 frames
    of real speech.

    Yields:
        `identity_frame` [1, S, S, 3] in [-1, 1], `identity_landmarks` [1, 136] crop px,
        `mfcc_windows` [1, 16, 28, 12] and, when `model` hears phones, `phone_windows` (or
        `phone_posteriors`) [1, 16, 28, 40] one-hot; with an embedding head `speech_embeddings`
        [1, 16, 11, 96] (an activation head: `speech_activations` [1, 16, 48, 96]) of the same speech.
    """
    with np.load(path) as data:  # allow_pickle stays False: the file holds plain arrays only
        jpegs, offsets, marks = data["face_jpegs"], data["face_offsets"], data["face_landmarks"]
        runs = {"mfcc_windows": data["mfcc_windows"].astype(np.float32)}
        for name in ("phone_windows", "phone_posteriors"):
            if name in model.audio_inputs:
                if "phone_windows" not in data:
                    raise InputError(f"{path} has no phone windows; rebuild it with tools/make_calibration_set.py.")
                # Posteriors calibrate on the one-hot windows: the same range [0, 1], the sharpest case.
                runs[name] = one_hot(data["phone_windows"])
        for name in EMBEDDING_INPUTS:
            if name in model.audio_inputs:
                if name not in data:
                    raise InputError(f"{path} has no {name}; rebuild it with tools/make_calibration_set.py.")
                runs[name] = data[name].astype(np.float32)
    faces = []
    for index, points in enumerate(marks):
        image = cv2.cvtColor(cv2.imdecode(jpegs[offsets[index] : offsets[index + 1]], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        face = align_face(image, points, model.alignment(points))
        faces.append((to_unit(face.image)[None], face.landmarks.reshape(1, 136).astype(np.float32)))
    count = len(runs["mfcc_windows"])
    for index in itertools.count():
        frame, landmarks = faces[index % len(faces)]
        yield {"identity_frame": frame, "identity_landmarks": landmarks, **{name: run[index % count][None] for name, run in runs.items()}}


# The audio inputs `prepared_calibration_examples` reads from a prepared folder.
PREPARED_CALIBRATION_INPUTS = ("mfcc_windows", "phone_windows")


def prepared_calibration_examples(
    prepared_dir: str, crop_size: int, seed: int = 0, audio_inputs: Sequence[str] = ("mfcc_windows",)
) -> Iterator[dict]:
    """Endless calibration examples (as `packaged_calibration_examples`) from a folder of `atvg prepare`.

    Args:
        audio_inputs: the AT-net's audio inputs; with `phone_windows` the folder must hold phone windows.
    """
    from atvg_tf.data.pipeline import PipelineConfig, make_dataset

    features = ("mfcc", "phones") if "phone_windows" in audio_inputs else ("mfcc",)
    config = PipelineConfig(batch_size=1, sequence_length=16, shuffle_buffer=64, deterministic=True, seed=seed, audio_features=features)
    for example in make_dataset(prepared_dir, None, config).repeat():
        yield {"identity_frame": example["identity_frame"].numpy(),
               "identity_landmarks": example["identity_landmarks"].numpy() * crop_size,
               **{name: example[name].numpy() for name in ("mfcc_windows", "phone_windows") if name in example}}


def calibration_samples(graphs: StreamingGraphs, examples: Iterable[dict], count: int = 128) -> dict[str, list[dict]]:
    """Per-network input samples with realistic recurrent states.

    Runs the float Keras streaming models over calibration examples (identity + a run of the
    AT-net's audio windows, `mfcc_windows` and/or `phone_windows` [1, T, 28, F]) frame by frame and
    records the inputs each network saw.
    """
    functions = graphs.functions()
    samples: dict[str, list[dict]] = {name: [] for name in NETWORKS}
    for example in examples:
        identity = {"identity_frame": tf.constant(example["identity_frame"]), "identity_landmarks": tf.constant(example["identity_landmarks"])}
        samples["identity_encoder"].append({k: v.numpy() for k, v in identity.items()})
        if len(samples["vgnet_step"]) < count:  # the per-frame networks: whole sequences, so the states are realistic
            encodings = functions["identity_encoder"][0](**identity)
            atnet_states = _zero_states(functions["atnet_step"][1])
            vgnet_states = _zero_states(functions["vgnet_step"][1])
            audio = {name: example[name] for name in graphs.audio_inputs}
            for t in range(next(iter(audio.values())).shape[1]):
                atnet_inputs = {**{STEP_INPUTS[name]: tf.constant(windows[:, t : t + 1], tf.float32) for name, windows in audio.items()},
                                "identity_landmarks": identity["identity_landmarks"], **atnet_states}
                samples["atnet_step"].append({k: np.asarray(v) for k, v in atnet_inputs.items()})
                atnet_out = functions["atnet_step"][0](**atnet_inputs)
                atnet_states = _next(atnet_out)
                vgnet_inputs = {"identity_frame": identity["identity_frame"], "identity_landmarks": identity["identity_landmarks"],
                                "landmarks": atnet_out["landmarks"], **encodings, **vgnet_states}
                samples["vgnet_step"].append({k: np.asarray(v) for k, v in vgnet_inputs.items()})
                vgnet_states = _next(functions["vgnet_step"][0](**vgnet_inputs))
        if min(len(values) for values in samples.values()) >= count:
            break
    return {name: values[:count] for name, values in samples.items()}


def _zero_states(specs: list) -> dict:
    return {spec.name: tf.zeros(spec.shape) for spec in specs if spec.name.endswith(("_h", "_c"))}


def _next(outputs: dict) -> dict:
    return {name[len("next_"):]: value for name, value in outputs.items() if name.startswith("next_")}


def export_tflite(
    model: TalkingFaceModel,
    directory: str,
    variants: Iterable[str] = VARIANTS,
    calibration_dir: str | None = None,
    calibration_count: int = 128,
    progress: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Writes `mfcc.tflite` (for AT-nets that hear MFCC) and `<network>.<variant>.tflite` for every variant into `directory`.

    Args:
        calibration_dir: int8: a folder written by `atvg prepare` to calibrate on; None calibrates
            on the set shipped in the package (real faces and speech, aligned for this model).
        calibration_count: int8: samples per network.

    Returns:
        file name -> path of everything written. Files appear only when complete.
    """
    variants = list(variants)
    for variant in variants:
        if variant not in VARIANTS:
            raise InputError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}.")
    unprepared = [name for name in model.audio_inputs if name not in PREPARED_CALIBRATION_INPUTS]
    if "int8" in variants and calibration_dir and unprepared:
        raise InputError(f"--calibration reads MFCC and phone windows only; this model also hears {', '.join(unprepared)}: "
                         "leave --calibration out to calibrate on the set shipped in the package.")
    graphs = StreamingGraphs(model)
    functions = graphs.functions()
    calibration = {}
    if "int8" in variants:
        examples = (prepared_calibration_examples(calibration_dir, model.crop_size, audio_inputs=model.audio_inputs) if calibration_dir
                    else packaged_calibration_examples(model))
        calibration = calibration_samples(graphs, examples, calibration_count)
    os.makedirs(directory, exist_ok=True)
    written = {}
    jobs = [("mfcc", "float32", "mfcc.tflite")] if "mfcc" in functions else []
    jobs += [(n, v, f"{n}.{v}.tflite") for v in variants for n in NETWORKS]
    for name, variant, filename in jobs:
        if progress:
            progress(filename)
        function, specs, keep = functions[name]
        flatbuffer = convert(function, specs, variant, calibration.get(name), keep)
        path = os.path.join(directory, filename)
        with atomic_write(path, "wb") as handle:
            handle.write(flatbuffer)
        written[filename] = path
    with atomic_write(os.path.join(directory, INFERENCE_FILE)) as handle:
        json.dump({"rest_on_silence": model.rests_on_silence, "silence_frames": SILENCE_FRAMES, "silence_settled": SILENCE_SETTLED,
                   "hybrid_motion_gain": model.hybrid_motion_gain, "motion_level": model.motion_level,
                   "motion_gain": model.landmark_space.motion_gain,
                   "mfcc_normalization": model.mfcc_normalization}, handle, indent=1)
    written[INFERENCE_FILE] = os.path.join(directory, INFERENCE_FILE)
    with open(os.path.join(directory, "README.md"), "w") as handle:
        handle.write("# atvg-tf streaming TF-Lite models\n\n" + __doc__)
    return written


def write_avatar(photo: str, directory: str, model: TalkingFaceModel, landmarks: str | None = None) -> str:
    """Writes `avatar.npz` for apps without a face detector: the photo (RGB), its aligned crop,
    the crop's landmarks and the photo-to-crop transform (for pasting frames back)."""
    from atvg_tf.frontend.face.landmarks import create_landmark_detector
    from atvg_tf.frontend.image import load_image

    image = load_image(photo)
    with create_landmark_detector(landmarks or model.landmark_backend, fallback=landmarks is None) as detector:
        marks = detector.largest_face(image)
        face = align_face(image, marks, model.alignment(marks))
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "avatar.npz")
    with atomic_path(path) as partial:
        np.savez_compressed(partial, photo=image, identity_frame=face.image,
                            identity_landmarks=face.landmarks.astype(np.float32), transform=face.transform)
    return path
