"""AT-net's phone head (`audio_features` `mfcc+phone_head`): a linear map from a frame's phone
posterior window to its landmark code, fitted in closed form and blended into a trained MFCC AT-net.
The embedding head (`mfcc+embedding_head`) is the same map from a frame's speech embedding window
(`frontend.speech_embedding`), the activation head (`mfcc+activation_head`) from the embedding
network's activations; everything here serves all three (`features`).

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
import functools
import glob
import json
import os
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import Pool

import keras
import numpy as np

from atvg_tf.data.clip_preparer import clip_waveform
from atvg_tf.frontend import phones, speech_embedding
from atvg_tf.frontend.audio import AudioConfig
from atvg_tf.generation.model import TalkingFaceModel, network_configs
from atvg_tf.models.atnet import build_atnet
from atvg_tf.models.config import AUDIO_FEATURES, HEAD_INPUTS, HEAD_WEIGHT_FIELDS, ATNetConfig
from atvg_tf.training.graft import graft_weights
from atvg_tf.training.rebase import code_map

# Ridge penalty of the fit, chosen by leaving each real-world person out (`training/phone_head_cv.py`).
RIDGE = 1000.0


@dataclasses.dataclass(frozen=True)
class PhoneHead:
    """The fitted map: code [K] = window.reshape(-1) @ kernel + bias.

    Attributes:
        kernel: [28 * 40, K] (phone posteriors), [11 * 96, K] (speech embeddings) or [48 * 96, K] (activations).
        bias: [K].
        frames: frames it was fitted on.
    """

    kernel: np.ndarray
    bias: np.ndarray
    frames: int


@dataclasses.dataclass(frozen=True)
class HeadStatistics:
    """The weighted sums a ridge fit of the head needs; sums of them fit the union of their frames.

    Attributes:
        gram: [D, D] sum of w x x^T; moments: [D, K] sum of w x y^T (D = 28 * 40 inputs, K codes).
        input_sum: [D]; target_sum: [K]; total: the sum of the weights; frames: the frame count.
    """

    gram: np.ndarray
    moments: np.ndarray
    input_sum: np.ndarray
    target_sum: np.ndarray
    total: float
    frames: int

    @classmethod
    def of(cls, windows: np.ndarray, codes: np.ndarray, weight: float = 1.0) -> HeadStatistics:
        """The sums of one clip: posterior windows [N, 28, 40], codes [N, K], the weight of its frames."""
        x = np.asarray(windows, np.float64).reshape(len(windows), -1)
        y = np.asarray(codes, np.float64)
        return cls(weight * x.T @ x, weight * x.T @ y, weight * x.sum(axis=0), weight * y.sum(axis=0), weight * len(x), len(x))

    def __add__(self, other: HeadStatistics) -> HeadStatistics:
        return HeadStatistics(*(getattr(self, field.name) + getattr(other, field.name) for field in dataclasses.fields(self)))

    def weighted(self, weight: float) -> HeadStatistics:
        """The same frames counted `weight` times as much."""
        return dataclasses.replace(self, gram=weight * self.gram, moments=weight * self.moments, input_sum=weight * self.input_sum,
                                   target_sum=weight * self.target_sum, total=weight * self.total)

    def solve(self, ridge: float = RIDGE) -> PhoneHead:
        """The ridge regression of these frames; `ridge` penalises the kernel, not the bias."""
        mean_x, mean_y = self.input_sum / self.total, self.target_sum / self.total
        centred_gram = self.gram - self.total * np.outer(mean_x, mean_x)
        centred_moments = self.moments - self.total * np.outer(mean_x, mean_y)
        kernel = np.linalg.solve(centred_gram + ridge * np.eye(len(mean_x)), centred_moments)
        return PhoneHead(kernel.astype(np.float32), (mean_y - mean_x @ kernel).astype(np.float32), self.frames)


@functools.lru_cache(maxsize=2)
def mfcc_network(model: TalkingFaceModel) -> keras.Model:
    """The MFCC network inside `model`'s AT-net: an `mfcc` AT-net with its weights (the AT-net itself
    when it hears MFCC only). A head is fitted against, and blended into, this network's codes."""
    config, _ = network_configs(model.info, model.atnet)
    if config.audio_features == "mfcc":
        return model.atnet
    network = build_atnet(dataclasses.replace(config, audio_features="mfcc"))
    graft_weights(network, model.atnet)
    return network


