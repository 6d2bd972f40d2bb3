"""Speed and memory of `atvg generate`, end to end, for the default model and the paper-size networks.

Each case runs the real command in a fresh process on a photo and speech of the requested length
(the shared `test.wav` repeated), and reports:
  - frames/s of the generation (face detection, AT-net, VG-net, rendering into the photo with each
    of --renderers, H.264 + AAC encoding),
  - the time to the first encoded frame from the start of the generation (model loaded, "warm") and
    from the start of the process ("cold": the process's wall time minus the generation's time after
    its first frame, so it includes Python's exit and is, if anything, a little long),
  - the process's wall time including Python, TensorFlow and model loading,
  - its peak resident memory (ru_maxrss).
The paper-size model is freshly initialised (speed does not depend on the weights).

    python benchmarks/bench_generate.py --models default paper --seconds 10 600 [--renderers hybrid vgnet]
        [--runtimes keras litert openvino] [--precisions dynamic int8] [--openvino-precisions bfloat16 float32 int8]

The LiteRT runtime's TF-Lite models are built (and cached) by an untimed run on one second of
speech first: the figures are for a warm cache, as every run after a model's first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import av  # noqa: E402
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
SUMMARY = re.compile(r"wrote .*: (\d+) frames .* in ([\d.]+) s \(([\d.]+) frames/s, first frame after ([\d.]+) s\)")


def write_speech(source: str, seconds: float, path: str) -> None:
    """Writes `seconds` of 16 kHz mono speech by repeating `source`, without holding it all in memory."""
    sys.path.insert(0, REPO)
    from atvg_tf.frontend.audio import load_audio

    speech = (load_audio(source) * 32767).astype(np.int16)
    total = int(seconds * 16000)
    with av.open(path, "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        written = 0
        while written < total:
            block = speech[: total - written]
            frame = av.AudioFrame.from_ndarray(block[None], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, written
            container.mux(stream.encode(frame))
            written += block.size
        container.mux(stream.encode())


def speech_file(data: str, seconds: float, scratch: str) -> str:
    """`seconds` of the shared speech in `scratch` (written once)."""
    path = os.path.join(scratch, f"speech_{seconds:g}s.wav")
    if not os.path.exists(path):
        write_speech(os.path.join(data, "atvgnet", "audio", "test.wav"), seconds, path)
    return path


def paper_model(folder: str) -> str:
    """A model folder with freshly initialised paper-size AT-net and VG-net."""
    import shutil

    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig, VGNetConfig
    from atvg_tf.models.vgnet import build_vgnet

    os.makedirs(folder, exist_ok=True)
    build_atnet(ATNetConfig.preset("paper")).save(os.path.join(folder, "atnet.keras"))
    build_vgnet(VGNetConfig.preset("paper")).save(os.path.join(folder, "vgnet.keras"))
    shutil.copy(os.path.join(REPO, "atvg_tf", "assets", "landmark_pca.npz"), os.path.join(folder, "pca.npz"))
    return folder


def run(model: str, model_dir: str | None, image: str, speech: str, seconds: float, mode: str, scratch: str,
        renderer: str = "hybrid", runtime: str = "keras", precision: str | None = None) -> dict:
    output = os.path.join(scratch, "out.mp4")
    command = [sys.executable, "-m", "atvg_tf.cli", "generate", "--image", image, "--audio", speech,
               "--output", output, f"--{mode}", "--renderer", renderer, "--quiet", "--runtime", runtime]
    if precision:
        command += ["--precision", precision]
    if model_dir:
        command += ["--model", model_dir]
    log_path = os.path.join(scratch, "log.txt")
    started = time.perf_counter()
    with open(log_path, "w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak memory (ru_maxrss, KiB)
        wall = time.perf_counter() - started
        log.seek(0)
        stdout = log.read()
    if status:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stdout[-2000:]}")
    match = SUMMARY.search(stdout)
    frames, generation_seconds, fps, first = int(match[1]), float(match[2]), float(match[3]), float(match[4])
    return {
        "model": model,
        "mode": mode,
        "renderer": renderer,
        "runtime": runtime if runtime == "keras" else f"{runtime} {precision}",
        "audio_seconds": seconds,
        "frames": frames,
        "frames_per_second": fps,
        "first_frame_seconds": first,
        "first_frame_from_process_start_seconds": round(wall - (generation_seconds - first), 2),
        "generation_seconds": generation_seconds,
        "process_seconds": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--models", nargs="+", default=["default", "paper"], help="default, paper, or model folders")
    parser.add_argument("--seconds", nargs="+", type=float, default=[10, 600])
    parser.add_argument("--image", default="atvgnet/image/image_sample.jpg", help="photo, relative to --data")
    parser.add_argument("--mode", default="paste-back", choices=["paste-back", "crop", "panels"])
    parser.add_argument("--renderers", nargs="+", default=["hybrid"], choices=["hybrid", "vgnet"], help="renderers to time")
    parser.add_argument("--runtimes", nargs="+", default=["keras", "litert", "openvino"], choices=["keras", "litert", "openvino"])
    parser.add_argument("--precisions", nargs="+", default=["dynamic"], choices=["float32", "float16", "dynamic", "int8"],
                        help="litert variants to time")
    parser.add_argument("--openvino-precisions", nargs="+", default=["bfloat16"], choices=["float32", "bfloat16", "int8"],
                        help="openvino precisions to time")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            model_dir = None if model == "default" else paper_model(os.path.join(scratch, "paper")) if model == "paper" else model
            image = os.path.join(args.data, args.image)
            runtimes = ([("keras", None)] * ("keras" in args.runtimes) + [("litert", p) for p in args.precisions] * ("litert" in args.runtimes)
                        + [("openvino", p) for p in args.openvino_precisions] * ("openvino" in args.runtimes))
            for runtime, precision in runtimes:
                if runtime != "keras":  # build the cached TF-Lite models, untimed
                    run(model, model_dir, image, speech_file(args.data, 1, scratch), 1, args.mode, scratch, "vgnet", runtime, precision)
                for seconds in args.seconds:
                    speech = speech_file(args.data, seconds, scratch)
                    for renderer in args.renderers:
                        row = run(model, model_dir, image, speech, seconds, args.mode, scratch, renderer, runtime, precision)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
