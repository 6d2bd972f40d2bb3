"""Runs the streaming TF-Lite models of `atvg export --format tflite`, frame by frame, without TensorFlow.

Needs only numpy and ai-edge-litert (LiteRT), so it runs where TensorFlow does not (a Raspberry Pi,
an Android Python environment).

    engine = LiteTalkingFace("exported/", variant="int8", threads=2)
    engine.start(avatar["identity_frame"], avatar["identity_landmarks"])
    for t in range(frame_count(len(waveform))):
        frame, landmarks = engine.step(pcm_window(waveform, t))
"""

from __future__ import annotations

import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
WINDOW_SAMPLES = 4880  # what mfcc.tflite reads per frame
WINDOW_START = -2080  # first sample of frame 0's window, relative to the recording's start


def frame_count(num_samples: int) -> int:
    """Frames (25 fps) that cover `num_samples` of 16 kHz audio."""
    return max(1, int(np.floor(num_samples / SAMPLES_PER_FRAME + 0.5)))


def pcm_window(waveform: np.ndarray, frame: int) -> np.ndarray:
    """Frame `frame`'s [1, 4880] input of mfcc.tflite (zeros outside the recording)."""
    start = frame * SAMPLES_PER_FRAME + WINDOW_START
    window = np.zeros((1, WINDOW_SAMPLES), np.float32)
    lo, hi = max(start, 0), min(start + WINDOW_SAMPLES, waveform.size)
    if hi > lo:
        window[0, lo - start : hi - start] = waveform[lo:hi]
    return window


class LiteTalkingFace:
    """The four TF-Lite models of one export, with the recurrent states kept between frames.

    Args:
        model_dir: folder written by `atvg export --format tflite`.
        variant: float32, float16, dynamic or int8.
        threads: CPU threads per interpreter.
    """

    def __init__(self, model_dir: str, variant: str = "float32", threads: int = 2):
        def runner(filename: str):
            path = os.path.join(model_dir, filename)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found; export it with `atvg export --format tflite --variants {variant}`.")
            return Interpreter(model_path=path, num_threads=threads).get_signature_runner("serving_default")

        self.mfcc = runner("mfcc.tflite")
        self.encoder = runner(f"identity_encoder.{variant}.tflite")
        self.atnet = runner(f"atnet_step.{variant}.tflite")
        self.vgnet = runner(f"vgnet_step.{variant}.tflite")
        self._identity: dict[str, np.ndarray] = {}

    @staticmethod
    def _zero_states(runner) -> dict[str, np.ndarray]:
        return {
            name: np.zeros(detail["shape"], np.float32)
            for name, detail in runner.get_input_details().items()
            if name.endswith(("_h", "_c"))
        }

    def start(self, identity_frame: np.ndarray, identity_landmarks: np.ndarray) -> None:
        """Sets the identity (aligned 128 x 128 RGB uint8 crop, [68, 2] landmarks in crop pixels) and
        resets the states: the next `step` is frame 0 of a new recording."""
        frame = (identity_frame.astype(np.float32) / 127.5 - 1.0)[None]
        marks = np.asarray(identity_landmarks, np.float32).reshape(1, 136)
        self._identity = {"identity_frame": frame, **self.encoder(identity_frame=frame, identity_landmarks=marks)}
        self._marks = marks
        self._atnet_states = self._zero_states(self.atnet)
        self._vgnet_states = self._zero_states(self.vgnet)

    def step(self, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame from its [1, 4880] PCM window: RGB uint8 [128, 128, 3] and landmarks [68, 2]."""
        if not self._identity:
            raise ValueError("call start(identity_frame, identity_landmarks) first.")
        window = self.mfcc(pcm=pcm)["mfcc_window"]
        out = self.atnet(mfcc_window=window, identity_landmarks=self._marks, **self._atnet_states)
        self._atnet_states = {name[5:]: value for name, value in out.items() if name.startswith("next_")}
        rendered = self.vgnet(landmarks=out["landmarks"], identity_landmarks=self._marks, **self._identity, **self._vgnet_states)
        self._vgnet_states = {name[5:]: value for name, value in rendered.items() if name.startswith("next_")}
        frame = np.clip(np.round((rendered["frame"][0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return frame, out["landmarks"].reshape(68, 2)


class PcmWindows:
    """Cuts live 16 kHz audio, block by block, into the per-frame windows of mfcc.tflite.

    Frame t's window ends 2800 samples (0.175 s) after the frame's start, so each frame trails
    the speech by that much. Equal to `pcm_window` of the whole recording for every full window.
    """

    def __init__(self):
        self._buffer = np.zeros(-WINDOW_START, np.float32)  # the silence before the recording

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """Adds samples; returns the [1, 4880] windows of the frames that are now complete."""
        self._buffer = np.concatenate([self._buffer, np.asarray(block, np.float32).reshape(-1)])
        windows = []
        while self._buffer.size >= WINDOW_SAMPLES:
            windows.append(self._buffer[None, :WINDOW_SAMPLES].copy())
            self._buffer = self._buffer[SAMPLES_PER_FRAME:]
        return windows
