"""Checkpoints of the moving average, backups of the trained weights."""

import os

import keras
import numpy as np

from atvg_tf.training.averaged_checkpoints import AveragedWeightsSwap


class _Record(keras.callbacks.Callback):
    """The model's kernel where the backup would be taken (after the second swap)."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_epoch_end(self, epoch, logs=None):
        self.kernels.append(np.array(self.model.layers[-1].kernel))


def test_checkpoints_hold_the_average_and_training_goes_on_from_the_trained_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.1, use_ema=True, ema_momentum=0.8), "mse")
    x, y = np.random.default_rng(0).normal(size=(64, 3)), np.random.default_rng(1).normal(size=(64, 2))
    record = _Record()
    checkpoint = str(tmp_path / "last.keras")
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_data=(x, y),
              callbacks=[AveragedWeightsSwap(swaps_for_validation=True), keras.callbacks.ModelCheckpoint(checkpoint),
                         AveragedWeightsSwap(), record])
    saved = keras.saving.load_model(checkpoint).layers[-1].kernel.numpy()
    average = np.array(model.optimizer._model_variables_moving_average[0])  # fit's end put it into the model too
    np.testing.assert_allclose(saved, average, atol=1e-6)
    assert np.abs(record.kernels[-1] - saved).max() > 1e-3  # the trained weights were in the model for the backup
    np.testing.assert_allclose(np.array(model.layers[-1].kernel), average, atol=1e-6)
    assert os.path.getsize(checkpoint) > 0
