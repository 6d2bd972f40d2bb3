"""Keras's BackupAndRestore that also backs up at every epoch's end."""

from __future__ import annotations

import keras


class EpochBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore(save_freq=N)` plus a backup at the end of every epoch.

    With an integer `save_freq` Keras backs up only every N batches: a run whose epochs are shorter
    than N had no backup at all, and the backup taken at an epoch's last batch still named that
    epoch, so a run killed before the next backup trained a finished epoch again. Here the backup
    made at an epoch's end names the next epoch; a resumed run starts there.

    Args:
        backup_dir: where the backups are written (and restored from).
        restore_dir: restore from this folder's backup instead (a multi-worker run's non-chief
            workers: all of them resume from the chief's backup, whatever their own reached).
        **kwargs: as `keras.callbacks.BackupAndRestore`.
    """

    def __init__(self, backup_dir: str, restore_dir: str | None = None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.restore_dir = restore_dir

    def on_train_begin(self, logs=None):
        if self.restore_dir is None or self.restore_dir == self.backup_dir:
            return super().on_train_begin(logs)
        restore = keras.callbacks.BackupAndRestore(self.restore_dir)
        restore.set_model(self.model)
        restore.on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # Keras already saved for "epoch"
            self._save_model()
