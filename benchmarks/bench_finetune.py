"""Your own avatar: `atvg finetune` on a minute of one person, scored on the held-out last 15 %.

Runs the fine-tune exactly as the command does (the packaged model as the start, or --from) and
prints the held-out LMD / SSIM / lip-sync / sharpness of the static baseline, the base model and the
fine-tuned model, the wall time of every phase, and whether the goals of issue 13 are met (LMD at
least 25 % below the base model's and 35 % below the static baseline's, SSIM up).

    python3 benchmarks/bench_finetune.py [--video ../shared/data/wild/edtalk_pose_source2_60s.mp4] [--minutes 15]
        [--output DIR] [--json FILE] [--person-basis]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.environ.get("ATVG_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
sys.path.insert(0, REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=os.path.join(DEFAULT_DATA, "wild", "edtalk_pose_source2_60s.mp4"))
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget (default 15)")
    parser.add_argument("--from", dest="base", help="the model to start from (default: packaged)")
    parser.add_argument("--output", default=os.path.join(REPO, "runs", "bench_finetune"), help="the model folder to write (must not exist)")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--person-basis", action="store_true", help="as `atvg finetune --person-basis`")
    args = parser.parse_args()

    from atvg_tf.avatar.finetune import FinetuneConfig, finetune
    from atvg_tf.avatar.report import format_summary

    started = time.time()
    report = finetune([args.video], args.output, args.base, FinetuneConfig(minutes=args.minutes, person_basis=args.person_basis), progress=False)
    report["total_wall_seconds"] = round(time.time() - started, 1)
    print(format_summary(report))
    print("wall seconds:", json.dumps(report["wall_seconds"]), f"total {report['total_wall_seconds']:.0f}")
    goals = {"lmd_25pct_below_base": report["lmd_below_base"] >= 0.25, "lmd_35pct_below_static": report["lmd_below_static"] >= 0.35,
             "ssim_up": report["finetuned"]["ssim"] > report["base"]["ssim"]}
    print("goals:", json.dumps(goals))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({**report, "goals": goals}, handle, indent=1)


if __name__ == "__main__":
    main()
