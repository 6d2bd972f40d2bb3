"""Voice normalisation: an utterance's MFCC statistics mapped onto those of the training voices.

An AT-net trained on one speaker and one microphone hears another voice, room or microphone as
cepstra shifted and scaled away from everything it learned. Each coefficient of the incoming
windows is standardised with the statistics of the speech heard so far and rescaled to the
training set's mean and standard deviation (cepstral mean/variance normalisation towards the
training distribution). Speech like the training speech is left almost unchanged.

The statistics are running sums, so a recording of any length needs constant memory, and the
streaming and one-shot results are identical. Frame t is normalised with the rows of windows
`0 .. max(t, lead_frames - 1)`, i.e. the first frames wait for `lead_frames` of audio (2 s by
default); `prior_rows` rows of the training statistics steady the estimate while few rows are in.
Rows of digital silence (all coefficients ~0: padding, muted input) are neither counted nor
changed, so silence stays what the model was trained on.

TensorFlow-free; `mfcc_graph.normalize_mfcc_windows` is the same in TensorFlow ops.
"""

from __future__ import annotations

import numpy as np

WINDOW_ROWS, ROWS_PER_FRAME = 28, 4
SILENT_ROW_NORM = 1e-2  # the MFCC rows of digital silence have norms around 1e-5


class MfccNormalizer:
    """Normalises MFCC windows ([n, 28, 12], frames in order) as they arrive.

    Args:
        mean, std: [12] per-coefficient statistics of the training speech (`fit_mfcc_statistics`).
        prior_rows: how many rows of the training statistics the running estimate starts with.
        lead_frames: frames of audio gathered before the first frame is normalised.
        fitted_on: a note of the data the statistics come from (kept in the config).
    """

    def __init__(self, mean, std, prior_rows: float = 20.0, lead_frames: int = 50, fitted_on: dict | None = None):
        self.mean = np.asarray(mean, np.float64).reshape(-1)
        self.std = np.asarray(std, np.float64).reshape(-1)
        if self.mean.shape != self.std.shape or np.any(self.std <= 0) or not np.all(np.isfinite(self.mean)):
            raise ValueError("mfcc_normalization needs finite `mean` and positive `std` of equal length.")
        self.prior_rows, self.lead_frames = float(prior_rows), max(int(lead_frames), 1)
        self.fitted_on = fitted_on
        self._count = self.prior_rows
        self._sum = self.prior_rows * self.mean
        self._sum_squares = self.prior_rows * (self.std**2 + self.mean**2)
        self._frames_seen = 0
        self._held: list[np.ndarray] = []

    @classmethod
    def from_config(cls, config: dict) -> MfccNormalizer:
        """From `get_config()` (a model's `training.json` inference.mfcc_normalization)."""
        return cls(**config)

    def get_config(self) -> dict:
        config = {"mean": self.mean.tolist(), "std": self.std.tolist(), "prior_rows": self.prior_rows,
                  "lead_frames": self.lead_frames}
        return {**config, "fitted_on": self.fitted_on} if self.fitted_on else config

    def push(self, windows: np.ndarray) -> np.ndarray:
        """Takes the next frames' raw windows [n, 28, C]; returns the normalised windows of the
        frames now ready ([m, 28, C]: none until `lead_frames` are in, then all of them)."""
        windows = np.asarray(windows, np.float32)
        out = []
        for window in windows:
            self._add_rows(window if self._frames_seen == 0 else window[-ROWS_PER_FRAME:])
            self._frames_seen += 1
            self._held.append(window)
            if self._frames_seen >= self.lead_frames:
                out.extend(self._apply(held) for held in self._held)
                self._held = []
        return np.stack(out) if out else np.zeros((0, *windows.shape[1:]), np.float32)

    def finish(self) -> np.ndarray:
        """Ends the recording; returns the frames still held (a recording shorter than the lead)."""
        out = [self._apply(held) for held in self._held]
        self._held = []
        return np.stack(out) if out else np.zeros((0, WINDOW_ROWS, self.mean.size), np.float32)

    def _add_rows(self, rows: np.ndarray) -> None:
        rows = rows[np.linalg.norm(rows, axis=1) > SILENT_ROW_NORM].astype(np.float64)
        self._count += len(rows)
        self._sum += rows.sum(axis=0)
        self._sum_squares += (rows**2).sum(axis=0)

    def _apply(self, window: np.ndarray) -> np.ndarray:
        mean = self._sum / self._count
        std = np.sqrt(np.maximum(self._sum_squares / self._count - mean**2, 1e-6))
        normalized = (window - mean) / std * self.std + self.mean
        speech = np.linalg.norm(window, axis=1, keepdims=True) > SILENT_ROW_NORM
        return np.where(speech, normalized, window).astype(np.float32)


def normalize_mfcc_windows(windows: np.ndarray, config: dict) -> np.ndarray:
    """One-shot: all windows [N, 28, C] of a recording, normalised exactly as the stream would."""
    normalizer = MfccNormalizer.from_config(config)
    return np.concatenate([normalizer.push(windows), normalizer.finish()])


def fit_mfcc_statistics(windows_of_clips) -> dict:
    """The training speech's statistics: an iterable of each clip's raw windows [N, 28, C] ->
    `{"mean": [C], "std": [C]}` over the rows that are not digital silence."""
    count, total, squares = 0, 0.0, 0.0
    for windows in windows_of_clips:
        windows = np.asarray(windows, np.float64)
        rows = np.concatenate([windows[0], windows[1:, -ROWS_PER_FRAME:].reshape(-1, windows.shape[-1])])
        rows = rows[np.linalg.norm(rows, axis=1) > SILENT_ROW_NORM]
        count, total, squares = count + len(rows), total + rows.sum(axis=0), squares + (rows**2).sum(axis=0)
    if count == 0:
        raise ValueError("no speech rows to fit MFCC statistics on.")
    mean = total / count
    return {"mean": mean.tolist(), "std": np.sqrt(np.maximum(squares / count - mean**2, 1e-6)).tolist()}
