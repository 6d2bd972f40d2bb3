"""Audio front end: speech file -> 16 kHz mono waveform -> MFCC -> one 28 x 12 window per video frame.

The MFCC reproduces `python_speech_features.mfcc(signal, 16000, winstep=0.01)` (the features the
ATVGnet release was trained on) with numpy, so generation needs no TensorFlow; `mfcc_graph` has
the same in TensorFlow ops for exported graphs. The mel filter bank is the one that library builds
(triangles on floored FFT bin indices); TensorFlow's own `linear_to_mel_weight_matrix` gives
different features.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Iterator

import av
import numpy as np

from atvg_tf.errors import InputError
from atvg_tf.utils.presets import Presets


@dataclasses.dataclass(frozen=True)
class AudioConfig(Presets):
    """Parameters of the audio front end.

    Attributes:
        sample_rate: waveform rate in Hz.
        video_fps: video frame rate the windows are aligned to.
        frame_length: MFCC analysis window in samples (25 ms).
        frame_step: MFCC hop in samples (10 ms).
        fft_length: FFT size.
        num_mel_bins: triangular mel filters.
        num_cepstra: cepstral coefficients computed (c0 is dropped afterwards).
        cepstral_lifter: sinusoidal lifter length.
        preemphasis: pre-emphasis coefficient.
        window_mfcc_frames: MFCC rows per video-frame window (280 ms).
        padding_seconds: zeros added at both ends of the waveform so the first and last video
            frames get full windows.
    """

    sample_rate: int = 16000
    video_fps: int = 25
    frame_length: int = 400
    frame_step: int = 160
    fft_length: int = 512
    num_mel_bins: int = 26
    num_cepstra: int = 13
    cepstral_lifter: int = 22
    preemphasis: float = 0.97
    window_mfcc_frames: int = 28
    padding_seconds: float = 0.12

    @property
    def num_coefficients(self) -> int:
        """Coefficients per MFCC row once c0 is dropped."""
        return self.num_cepstra - 1

    @property
    def samples_per_video_frame(self) -> int:
        return self.sample_rate // self.video_fps

    @property
    def mfcc_rows_per_video_frame(self) -> int:
        return self.samples_per_video_frame // self.frame_step

    @property
    def padding_samples(self) -> int:
        return int(round(self.padding_seconds * self.sample_rate))

    PRESETS = {"paper": {}}  # the ATVGnet release's front end


class AudioError(InputError):
    """A speech input that cannot be used, with a message that says what to do."""


# Speech formats accepted besides the audio track of a video file (any format FFmpeg reads works).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus")


def audio_duration(path: str | os.PathLike) -> float | None:
    """The duration of a file's first audio stream in seconds, as its header says (None if unknown)."""
    with _open_audio(os.fspath(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6 if container.duration else None


def _open_audio(path: str):
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}; check the path.")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise AudioError(
            f"cannot read {path} as audio ({error.__class__.__name__}); "
            f"give a wav, flac, mp3, m4a or a video file with sound."
        ) from None
    if not container.streams.audio:
        container.close()
        raise AudioError(f"{path} has no audio stream; give a speech recording (wav, flac, mp3, m4a, ...) or a video file with sound.")
    return container


def iter_audio(path: str | os.PathLike, sample_rate: int = 16000) -> Iterator[np.ndarray]:
    """Decodes the first audio stream of a file block by block, as mono float32 at `sample_rate`.

    Memory stays at one block whatever the length. Works for wav, flac, mp3, m4a/aac and the
    audio track of a video file, at any input rate and channel layout (channels are averaged).
    The file is opened (and checked) when this is called; decoding happens as blocks are taken.

    Args:
        path: audio or video file.
        sample_rate: output rate in Hz.

    Returns:
        An iterator of 1-D float32 arrays in [-1, 1].

    Raises:
        AudioError: the file is missing, unreadable or has no audio stream (at the call); it
            cannot be decoded at all, decodes to nothing, or holds NaN/Inf samples (while iterating).
    """
    path = os.fspath(path)
    return _decode_blocks(_open_audio(path), path, sample_rate)


def _decode_blocks(container, path: str, sample_rate: int) -> Iterator[np.ndarray]:
    decoded = 0
    with container:
        # Planar float keeps the channels apart so they can be averaged (FFmpeg's own downmix
        # sums them, which can leave [-1, 1]).
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    decoded += out.samples
                    yield _full_scale(out.to_ndarray().mean(axis=0), path)
        except av.error.FFmpegError as error:
            if not decoded:
                raise AudioError(f"cannot decode the audio of {path} ({error}); the file looks corrupt.") from None
            # A damaged tail: keep what decoded.
        for out in resampler.resample(None):
            decoded += out.samples
            yield _full_scale(out.to_ndarray().mean(axis=0), path)
    if not decoded:
        raise AudioError(f"{path} contains no audio samples; give a non-empty recording.")


