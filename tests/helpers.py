"""Plain helpers and constants shared by the tests (import them from here, not from conftest)."""

from __future__ import annotations

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("ATVG_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))

# Clips of GRID speaker s1 whose sorted index is not 5 mod 10: tools/fit_face_tables.py never saw them.
HELD_OUT_GRID_CLIPS = ("bbaf4p", "bbal7s", "bbas2p", "bbaz6p")


def grid_clip(shared: str, name: str = "bbaf4p") -> str:
    """Path of GRID speaker s1's clip `name` in the shared data folder `shared`."""
    return os.path.join(shared, "grid", "s1", name + ".mpg")


def model_folder_with(atnet, folder) -> str:
    """Writes a model folder: `atnet` beside the packaged model's VG-net, PCA and training.json, with
    a motion gain and rest_on_silence (so the exports' silence offset is exercised)."""
    import json
    import shutil

    from atvg_tf.generation.model import DEFAULT_MODEL_DIR

    atnet.save(os.path.join(folder, "atnet.keras"))
    for name in ("vgnet.keras", "pca.npz"):
        shutil.copy(os.path.join(DEFAULT_MODEL_DIR, name), os.path.join(folder, name))
    with open(os.path.join(DEFAULT_MODEL_DIR, "training.json")) as handle:
        info = json.load(handle)  # its landmark backend decides the alignment, as for the default model
    info["inference"] = {"motion_gain": 1.6, "rest_on_silence": True}
    with open(os.path.join(folder, "training.json"), "w") as handle:
        json.dump(info, handle)
    return str(folder)
