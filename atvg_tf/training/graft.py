"""Starting a network from a trained one that heard fewer audio inputs (an MFCC AT-net -> `mfcc+phones`)."""

from __future__ import annotations

import keras
import numpy as np

# The new inputs' rows of a widened kernel start at this fraction of their fresh initialisation: the
# grafted network begins close to the trained one, and the new inputs can still learn.
NEW_ROWS_SCALE = 0.1


def graft_weights(model: keras.Model, trained: keras.Model, new_rows_scale: float = NEW_ROWS_SCALE) -> list[str]:
    """Copies `trained`'s weights into `model` layer by layer (by name), where `model` has more inputs.

    A layer both have gets the trained weights; a kernel that grew rows (the first LSTM, whose input
    now also holds the new audio feature after the old ones) keeps the trained rows first and its
    fresh rows scaled by `new_rows_scale`; layers only `model` has (the new input's branch) keep
    their initialisation. With `new_rows_scale` 0 the grafted model computes exactly what
    `trained` did, whatever the new input.

    Returns:
        The names of the layers whose kernels grew.

    Raises:
        ValueError: a layer both have differs in another way (another preset, another width).
    """
    widened = []
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            source = trained.get_layer(layer.name)
        except ValueError:
            continue  # the new input's own layers
        old, new = source.get_weights(), layer.get_weights()
        if len(old) != len(new):
            raise ValueError(f"layer {layer.name} has {len(old)} weights in the trained network and {len(new)} here")
        grafted = []
        for before, fresh in zip(old, new):
            if before.shape == fresh.shape:
                grafted.append(before)
            elif before.ndim == 2 and before.shape[1] == fresh.shape[1] and before.shape[0] < fresh.shape[0]:
                rows = np.array(fresh) * new_rows_scale
                rows[: before.shape[0]] = before
                grafted.append(rows)
                widened.append(layer.name)
            else:
                raise ValueError(f"layer {layer.name}: {before.shape} in the trained network, {fresh.shape} here")
        layer.set_weights(grafted)
    return widened
