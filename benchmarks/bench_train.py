"""Training throughput on this machine: seconds per step of `atvg train` for each network and config.

Each (network, config) runs `atvg_tf.training.train.train` in a fresh process for a few steps on a
prepared folder (no validation, no backup inside the epoch) and reports the median time per step
after the first two (tracing), frames per second (batch x sequence length / step time), peak RSS,
and the sizes of what the run writes (the `.keras` checkpoint and the backup with the optimizer
state): the figures docs/SCALING.md plans with.

    python benchmarks/bench_train.py PREPARED_DIR --configs cpu lrw --networks atnet vgnet --steps 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def one(prepared: str, network: str, config_name: str, steps: int) -> dict:
    """Runs in the child process: trains `steps` steps and measures them."""
    import keras
    import numpy as np

    from atvg_tf.training.train import TrainConfig, train

    config = TrainConfig.from_file(config_name, epochs=1, steps_per_epoch=steps, validation_steps=0, backup_every=10**6)
    ends = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as run:
        started = time.perf_counter()
        train(network, prepared, run, config, verbose=0, extra_callbacks=[StepTimer()])
        wall = time.perf_counter() - started
        checkpoint = os.path.join(run, "last.keras")
        sizes = {"checkpoint_mb": round(os.path.getsize(checkpoint) / 2**20, 1) if os.path.isfile(checkpoint) else None,
                 "backup_mb": round(folder_bytes(os.path.join(run, "backup")) / 2**20, 1)}
    step = float(np.median(np.diff(ends)[1:]))
    return {
        "network": network,
        "config": config_name,
        "preset": config.model_preset,
        "batch": f"{config.batch_size} x {config.sequence_length}",
        "seconds_per_step": round(step, 3),
        "frames_per_second": round(config.batch_size * config.sequence_length / step, 1),
        "first_step_seconds": round(ends[0] - started, 1),
        "wall_seconds": round(wall, 1),
        **sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", metavar="PREPARED_DIR", help="output folder of `atvg prepare` (with phone windows)")
    parser.add_argument("--configs", nargs="+", default=["cpu", "lrw"])
    parser.add_argument("--networks", nargs="+", default=["atnet", "vgnet"], choices=["atnet", "vgnet"])
    parser.add_argument("--steps", type=int, default=8, help="steps per run (the first two are not counted)")
    parser.add_argument("--one", nargs=2, metavar=("NETWORK", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = one(args.prepared, *args.one, args.steps)
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result), flush=True)
        return
    for config in args.configs:
        for network in args.networks:
            command = [sys.executable, __file__, args.prepared, "--steps", str(args.steps), "--one", network, config]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            print(output.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
