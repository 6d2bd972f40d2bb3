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
from atvg_tf.utils.files import atomic_folder  # noqa: E402

ATNET = TrainConfig(model_preset="small", epochs=8, steps_per_epoch=150, validation_steps=10, batch_size=16,
                    sequence_length=16, backup_every=50)
VGNET = TrainConfig(model_preset="small", epochs=20, steps_per_epoch=120, validation_steps=5, batch_size=4,
                    sequence_length=8, backup_every=20, mouth_pixel_weight=10.0)
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
    parser.add_argument("--minutes", type=float, default=80.0, help="wall-time budget of preparing and training (evaluation adds about 8 min)")
    parser.add_argument("--card-only", action="store_true", help="only evaluate the exported model and write its card")
    args = parser.parse_args()
    if args.card_only:
        rebuild(args.export)
        write_model_card(args.work, args.export, os.path.dirname(args.data))
        return
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
        train(network, prepared, output, config, verbose=2, extra_callbacks=[limit])
        runs[network] = {"config": dataclasses.asdict(config), "stopped_by_time_limit": limit.stopped, **_history(output)}
        print(network, runs[network], flush=True)

    export(args.work, args.export, manifest, runs, time.time() - started, " ".join(sys.argv))
    write_model_card(args.work, args.export, os.path.dirname(args.data))


def write_model_card(work: str, model_dir: str, grid_dir: str) -> None:
    """Evaluates the exported model on the held-out s1 clips and on unseen speakers; writes MODEL_CARD.md."""
    from atvg_tf.evaluation.evaluate import evaluate, format_table, write_report
    from atvg_tf.generation.model import TalkingFaceModel

    with open(os.path.join(work, "prepared", "manifest.json")) as handle:
        manifest = json.load(handle)
    val = [clip["source"] for clip in manifest["clips"] if clip["split"] == "val"]
    others = sorted(os.path.join(grid_dir, "other", f) for f in os.listdir(os.path.join(grid_dir, "other")) if f.endswith(".mpg"))
    model = TalkingFaceModel.load(model_dir)
    reports = {}
    for name, clips in (("val", val), ("unseen_speakers", others)):
        reports[name] = evaluate(clips, model, "dlib")
        write_report(reports[name], os.path.join(work, f"report_{name}.json"))
        print(name, format_table(reports[name]), sep="\n", flush=True)
    with open(os.path.join(model_dir, "training.json")) as handle:
        training = json.load(handle)
    summary = {name: {k: report[k] for k in ("model", "static_baseline", "ground_truth_landmarks", "atnet_landmark_lmd", "static_landmark_lmd")}
               for name, report in reports.items()}
    training["evaluation"] = summary
    with open(os.path.join(model_dir, "training.json"), "w") as handle:
        json.dump(training, handle, indent=1)
    photos = photo_mouth_motion(model, os.path.join(os.path.dirname(grid_dir), "atvgnet"))
    training["photos"] = photos
    with open(os.path.join(model_dir, "training.json"), "w") as handle:
        json.dump(training, handle, indent=1)
    gain = 1 - summary["val"]["model"]["lmd"] / summary["val"]["static_baseline"]["lmd"]
    card = [
        "# Default model: ATVGnet `small`, GRID speaker s1",
        "",
        f"- Data: {training['data']['clips']['train']} GRID s1 clips for training ({training['data']['frames']['train']} frames), "
        f"{training['data']['clips']['val']} held out for validation (stable hash of the clip id); landmarks: "
        f"{training['data']['landmarks']}; PCA: the packaged 6-component basis.",
        f"- Command: `{training['command']}` ({training['wall_seconds'] / 60:.0f} min on a 2-core CPU).",
        f"- AT-net: {training['runs']['atnet']['epochs_run']} epochs of {training['runs']['atnet']['config']['steps_per_epoch']} steps; "
        f"VG-net GAN: {training['runs']['vgnet']['epochs_run']} epochs of {training['runs']['vgnet']['config']['steps_per_epoch']} steps "
        f"(stopped by the time budget: {training['runs']['vgnet']['stopped_by_time_limit']}).",
        "",
        "## Validation (held-out s1 clips) and unseen speakers (data/grid/other)",
        "",
        "LMD: mouth landmarks (dlib) of generated vs real aligned frames, mean per point in pixels at 128 px.",
        "",
    ]
    for name, report in reports.items():
        card += [f"### {name}", "", "```", format_table(report), "```", ""]
    card += [f"LMD gain over the static baseline on validation: {gain:.1%}.", ""]
    card += [
        "## Photos of people it never saw (data/atvgnet/image, driven by audio/audio_sample.wav)",
        "",
        "Temporal standard deviation of the pixels (0-255) in the mouth box and in the eye box of the 128 px crop,",
        "averaged over the box: a talking mouth moves, the eyes should stay still.",
        "",
        "| photo | mouth | eyes |",
        "|---|---|---|",
    ] + [f"| {name} | {v['mouth_std']:.2f} | {v['eyes_std']:.2f} |" for name, v in photos.items()] + [""]
    with open(os.path.join(model_dir, "MODEL_CARD.md"), "w") as handle:
        handle.write("\n".join(card))


