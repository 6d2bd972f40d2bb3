"""A trained cascade as a versioned SavedModel for TF-Serving, with the audio front end inside.

Signatures (no batch dimension: one identity and one recording per request):
  - `serving_default`: `waveform` [N] float32 (16 kHz mono, [-1, 1]), `identity_frame`
    [128, 128, 3] uint8 (the aligned crop), `identity_landmarks` [68, 2] float32 (crop pixels)
    -> `frames` [T, 128, 128, 3] float32 in [-1, 1], `attention` [T, 128, 128, 1], `landmarks` [T, 68, 2].
  - `generate_from_mfcc`: the same with `mfcc_windows` [T, 28, 12] instead of `waveform`.
  - `landmarks`: `waveform` + `identity_landmarks` -> `landmarks` (AT-net only).
T = round(N / 640): one frame per 40 ms of audio.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from atvg_tf.errors import InputError
from atvg_tf.export.pca_ops import landmark_ops
from atvg_tf.frontend.audio import AudioConfig, MfccWindows
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.utils.files import atomic_folder


class CascadeGraph:
    """The cascade's computation in TensorFlow ops: MFCC -> AT-net -> landmarks -> VG-net.

    Args:
        model: the trained cascade (either landmark convention, see `generation.landmark_space`).
    """

    def __init__(self, model: TalkingFaceModel):
        self.pca = landmark_ops(model)
        self.model = model
        self.windows = MfccWindows(AudioConfig())
        self.samples_per_frame = AudioConfig().samples_per_video_frame

    def mfcc_windows(self, waveform: tf.Tensor) -> tf.Tensor:
        """[N] waveform -> [T, 28, 12] windows, T = max(1, round(N / 640))."""
        frames = tf.maximum(1, tf.cast(tf.floor(tf.cast(tf.size(waveform), tf.float32) / self.samples_per_frame + 0.5), tf.int32))
        return self.windows(waveform, frames)

    def landmarks(self, mfcc_windows: tf.Tensor, identity_landmarks: tf.Tensor) -> tf.Tensor:
        """AT-net + the model's landmark decoding: [T, 28, 12], [68, 2] -> [T, 68, 2] crop px."""
        identity_vector = tf.reshape(identity_landmarks, [1, 136])
        identity_code = self.pca.identity_code(identity_vector)
        codes = self.model.atnet({"mfcc_windows": mfcc_windows[None], "identity_pca_codes": identity_code}, training=False)["pca_codes"][0]
        return tf.reshape(self.pca.landmarks(codes, identity_code, identity_vector), [-1, 68, 2])

    def frames(self, identity_frame: tf.Tensor, identity_landmarks: tf.Tensor, landmarks: tf.Tensor) -> dict:
        """VG-net: uint8 crop, [68, 2] and [T, 68, 2] crop px -> frames and attention [T, ...]."""
        identity_vector = tf.reshape(identity_landmarks, [1, 136])
        outputs = self.model.vgnet({
            "identity_frame": (tf.cast(identity_frame, tf.float32) / 127.5 - 1.0)[None],
            "identity_landmarks": self.pca.vgnet_identity(identity_vector),
            "landmarks": self.pca.vgnet_landmarks(tf.reshape(landmarks, [-1, 136]), identity_vector)[None],
        }, training=False)
        return {"frames": outputs["frames"][0], "attention": outputs["attention"][0]}


def export_saved_model(model: TalkingFaceModel, directory: str, version: int = 1) -> str:
    """Writes `<directory>/<version>/` (saved_model.pb + variables) with the three signatures.

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
    waveform = tf.TensorSpec([None], tf.float32, name="waveform")
    windows = tf.TensorSpec([None, 28, 12], tf.float32, name="mfcc_windows")
    frame = tf.TensorSpec([size, size, 3], tf.uint8, name="identity_frame")
    marks = tf.TensorSpec([68, 2], tf.float32, name="identity_landmarks")

    def from_mfcc(mfcc_windows, identity_frame, identity_landmarks):
        landmarks = graph.landmarks(mfcc_windows, identity_landmarks)
        return {**graph.frames(identity_frame, identity_landmarks, landmarks), "landmarks": landmarks}

    archive = keras.export.ExportArchive()
    archive.track(model.atnet)
    archive.track(model.vgnet)
    archive.add_endpoint(
        "serving_default",
        lambda waveform, identity_frame, identity_landmarks: from_mfcc(graph.mfcc_windows(waveform), identity_frame, identity_landmarks),
        input_signature=[waveform, frame, marks],
    )
    archive.add_endpoint("generate_from_mfcc", from_mfcc, input_signature=[windows, frame, marks])
    archive.add_endpoint(
        "landmarks",
        lambda waveform, identity_landmarks: {"landmarks": graph.landmarks(graph.mfcc_windows(waveform), identity_landmarks)},
        input_signature=[waveform, marks],
    )
    os.makedirs(directory, exist_ok=True)
    with atomic_folder(destination) as partial:
        archive.write_out(partial, verbose=False)
    return destination
