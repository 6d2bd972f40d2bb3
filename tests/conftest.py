"""Shared fixtures and hooks: the read-only data in ../shared/data and one small prepared dataset.

Plain helpers and constants live in tests/helpers.py; test files import them from there.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.helpers import HELD_OUT_GRID_CLIPS, REPO, SHARED_DATA

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: a test that takes seconds to minutes (runs `atvg prepare`, trains, converts or exports a "
        "model, runs the CLI in a subprocess). Deselect with '-m \"not slow\"'; CI runs every test.",
    )


@pytest.fixture(scope="session")
def shared_data() -> str:
    """Path of the shared data folder; skips the test when it is absent."""
    if not os.path.isdir(os.path.join(SHARED_DATA, "grid", "s1")):
        pytest.skip(f"shared data not found at {SHARED_DATA} (set ATVG_SHARED_DATA to its path)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def silent_clip(shared_data, tmp_path_factory) -> str:
    """`wild/edtalk_mouth_source.mp4`, a video without a sound track, alone in a folder `wild/`
    (in the shared folder its recording lies beside it, and prepare would hear that)."""
    folder = tmp_path_factory.mktemp("silent") / "wild"
    folder.mkdir()
    os.symlink(os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4"), folder / "edtalk_mouth_source.mp4")
    return str(folder / "edtalk_mouth_source.mp4")


@pytest.fixture(scope="session")
def prepared_inputs(shared_data, silent_clip, tmp_path_factory) -> list[str]:
    """A folder `s1/` with four GRID clips (and their .align files) plus a corrupt clip, and a wild clip."""
    root = tmp_path_factory.mktemp("inputs")
    speaker = root / "s1"
    speaker.mkdir()
    for name in HELD_OUT_GRID_CLIPS:
        for extension in (".mpg", ".align"):
            os.symlink(os.path.join(shared_data, "grid", "s1", name + extension), speaker / (name + extension))
    (speaker / "broken.mpg").write_bytes(b"\x00\x00\x01\xba" + os.urandom(4000))
    wild = os.path.join(shared_data, "wild", "astorfi_lrw_sample1.mp4")
    return [str(speaker), wild, silent_clip]


@pytest.fixture(scope="session")
def prepared_dir(prepared_inputs, tmp_path_factory) -> str:
    """`atvg prepare` (two worker processes, mediapipe) run once on `prepared_inputs`."""
    from atvg_tf.data.prepare import PrepareConfig, prepare

    output = str(tmp_path_factory.mktemp("prepared") / "out")
    prepare(prepared_inputs, output, PrepareConfig(workers=2, val_fraction=0.3, clips_per_shard=2, audio_variants=1), progress=False)
    return output


@pytest.fixture
def copy_of(tmp_path):
    """Copies a folder into the test's temporary folder."""

    def copy(path: str) -> str:
        destination = tmp_path / os.path.basename(path)
        shutil.copytree(path, destination)
        return str(destination)

    return copy


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory):
    """A model folder with freshly initialised `small` networks (evaluation must work on any model)."""
    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig, VGNetConfig
    from atvg_tf.models.vgnet import build_vgnet

    folder = tmp_path_factory.mktemp("model")
    build_atnet(ATNetConfig.preset("small")).save(folder / "atnet.keras")
    build_vgnet(VGNetConfig.preset("small")).save(folder / "vgnet.keras")
    shutil.copy(os.path.join(REPO, "atvg_tf", "assets", "landmark_pca.npz"), folder / "pca.npz")
    return str(folder)
