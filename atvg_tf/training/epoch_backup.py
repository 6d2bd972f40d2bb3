"""Keras's BackupAndRestore that also backs up at every epoch's end."""

from __future__ import annotations

import keras


class EpochBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore(save_freq=N)` plus a backup at the end of every epoch.

    With an integer `save_freq` Keras backs up only every N batches: a run whose epochs are shorter
    than N had no backup at all, and the backup taken at an epoch's last batch still named that
    epoch, so a run killed before the next backup trained a finished epoch again. Here the backup
    made at an epoch's end names the next epoch; a resumed run starts there.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # Keras already saved for "epoch"
            self._save_model()