def photo_mouth_motion(model, atvgnet_dir: str) -> dict:
    """Drives every shared photo with the shared speech sample; how much do mouth and eyes move?"""
    import cv2
    import numpy as np

    from atvg_tf.frontend.audio import load_audio, mfcc_windows
    from atvg_tf.frontend.face.alignment import align_face
    from atvg_tf.frontend.face.landmarks import NoFaceError, create_landmark_detector

    windows = mfcc_windows(load_audio(os.path.join(atvgnet_dir, "audio", "audio_sample.wav")))
    results = {}
    with create_landmark_detector("mediapipe") as detector:
        for name in sorted(os.listdir(os.path.join(atvgnet_dir, "image"))):
            image = cv2.cvtColor(cv2.imread(os.path.join(atvgnet_dir, "image", name)), cv2.COLOR_BGR2RGB)
            try:
                face = align_face(image, detector.largest_face(image, warn=False))
            except NoFaceError:
                continue
            landmarks = model.predict_landmarks(windows, face.landmarks)
            frames = model.render(face.image, face.landmarks, landmarks)["frames"].astype(np.float32)
            mouth = frames[:, 84:112, 40:88]
            eyes = frames[:, 28:48, 24:104]
            results[name] = {"mouth_std": float(mouth.std(axis=0).mean()), "eyes_std": float(eyes.std(axis=0).mean())}
    return results


def _history(run_dir: str) -> dict:
    """Epochs trained (over every resumed session) and the last epoch's losses, from history.csv."""
    import csv

    path = os.path.join(run_dir, "history.csv")
    rows = list(csv.DictReader(open(path))) if os.path.isfile(path) else []
    final = {k: round(float(v), 5) for k, v in rows[-1].items() if k != "epoch"} if rows else {}
    return {"epochs_run": len(rows), "final": final}


def rebuild(model_dir: str) -> None:
    """Re-saves the networks of a model folder with this version's layer code (same weights)."""
    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig, VGNetConfig
    from atvg_tf.models.vgnet import build_vgnet

    for name, builder, config in (("atnet", build_atnet, ATNetConfig.preset("small")), ("vgnet", build_vgnet, VGNetConfig.preset("small"))):
        path = os.path.join(model_dir, f"{name}.keras")
        fresh = builder(config)
        fresh.set_weights(keras.saving.load_model(path).get_weights())
        fresh.save(path)


def export(work: str, destination: str, manifest: dict, runs: dict, seconds: float, command: str) -> None:
    """Writes atnet.keras, vgnet.keras (generator only), pca.npz and training.json into `destination`."""
    with atomic_folder(destination, replace=True) as partial:
        _write_model_folder(work, partial, manifest, runs, seconds, command)
    print("exported to", destination)


def _write_model_folder(work: str, partial: str, manifest: dict, runs: dict, seconds: float, command: str) -> None:
    atnet = keras.saving.load_model(os.path.join(work, "atnet", "best.keras"))
    atnet.save(os.path.join(partial, "atnet.keras"))
    gan = keras.saving.load_model(os.path.join(work, "vgnet", "last.keras"))
    gan.generator.save(os.path.join(partial, "vgnet.keras"))
    rebuild(partial)
    shutil.copy(os.path.join(work, "prepared", "pca.npz"), os.path.join(partial, "pca.npz"))
    with open(os.path.join(partial, "training.json"), "w") as handle:
        json.dump({
            "command": command,
            "wall_seconds": round(seconds),
            "data": {"clips": manifest["counts"]["clips"], "frames": manifest["counts"]["frames"],
                     "landmarks": manifest["settings"]["landmarks"]["backend"]},
            "runs": runs,
        }, handle, indent=1)


if __name__ == "__main__":
    main()
