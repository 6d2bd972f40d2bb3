"""A trained cascade as a versioned SavedModel for TF-Serving.

Signatures (no batch dimension: one identity and one recording per request) of an AT-net that hears
MFCC only (the paper; converted official models; the `paper` recipe), with the audio front end inside:
  - `serving_default`: `waveform` [N] float32 (16 kHz mono, [-1, 1]), `identity_frame`
    [128, 128, 3] uint8 (the aligned crop), `identity_landmarks` [68, 2] float32 (crop pixels)
    -> `frames` [T, 128, 128, 3] float32 in [-1, 1], `attention` [T, 128, 128, 1], `landmarks` [T, 68, 2].
  - `generate_from_mfcc`: the same with `mfcc_windows` [T, 28, 12] (raw, as `audio.mfcc_windows`
    gives them) instead of `waveform`.
A model with voice normalisation (`training.json` inference.mfcc_normalization) applies it inside
these graphs (`mfcc_graph.normalize_mfcc_windows`).
  - `landmarks`: `waveform` + `identity_landmarks` -> `landmarks` (AT-net only).
T = round(N / 640): one frame per 40 ms of audio.

An AT-net that hears phones or has a head (`audio_features` `phones`, `mfcc+phones`,
`mfcc+phone_head`, `mfcc+embedding_head`, or `mfcc+activation_head`: the packaged model) takes precomputed features, since
PocketSphinx and the speech embedding's TF-Lite models cannot run inside this graph; the client
computes them with `atvg_tf.frontend.audio_windows.audio_windows` (see export/make_request.py):
  - `serving_default`: the model's audio inputs (`mfcc_windows` [T, 28, 12], `phone_windows` or
    `phone_posteriors` [T, 28, 40], `speech_embeddings` [T, 11, 96] or `speech_activations` [T, 48, 96], as it hears), plus
    `identity_frame` and `identity_landmarks` -> `frames`, `attention`, `landmarks` as above.
  - `landmarks`: the same audio inputs + `identity_landmarks` -> `landmarks` (AT-net only).
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from atvg_tf.errors import InputError
from atvg_tf.export.pca_ops import landmark_ops
from atvg_tf.frontend.audio import AudioConfig
from atvg_tf.frontend.mfcc_graph import MfccWindows, normalize_mfcc_windows
from atvg_tf.generation.model import SILENCE_SETTLED, TalkingFaceModel
from atvg_tf.utils.files import atomic_folder

MFCC_SIGNATURES = ("serving_default", "generate_from_mfcc", "landmarks")
FEATURE_SIGNATURES = ("serving_default", "landmarks")


def signature_names(model: TalkingFaceModel) -> tuple[str, ...]:
    """The signatures `export_saved_model` writes for `model` (they depend on what its AT-net hears)."""
    return MFCC_SIGNATURES if model.audio_inputs == ("mfcc_windows",) else FEATURE_SIGNATURES


class CascadeGraph:
    """The cascade's computation in TensorFlow ops: audio windows -> AT-net -> landmarks -> VG-net.

    Args:
        model: the trained cascade (either landmark convention, see `generation.landmark_space`).
    """

    def __init__(self, model: TalkingFaceModel):
        self.pca = landmark_ops(model)
        self.model = model
        self.windows = MfccWindows(AudioConfig())
        self.samples_per_frame = AudioConfig().samples_per_video_frame
        self.silence = {name: tf.constant(w) for name, w in model.silence_windows().items()} if model.rests_on_silence else None

    def mfcc_windows(self, waveform: tf.Tensor) -> tf.Tensor:
        """[N] waveform -> [T, 28, 12] windows (voice-normalised as the model asks), T = max(1, round(N / 640))."""
        frames = tf.maximum(1, tf.cast(tf.floor(tf.cast(tf.size(waveform), tf.float32) / self.samples_per_frame + 0.5), tf.int32))
        return self.normalized(self.windows(waveform, frames))

    def normalized(self, mfcc_windows: tf.Tensor) -> tf.Tensor:
        """Raw [T, 28, 12] MFCC windows -> what AT-net hears (`TalkingFaceModel.mfcc_normalization`)."""
        normalization = self.model.mfcc_normalization
        return normalize_mfcc_windows(mfcc_windows, normalization) if normalization else mfcc_windows

    def audio_specs(self) -> list[tf.TensorSpec]:
        """One [T, 28, F] float32 spec per audio input of AT-net, named after it."""
        return [tf.TensorSpec([None, *self.model.atnet.input[name].shape[2:]], tf.float32, name=name) for name in self.model.audio_inputs]

    def landmarks(self, audio: dict[str, tf.Tensor], identity_landmarks: tf.Tensor) -> tf.Tensor:
        """AT-net + the model's landmark decoding: {input: [T, 28, F]}, [68, 2] -> [T, 68, 2] crop px."""
        identity_vector = tf.reshape(identity_landmarks, [1, 136])
        identity_code = self.pca.identity_code(identity_vector)

        def decoded(windows):
            batch = {name: windows[name][None] for name in self.model.audio_inputs}
            codes = self.model.atnet({**batch, "identity_pca_codes": identity_code}, training=False)["pca_codes"][0]
            return self.pca.landmarks(codes, identity_code, identity_vector)

        landmarks = decoded(audio)
        if self.silence:  # `TalkingFaceModel.silence_offset`
            landmarks -= tf.reduce_mean(decoded(self.silence)[SILENCE_SETTLED:] - identity_vector, axis=0)
        return tf.reshape(landmarks, [-1, 68, 2])

    def frames(self, identity_frame: tf.Tensor, identity_landmarks: tf.Tensor, landmarks: tf.Tensor) -> dict:
        """VG-net: uint8 crop, [68, 2] and [T, 68, 2] crop px -> frames and attention [T, ...]."""
        identity_vector = tf.reshape(identity_landmarks, [1, 136])
        outputs = self.model.vgnet({
            "identity_frame": (tf.cast(identity_frame, tf.float32) / 127.5 - 1.0)[None],
            "identity_landmarks": self.pca.vgnet_identity(identity_vector),
            "landmarks": self.pca.vgnet_landmarks(tf.reshape(landmarks, [-1, 136]), identity_vector)[None],
        }, training=False)
        return {"frames": outputs["frames"][0], "attention": outputs["attention"][0]}

    def generate(self, audio: dict[str, tf.Tensor], identity_frame: tf.Tensor, identity_landmarks: tf.Tensor) -> dict:
        """The whole cascade: audio windows + identity -> `frames`, `attention`, `landmarks`."""
        landmarks = self.landmarks(audio, identity_landmarks)
        return {**self.frames(identity_frame, identity_landmarks, landmarks), "landmarks": landmarks}


