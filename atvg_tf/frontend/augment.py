"""Waveform augmentation for training the audio side: the rooms, microphones and voices users record with.

audiomentations does the signal processing: room reverb (an image-source room simulation), noise at
5-30 dB SNR, the band limits and equalisation of phones and laptops, pitch and formant shifts (a
different vocal tract), gain. Speed perturbation is left out: it would move the speech away from the
video frames its landmarks belong to. Every transform keeps the length.
"""

from __future__ import annotations

import random

import numpy as np


def speech_augmenter():
    """A callable `augment(waveform, seed) -> waveform` (16 kHz float32, same length, peak <= 1)."""
    import audiomentations as A

    chain = A.Compose([
        A.RoomSimulator(leave_length_unchanged=True, p=0.5),
        A.OneOf([
            A.BandPassFilter(min_center_freq=800.0, max_center_freq=2000.0, p=1.0),  # telephone-like
            A.LowPassFilter(min_cutoff_freq=3000.0, max_cutoff_freq=7000.0, p=1.0),
            A.HighPassFilter(min_cutoff_freq=100.0, max_cutoff_freq=400.0, p=1.0),  # small laptop speakers/mics
        ], p=0.5),
        A.SevenBandParametricEQ(p=0.5),
        A.PitchShift(min_semitones=-3.0, max_semitones=3.0, p=0.5),
        A.AddColorNoise(min_snr_db=5.0, max_snr_db=30.0, p=0.7),
        A.Gain(min_gain_db=-12.0, max_gain_db=6.0, p=0.5),
    ])

    def augment(waveform: np.ndarray, seed: int) -> np.ndarray:
        # audiomentations draws from the global generators.
        random.seed(seed)
        np.random.seed(seed % 2**32)
        out = chain(np.asarray(waveform, np.float32), sample_rate=16000).astype(np.float32)
        peak = float(np.abs(out).max()) if out.size else 0.0
        return out * (0.99 / peak) if peak > 0.99 else out

    return augment
