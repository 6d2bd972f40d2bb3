"""The training speech's MFCC statistics, for a model's voice normalisation (`frontend.mfcc_normalization`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.mfcc_normalization import MfccNormalizer, fit_mfcc_statistics


def voice_normalization(prepared_dir: str, speakers: Iterable[str] | None = None, exclude_clips: Iterable[str] = (),
                        prior_rows: float = 20.0, lead_frames: int = 50) -> dict:
    """An `MfccNormalizer` config fitted on the recorded audio of a prepared folder's train clips.

    Args:
        prepared_dir: a folder written by `atvg prepare` (its manifest names each clip's source).
        speakers: only these speakers' clips (None: all), e.g. the ones AT-net was trained on.
        exclude_clips: clip ids left out, as `TrainConfig.exclude_clips`.
        prior_rows, lead_frames: see `MfccNormalizer`.
    """
    with open(os.path.join(prepared_dir, "manifest.json")) as handle:
        clips = json.load(handle)["clips"]
    speakers, excluded = (set(speakers) if speakers is not None else None), set(exclude_clips)
    sources = [clip["source"] for clip in clips if clip["split"] == "train" and clip["id"] not in excluded
               and (speakers is None or clip["speaker"] in speakers)]
    statistics = fit_mfcc_statistics(mfcc_windows(load_audio(source)) for source in sources)
    fitted_on = {"clips": len(sources), "speakers": sorted(speakers) if speakers is not None else "all"}
    return MfccNormalizer(**statistics, prior_rows=prior_rows, lead_frames=lead_frames, fitted_on=fitted_on).get_config()
