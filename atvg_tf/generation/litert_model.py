"""A model folder run by LiteRT: its streaming TF-Lite models in place of the Keras networks.

`TalkingFace` drives a `LiteRTModel` exactly as a `TalkingFaceModel` (same alignment, audio
windows, chunked streaming and renderers); only the networks run in LiteRT, frame by frame, with
no graph tracing. Nothing here imports TensorFlow. `atvg_tf.export.litert_runtime` builds the
TF-Lite models of a folder once and caches them.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from atvg_tf._native import quiet_stderr
from atvg_tf.frontend.audio_windows import STEP_INPUTS
from atvg_tf.frontend.face.alignment import AlignmentConfig
from atvg_tf.frontend.image import to_uint8
from atvg_tf.generation.landmark_space import OfficialLandmarks
from atvg_tf.generation.litert_engine import LiteTalkingFace
from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR, check_model_folder, read_pca, read_settings


class LiteRTModel:
    """A model folder's TF-Lite export, run through LiteRT (or VG-net through OpenVINO).

    Args:
        export_dir: folder of `atvg export --format tflite` made from `model_dir` with `variant`.
        variant: the TF-Lite variant LiteRT runs: float32, float16, dynamic or int8.
        model_dir: the model folder (None: the packaged default model): its `training.json` and
            landmark space decide the alignment and landmark backend, as for the Keras runtime.
        threads: threads per network (None: the machine's cores).
        openvino: for the `openvino` runtime, (the model's float32 export, precision): VG-net and its
            identity encoder from that export run through OpenVINO (`openvino_runner_factory`:
            float32, bfloat16 where the CPU computes it natively, or int8); the MFCC and AT-net stay
            on LiteRT with `variant`.

    Attributes:
        runtime, precision: as `atvg generate --runtime/--precision` name them.
    """

    def __init__(self, export_dir: str, variant: str = "dynamic", model_dir: str | None = None, threads: int | None = None,
                 openvino: tuple[str, str] | None = None):
        self.directory = model_dir or DEFAULT_MODEL_DIR
        check_model_folder(self.directory)
        self.export_dir = export_dir
        self.runtime = "openvino" if openvino else "litert"
        self.precision = openvino[1] if openvino else variant
        self.threads = threads or os.cpu_count() or 1
        self.settings = read_settings(self.directory)
        self.mfcc_normalization = self.settings.mfcc_normalization  # as `TalkingFaceModel.mfcc_normalization`
        self.motion_level = self.settings.motion_level  # as `TalkingFaceModel.motion_level`
        self.hybrid_motion_gain = self.settings.hybrid_motion_gain  # as `TalkingFaceModel.hybrid_motion_gain`
        with quiet_stderr(not logging.getLogger().isEnabledFor(logging.INFO)):  # LiteRT's delegate notices
            runner = None
            if openvino:
                from atvg_tf.generation.openvino_runner import openvino_runner_factory

                runner = openvino_runner_factory(*openvino, threads=self.threads)
            self._engine = LiteTalkingFace(export_dir, variant, self.threads, runner)
            self._engine.warm_up()
        self.crop_size = self._engine.crop_size
        self.landmark_space = self.settings.landmark_space(self.directory, read_pca(self.directory), self.crop_size)

    @property
    def landmark_backend(self) -> str:
        return self.settings.landmark_backend

    @property
    def audio_inputs(self) -> tuple[str, ...]:
        """What AT-net hears: `mfcc_windows`, `phone_windows`, `phone_posteriors`, `speech_embeddings`,
        `speech_activations` (see `frontend.audio_windows`)."""
        engine = self._engine
        return tuple(name for name, used in (("mfcc_windows", engine.uses_mfcc), ("phone_windows", engine.uses_phones),
                                             ("phone_posteriors", engine.uses_posteriors),
                                             ("speech_activations" if engine.embedding_activations else "speech_embeddings",
                                              engine.uses_embeddings)) if used)

    def alignment(self, source_landmarks: np.ndarray) -> AlignmentConfig:
        """How to align a face with these landmarks (`TalkingFaceModel.alignment`)."""
        return self.landmark_space.alignment(source_landmarks)

    def describe_alignment(self, alignment: AlignmentConfig) -> str:
        return self.landmark_space.describe_alignment(alignment)

    def streamer(self, identity_frame: np.ndarray, identity_landmarks: np.ndarray) -> LiteRTStreamer:
        """A `LiteRTStreamer` for one identity (crop uint8 + its landmarks in crop px); one at a time
        per model, since the networks keep their states."""
        self._engine.start(identity_frame, identity_landmarks)
        self._engine.motion_factor = self._motion_factor()
        return LiteRTStreamer(self._engine)

    def _motion_factor(self) -> float:
        """The user's motion gain (`landmark_space.motion_gain`, e.g. `--motion-gain`) relative to the
        one atnet_step was exported with; the release's convention has none."""
        if isinstance(self.landmark_space, OfficialLandmarks):
            return 1.0
        return self.landmark_space.motion_gain / float(self._engine.inference["motion_gain"])


class LiteRTStreamer:
    """Generates a talking face chunk by chunk through LiteRT (`FrameStreamer`'s contract).

    Args:
        engine: a started `LiteTalkingFace`.
    """

    def __init__(self, engine: LiteTalkingFace):
        self.engine = engine

    def __call__(self, windows: dict[str, np.ndarray]) -> dict:
        """Renders the next frames.

        Args:
            windows: AT-net's audio windows of the next n frames, as `audio_windows` gives them
                (`mfcc_windows` [n, 28, 12], `phone_windows` or `phone_posteriors` [n, 28, 40]).

        Returns:
            `landmarks` [n, 68, 2] (crop px), `frames` and `motion` uint8 [n, S, S, 3], `attention`
            float [n, S, S, 1].
        """
        count = len(next(iter(windows.values())))
        frames, landmarks, attention, motion = [], [], [], []
        for t in range(count):
            frame, marks = self.engine.step_audio({STEP_INPUTS[name]: w[t][None, None].astype(np.float32, copy=False) for name, w in windows.items()})
            frames.append(frame)
            landmarks.append(marks)
            attention.append(self.engine.attention)
            motion.append(self.engine.motion)
        return {"landmarks": np.stack(landmarks), "frames": np.stack(frames), "attention": np.stack(attention), "motion": to_uint8(np.stack(motion))}