def with_head_of(model: TalkingFaceModel, base: TalkingFaceModel, **info) -> TalkingFaceModel:
    """`model` (its AT-net hears MFCC only, e.g. `base`'s MFCC network fine-tuned) with `base`'s head
    (phone, embedding or activation) and its share; `model` itself when `base` has no head.

    A `model` in another landmark basis (`atvg finetune --person-basis`) gets the head moved into it
    (`rebase.code_map`): the head then predicts its landmarks projected onto that basis."""
    config, _ = network_configs(base.info, base.atnet)
    head_input = next((name for name in AUDIO_FEATURES[config.audio_features] if name in HEAD_INPUTS), None)
    if head_input is None:
        return model
    kernel, bias = base.atnet.get_layer(HEAD_INPUTS[head_input]).get_weights()
    if base.pca.fingerprint() != model.pca.fingerprint():
        matrix, offset = code_map(base.pca, model.pca)
        kernel, bias = kernel @ matrix, bias @ matrix + offset
    return model_with_phone_head(model, PhoneHead(kernel, bias, 0), config.head_weight, config.audio_features, **info)


def silence_statistics(model: TalkingFaceModel, identity_codes: np.ndarray, features: str, weight: float) -> HeadStatistics:
    """Silence for the head's fit: its input windows on silence, paired with the codes `model`'s MFCC
    network gives silence (the settled frames) for each of `identity_codes` [n, K], counted `weight`
    frames in all. Real-world voices pause with their lips apart; without this the embedding head
    kept a silent mouth a third open (inner-lip opening 0.043 of the eye-corner distance, against
    0.010 for the MFCC network)."""
    from atvg_tf.generation.model import SILENCE_FRAMES, SILENCE_SETTLED

    silence = np.zeros(SILENCE_FRAMES * AudioConfig().samples_per_video_frame, np.float32)
    windows = head_windows(silence, SILENCE_FRAMES, features)[SILENCE_SETTLED:]
    identity_codes = np.asarray(identity_codes, np.float32)
    mfcc = np.repeat(model.audio_windows(silence)["mfcc_windows"][None], len(identity_codes), axis=0)
    codes = mfcc_network(model).predict_on_batch({"mfcc_windows": mfcc, "identity_pca_codes": identity_codes})["pca_codes"]
    codes = codes[:, SILENCE_SETTLED:].reshape(-1, codes.shape[-1])
    return HeadStatistics.of(np.concatenate([windows] * len(identity_codes)), codes, weight / len(codes))


def fit_phone_head(examples: Iterable[tuple[np.ndarray, np.ndarray, float]], ridge: float = RIDGE) -> PhoneHead:
    """Ridge regression from phone posterior windows to landmark codes.

    Args:
        examples: per clip, its posterior windows [N, 28, 40], its landmark codes [N, K] and the
            weight of its frames (a few real-world voices count more than many clips of one).
        ridge: the penalty on the kernel.

    Returns:
        The head. Like AT-net it predicts codes, not motion from the photo: silence maps to the
        speakers' closed mouths (a head fitted to motion from each segment's mean kept an open
        photo's mouth half open in silence, and followed speech less: dev 0.31 against 0.33).
    """
    statistics = None
    for windows, codes, weight in examples:
        clip = HeadStatistics.of(windows, codes, weight)
        statistics = clip if statistics is None else statistics + clip
    if statistics is None:
        raise ValueError("no examples to fit the phone head on.")
    return statistics.solve(ridge)


def model_with_phone_head(model: TalkingFaceModel, head: PhoneHead, weight: float, features: str = "mfcc+phone_head",
                          **info) -> TalkingFaceModel:
    """`model` (its AT-net hears MFCC) with `head` given `weight` of AT-net's codes; `info` is added to its
    `training.json`, which records the new AT-net configuration.

    Args:
        features: the new AT-net's `audio_features` (`config.HEADED_FEATURES`).
    """
    atnet_config, vgnet_config = network_configs(model.info, model.atnet)
    config = dataclasses.replace(atnet_config, audio_features=features, **{HEAD_WEIGHT_FIELDS[features]: weight})
    presets = {"atnet": dataclasses.asdict(config), "vgnet": dataclasses.asdict(vgnet_config)}
    return TalkingFaceModel(_grafted(config, model.atnet, head), model.vgnet, model.pca,
                            {**json.loads(json.dumps(model.info)), "presets": presets, **info})


def with_phone_head(trained: keras.Model, preset: str, head: PhoneHead, weight: float) -> keras.Model:
    """An `mfcc+phone_head` AT-net: `trained` (an MFCC AT-net of `preset`) unchanged, plus `head`.

    Args:
        weight: the head's share of the codes (`ATNetConfig.phone_head_weight`).
    """
    return _grafted(dataclasses.replace(ATNetConfig.preset(preset), audio_features="mfcc+phone_head", phone_head_weight=weight),
                    trained, head)


