"""Chooses the phone head's (and the embedding and activation heads') settings by leaving one real-world person out at a time.

    python training/phone_head_cv.py --work runs/phones [--ridges 100 1000] [--voice-weights 5 40] [--weights 0.3 0.5 0.7]
        [--features phone_posteriors|speech_embeddings|speech_activations] [--silence-weights 0 1000]

For each setting (ridge penalty, weight of the real-world voices' frames against GRID s1's, frames of
silence in the fit, the head's share of AT-net's codes) and each real-world person of the `phones` recipe's prepared folder
(`wild_train/` and `wild/`; clips named `<person>_clip<N>...` are one person): the head is fitted
without that person (GRID s1's training clips always in), blended with the packaged MFCC network, and
drives the person's landmarks from their clips' sound. The table gives, over the people, the mean
correlation of the predicted inner-lip aperture with the real one (each clip at its measured audio
offset) and the mean aperture std ratio (motion gain 1); then the same on the s1 validation clips
with the head fitted on everyone, and their landmark LMD (mouth points, crop px). The `phone_head`,
`embedding_head` and `activation_head` recipes' settings come from this table; `wild_sync/` is never read.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from train_default_model import WILD_AUDIO_OFFSETS  # noqa: E402

from atvg_tf.evaluation.head_blend_scores import HeadBlendScorer  # noqa: E402
from atvg_tf.generation.model import TalkingFaceModel  # noqa: E402
from atvg_tf.training.phone_head import HeadStatistics, PhoneHead, prepared_clips, silence_statistics  # noqa: E402

# Shorter clips give no meaningful correlation.
MIN_FRAMES = 50


def person_of(clip_id: str) -> str:
    return re.sub(r"_clip_?\d.*$", "", clip_id)


def fit_without(s1_train: HeadStatistics, people: dict[str, HeadStatistics], left_out: str | None, voice_weight: float,
                ridge: float) -> PhoneHead:
    """The head fitted on GRID s1 and every real-world person but `left_out`, their frames x `voice_weight`."""
    statistics = s1_train
    for person, sums in people.items():
        if person != left_out:
            statistics = statistics + sums.weighted(voice_weight)
    return statistics.solve(ridge)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=os.path.join(REPO, "runs", "phones"), help="the `phones` recipe's work folder")
    parser.add_argument("--ridges", nargs="+", type=float, default=[100.0, 1000.0, 3000.0])
    parser.add_argument("--voice-weights", nargs="+", type=float, default=[5.0, 20.0, 40.0])
    parser.add_argument("--weights", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    parser.add_argument("--features", choices=["phone_posteriors", "speech_embeddings", "speech_activations"], default="phone_posteriors",
                        help="the head's input: phone posterior windows (phone head), speech embedding windows (embedding head) "
                        "or the embedding network's activations (activation head)")
    parser.add_argument("--silence-weights", nargs="+", type=float, default=[0.0],
                        help="frames of silence added to the fit (`phone_head.silence_statistics`)")
    args = parser.parse_args()
    prepared = os.path.join(args.work, "prepared")
    if not os.path.isfile(os.path.join(prepared, "manifest.json")):
        parser.error(f"{prepared} holds no prepared data; run `python training/train_default_model.py --recipe phone_head "
                     f"--work {args.work}` (or --recipe phones) first.")
    model = TalkingFaceModel.load(None)
    s1_train, identities = None, []
    people: dict[str, HeadStatistics] = {}
    scorers: dict[str, list[HeadBlendScorer]] = {}
    for clip in prepared_clips(prepared, lambda entry: True, features=args.features):
        clip_id, offset = clip.manifest["id"], WILD_AUDIO_OFFSETS.get(clip.manifest["id"], 0)
        s1 = clip.manifest["speaker"] == "s1"
        group = "s1" if s1 else person_of(clip_id)
        if clip.manifest["split"] == "train":
            identities.append(clip.codes[0])
            statistics = HeadStatistics.of(clip.heard(offset), clip.codes)
            if s1:
                s1_train = statistics if s1_train is None else s1_train + statistics
            else:
                people[group] = statistics if group not in people else people[group] + statistics
        if (not s1 or clip.manifest["split"] == "val") and len(clip.frames) >= MIN_FRAMES:
            scorers.setdefault(group, []).append(HeadBlendScorer(model, clip, offset))
    held_out = sorted(set(scorers) - {"s1"})
    print(f"{len(held_out)} people: {', '.join(held_out)}")
    print("| ridge | voice weight | silence frames | head weight | people: sync_corr | std ratio | s1 val: sync_corr | std ratio | LMD |")
    print("|---|---|---|---|---|---|---|---|---|")
    silence = silence_statistics(model, np.stack(identities), args.features, 1.0)
    for ridge, voice_weight, silence_weight in itertools.product(args.ridges, args.voice_weights, args.silence_weights):
        fixed = s1_train + silence.weighted(silence_weight) if silence_weight else s1_train
        heads = {person: fit_without(fixed, people, person, voice_weight, ridge) for person in held_out}
        everyone = fit_without(fixed, people, None, voice_weight, ridge)
        for weight in args.weights:
            per_person = [np.mean([scorer.score(heads[person], weight) for scorer in scorers[person]], axis=0) for person in held_out]
            sync, std, _ = np.mean(per_person, axis=0)
            s1_sync, s1_std, s1_lmd = np.mean([scorer.score(everyone, weight) for scorer in scorers["s1"]], axis=0)
            print(f"| {ridge:g} | {voice_weight:g} | {silence_weight:g} | {weight:g} | {sync:.3f} | {std:.2f} | {s1_sync:.3f} "
                  f"| {s1_std:.2f} | {s1_lmd:.3f} |", flush=True)


if __name__ == "__main__":
    main()
