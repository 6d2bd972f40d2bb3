"""Lip-sync of models on unseen people and on GRID: `atvg evaluate`'s sync figures as one table.

Sets (from the shared data folder):
  wild_sync   8 clips of people no model here was trained on, their own sound (measure only: never
              train or tune on them)
  grid_other  5 clips of five GRID speakers outside s1
  s1_val      the GRID s1 clips of the default model's validation split (never trained on)
  wild_dev    3 real-world clips of wild/ that AT-net's training leaves out
              (training/train_default_model.py DEV_CLIPS): where the representation and the motion
              gain are chosen
  wild        every clip of wild/ with sound (real-world speakers; the packaged model never saw them)

For each model and set: mean sync_corr (generated vs real inner-lip aperture), the mismatched
control, aperture_std_ratio, AT-net's landmark-level sync_corr, and LMD vs the static baseline;
with --renderers, the same measured on each renderer's full-resolution frames (the clip's first
frame as the photo) and the renderer scores (sharpness_ratio, static_region_error, lip_colour_delta_e).

    python3 benchmarks/bench_sync.py [--models default DIR ...] [--sets wild_sync grid_other s1_val] [--renderers hybrid vgnet] [--json FILE]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.environ.get("ATVG_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
SETS = ("wild_sync", "grid_other", "s1_val", "wild_dev", "wild")
GRID_SETS = ("grid_other", "s1_val")
DEV_CLIPS = ("wild/retalking_1", "wild/pcavs_00098", "wild/astorfi_sample_video")  # as training/train_default_model.py


def clips_of(data: str, name: str) -> list[str]:
    if name == "wild_sync":
        return sorted(glob.glob(os.path.join(data, "wild_sync", "*.mp4")))
    if name == "grid_other":
        return sorted(glob.glob(os.path.join(data, "grid", "other", "*.mpg")))
    if name == "s1_val":
        from atvg_tf.data.discovery import assign_split
        from atvg_tf.data.prepare_config import PrepareConfig

        config = PrepareConfig()  # the split the default model was trained with (training/train_default_model.py)
        paths = sorted(glob.glob(os.path.join(data, "grid", "s1", "*.mpg")))
        return [p for p in paths if assign_split(f"s1/{os.path.splitext(os.path.basename(p))[0]}", "s1", config) == "val"]
    if name == "wild_dev":
        return [os.path.join(data, clip + ".mp4") for clip in DEV_CLIPS]
    if name == "wild":
        return sorted(glob.glob(os.path.join(data, "wild", "*.mp4")))
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--models", nargs="+", default=["default"], help="`default` (the packaged model) or model folders")
    parser.add_argument("--sets", nargs="+", default=list(SETS[:3]), choices=SETS, help="clip sets to measure on")
    parser.add_argument("--landmarks", default="mediapipe", choices=["mediapipe", "dlib"], help="landmark backend for the apertures")
    parser.add_argument("--renderers", nargs="*", default=[], choices=["hybrid", "vgnet"], help="also score these renderers")
    parser.add_argument("--max-seconds", type=float, default=0.0, help="score at most this much of each clip (default 0: all of it)")
    parser.add_argument("--json", metavar="FILE", help="also write all reports here")
    parser.add_argument("--grid-audio-offset", type=int, default=0, metavar="FRAMES",
                        help="move the GRID sets' sound this many frames later (`atvg evaluate --audio-offset`; default 0)")
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    from atvg_tf._native import import_quietly

    import_quietly()
    from atvg_tf.evaluation.evaluate import evaluate
    from atvg_tf.generation.model import TalkingFaceModel

    rows, reports = [], {}
    for model_name in args.models:
        model = TalkingFaceModel.load(None if model_name == "default" else model_name)
        for set_name in args.sets:
            clips = clips_of(args.data, set_name)
            started = time.perf_counter()
            report = evaluate(clips, model, args.landmarks, progress=False, renderers=tuple(args.renderers),
                              max_frames=round(args.max_seconds * 25) or None,
                              audio_offset_frames=args.grid_audio_offset if set_name in GRID_SETS else 0)
            sync = report["sync"]
            row = {
                "model": model_name, "set": set_name, "clips": len(report["clips"]), "skipped": len(report["skipped"]),
                **{k: round(v, 3) for k, v in sync.items()},
                "lmd": round(report["model"]["lmd"], 3), "static_lmd": round(report["static_baseline"]["lmd"], 3),
                "seconds": round(time.perf_counter() - started),
                "renderers": {name: {k: round(v, 3) for k, v in values.items()} for name, values in report["renderers"].items()},
            }
            if set_name in GRID_SETS and args.grid_audio_offset:
                row["set"] = f"{set_name}+{args.grid_audio_offset}"  # measured with the sound moved
            rows.append(row)
            reports[f"{model_name}/{row['set']}"] = report
            print(json.dumps(row), flush=True)
    print("\n| model | clips | sync_corr | control | aperture std ratio | AT-net sync_corr | AT-net std ratio | LMD (static) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']}, {r['set']} | {r['clips']} | {r['sync_corr']:.2f} | {r['sync_corr_control']:.2f} | "
              f"{r['aperture_std_ratio']:.2f} | {r['atnet_sync_corr']:.2f} | {r['atnet_aperture_std_ratio']:.2f} | "
              f"{r['lmd']:.3f} ({r['static_lmd']:.3f}) |")
    if args.renderers:
        print("\n| model, set | renderer | LMD | sync_corr | control | aperture std ratio | sharpness ratio | static region error | lip colour dE |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            for name, v in r["renderers"].items():
                print(f"| {r['model']}, {r['set']} | {name} | {v['lmd']:.3f} | {v['sync_corr']:.2f} | {v['sync_corr_control']:.2f} | "
                      f"{v['aperture_std_ratio']:.2f} | {v['sharpness_ratio']:.2f} | {v['static_region_error']:.2f} | "
                      f"{v['lip_colour_delta_e']:.1f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(reports, handle, indent=1)


if __name__ == "__main__":
    main()