def _grafted(config: ATNetConfig, trained: keras.Model, head: PhoneHead) -> keras.Model:
    atnet = build_atnet(config)
    graft_weights(atnet, trained)
    atnet.get_layer(HEAD_INPUTS[AUDIO_FEATURES[config.audio_features][1]]).set_weights([head.kernel, head.bias])
    return atnet


@dataclasses.dataclass(frozen=True)
class PreparedClip:
    """One clip of a folder of `atvg prepare`: its segments' frames joined, and its posteriors.

    Attributes:
        manifest: the clip's manifest entry (`id`, `speaker`, `split`, ...).
        frames: [N] the frame numbers the segments cover.
        codes: [N, K] landmark codes; landmarks: [N, 68, 2] (crop px); mfcc_windows: [N, 28, 12].
        posteriors: [frames_total, 28, 40] posterior windows of every frame of the clip, from its sound
            ([frames_total, 11, 96] speech embedding or [frames_total, 48, 96] activation windows where
            `prepared_clips` was asked for those).
    """

    manifest: dict
    frames: np.ndarray
    codes: np.ndarray
    landmarks: np.ndarray
    mfcc_windows: np.ndarray
    posteriors: np.ndarray

    def heard(self, audio_offset: int = 0) -> np.ndarray:
        """[N, 28, 40] the posterior windows the frames hear when frame t hears the window of t - offset."""
        return self.posteriors[np.clip(self.frames - audio_offset, 0, len(self.posteriors) - 1)]


def head_windows(waveform: np.ndarray, num_frames: int, features: str) -> np.ndarray:
    """A head's input windows of a 16 kHz recording, one per video frame: [N, 11, 96] speech embeddings
    (`features` `speech_embeddings`), [N, 48, 96] their network's activations (`speech_activations`)
    or [N, 28, 40] phone posteriors (`phone_posteriors`)."""
    if features in ("speech_embeddings", "speech_activations"):
        return speech_embedding.embedding_windows(waveform, num_frames, activations=features == "speech_activations")
    return phones.posterior_windows(waveform, num_frames)


def _clip_features(job: tuple[str, str, int, str]) -> tuple[str, np.ndarray]:
    clip_id, path, frames, features = job
    return clip_id, head_windows(clip_waveform(path, AudioConfig().sample_rate), frames, features)


def prepared_clips(prepared_dir: str, keep: Callable[[dict], bool], workers: int = os.cpu_count() or 1,
                   features: str = "phone_posteriors") -> Iterator[PreparedClip]:
    """The clips of a folder of `atvg prepare` whose manifest entry `keep` accepts (status ok only),
    the head's input windows (`features`: `phone_posteriors`, `speech_embeddings` or `speech_activations`) computed from each
    clip's sound as prepare read it (`workers` processes)."""
    from atvg_tf.data.records import read_segments

    with open(os.path.join(prepared_dir, "manifest.json")) as handle:
        clips = {clip["id"]: clip for clip in json.load(handle)["clips"] if clip.get("status") == "ok" and keep(clip)}
    segments: dict[str, list[dict]] = {}
    for segment in read_segments(sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord")))):
        clip_id = segment["clip_id"].decode()
        if clip_id in clips:
            segments.setdefault(clip_id, []).append(segment)
    jobs = [(clip_id, clips[clip_id]["source"], clips[clip_id]["frames_total"], features) for clip_id in sorted(segments)]
    with Pool(workers) as pool:
        for clip_id, windows in pool.imap_unordered(_clip_features, jobs):
            parts = sorted(segments[clip_id], key=lambda segment: int(segment["start_frame"]))
            yield PreparedClip(
                clips[clip_id],
                np.concatenate([int(part["start_frame"]) + np.arange(len(part["pca_codes"])) for part in parts]),
                *(np.concatenate([part[key] for part in parts]) for key in ("pca_codes", "landmarks", "mfcc_windows")),
                windows,
            )


def prepared_examples(prepared_dir: str, weight_of: Callable[[dict], float], audio_offsets: dict[str, int] | None = None,
                      workers: int = os.cpu_count() or 1, features: str = "phone_posteriors") -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """(the head's input windows, [N, 28, 40] posteriors, [N, 11, 96] embeddings or [N, 48, 96] activations (`features`), codes
    [N, K], weight) of every training clip of a folder of `atvg prepare` (its `train` split), for `fit_phone_head`.

    Args:
        weight_of: the weight of a clip's frames from its manifest entry (0 leaves it out).
        audio_offsets: clip id -> k: frame t hears the window of frame t - k (`TrainConfig.audio_offsets`).
    """
    for clip in prepared_clips(prepared_dir, lambda entry: entry.get("split") == "train" and weight_of(entry) > 0, workers, features):
        yield clip.heard((audio_offsets or {}).get(clip.manifest["id"], 0)), clip.codes, weight_of(clip.manifest)
