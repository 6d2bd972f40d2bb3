"""The audio inputs an AT-net asks for, one-shot or streaming: `mfcc_windows`, `phone_windows`, `phone_posteriors`,
`speech_embeddings`, `speech_activations`.

| input | shape per frame | from |
|---|---|---|
| mfcc_windows | [28, 12] float32 | `audio.MfccWindows` |
| phone_windows | [28, 40] float32 one-hot | `phones.PhoneWindowStream` |
| phone_posteriors | [28, 40] float32, rows sum to 1 | `phones.PhoneWindowStream(posteriors=True)` |
| speech_embeddings | [11, 96] float32 | `speech_embedding.SpeechEmbeddingStream` |
| speech_activations | [48, 96] float32 | `speech_embedding.SpeechEmbeddingStream(activations=True)` |

With `mfcc_normalization` (a model's `MfccNormalizer` config) the MFCC windows are voice-normalised
(`frontend.mfcc_normalization`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atvg_tf.frontend import phones, speech_embedding
from atvg_tf.frontend.audio import MfccWindowStream, mfcc_windows, num_video_frames
from atvg_tf.frontend.mfcc_normalization import MfccNormalizer, normalize_mfcc_windows

AUDIO_INPUTS = ("mfcc_windows", "phone_windows", "phone_posteriors", "speech_embeddings", "speech_activations")
# Each input (a run of frames) -> the one-frame input of the exported streaming step model (`atnet_step`).
STEP_INPUTS = {"mfcc_windows": "mfcc_window", "phone_windows": "phone_window", "phone_posteriors": "phone_posterior",
               "speech_embeddings": "speech_embedding", "speech_activations": "speech_activation"}
# The inputs made by the speech embedding network (`frontend.speech_embedding`).
EMBEDDING_INPUTS = ("speech_embeddings", "speech_activations")


def _check(inputs: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in inputs if name not in AUDIO_INPUTS]
    if unknown or not inputs:
        raise ValueError(f"audio inputs must be some of {AUDIO_INPUTS}, got {tuple(inputs)}.")
    return tuple(inputs)


def audio_windows(waveform: np.ndarray, inputs: Sequence[str], num_frames: int | None = None,
                  mfcc_normalization: dict | None = None) -> dict[str, np.ndarray]:
    """One-shot windows of a 16 kHz recording: {input name: [N, 28, F] float32}."""
    inputs = _check(inputs)
    waveform = np.asarray(waveform, np.float32).reshape(-1)
    num_frames = num_frames or num_video_frames(waveform.size)
    out = {}
    if "mfcc_windows" in inputs:
        out["mfcc_windows"] = mfcc_windows(waveform, num_frames)
        if mfcc_normalization:
            out["mfcc_windows"] = normalize_mfcc_windows(out["mfcc_windows"], mfcc_normalization)
    if "phone_windows" in inputs:
        out["phone_windows"] = phones.one_hot(phones.phone_windows(waveform, num_frames))
    if "phone_posteriors" in inputs:
        out["phone_posteriors"] = phones.posterior_windows(waveform, num_frames)
    for name in EMBEDDING_INPUTS:
        if name in inputs:
            out[name] = speech_embedding.embedding_windows(waveform, num_frames, activations=name == "speech_activations")
    return out


class AudioWindowStream:
    """Windows for audio that arrives block by block, equal to `audio_windows` of the whole.

    Each call returns the same number of frames for every input: those complete in all of them
    (the phone windows and posteriors have the longer look-ahead, see `frontend.phones`).
    """

    def __init__(self, inputs: Sequence[str], mfcc_normalization: dict | None = None):
        self.inputs = _check(inputs)
        self._streams = {}
        if "mfcc_windows" in self.inputs:
            self._streams["mfcc_windows"] = _NormalizedMfccStream(mfcc_normalization) if mfcc_normalization else MfccWindowStream()
        if "phone_windows" in self.inputs:
            self._streams["phone_windows"] = phones.PhoneWindowStream()
        if "phone_posteriors" in self.inputs:
            self._streams["phone_posteriors"] = phones.PhoneWindowStream(posteriors=True)
        for name in EMBEDDING_INPUTS:
            if name in self.inputs:
                self._streams[name] = speech_embedding.SpeechEmbeddingStream(activations=name == "speech_activations")
        self._ready = {name: [] for name in self.inputs}

    def push(self, block: np.ndarray) -> dict[str, np.ndarray]:
        for name, stream in self._streams.items():
            self._ready[name].append(stream.push(block))
        return self._take()

    def finish(self) -> dict[str, np.ndarray]:
        for name, stream in self._streams.items():
            self._ready[name].append(stream.finish())
        return self._take()

    def _take(self) -> dict[str, np.ndarray]:
        ready = {name: np.concatenate(parts) for name, parts in self._ready.items()}
        count = min(len(windows) for windows in ready.values())
        self._ready = {name: [windows[count:]] for name, windows in ready.items()}
        out = {name: windows[:count] for name, windows in ready.items()}
        if "phone_windows" in out:
            out["phone_windows"] = phones.one_hot(out["phone_windows"]).reshape(count, phones.WINDOW_ROWS, phones.NUM_PHONES)
        return out


class _NormalizedMfccStream:
    """`MfccWindowStream` followed by an `MfccNormalizer` (which holds back the first frames)."""

    def __init__(self, mfcc_normalization: dict):
        self._windows = MfccWindowStream()
        self._normalizer = MfccNormalizer.from_config(mfcc_normalization)

    def push(self, block: np.ndarray) -> np.ndarray:
        return self._normalizer.push(self._windows.push(block))

    def finish(self) -> np.ndarray:
        return np.concatenate([self._normalizer.push(self._windows.finish()), self._normalizer.finish()])
