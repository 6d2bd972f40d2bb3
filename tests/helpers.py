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
