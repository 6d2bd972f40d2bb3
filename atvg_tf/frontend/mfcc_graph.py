"""The MFCC front end of `frontend.audio` in TensorFlow ops, for graphs that take raw audio
(`atvg export --format saved_model`, `atvg prepare`); equal to `audio.mfcc` / `audio.mfcc_windows`
to float32 rounding."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from atvg_tf.frontend.audio import AudioConfig, cepstral_lifter, mel_filter_bank


class Mfcc(tf.Module):
    """Waveform -> MFCC matrix [rows, 12] with TensorFlow ops (python_speech_features parity).

    Rows are 10 ms apart; the signal tail is zero-padded to `1 + ceil((N - 400) / 160)` rows as
    python_speech_features does.
    """

    def __init__(self, config: AudioConfig = AudioConfig(), name: str | None = None):
        super().__init__(name=name)
        self.config = config
        self._filter_bank = tf.constant(mel_filter_bank(config))
        self._lifter = tf.constant(cepstral_lifter(config))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
    def __call__(self, waveform: tf.Tensor) -> tf.Tensor:
        """Args: waveform: 1-D float32. Returns: [rows, num_coefficients] float32."""
        c = self.config
        waveform = tf.convert_to_tensor(waveform, tf.float32)
        emphasized = tf.concat([waveform[:1], waveform[1:] - c.preemphasis * waveform[:-1]], axis=0)
        length = tf.shape(emphasized)[0]
        extra = tf.maximum(length - c.frame_length, 0)
        num_rows = 1 + (extra + c.frame_step - 1) // c.frame_step
        padded_length = (num_rows - 1) * c.frame_step + c.frame_length
        emphasized = tf.pad(emphasized, [[0, padded_length - length]])
        frames = tf.signal.frame(emphasized, c.frame_length, c.frame_step)
        spectrum = tf.signal.rfft(frames, fft_length=[c.fft_length])
        power = (tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2) / c.fft_length
        mel = tf.matmul(power, self._filter_bank)
        # python_speech_features replaces exact zeros by float64 machine epsilon before the log.
        mel = tf.where(mel == 0.0, tf.constant(np.finfo(np.float64).eps, tf.float32), mel)
        cepstra = tf.signal.dct(tf.math.log(mel), type=2, norm="ortho")[:, : c.num_cepstra]
        cepstra = cepstra * self._lifter
        # python_speech_features replaces c0 by the log frame energy; c0 is dropped either way.
        return cepstra[:, 1:]


class MfccWindows(tf.Module):
    """Waveform -> one 28 x 12 MFCC window per video frame, centred on that frame.

    Frame t gets MFCC rows [(t - 3) * 4, (t + 4) * 4) of the unpadded signal: the waveform is
    padded with 0.12 s of zeros at both ends (and with more zeros at the end when the audio is
    shorter than the requested frames), so every frame has a full window.
    """

    def __init__(self, config: AudioConfig = AudioConfig(), name: str | None = None):
        super().__init__(name=name)
        self.config = config
        self.mfcc = Mfcc(config)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.float32, name="waveform"),
            tf.TensorSpec([], tf.int32, name="num_frames"),
        ]
    )
    def __call__(self, waveform: tf.Tensor, num_frames: tf.Tensor) -> tf.Tensor:
        """Args: waveform: 1-D float32 at 16 kHz; num_frames: video frames N.

        Returns: [N, 28, 12] float32.
        """
        c = self.config
        rows_per_frame = c.mfcc_rows_per_video_frame
        pad = c.padding_samples
        padded = tf.pad(waveform, [[pad, pad]])
        rows_needed = rows_per_frame * (num_frames - 1) + c.window_mfcc_frames
        samples_needed = c.frame_length + c.frame_step * (rows_needed - 1)
        padded = tf.pad(padded, [[0, tf.maximum(samples_needed - tf.shape(padded)[0], 0)]])
        features = self.mfcc(padded)
        windows = tf.signal.frame(features, c.window_mfcc_frames, rows_per_frame, axis=0)
        return windows[:num_frames]



def normalize_mfcc_windows(windows: tf.Tensor, config: dict) -> tf.Tensor:
    """`mfcc_normalization.normalize_mfcc_windows` in TensorFlow ops: [T, 28, C] -> [T, 28, C]."""
    from atvg_tf.frontend.mfcc_normalization import ROWS_PER_FRAME, SILENT_ROW_NORM

    original = tf.cast(windows, tf.float64)
    target_mean = tf.constant(np.asarray(config["mean"], np.float64))
    target_std = tf.constant(np.asarray(config["std"], np.float64))
    prior, lead = float(config.get("prior_rows", 20.0)), max(int(config.get("lead_frames", 50)), 1)
    speech = tf.cast(tf.norm(original, axis=-1, keepdims=True) > SILENT_ROW_NORM, tf.float64)  # [T, 28, 1]
    # The rows each frame adds to the statistics: its last 4; frame 0 adds all 28.
    added = tf.concat([tf.ones([1, 28 - ROWS_PER_FRAME, 1], tf.float64),
                       tf.zeros([tf.shape(original)[0] - 1, 28 - ROWS_PER_FRAME, 1], tf.float64)], axis=0)
    added = tf.concat([added, tf.ones_like(original[:, -ROWS_PER_FRAME:, :1])], axis=1) * speech
    count = prior + tf.cumsum(tf.reduce_sum(added, axis=1), axis=0)
    total = prior * target_mean + tf.cumsum(tf.reduce_sum(original * added, axis=1), axis=0)
    squares = prior * (target_std**2 + target_mean**2) + tf.cumsum(tf.reduce_sum(original**2 * added, axis=1), axis=0)
    # Frames before the lead use the statistics at the lead (or at the last frame of a shorter input).
    frames = tf.shape(original)[0]
    at = tf.maximum(tf.range(frames), tf.minimum(lead, frames) - 1)
    mean = tf.gather(total / count, at)
    std = tf.sqrt(tf.maximum(tf.gather(squares / count, at) - mean**2, 1e-6))
    normalized = (original - mean[:, None]) / std[:, None] * target_std + target_mean
    return tf.cast(tf.where(speech > 0, normalized, original), tf.float32)
