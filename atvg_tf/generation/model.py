"""A trained cascade (AT-net + VG-net + landmark PCA) loaded from a model folder.

A model folder holds `atnet.keras`, `vgnet.keras` (the generator), `pca.npz` and `training.json`.
The package ships one (`atvg_tf/assets/default_model`), used whenever no folder is given.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from atvg_tf.errors import InputError
from atvg_tf.frontend.audio import AudioConfig
from atvg_tf.frontend.audio_windows import audio_windows
from atvg_tf.frontend.face.alignment import AlignmentConfig
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.image import to_uint8, to_unit
from atvg_tf.generation.landmark_space import CropLandmarks
from atvg_tf.generation.model_folder import (
    DEFAULT_MODEL_DIR,
    INFO_FILE,
    ModelSettings,
    check_model_folder,
    read_part,
    read_pca,
    read_settings,
)
from atvg_tf.models import layers as _custom_layers  # noqa: F401  (registers the custom layers for loading)
from atvg_tf.models.atnet import audio_inputs
from atvg_tf.models.config import AUDIO_FEATURES, ATNetConfig, VGNetConfig
from atvg_tf.models.streaming import build_atnet_stream, build_vgnet_identity_encoder, build_vgnet_stream, initial_states, next_states
from atvg_tf.utils.files import atomic_folder

# The silence AT-net is run on to find a face's rest pose (`TalkingFaceModel.silence_offset`): 16
# frames from zero states, averaged from frame 4 on, once the LSTMs have settled.
SILENCE_FRAMES, SILENCE_SETTLED = 16, 4
__all__ = ["DEFAULT_MODEL_DIR", "FrameStreamer", "TalkingFaceModel", "network_configs"]


def network_configs(info: dict, atnet: keras.Model | None = None) -> tuple[ATNetConfig, VGNetConfig]:
    """The configurations a model folder's networks were built with.

    From `training.json`: its `presets` (field values, as `TalkingFaceModel.save` writes them, or
    preset names, as converted official models record them), else the training runs' `model_preset`
    (folders written before `save` existed). `atnet`, when given, decides what AT-net hears.
    """
    presets = info.get("presets") or {}
    runs = info.get("runs") or {}

    def config(cls, network):
        recorded = presets.get(network)
        if isinstance(recorded, dict):
            return cls.from_fields(recorded)
        run = (runs.get(network) or {}).get("config") or {}
        return cls.preset(recorded or run.get("model_preset") or "small")

    atnet_config, vgnet_config = config(ATNetConfig, "atnet"), config(VGNetConfig, "vgnet")
    run = (runs.get("atnet") or {}).get("config") or {}
    changes = {key: run[key] for key in ("audio_features", "mfcc_normalisation") if run.get(key) and "atnet" not in presets}
    if atnet is not None:
        changes["audio_features"] = next(key for key, names in AUDIO_FEATURES.items() if names == audio_inputs(atnet))
    return dataclasses.replace(atnet_config, **changes), vgnet_config


class TalkingFaceModel:
    """AT-net, VG-net and the PCA basis they were trained with.

    Args:
        atnet: model from `build_atnet` (trained).
        vgnet: model from `build_vgnet` (trained generator).
        pca: the landmark basis of AT-net's codes.
        info: what `training.json` says about the model.
    """

    def __init__(
        self, atnet: keras.Model, vgnet: keras.Model, pca: LandmarkPCA, info: dict | None = None,
        landmark_space: CropLandmarks | None = None, directory: str | None = None,
    ):
        self.atnet, self.vgnet, self.pca, self.info = atnet, vgnet, pca, info or {}
        self.settings = ModelSettings(self.info)
        self.directory = directory  # the folder it was loaded from (None when built in memory)
        self.crop_size = int(vgnet.input["identity_frame"].shape[1])
        self.landmark_space = landmark_space or self.settings.landmark_space(None, pca, self.crop_size)
        # The voice normalisation AT-net's MFCC windows get (`ModelSettings.mfcc_normalization`);
        # set it to None to hear raw MFCC as the paper does.
        self.mfcc_normalization = self.settings.mfcc_normalization
        # The hybrid renderer's factor on the motion and its motion level (`ModelSettings.hybrid_motion_gain`,
        # `ModelSettings.motion_level`); 1.0 and None render the motion as predicted.
        self.hybrid_motion_gain = self.settings.hybrid_motion_gain
        self.motion_level = self.settings.motion_level
        self._stream: dict | None = None  # the streaming models, built on first use

    @classmethod
    def load(cls, directory: str | None = None) -> TalkingFaceModel:
        """Loads a model folder (the packaged default model when `directory` is None)."""
        directory = directory or DEFAULT_MODEL_DIR
        check_model_folder(directory)
        settings = read_settings(directory)
        vgnet = read_part(os.path.join(directory, "vgnet.keras"), keras.saving.load_model)
        atnet = read_part(os.path.join(directory, "atnet.keras"), keras.saving.load_model)
        pca = read_pca(directory)
        space = settings.landmark_space(directory, pca, int(vgnet.input["identity_frame"].shape[1]))
        return cls(atnet, vgnet, pca, settings.info, space, directory)

    def save(self, directory: str, replace: bool = False) -> str:
        """Writes a model folder that `load` reads back with identical outputs.

        It holds the networks, the PCA basis, `training.json` (this model's `info`, with the
        networks' configurations under `presets`) and, for the release's landmark convention,
        `official.npz`. The folder appears only when complete.

        Args:
            replace: replace an existing folder (only once the new one is complete); otherwise an
                existing `directory` is refused.
        """
        atnet_config, vgnet_config = network_configs(self.info, self.atnet)
        info = {**self.info, "presets": {"atnet": dataclasses.asdict(atnet_config), "vgnet": dataclasses.asdict(vgnet_config)}}
        with atomic_folder(directory, replace=replace) as partial:
            self.atnet.save(os.path.join(partial, "atnet.keras"))
            self.vgnet.save(os.path.join(partial, "vgnet.keras"))
            self.pca.save(os.path.join(partial, "pca.npz"))
            self.landmark_space.save(partial)
            with open(os.path.join(partial, INFO_FILE), "w") as handle:
                json.dump(info, handle, indent=1)
        return directory

    @property
    def landmark_backend(self) -> str:
        """The landmark detector the model was trained with (`ModelSettings.landmark_backend`)."""
        return self.settings.landmark_backend

    def alignment(self, source_landmarks: np.ndarray) -> AlignmentConfig:
        """How to align a face with these landmarks (the first frame's, for a clip) for this model.

        The one place alignment is decided: `atvg generate`, `atvg evaluate`, `atvg export --avatar`
        and `export/make_request.py` all ask the model (the release's `base_68` templates for
        converted official models, this project's template otherwise).
        """
        return self.landmark_space.alignment(source_landmarks)

    def describe_alignment(self, alignment: AlignmentConfig) -> str:
        """`release base_68`, `release base_68_close` or `atvg template`."""
        return self.landmark_space.describe_alignment(alignment)

    @property
    def audio_inputs(self) -> tuple[str, ...]:
        """What AT-net hears: `mfcc_windows` and/or `phone_windows` (see `frontend.audio_windows`)."""
        return audio_inputs(self.atnet)

    def audio_windows(self, waveform: np.ndarray, num_frames: int | None = None) -> dict[str, np.ndarray]:
        """AT-net's audio inputs for a whole 16 kHz recording: {input: [N, 28, F]}."""
        return audio_windows(waveform, self.audio_inputs, num_frames, self.mfcc_normalization)

    @property
    def inference(self) -> dict:
        """The inference settings of `training.json` (`ModelSettings.inference`)."""
        return self.settings.inference

    @property
    def rests_on_silence(self) -> bool:
        """Whether silence gives the photo's own mouth (`training.json`: inference.rest_on_silence).

        AT-nets trained on real-world speech learn a slightly open mouth for pauses; such models
        subtract `silence_offset`, so silence shows the face as the photo shows it.
        """
        return self.settings.rests_on_silence

    def silence_windows(self) -> dict[str, np.ndarray]:
        """AT-net's audio windows of SILENCE_FRAMES frames of silence."""
        return self.audio_windows(np.zeros(SILENCE_FRAMES * AudioConfig().samples_per_video_frame, np.float32))

    def silence_offset(self, identity_landmarks: np.ndarray) -> np.ndarray:
        """[68, 2] crop px: where AT-net puts this face on silence, relative to the photo's landmarks
        (zeros unless `rests_on_silence`); subtracted from every predicted frame."""
        identity_landmarks = np.asarray(identity_landmarks, np.float32)
        if not self.rests_on_silence:
            return np.zeros_like(identity_landmarks)
        return self._silent_pose(identity_landmarks) - identity_landmarks

    def _silent_pose(self, identity_landmarks: np.ndarray) -> np.ndarray:
        """[68, 2] AT-net's settled landmarks on silence, before any offset (the streaming graph:
        the same numbers as one call, and no second graph to trace before the first frame)."""
        networks = self._streaming_networks()
        audio = {name: tf.constant(value[None]) for name, value in self._audio_dict(self.silence_windows()).items()}
        states = {k: tf.constant(v) for k, v in initial_states(networks["atnet"].model).items()}
        code = tf.constant(self.landmark_space.identity_code(identity_landmarks))
        codes = networks["atnet"]({**audio, "identity_pca_codes": code, **states})["pca_codes"].numpy()[0]
        return self.landmarks_from_codes(codes[SILENCE_SETTLED:], identity_landmarks, True).mean(axis=0)

    def predict_landmarks(self, windows: dict | np.ndarray, identity_landmarks: np.ndarray, relative: bool = True) -> np.ndarray:
        """AT-net in one call: audio windows + [68, 2] identity landmarks (crop px) -> [T, 68, 2] landmarks (crop px).

        Args:
            windows: `audio_windows(...)`, or for an MFCC model its [T, 28, 12] MFCC windows.
            relative: add the predicted motion (decoded codes minus the identity's decoded code) to
                the identity's own landmarks, so the face keeps its shape; False returns the decoded
                codes as they are (the paper's form). A model trained on one speaker knows only that
                speaker's face shape, so relative is the default (and the silence offset applies).
        """
        landmarks = self._atnet_landmarks(windows, identity_landmarks, relative)
        return landmarks - self.silence_offset(identity_landmarks) if relative else landmarks

    def _atnet_landmarks(self, windows: dict | np.ndarray, identity_landmarks: np.ndarray, relative: bool) -> np.ndarray:
        identity_code = self.landmark_space.identity_code(identity_landmarks)
        audio = {name: value[None] for name, value in self._audio_dict(windows).items()}
        codes = self.atnet.predict_on_batch({**audio, "identity_pca_codes": identity_code})["pca_codes"][0]
        return self.landmarks_from_codes(codes, identity_landmarks, relative)

    def _audio_dict(self, windows: dict | np.ndarray) -> dict[str, np.ndarray]:
        if not isinstance(windows, dict):
            windows = {"mfcc_windows": windows}
        missing = [name for name in self.audio_inputs if name not in windows]
        if missing:
            raise InputError(f"this AT-net needs {', '.join(missing)}; compute them with `model.audio_windows(waveform)`.")
        return {name: np.asarray(windows[name], np.float32) for name in self.audio_inputs}

    def landmarks_from_codes(self, codes: np.ndarray, identity_landmarks: np.ndarray, relative: bool = True) -> np.ndarray:
        """[T, K] AT-net codes -> [T, 68, 2] landmarks (crop px); see `predict_landmarks` for `relative`."""
        return self.landmark_space.landmarks(codes, identity_landmarks, relative)

    def render(self, identity_frame: np.ndarray, identity_landmarks: np.ndarray, landmarks: np.ndarray,
               chunk_frames: int | None = None) -> dict:
        """VG-net: identity crop (uint8) + landmarks (crop px) -> uint8 frames, attention and motion maps.

        Args:
            chunk_frames: None renders in one call; a number renders that many frames at a time with
                VG-net's state carried (the same frames, memory bounded for long clips).
        """
        if chunk_frames:
            streamer = self.streamer(identity_frame, identity_landmarks)
            parts = [streamer.render(landmarks[start : start + chunk_frames]) for start in range(0, len(landmarks), chunk_frames)]
            return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        outputs = self.vgnet.predict_on_batch({
            "identity_frame": to_unit(identity_frame)[None],
            "identity_landmarks": self.landmark_space.vgnet_identity(identity_landmarks),
            "landmarks": self.landmark_space.vgnet_landmarks(landmarks, identity_landmarks),
        })
        return _frames_out(outputs)

    def streamer(self, identity_frame: np.ndarray, identity_landmarks: np.ndarray, relative: bool = True) -> FrameStreamer:
        """A `FrameStreamer` for one identity (crop uint8 + its landmarks in crop px)."""
        return FrameStreamer(self, self._streaming_networks(), identity_frame, identity_landmarks, relative)

    def _streaming_networks(self) -> dict:
        if self._stream is None:
            self._stream = {
                "atnet": _Compiled(build_atnet_stream(self.atnet)),
                "identity": _Compiled(build_vgnet_identity_encoder(self.vgnet)),
                "vgnet": _Compiled(build_vgnet_stream(self.vgnet)),
            }
        return self._stream


class FrameStreamer:
    """Generates a talking face chunk by chunk, carrying AT-net's and VG-net's recurrent states.

    Feeding the MFCC windows of a recording in any number of chunks gives the frames of one call on
    the whole recording (`predict_landmarks` + `render`) while memory holds one chunk.

    Args:
        model: the cascade.
        networks: its streaming networks as traced calls (`atnet`, `identity`, `vgnet`).
        identity_frame: aligned identity crop, uint8 [S, S, 3].
        identity_landmarks: its landmarks [68, 2] in crop pixels.
        relative: see `TalkingFaceModel.predict_landmarks`.
    """

    def __init__(
        self, model: TalkingFaceModel, networks: dict, identity_frame: np.ndarray, identity_landmarks: np.ndarray, relative: bool = True
    ):
        self.model, self.networks, self.relative = model, networks, relative
        self.identity_landmarks = np.asarray(identity_landmarks, np.float32)
        space = model.landmark_space
        self._identity_code = tf.constant(space.identity_code(self.identity_landmarks))
        frame = tf.constant(to_unit(identity_frame)[None])
        identity = networks["identity"]({
            "identity_frame": frame,
            "identity_landmarks": tf.constant(space.vgnet_identity(self.identity_landmarks)),
        })
        self._identity = {"identity_frame": frame, **identity}
        self._atnet_states = {k: tf.constant(v) for k, v in initial_states(networks["atnet"].model).items()}
        self._offset = model.silence_offset(self.identity_landmarks) if relative else 0.0
        self._vgnet_states = {k: tf.constant(v) for k, v in initial_states(networks["vgnet"].model).items()}

    def __call__(self, windows: dict | np.ndarray) -> dict:
        """Renders the next frames.

        Args:
            windows: AT-net's audio windows of the next n frames (n >= 1), as `audio_windows`
                gives them; for an MFCC model also its [n, 28, 12] MFCC windows.

        Returns:
            `landmarks` [n, 68, 2] (crop px), `frames` and `motion` uint8 [n, S, S, 3], `attention`
            float [n, S, S, 1].
        """
        audio = {name: tf.constant(value[None]) for name, value in self.model._audio_dict(windows).items()}
        atnet = self.networks["atnet"]({
            **audio,
            "identity_pca_codes": self._identity_code,
            **self._atnet_states,
        })
        self._atnet_states = next_states(atnet)
        landmarks = self.model.landmarks_from_codes(atnet["pca_codes"].numpy()[0], self.identity_landmarks, self.relative) - self._offset
        return {"landmarks": landmarks, **self.render(landmarks)}

    def render(self, landmarks: np.ndarray) -> dict:
        """VG-net alone on the next frames' landmarks [n, 68, 2] (crop px), its state carried:
        uint8 `frames` and `motion` [n, S, S, 3], `attention` [n, S, S, 1]."""
        vgnet = self.networks["vgnet"]({
            **self._identity,
            "landmarks": tf.constant(self.model.landmark_space.vgnet_landmarks(landmarks, self.identity_landmarks)),
            **self._vgnet_states,
        })
        self._vgnet_states = next_states(vgnet)
        return _frames_out(vgnet)


class _Compiled:
    """A model's inference call as one traced graph that accepts any chunk length."""

    def __init__(self, model: keras.Model):
        self.model = model
        signature = {name: tf.TensorSpec(tensor.shape, tensor.dtype, name=name) for name, tensor in model.input.items()}
        self._call = tf.function(lambda inputs: model(inputs, training=False), input_signature=[signature])

    def __call__(self, inputs: dict) -> dict:
        return self._call(inputs)


def _frames_out(outputs: dict) -> dict:
    return {
        "frames": to_uint8(outputs["frames"][0]),
        "attention": np.asarray(outputs["attention"][0]),
        "motion": to_uint8(outputs["motion"][0]),
    }
