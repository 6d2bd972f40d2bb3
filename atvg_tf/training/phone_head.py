"""AT-net's phone head (`audio_features` `mfcc+phone_head`): a linear map from a frame's phone
posterior window to its landmark code, fitted in closed form and blended into a trained MFCC AT-net.

The MFCC network learned one speaker's voice; the phone posteriors come from PocketSphinx's acoustic
model, trained on many speakers. A linear map from them is too simple to learn one voice by heart,
so it carries to voices neither network heard: averaged with the MFCC network's codes
(`layers.HeadBlend`), the mouth of unseen people follows their speech more closely (README, "A
phone head: lip-sync that carries to new voices").

    head = fit_phone_head(examples)                  # examples: (posterior windows, codes, weight)
    atnet = with_phone_head(mfcc_atnet, "small", head, weight=0.5)
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import Pool

import keras
import numpy as np

from atvg_tf.data.clip_preparer import clip_waveform
from atvg_tf.frontend import phones
from atvg_tf.frontend.audio import AudioConfig
from atvg_tf.models.atnet import build_atnet
from atvg_tf.models.config import ATNetConfig
from atvg_tf.training.graft import graft_weights

# Ridge penalty of the fit: chosen with the blend weight on the dev clips (10 and 100 scored alike).
RIDGE = 100.0


@dataclasses.dataclass(frozen=True)
class PhoneHead:
    """The fitted map: code [K] = window.reshape(-1) @ kernel + bias.

    Attributes:
        kernel: [28 * 40, K].
        bias: [K].
        frames: frames it was fitted on.
    """

    kernel: np.ndarray
    bias: np.ndarray
    frames: int


def fit_phone_head(examples: Iterable[tuple[np.ndarray, np.ndarray, float]], ridge: float = RIDGE) -> PhoneHead:
    """Ridge regression from phone posterior windows to landmark codes.

    Args:
        examples: per clip segment, its posterior windows [N, 28, 40], its landmark codes [N, K]
            and the weight of its frames (a few real-world voices count more than many clips of one).
        ridge: the penalty on the kernel.

    Returns:
        The head. Like AT-net it predicts codes, not motion from the photo: silence maps to the
        speakers' closed mouths (a head fitted to motion from each segment's mean kept an open
        photo's mouth half open in silence, and followed speech less: dev 0.31 against 0.33).
    """
    gram = moments = None
    total = weighted_sum = target_sum = 0.0
    frames = 0
    for windows, codes, weight in examples:
        x = np.asarray(windows, np.float64).reshape(len(windows), -1)
        y = np.asarray(codes, np.float64)
        if gram is None:
            gram, moments = np.zeros((x.shape[1], x.shape[1])), np.zeros((x.shape[1], y.shape[1]))
        gram += weight * x.T @ x
        moments += weight * x.T @ y
        weighted_sum = weighted_sum + weight * x.sum(axis=0)
        target_sum = target_sum + weight * y.sum(axis=0)
        total += weight * len(x)
        frames += len(x)
    if gram is None:
        raise ValueError("no examples to fit the phone head on.")
    mean_x, mean_y = weighted_sum / total, target_sum / total
    # Centred normal equations: the bias is not penalised.
    centred_gram = gram - total * np.outer(mean_x, mean_x)
    centred_moments = moments - total * np.outer(mean_x, mean_y)
    kernel = np.linalg.solve(centred_gram + ridge * np.eye(len(mean_x)), centred_moments)
    return PhoneHead(kernel.astype(np.float32), (mean_y - mean_x @ kernel).astype(np.float32), frames)


def with_phone_head(trained: keras.Model, preset: str, head: PhoneHead, weight: float) -> keras.Model:
    """An `mfcc+phone_head` AT-net: `trained` (an MFCC AT-net of `preset`) unchanged, plus `head`.

    Args:
        weight: the head's share of the codes (`ATNetConfig.phone_head_weight`).
    """
    config = dataclasses.replace(ATNetConfig.preset(preset), audio_features="mfcc+phone_head", phone_head_weight=weight)
    atnet = build_atnet(config)
    graft_weights(atnet, trained)
    atnet.get_layer("phone_head").set_weights([head.kernel, head.bias])
    return atnet


def _clip_posteriors(job: tuple[str, str, int]) -> tuple[str, np.ndarray]:
    clip_id, path, frames = job
    return clip_id, phones.posterior_windows(clip_waveform(path, AudioConfig().sample_rate), frames)


def prepared_examples(prepared_dir: str, weight_of: Callable[[dict], float], audio_offsets: dict[str, int] | None = None,
                      workers: int = os.cpu_count() or 1) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """(posterior windows [N, 28, 40], codes [N, K], weight) of every training segment of a folder
    of `atvg prepare` (its `train` split), the posteriors computed from each clip's sound.

    Args:
        weight_of: the weight of a clip's frames from its manifest entry (0 leaves it out).
        audio_offsets: clip id -> k: frame t hears the window of frame t - k (`TrainConfig.audio_offsets`).
    """
    from atvg_tf.data.records import read_segments

    with open(os.path.join(prepared_dir, "manifest.json")) as handle:
        clips = {clip["id"]: clip for clip in json.load(handle)["clips"]
                 if clip.get("status") == "ok" and clip.get("split") == "train" and weight_of(clip) > 0}
    segments: dict[str, list[dict]] = {}
    for segment in read_segments(sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord")))):
        clip_id = segment["clip_id"].decode()
        if clip_id in clips:
            segments.setdefault(clip_id, []).append(segment)
    jobs = [(clip_id, clips[clip_id]["source"], clips[clip_id]["frames_total"]) for clip_id in sorted(segments)]
    with Pool(workers) as pool:
        for clip_id, windows in pool.imap_unordered(_clip_posteriors, jobs):
            shift = (audio_offsets or {}).get(clip_id, 0)
            for segment in segments[clip_id]:
                start = int(segment["start_frame"])
                codes = segment["pca_codes"]
                heard = np.clip(np.arange(start, start + len(codes)) - shift, 0, len(windows) - 1)
                yield windows[heard], codes, weight_of(clips[clip_id])
