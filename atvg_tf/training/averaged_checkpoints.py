"""Checkpoints of the averaged weights when the optimizer keeps an exponential moving average."""

from __future__ import annotations

import keras


class AveragedWeightsSwap(keras.callbacks.SwapEMAWeights):
    """Swaps the model's weights with the optimizer's moving average at each epoch's end.

    Two of them enclose the checkpoint callbacks: the first puts the averaged weights into the
    model, so `best.keras`/`last.keras` hold them; the second puts the trained ones back before the
    backup, which must hold the state training goes on from (a swap is its own inverse). Keras's
    `SwapEMAWeights(swap_on_epoch=True)` instead swaps back at the next epoch's start, after the
    backup, whose restored run would train on from the average with the weights as its average.
    Validation sees the averaged weights through the parent's `on_test_begin`/`on_test_end` when
    `swaps_for_validation`.
    """

    def __init__(self, swaps_for_validation: bool = False):
        super().__init__(swap_on_epoch=False)
        self.swaps_for_validation = swaps_for_validation

    def on_epoch_end(self, epoch, logs=None):
        self._swap_variables()

    def on_test_begin(self, logs=None):
        if self.swaps_for_validation:
            super().on_test_begin(logs)

    def on_test_end(self, logs=None):
        if self.swaps_for_validation:
            super().on_test_end(logs)