def export_saved_model(model: TalkingFaceModel, directory: str, version: int = 1) -> str:
    """Writes `<directory>/<version>/` (saved_model.pb + variables) with the signatures of `signature_names(model)`.

    The version folder appears only when complete; an existing version is refused.

    Returns:
        The version folder.
    """
    if version < 1:
        raise InputError(f"--serving-version must be a positive integer, got {version}.")
    destination = os.path.join(directory, str(version))
    if os.path.exists(destination):
        raise FileExistsError(f"{destination} exists; give another --serving-version (TF-Serving serves the highest) or remove it.")
    graph = CascadeGraph(model)
    size = model.crop_size
    frame = tf.TensorSpec([size, size, 3], tf.uint8, name="identity_frame")
    marks = tf.TensorSpec([68, 2], tf.float32, name="identity_landmarks")
    archive = keras.export.ExportArchive()
    archive.track(model.atnet)
    archive.track(model.vgnet)
    if signature_names(model) == MFCC_SIGNATURES:
        waveform = tf.TensorSpec([None], tf.float32, name="waveform")
        windows = tf.TensorSpec([None, 28, 12], tf.float32, name="mfcc_windows")
        archive.add_endpoint(
            "serving_default",
            lambda waveform, identity_frame, identity_landmarks: graph.generate(
                {"mfcc_windows": graph.mfcc_windows(waveform)}, identity_frame, identity_landmarks),
            input_signature=[waveform, frame, marks],
        )
        archive.add_endpoint(
            "generate_from_mfcc",
            lambda mfcc_windows, identity_frame, identity_landmarks: graph.generate(
                {"mfcc_windows": graph.normalized(mfcc_windows)}, identity_frame, identity_landmarks),
            input_signature=[windows, frame, marks],
        )
        archive.add_endpoint(
            "landmarks",
            lambda waveform, identity_landmarks: {"landmarks": graph.landmarks({"mfcc_windows": graph.mfcc_windows(waveform)}, identity_landmarks)},
            input_signature=[waveform, marks],
        )
    else:
        audio_specs = graph.audio_specs()
        names = [spec.name for spec in audio_specs]
        # Positional arguments: the signature's input keys are the spec names.
        archive.add_endpoint(
            "serving_default",
            lambda *args: graph.generate(dict(zip(names, args)), args[-2], args[-1]),
            input_signature=[*audio_specs, frame, marks],
        )
        archive.add_endpoint(
            "landmarks",
            lambda *args: {"landmarks": graph.landmarks(dict(zip(names, args)), args[-1])},
            input_signature=[*audio_specs, marks],
        )
    os.makedirs(directory, exist_ok=True)
    with atomic_folder(destination) as partial:
        archive.write_out(partial, verbose=False)
    return destination
