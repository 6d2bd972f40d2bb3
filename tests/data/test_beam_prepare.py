"""`atvg prepare --runner beam`: the same records, skips and folder as the local runner."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from atvg_tf.data import records
from atvg_tf.data.pipeline import PipelineConfig, make_dataset
from atvg_tf.data.prepare import PrepareConfig, prepare
from tests.helpers import grid_clip

pytest.importorskip("apache_beam", reason="the [beam] extra is not installed")
from atvg_tf.data.beam_prepare import prepare_with_beam  # noqa: E402

GRID_CLIPS = ("bbaf4p", "bbal7s", "bbas2p", "bbaz6p", "bbaz7a", "bbbf6n")
CONFIG = PrepareConfig(workers=2, val_fraction=0.3, clips_per_shard=2)


@pytest.fixture(scope="module")
def inputs(shared_data, tmp_path_factory):
    """Six GRID s1 clips with their .align files and a corrupt clip, in a folder `s1/`."""
    speaker = tmp_path_factory.mktemp("beam_inputs") / "s1"
    speaker.mkdir()
    for name in GRID_CLIPS:
        clip = grid_clip(shared_data, name)
        os.symlink(clip, speaker / os.path.basename(clip))
        os.symlink(clip[:-4] + ".align", speaker / (name + ".align"))
    (speaker / "broken.mpg").write_bytes(b"\x00\x00\x01\xba" + os.urandom(4000))
    return [str(speaker.parent)]


@pytest.fixture(scope="module")
def both(inputs, tmp_path_factory):
    """(local output folder, Beam output folder) of the same inputs and options."""
    root = tmp_path_factory.mktemp("beam_vs_local")
    local, beam = str(root / "local"), str(root / "beam")
    prepare(inputs, local, CONFIG, progress=False)
    prepare_with_beam(inputs, beam, CONFIG, progress=False)
    return local, beam


def _segments(folder):
    return {(s["clip_id"], int(s["segment"])): s for s in records.read_segments(sorted(glob.glob(os.path.join(folder, "*.tfrecord"))))}


def _manifest(folder):
    with open(os.path.join(folder, "manifest.json")) as handle:
        return json.load(handle)


def test_beam_writes_the_records_and_skips_of_the_local_runner(both):
    local, beam = _segments(both[0]), _segments(both[1])
    assert sorted(beam) == sorted(local) and len(local) == len(GRID_CLIPS)
    for key, segment in local.items():
        other = beam[key]
        assert other["frames"].tolist() == segment["frames"].tolist()  # the same JPEG bytes
        for name in ("landmarks", "pca_codes", "mfcc_variants", "phone_windows", "transforms", "interpolated", "word_start"):
            np.testing.assert_array_equal(other[name], segment[name], err_msg=f"{key} {name}")
    local_manifest, beam_manifest = _manifest(both[0]), _manifest(both[1])
    assert beam_manifest["settings"] == local_manifest["settings"]
    assert beam_manifest["counts"] == local_manifest["counts"]
    assert [(s["id"], s["reason"]) for s in beam_manifest["skipped"]] == [(s["id"], s["reason"]) for s in local_manifest["skipped"]]
    assert beam_manifest["skipped"][0]["id"].endswith("broken")
    strip = lambda clips: [{k: v for k, v in c.items() if k != "seconds"} for c in clips]  # noqa: E731
    assert strip(beam_manifest["clips"]) == strip(local_manifest["clips"])
    # The local runner's names, every shard listed once, with its records and frames.
    shards = beam_manifest["shards"]
    assert sorted(s["file"] for s in shards) == sorted(os.path.basename(p) for p in glob.glob(os.path.join(both[1], "*.tfrecord")))
    assert all(name.split("-")[0] in ("train", "val") and len(name.split("-")[1]) == len("00000.tfrecord") for name in (s["file"] for s in shards))
    assert sum(s["records"] for s in shards) == len(GRID_CLIPS)
    assert not os.path.exists(os.path.join(both[1], ".beam-staging"))


def test_training_reads_the_beam_folder_unchanged(both):
    config = PipelineConfig(sequence_length=8, batch_size=2, audio_features=("mfcc", "phones"))
    batch = next(iter(make_dataset(both[1], "train", config)))
    assert batch["frames"].shape[:2] == (2, 8) and batch["mfcc_windows"].shape[:2] == (2, 8)
    assert np.isfinite(batch["pca_codes"].numpy()).all()


def test_a_rerun_with_either_runner_prepares_nothing_again(inputs, both):
    beam = both[1]
    before = {path: os.path.getmtime(path) for path in glob.glob(os.path.join(beam, "*.tfrecord"))}
    assert prepare_with_beam(inputs, beam, CONFIG, progress=False) == _manifest(beam)
    assert prepare(inputs, beam, CONFIG, progress=False) == _manifest(beam)
    assert {path: os.path.getmtime(path) for path in glob.glob(os.path.join(beam, "*.tfrecord"))} == before


def test_a_failing_beam_job_is_one_line_and_keeps_no_shard(inputs, tmp_path):
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "atvg_tf.cli", "prepare", *inputs, "--output", str(output), "--runner", "beam",
         "--beam-option=--runner=NoSuchRunner", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert "Beam job failed" in message and "NoSuchRunner" in message
    assert not glob.glob(str(output / "*.tfrecord")) and not (output / ".beam-staging").exists()