def _full_scale(block: np.ndarray, path: str) -> np.ndarray:
    """A decoded block as float32 in [-1, 1]: float files can hold NaN/Inf (refused: no encoder or
    feature can use them) or samples beyond full scale (clipped, as any player would)."""
    if not np.isfinite(block).all():
        raise AudioError(f"{path} contains NaN or infinite samples; the recording is damaged: export it again (e.g. as 16-bit WAV).")
    return np.clip(block, -1.0, 1.0).astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decodes the first audio stream of a file to one mono float32 array at `sample_rate`.

    See `iter_audio` for the formats; use that for long recordings.

    Returns:
        1-D float32 array in [-1, 1].

    Raises:
        AudioError: the file is missing, unreadable, has no audio stream, or decodes to nothing.
    """
    return np.concatenate(list(iter_audio(path, sample_rate)))


def shift_audio(waveform: np.ndarray, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Moves the audio's time origin `seconds` later: drops that much from the start (or pads zeros
    in front for negative values). Used when a video stream starts after its audio stream."""
    samples = int(round(seconds * sample_rate))
    if samples > 0:
        return waveform[samples:]
    if samples < 0:
        return np.concatenate([np.zeros(-samples, waveform.dtype), waveform])
    return waveform


def num_video_frames(num_samples: int, config: AudioConfig = AudioConfig()) -> int:
    """Video frames that cover `num_samples` of audio (at least one)."""
    return max(1, int(math.floor(num_samples / config.samples_per_video_frame + 0.5)))


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filter_bank(config: AudioConfig = AudioConfig()) -> np.ndarray:
    """The triangular mel filter bank of python_speech_features, shape [fft_length // 2 + 1, num_mel_bins].

    Filter edges are evenly spaced on the mel scale from 0 Hz to Nyquist and then snapped down to
    FFT bin indices; each filter rises linearly from its lower to its centre bin and falls to its
    upper bin.
    """
    num_bins = config.fft_length // 2 + 1
    edges_mel = np.linspace(_hz_to_mel(0.0), _hz_to_mel(config.sample_rate / 2), config.num_mel_bins + 2)
    edges_bin = np.floor((config.fft_length + 1) * _mel_to_hz(edges_mel) / config.sample_rate).astype(int)
    bank = np.zeros((config.num_mel_bins, num_bins), np.float64)
    for m in range(config.num_mel_bins):
        low, centre, high = edges_bin[m], edges_bin[m + 1], edges_bin[m + 2]
        rising = np.arange(low, centre)
        bank[m, rising] = (rising - low) / (centre - low)
        falling = np.arange(centre, high)
        bank[m, falling] = (high - falling) / (high - centre)
    return bank.T.astype(np.float32)


@functools.lru_cache(maxsize=4)
def _filter_bank64(config: AudioConfig) -> np.ndarray:
    return mel_filter_bank(config).astype(np.float64)


