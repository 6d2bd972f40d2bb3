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
