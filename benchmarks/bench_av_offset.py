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
import glob
import os
import sys
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from atvg_tf.data.records import parse_segment  # noqa: E402
from atvg_tf.evaluation.av_offset import clip_offset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", help="a prepared folder written with phones (the default of `atvg prepare`)")
    parser.add_argument("--max-lag", type=int, default=6, help="largest offset looked at, in frames (default 6)")
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(args.prepared, "*.tfrecord")))
    if not paths:
        raise SystemExit(f"{args.prepared} has no shards; give a folder written by `atvg prepare`.")
    by_speaker = defaultdict(list)
    curves = defaultdict(list)
    rows = defaultdict(list)
    for record in tf.data.TFRecordDataset(paths):  # one segment in memory at a time, whatever the corpus
        parsed = parse_segment(record)
        segment = {key: parsed[key].numpy() for key in ("phone_windows", "num_frames", "landmarks", "speaker_id", "clip_id")}
        phones = segment["phone_windows"]
        if not len(phones):
            raise SystemExit(f"{args.prepared} was prepared without phones; rerun `atvg prepare` without --no-phones.")
        if segment["num_frames"] < 50:
            continue  # too short for a stable peak
        lag, correlations = clip_offset(phones[0], segment["landmarks"], args.max_lag)
        speaker = segment["speaker_id"].decode()
        by_speaker[speaker].append(lag)
        curves[speaker].append(correlations)
        rows[speaker].append(f"| {segment['clip_id'].decode()} | {segment['num_frames']} | {lag:+d} | "
                             f"{correlations[lag + args.max_lag]:.2f} ({correlations[args.max_lag]:.2f}) |")
    print("| clip | frames | offset | correlation at the offset (at 0) |\n|---|---|---|---|")
    print("\n".join(row for speaker_rows in rows.values() if len(speaker_rows) <= 50 for row in speaker_rows))
    print("\n| speaker | clips | median offset | peak of the mean curve |\n|---|---|---|---|")
    for speaker, lags in sorted(by_speaker.items()):
        mean_curve = np.nanmean(curves[speaker], axis=0)
        print(f"| {speaker} | {len(lags)} | {np.median(lags):+.1f} | {int(np.nanargmax(mean_curve)) - args.max_lag:+d} |")


if __name__ == "__main__":
    main()
