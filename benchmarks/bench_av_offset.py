"""Audio-video offsets of prepared clips, by a model-free reference (`atvg_tf/evaluation/av_offset.py`).

For each clip of a prepared folder (`atvg prepare`, with phones): the lag in frames at which the
phones' expected mouth openness best follows the real inner-lip aperture (a row per clip, except
for speakers with more than 50 clips), then the median per speaker. A clip's offset, negated, is
what `TrainConfig.audio_offsets` takes to train on it in step. The README's "Timing" section was
measured with

    python3 benchmarks/bench_av_offset.py runs/phones/prepared

A positive lag: the sound-driven curve comes that many frames after the picture.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from atvg_tf.errors import InputError  # noqa: E402
from atvg_tf.evaluation.av_offset import prepared_offsets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", help="a prepared folder written with phones (the default of `atvg prepare`)")
    parser.add_argument("--max-lag", type=int, default=6, help="largest offset looked at, in frames (default 6)")
    args = parser.parse_args()
    by_speaker = defaultdict(list)
    curves = defaultdict(list)
    rows = defaultdict(list)
    try:
        segments = list(prepared_offsets(args.prepared, args.max_lag))
    except InputError as error:
        raise SystemExit(str(error)) from None
    for segment in segments:
        lag, correlations, speaker = segment["lag"], segment["correlations"], segment["speaker_id"]
        by_speaker[speaker].append(lag)
        curves[speaker].append(correlations)
        rows[speaker].append(f"| {segment['clip_id']} | {segment['frames']} | {lag:+d} | "
                             f"{correlations[lag + args.max_lag]:.2f} ({correlations[args.max_lag]:.2f}) |")
    print("| clip | frames | offset | correlation at the offset (at 0) |\n|---|---|---|---|")
    print("\n".join(row for speaker_rows in rows.values() if len(speaker_rows) <= 50 for row in speaker_rows))
    print("\n| speaker | clips | median offset | peak of the mean curve |\n|---|---|---|---|")
    for speaker, lags in sorted(by_speaker.items()):
        mean_curve = np.nanmean(curves[speaker], axis=0)
        print(f"| {speaker} | {len(lags)} | {np.median(lags):+.1f} | {int(np.nanargmax(mean_curve)) - args.max_lag:+d} |")


if __name__ == "__main__":
    main()
