"""A wall-clock budget for `model.fit` that survives interruptions, with a progress bar."""

from __future__ import annotations

import json
import os
import time

import keras

from atvg_tf.utils.files import atomic_write


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the batch where `seconds` of training have been spent.

    The time spent is counted over every session of a resumed run: it is kept in `ledger` (a JSON
    file) every few batches and at each epoch's end, so an interrupted run continues with what is left.

    Args:
        seconds: the budget.
        ledger: JSON file of the seconds spent so far (None: this session only).
        progress: show a progress bar of the budget (in seconds).
        label: the progress bar's label.
    """

    SAVE_EVERY = 5  # batches

    def __init__(self, seconds: float, ledger: str | None = None, progress: bool = False, label: str = "training"):
        super().__init__()
        self.seconds, self.ledger, self.progress, self.label = float(seconds), ledger, progress, label
        self.stopped = False
        self._bar = None

    @property
    def spent(self) -> float:
        """Seconds spent over every session so far."""
        return self._before + time.time() - self._started

    def spent_before(self) -> float:
        if self.ledger and os.path.isfile(self.ledger):
            with open(self.ledger) as handle:
                return float(json.load(handle)["seconds"])
        return 0.0

    def on_train_begin(self, logs=None):
        self._before, self._started = self.spent_before(), time.time()
        if self.progress:
            from tqdm import tqdm

            self._bar = tqdm(total=round(self.seconds), initial=min(round(self._before), round(self.seconds)), unit="s",
                             desc=self.label, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s {postfix}")

    def on_train_batch_end(self, batch, logs=None):
        spent = self.spent
        if self._bar is not None:
            # The main loss only (a GAN logs eight), at tqdm's own refresh rate.
            loss = (logs or {}).get("g_loss", (logs or {}).get("loss"))
            if loss is not None:
                self._bar.set_postfix_str(f"loss {float(loss):.4g}", refresh=False)
            self._bar.update(min(round(spent), self._bar.total) - self._bar.n)
        if batch % self.SAVE_EVERY == 0:
            self._save()
        if spent >= self.seconds:
            self.model.stop_training = True
            self.stopped = True

    def on_epoch_end(self, epoch, logs=None):
        self._save()

    def on_train_end(self, logs=None):
        self._save()
        if self._bar is not None:
            self._bar.close()

    def _save(self) -> None:
        if self.ledger:
            with atomic_write(self.ledger) as handle:
                json.dump({"seconds": round(self.spent, 1)}, handle)