@functools.lru_cache(maxsize=4)
def cepstra_matrix(config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Log mel energies -> the 12 coefficients, [num_mel_bins, 12] float32: the orthonormal DCT-II,
    liftered, c0 dropped (python_speech_features replaces c0 by the log frame energy; it is not used)."""
    n, k = np.arange(config.num_mel_bins)[:, None], np.arange(config.num_cepstra)[None]
    dct = np.cos(np.pi * k * (2 * n + 1) / (2 * config.num_mel_bins)) * np.sqrt(2.0 / config.num_mel_bins)
    dct[:, 0] /= np.sqrt(2.0)
    return (dct * cepstral_lifter(config)[None])[:, 1:].astype(np.float32)


def cepstral_lifter(config: AudioConfig) -> np.ndarray:
    """python_speech_features' sinusoidal lifter [num_cepstra]."""
    n = np.arange(config.num_cepstra, dtype=np.float64)
    half = config.cepstral_lifter / 2.0
    return (1.0 + half * np.sin(np.pi * n / config.cepstral_lifter)).astype(np.float32)


def mfcc(waveform: np.ndarray, config: AudioConfig = AudioConfig()) -> np.ndarray:
    """Waveform -> MFCC matrix [rows, 12] float32 (python_speech_features parity), with numpy.

    Rows are 10 ms apart; the signal tail is zero-padded to `1 + ceil((N - 400) / 160)` rows as
    python_speech_features does. `mfcc_graph.Mfcc` computes the same in TensorFlow ops.
    """
    c = config
    waveform = np.asarray(waveform, np.float64).reshape(-1)
    emphasized = np.concatenate([waveform[:1], waveform[1:] - c.preemphasis * waveform[:-1]])
    rows = 1 + -(-max(emphasized.size - c.frame_length, 0) // c.frame_step)
    emphasized = np.pad(emphasized, (0, (rows - 1) * c.frame_step + c.frame_length - emphasized.size))
    frames = np.lib.stride_tricks.sliding_window_view(emphasized, c.frame_length)[:: c.frame_step]
    power = np.abs(np.fft.rfft(frames, n=c.fft_length)) ** 2 / c.fft_length
    mel = power @ _filter_bank64(c)
    # python_speech_features replaces exact zeros by float64 machine epsilon before the log.
    mel[mel == 0.0] = np.finfo(np.float64).eps
    return (np.log(mel) @ cepstra_matrix(c).astype(np.float64)).astype(np.float32)


def mfcc_windows(waveform: np.ndarray, num_frames: int | None = None, config: AudioConfig | None = None) -> np.ndarray:
    """Waveform -> one 28 x 12 MFCC window per video frame, centred on that frame.

    Frame t gets MFCC rows [(t - 3) * 4, (t + 4) * 4) of the unpadded signal: the waveform is
    padded with 0.12 s of zeros at both ends (and with more zeros at the end when the audio is
    shorter than the requested frames), so every frame has a full window.

    Args:
        waveform: 1-D float32 waveform at `config.sample_rate`.
        num_frames: video frames to produce; defaults to the frames that cover the audio.
        config: audio configuration; the `paper` preset when omitted.

    Returns:
        [num_frames, 28, 12] float32 array.
    """
    c = config or AudioConfig()
    waveform = np.asarray(waveform, np.float32).reshape(-1)
    if num_frames is None:
        num_frames = num_video_frames(waveform.size, c)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}.")
    padded = np.pad(waveform, (c.padding_samples, c.padding_samples))
    rows_needed = c.mfcc_rows_per_video_frame * (num_frames - 1) + c.window_mfcc_frames
    padded = np.pad(padded, (0, max(c.frame_length + c.frame_step * (rows_needed - 1) - padded.size, 0)))
    return _windows_of(mfcc(padded, c), c)[:num_frames]


def _windows_of(rows: np.ndarray, c: AudioConfig) -> np.ndarray:
    """MFCC rows [R, 12] -> the windows of 28 rows every 4 rows [n, 28, 12]."""
    windows = np.lib.stride_tricks.sliding_window_view(rows, c.window_mfcc_frames, axis=0)[:: c.mfcc_rows_per_video_frame]
    return np.ascontiguousarray(windows.transpose(0, 2, 1))


class MfccWindowStream:
    """MFCC windows for audio that arrives block by block, equal to `mfcc_windows` of the whole.

    `push` takes the next waveform block and returns the windows of the frames whose 280 ms of
    audio is now complete (0.175 s of look-ahead); `finish` returns the rest. Memory holds one
    window's span of samples, whatever the length of the recording.

    Args:
        config: audio configuration; the `paper` preset when omitted.
    """

    def __init__(self, config: AudioConfig | None = None):
        self.config = config or AudioConfig()
        c = self.config
        self._hop = c.samples_per_video_frame
        # Padded samples frame t's window reads: MFCC rows [4t, 4t + 28) of the padded signal,
        # plus one row before them so that pre-emphasis sees the sample before the window.
        self._span = c.frame_step + c.frame_length + c.frame_step * (c.window_mfcc_frames - 1)
        self._pending = np.zeros(c.frame_step + c.padding_samples, np.float32)
        self._received = 0
        self._emitted = 0
        self._finished = False

    @property
    def frames_emitted(self) -> int:
        """Windows returned so far."""
        return self._emitted

    def push(self, block: np.ndarray) -> np.ndarray:
        """Adds a waveform block; returns [n, 28, 12] windows of the newly complete frames (n >= 0)."""
        if self._finished:
            raise ValueError("the stream is finished; start a new MfccWindowStream.")
        block = np.asarray(block, np.float32).reshape(-1)
        self._received += block.size
        self._pending = np.concatenate([self._pending, block])
        ready = (self._pending.size - self._span) // self._hop + 1 if self._pending.size >= self._span else 0
        return self._windows(ready)

    def finish(self) -> np.ndarray:
        """Ends the recording; returns the windows of the remaining frames (the last ones padded)."""
        self._finished = True
        remaining = num_video_frames(self._received, self.config) - self._emitted
        if remaining <= 0:
            return np.zeros((0, self.config.window_mfcc_frames, self.config.num_coefficients), np.float32)
        needed = self._span + self._hop * (remaining - 1)
        self._pending = np.pad(self._pending, (0, max(needed - self._pending.size, 0)))
        return self._windows(remaining)

    def _windows(self, count: int) -> np.ndarray:
        c = self.config
        if count <= 0:
            return np.zeros((0, c.window_mfcc_frames, c.num_coefficients), np.float32)
        length = self._span + self._hop * (count - 1)
        rows = mfcc(self._pending[:length], c)[1:]  # the extra first row only fed pre-emphasis
        self._pending = self._pending[self._hop * count:]
        self._emitted += count
        return _windows_of(rows, c)
