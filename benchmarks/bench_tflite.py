"""Latency and size of the streaming TF-Lite models, per variant, for the default and paper-size networks.

Exports each model with `atvg export --format tflite` (int8 calibrated on prepared GRID clips), then
runs the TensorFlow-free engine of mobile_demo (LiteRT, 2 threads) over real speech and reports,
per variant: per-frame latency p50/p95 (MFCC + AT-net step + VG-net step; a head's speech windows
are computed beforehand), sustained frames per
second, first-frame latency (loading the four models, the identity encoder, the first step), and
the size of the three networks. The paper-size networks are freshly initialised.

    python benchmarks/bench_tflite.py --models default paper --frames 150
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
sys.path.insert(0, os.path.join(REPO, "mobile_demo"))
sys.path.insert(0, REPO)

from atvg_lite import FrameInputs, LiteTalkingFace  # noqa: E402
from benchmarks.bench_generate import paper_model  # noqa: E402

VARIANTS = ("float32", "float16", "dynamic", "int8")
NETWORKS = ("identity_encoder", "atnet_step", "vgnet_step")


def measure(export_dir: str, variant: str, waveform: np.ndarray, avatar, frames: int, threads: int) -> dict:
    started = time.perf_counter()
    engine = LiteTalkingFace(export_dir, variant, threads)
    engine.start(avatar["identity_frame"], avatar["identity_landmarks"])
    # Each frame's step arguments as the mobile demo cuts them (PCM window; a head's or phone model's
    # windows too, computed here beforehand: the timing is the networks').
    cutting = time.perf_counter()
    live = FrameInputs(engine)
    inputs = (live.push(waveform[: 640 * (frames + 12)]) + live.finish())[: frames + 1]
    cutting = time.perf_counter() - cutting
    engine.step(**inputs[0])
    first = time.perf_counter() - started - cutting
    latencies = []
    for t in range(1, frames + 1):
        tick = time.perf_counter()
        engine.step(**inputs[t])
        latencies.append(time.perf_counter() - tick)
    latencies_ms = np.array(latencies) * 1000
    size = sum(os.path.getsize(os.path.join(export_dir, f"{n}.{variant}.tflite")) for n in NETWORKS)
    return {
        "variant": variant,
        "p50_ms": round(float(np.percentile(latencies_ms, 50)), 1),
        "p95_ms": round(float(np.percentile(latencies_ms, 95)), 1),
        "fps": round(1000.0 / float(latencies_ms.mean()), 1),
        "first_frame_ms": round(first * 1000),
        "size_mb": round(size / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--models", nargs="+", default=["default", "paper"], help="default, paper, or model folders")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--frames", type=int, default=150, help="frames timed per variant (after the first)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", metavar="PREPARED_DIR", help="int8 calibration data (default: the set shipped in the package)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    from atvg_tf.frontend.audio import load_audio

    waveform = load_audio(os.path.join(args.data, "atvgnet", "audio", "test.wav"))
    image = os.path.join(args.data, "atvgnet", "image", "Elektra.jpg")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            model_dir = None if model == "default" else paper_model(os.path.join(scratch, "paper")) if model == "paper" else model
            export_dir = os.path.join(scratch, f"export_{len(rows)}")
            command = [sys.executable, "-m", "atvg_tf.cli", "export", "--format", "tflite", "--output", export_dir,
                       "--variants", *args.variants, "--avatar", image]
            if args.calibration:
                command += ["--calibration", args.calibration]
            if model_dir:
                command += ["--model", model_dir]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            avatar = np.load(os.path.join(export_dir, "avatar.npz"))
            for variant in args.variants:
                row = {"model": model, **measure(export_dir, variant, waveform, avatar, args.frames, args.threads)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| model | variant | size (3 networks) | p50 ms/frame | p95 ms/frame | frames/s | first frame |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['variant']} | {r['size_mb']} MB | {r['p50_ms']} | {r['p95_ms']} | {r['fps']} | {r['first_frame_ms']} ms |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
