"""Plain helpers and constants shared by the tests (import them from here, not from conftest)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from atvg_tf.frontend.face.template import TEMPLATE_68, TEMPLATE_SIZE
from atvg_tf.rendering.face_points import OUTER_LIPS

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


# A synthetic photo whose face sits exactly where the template landmarks say (renderer tests):
# photo pixels = crop pixels * SCALE + SHIFT.
CROP = 128
SCALE, SHIFT = 3.0, np.array([40.0, 30.0])  # photo = crop * SCALE + SHIFT
IDENTITY = (TEMPLATE_68 * (CROP / TEMPLATE_SIZE)).astype(np.float32)
TRANSFORM = np.array([[1 / SCALE, 0, -SHIFT[0] / SCALE], [0, 1 / SCALE, -SHIFT[1] / SCALE]])
LIP_RED = (200, 30, 40)


def synthetic_photo(height=480, width=460, shift=SHIFT):
    """Textured skin with red lips drawn on the outer-lip polygon of IDENTITY."""
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(170, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    points = IDENTITY * SCALE + shift
    cv2.fillPoly(photo, [np.round(points[list(OUTER_LIPS)]).astype(np.int32)], LIP_RED)
    return photo


def assert_same_outputs(model, other, frames: int = 3) -> None:
    """Two `TalkingFaceModel`s give the same landmarks and frames for the same random speech and face."""
    rng = np.random.default_rng(0)
    windows = {name: rng.normal(size=(frames, *model.atnet.input[name].shape[2:])).astype(np.float32) for name in model.audio_inputs}
    identity = IDENTITY
    predicted = model.predict_landmarks(windows, identity)
    np.testing.assert_array_equal(predicted, other.predict_landmarks(windows, identity))
    face = rng.integers(0, 256, (model.crop_size, model.crop_size, 3), dtype=np.uint8)
    np.testing.assert_array_equal(model.render(face, identity, predicted)["frames"], other.render(face, identity, predicted)["frames"])
