"""Trains the default model shipped in the package (`small` networks on GRID speaker s1, CPU).

One command, resumable (rerun it after an interruption), bounded in wall time:

    python training/train_default_model.py --data ../shared/data/grid/s1 --work runs/default

Steps: `atvg prepare` (mediapipe, the packaged PCA basis, 10 % of the clips held out as val) ->
AT-net -> VG-net GAN (teacher-forced on the true landmarks) -> export of AT-net, the VG-net
generator and the PCA basis into `atvg_tf/assets/default_model/` with a model card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import keras  # noqa: E402

from atvg_tf.data.prepare import PrepareConfig, prepare  # noqa: E402
from atvg_tf.training.train import TrainConfig, train  # noqa: E402

ATNET = TrainConfig(model_preset="small", epochs=8, steps_per_epoch=150, validation_steps=10, batch_size=16,
                    sequence_length=16, backup_every=50)
VGNET = TrainConfig(model_preset="small", epochs=20, steps_per_epoch=120, validation_steps=5, batch_size=4,
                    sequence_length=8, backup_every=20)
DEFAULT_EXPORT = os.path.join(REPO, "atvg_tf", "assets", "default_model")


class WallClockLimit(keras.callbacks.Callback):
    """Stops training at the end of the batch where `deadline` (epoch seconds) has passed."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.stopped = False

    def on_train_batch_end(self, batch, logs=None):
        if time.time() > self.deadline:
            self.model.stop_training = True
            self.stopped = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "data", "grid", "s1"))
    parser.add_argument("--work", default=os.path.join(REPO, "runs", "default"), help="prepared data and training runs")
    parser.add_argument("--export", default=DEFAULT_EXPORT, help="where the finished model goes")
    parser.add_argument("--minutes", type=float, default=85.0, help="wall-time budget of the whole command")
    args = parser.parse_args()
    started = time.time()
    deadline = started + args.minutes * 60
    prepared = os.path.join(args.work, "prepared")
    manifest = prepare([args.data], prepared, PrepareConfig(), progress=True)
    print(f"prepared: {manifest['counts']}", flush=True)

    runs = {}
    for network, config, share in (("atnet", ATNET, 0.12), ("vgnet", VGNET, 1.0)):
        # AT-net gets at most 12 % of what is left; VG-net the rest.
        limit = WallClockLimit(time.time() + share * (deadline - time.time()))
        output = os.path.join(args.work, network)
        history = train(network, prepared, output, config, verbose=2, extra_callbacks=[limit])
        runs[network] = {
            "config": dataclasses.asdict(config),
            "epochs_run": len(next(iter(history.history.values()), [])),
            "stopped_by_time_limit": limit.stopped,
            "final": {k: round(v[-1], 5) for k, v in history.history.items()},
        }
        print(network, runs[network], flush=True)

    export(args.work, args.export, manifest, runs, time.time() - started, " ".join(sys.argv))


def export(work: str, destination: str, manifest: dict, runs: dict, seconds: float, command: str) -> None:
    """Writes atnet.keras, vgnet.keras (generator only), pca.npz and training.json into `destination`."""
    partial = destination + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    atnet = keras.saving.load_model(os.path.join(work, "atnet", "best.keras"))
    atnet.save(os.path.join(partial, "atnet.keras"))
    gan = keras.saving.load_model(os.path.join(work, "vgnet", "last.keras"))
    gan.generator.save(os.path.join(partial, "vgnet.keras"))
    shutil.copy(os.path.join(work, "prepared", "pca.npz"), os.path.join(partial, "pca.npz"))
    with open(os.path.join(partial, "training.json"), "w") as handle:
        json.dump({
            "command": command,
            "wall_seconds": round(seconds),
            "data": {"clips": manifest["counts"]["clips"], "frames": manifest["counts"]["frames"],
                     "landmarks": manifest["settings"]["landmarks"]["backend"]},
            "runs": runs,
        }, handle, indent=1)
    shutil.rmtree(destination, ignore_errors=True)
    os.replace(partial, destination)
    print("exported to", destination)


if __name__ == "__main__":
    main()
