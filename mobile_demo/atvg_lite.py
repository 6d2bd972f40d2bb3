"""Runs the streaming TF-Lite models of `atvg export --format tflite`, frame by frame, without TensorFlow.

Needs only numpy, OpenCV and ai-edge-litert (LiteRT), so it runs where TensorFlow does not (a
Raspberry Pi, an Android Python environment). The engine is the package's TensorFlow-free
`atvg_tf.generation.litert_engine` (installed, or the repository's `atvg_tf/` folder beside
`mobile_demo/`); this file adds the live-audio side: PCM windows and phone ids as audio arrives.
Exports whose AT-net hears phones also need pocketsphinx.

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

import importlib
import os
import sys
import time

import numpy as np

SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
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


_engine = repository_module("atvg_tf.generation.litert_engine")
LiteTalkingFace, WINDOW_SAMPLES = _engine.LiteTalkingFace, _engine.WINDOW_SAMPLES


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
    `PcmWindows`: 0.175 s after the frame's start), `phone_ids` ([28], `PhoneWindowStream`:
    up to 0.56 s), `posteriors` ([28, 40], `PhoneWindowStream(posteriors=True)`: up to 2.16 s) and/or
    `embeddings` ([11, 96], `SpeechEmbeddingStream`: 0.60 s after the frame's centre; [48, 96] activation
    windows for an activation head, 0.40 s).
    `finish` gives the remaining frames; in all, equal to `pcm_window`, `phone_windows`,
    `posterior_windows` and `embedding_windows` of the whole recording. `phone_seconds` is the time
    spent in phone recognition and the speech embedding.
    """

    def __init__(self, engine: LiteTalkingFace):
        self._pcm = PcmWindows() if engine.uses_mfcc else None
        self._phones = {name: engine.phones.PhoneWindowStream(posteriors=name == "posteriors")
                        for name, used in (("phone_ids", engine.uses_phones), ("posteriors", engine.uses_posteriors)) if used}
        if engine.uses_embeddings:
            self._phones["embeddings"] = engine.embedding.SpeechEmbeddingStream(engine.embedding_activations)
        self._ready: dict[str, list[np.ndarray]] = {name: [] for name in (["pcm"] if self._pcm else []) + list(self._phones)}
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
        for name, stream in self._phones.items():
            tick = time.perf_counter()
            self._ready[name].extend(stream.finish() if finish else stream.push(block))
            self.phone_seconds += time.perf_counter() - tick
        count = min(len(values) for values in self._ready.values())
        frames = [{name: values[t] for name, values in self._ready.items()} for t in range(count)]
        self._ready = {name: values[count:] for name, values in self._ready.items()}
        return frames
