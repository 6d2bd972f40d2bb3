"""Runs the streaming TF-Lite models of `atvg export --format tflite`, frame by frame, without TensorFlow.

Needs only numpy and ai-edge-litert (LiteRT), so it runs where TensorFlow does not (a Raspberry Pi,
an Android Python environment). Exports whose AT-net hears phones also need pocketsphinx and the
TensorFlow-free module `atvg_tf.frontend.phones` (installed, or the repository's `atvg_tf/` folder
beside `mobile_demo/`).

    engine = LiteTalkingFace("exported/", variant="int8", threads=2)
    engine.start(avatar["identity_frame"], avatar["identity_landmarks"])
    for t in range(frame_count(len(waveform))):                  # an export that hears MFCC only
        frame, landmarks = engine.step(pcm_window(waveform, t))
    inputs = FrameInputs(engine)                                  # any export, audio block by block
    for block in blocks:
        for frame_inputs in inputs.push(block):
            frame, landmarks = engine.step(**frame_inputs)
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time

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

        self.atnet = runner(f"atnet_step.{variant}.tflite")
        audio = self.atnet.get_input_details()
        self.uses_mfcc, self.uses_phones = "mfcc_window" in audio, "phone_window" in audio
        self.mfcc = runner("mfcc.tflite") if self.uses_mfcc else None
        self.phones = phone_front_end() if self.uses_phones else None
        self.encoder = runner(f"identity_encoder.{variant}.tflite")
        self.vgnet = runner(f"vgnet_step.{variant}.tflite")
        settings = os.path.join(model_dir, "inference.json")  # absent in exports of earlier versions
        self.inference = {"rest_on_silence": False, "silence_frames": 16, "silence_settled": 4, "hybrid_motion_gain": 1.0}
        if os.path.isfile(settings):
            with open(settings) as handle:
                self.inference.update(json.load(handle))
        self._identity: dict[str, np.ndarray] = {}
        self._offset = np.zeros((1, 136), np.float32)
        self.attention: np.ndarray | None = None

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
        self._offset = np.zeros((1, 136), np.float32)
        if self.inference["rest_on_silence"]:  # the face's rest pose: what AT-net does on silence (inference.json)
            self._atnet_states = self._zero_states(self.atnet)
            silent = [self._landmarks(np.zeros((1, WINDOW_SAMPLES), np.float32), np.zeros(28, np.int64))
                      for _ in range(self.inference["silence_frames"])]
            self._offset = np.mean(silent[self.inference["silence_settled"]:], axis=0) - marks
        self._atnet_states = self._zero_states(self.atnet)
        self._vgnet_states = self._zero_states(self.vgnet)

    def step(self, pcm: np.ndarray | None = None, phone_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One frame: RGB uint8 [128, 128, 3] and landmarks [68, 2]; `attention` [128, 128, 1] of that
        frame is kept in `self.attention` (the `vgnet` renderer's mask).

        Args:
            pcm: the frame's [1, 4880] PCM window (`pcm_window`), for exports that hear MFCC.
            phone_ids: the frame's [28] phone ids (`atvg_tf.frontend.phones.PhoneWindowStream`),
                for exports that hear phones.
        """
        if not self._identity:
            raise ValueError("call start(identity_frame, identity_landmarks) first.")
        landmarks = self._landmarks(pcm, phone_ids) - self._offset
        rendered = self.vgnet(landmarks=landmarks, identity_landmarks=self._marks, **self._identity, **self._vgnet_states)
        self._vgnet_states = {name[5:]: value for name, value in rendered.items() if name.startswith("next_")}
        frame = np.clip(np.round((rendered["frame"][0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
        self.attention = rendered["attention"][0]
        return frame, landmarks.reshape(68, 2)

    def _landmarks(self, pcm: np.ndarray | None, phone_ids: np.ndarray | None) -> np.ndarray:
        """atnet_step on one frame's audio, carrying its states: [1, 136] landmarks (crop px)."""
        audio = {}
        if self.uses_mfcc:
            if pcm is None:
                raise ValueError("this export's AT-net hears MFCC: give the frame's [1, 4880] PCM window (pcm=...).")
            audio["mfcc_window"] = self.mfcc(pcm=pcm)["mfcc_window"]
        if self.uses_phones:
            if phone_ids is None:
                raise ValueError("this export's AT-net hears phones: give the frame's [28] phone ids (phone_ids=...).")
            audio["phone_window"] = self.phones.one_hot(phone_ids).reshape(1, 1, self.phones.WINDOW_ROWS, self.phones.NUM_PHONES)
        out = self.atnet(**audio, identity_landmarks=self._marks, **self._atnet_states)
        self._atnet_states = {name[5:]: value for name, value in out.items() if name.startswith("next_")}
        return out["landmarks"]


def phone_front_end():
    """The TensorFlow-free module `atvg_tf.frontend.phones`; checks that pocketsphinx is installed."""
    phones = repository_module("atvg_tf.frontend.phones")
    if importlib.util.find_spec("pocketsphinx") is None:
        raise ImportError("this export's AT-net hears phones, which need pocketsphinx: pip install pocketsphinx==5.1.1")
    return phones


def repository_module(name: str):
    """A TensorFlow-free module of the `atvg_tf` package (`atvg_tf.rendering.hybrid_renderer`,
    `atvg_tf.frontend.phones`): installed, or from the repository's `atvg_tf/` folder beside `mobile_demo/`."""
    try:
        return importlib.import_module(name)
    except ImportError:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(root, *name.split(".")) + ".py"
        if not os.path.isfile(path):
            raise ImportError(
                f"{name} not found: install atvg-tf or copy the repository's atvg_tf/ folder next to mobile_demo/ "
                f"(only its TensorFlow-free modules are imported)."
            ) from None
        sys.path.append(root)
        return importlib.import_module(name)


class PcmWindows:
    """Cuts live 16 kHz audio, block by block, into the per-frame windows of mfcc.tflite.

    Frame t's window ends 2800 samples (0.175 s) after the frame's start, so each frame trails
    the speech by that much. Equal to `pcm_window` of the whole recording for every full window;
    `finish` gives the rest (frame_count(samples) windows in all).
    """

    def __init__(self):
        self._buffer = np.zeros(-WINDOW_START, np.float32)  # the silence before the recording
        self._received = 0
        self._emitted = 0

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """Adds samples; returns the [1, 4880] windows of the frames that are now complete."""
        block = np.asarray(block, np.float32).reshape(-1)
        self._received += block.size
        self._buffer = np.concatenate([self._buffer, block])
        windows = []
        while self._buffer.size >= WINDOW_SAMPLES:
            windows.append(self._buffer[None, :WINDOW_SAMPLES].copy())
            self._buffer = self._buffer[SAMPLES_PER_FRAME:]
        self._emitted += len(windows)
        return windows

    def finish(self) -> list[np.ndarray]:
        """Ends the recording; returns the windows of its remaining frames (zeros after its end)."""
        remaining = frame_count(self._received) - self._emitted
        if remaining <= 0:
            return []
        padded = np.zeros(SAMPLES_PER_FRAME * (remaining - 1) + WINDOW_SAMPLES, np.float32)
        padded[: self._buffer.size] = self._buffer  # less than one window is left in the buffer
        self._buffer, self._emitted = self._buffer[:0], self._emitted + remaining
        return [padded[None, start : start + WINDOW_SAMPLES].copy() for start in range(0, SAMPLES_PER_FRAME * remaining, SAMPLES_PER_FRAME)]


class FrameInputs:
    """Cuts live 16 kHz audio, block by block, into `LiteTalkingFace.step`'s arguments, frame by frame.

    A frame comes out once all the inputs its export's AT-net hears are ready: `pcm` ([1, 4880],
    `PcmWindows`: 0.175 s after the frame's start) and/or `phone_ids` ([28], `PhoneWindowStream`:
    up to 0.56 s). `finish` gives the remaining frames; in all, equal to `pcm_window` and `phone_windows`
    of the whole recording. `phone_seconds` is the time spent in phone recognition.
    """

    def __init__(self, engine: LiteTalkingFace):
        self._pcm = PcmWindows() if engine.uses_mfcc else None
        self._phones = engine.phones.PhoneWindowStream() if engine.uses_phones else None
        self._ready: dict[str, list[np.ndarray]] = {name: [] for name, stream in (("pcm", self._pcm), ("phone_ids", self._phones)) if stream}
        self.phone_seconds = 0.0

    def push(self, block: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Adds samples; returns the step arguments of the frames that are now complete."""
        return self._add(block, finish=False)

    def finish(self) -> list[dict[str, np.ndarray]]:
        """Ends the recording; returns the step arguments of its remaining frames."""
        return self._add(None, finish=True)

    def _add(self, block: np.ndarray | None, finish: bool) -> list[dict[str, np.ndarray]]:
        if self._pcm:
            self._ready["pcm"].extend(self._pcm.finish() if finish else self._pcm.push(block))
        if self._phones:
            tick = time.perf_counter()
            self._ready["phone_ids"].extend(self._phones.finish() if finish else self._phones.push(block))
            self.phone_seconds += time.perf_counter() - tick
        count = min(len(values) for values in self._ready.values())
        frames = [{name: values[t] for name, values in self._ready.items()} for t in range(count)]
        self._ready = {name: values[count:] for name, values in self._ready.items()}
        return frames
