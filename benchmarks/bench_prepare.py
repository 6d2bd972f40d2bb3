"""Throughput of `atvg prepare` on the shared GRID s1 clips, per landmark backend and runner.

Runs the real command (worker processes, shards, manifest) on the first N clips into a temporary
folder and reports frames per second over the whole run (start-up included) and per worker-second.

    python benchmarks/bench_prepare.py --clips 20 100 --backends mediapipe dlib
    python benchmarks/bench_prepare.py --clips 60 --backends mediapipe --runners local beam
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def run(backend: str, clips: list[str], workers: int, runner: str = "local") -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        inputs = os.path.join(scratch, "s1")
        os.mkdir(inputs)
        for clip in clips:
            os.symlink(clip, os.path.join(inputs, os.path.basename(clip)))
        output = os.path.join(scratch, "out")
        command = [sys.executable, "-m", "atvg_tf.cli", "prepare", inputs, "--output", output, "--landmarks", backend,
                   "--workers", str(workers), "--runner", runner, "--quiet"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        with open(os.path.join(output, "manifest.json")) as handle:
            manifest = json.load(handle)
    frames = sum(manifest["counts"]["frames"].values())
    busy = sum(clip["seconds"] for clip in manifest["clips"])
    return {
        "backend": backend,
        "runner": runner,
        "clips": len(clips),
        "clips_prepared": manifest["counts"]["clips_prepared"],
        "frames": frames,
        "workers": workers,
        "wall_seconds": round(wall, 1),
        "frames_per_second": round(frames / wall, 1),
        "frames_per_worker_second": round(frames / busy, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--clips", type=int, nargs="+", default=[100], help="first N GRID s1 clips; several N run one after the other")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--backends", nargs="+", default=["mediapipe", "dlib"])
    parser.add_argument("--runners", nargs="+", default=["local"], choices=["local", "beam"])
    args = parser.parse_args()
    for count in args.clips:
        for backend in args.backends:
            for runner in args.runners:
                print(json.dumps(run(backend, grid_clips(args.data, count), args.workers, runner)), flush=True)


def grid_clips(data: str, count: int) -> list[str]:
    """The first `count` GRID s1 videos of the shared data."""
    folder = os.path.join(data, "grid", "s1")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".mpg"))[:count]


if __name__ == "__main__":
    main()
