"""`tf.data` input pipeline over prepared shards: training examples of T consecutive frames.

Each example (before batching) is a dict:

| key | shape | dtype | meaning |
|---|---|---|---|
| frames | [T, 128, 128, 3] | float32 | aligned crops in [-1, 1] |
| landmarks | [T, 136] | float32 | landmarks / crop size, (x0, y0, x1, ...) |
| pca_codes | [T, K] | float32 | landmark PCA codes |
| mfcc_windows | [T, 28, 12] | float32 | MFCC window of each frame |
| phone_windows | [T, 28, 40] | float32 | one-hot phone window of each frame (only with `audio_features` phones) |
| phone_posteriors | [T, 28, 40] | float32 | phone posterior window of each frame (only with `audio_features` phone_posteriors) |
| speech_embeddings | [T, 11, 96] | float32 | speech embedding window of each frame (only with `audio_features` speech_embeddings) |
| identity_frame | [128, 128, 3] | float32 | a random frame of the same clip segment, [-1, 1] |
| identity_landmarks | [136] | float32 | its landmarks |
| identity_pca_codes | [K] | float32 | its PCA codes |

Every segment yields `max(1, N // T)` examples per epoch with random start frames (times its
speaker's repeat factor). With `audio_augmentation` p, an example's audio features come from one of
the augmented copies `atvg prepare --audio-variants` wrote with probability p (the same copy for
MFCC and phones), else from the recorded audio. With `appearance_augmentation` p, an example's
frames, identity frame and landmarks get one random colour + scale/shift change with probability p.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np
import tensorflow as tf

from atvg_tf.data import records
from atvg_tf.data.appearance import augment_appearance
from atvg_tf.errors import InputError
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.phones import NUM_PHONES


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Options of the input pipeline.

    Attributes:
        sequence_length: T, frames per example (16 in the paper).
        batch_size: examples per batch.
        shuffle_buffer: examples in the shuffle buffer (0 disables shuffling).
        interleave_cycle_length: shards read at once (examples mix across this many shards).
        autotune_ram_budget_mb: the RAM tf.data's autotuner may fill with prefetched data (0: its
            default, half of the machine's memory).
        repeat: repeat the data forever.
        deterministic: fixed order and fixed random choices for a given seed.
        seed: seed of the random choices.
        drop_remainder: drop the last, smaller batch.
        audio_features: `mfcc`, `phones`, `phone_posteriors` and/or `speech_embeddings`: which audio
            windows the examples carry.
        audio_augmentation: probability of taking an augmented copy of the audio features.
        speaker_repeats: (speaker id, factor) pairs: that speaker's segments yield `factor` times
            as many examples (weights up a few clips of other voices beside a large corpus).
        exclude_clips: clip ids left out (kept aside to choose between models, for instance).
        appearance_augmentation: probability of one random colour + scale/shift change applied to
            an example's frames, identity frame and landmarks together (`data/appearance.py`; for
            VG-net: the PCA codes stay as recorded).
        audio_offsets: (clip or speaker id, k) pairs: that clip's (else that speaker's) frame t is
            paired with the audio windows of frame t - k (clamped to the segment): for footage whose
            sound runs k frames ahead of its picture (k < 0: behind it) compared with the rest of
            the training data (measure it with `benchmarks/bench_av_offset.py`).
    """

    sequence_length: int = 16
    batch_size: int = 8
    shuffle_buffer: int = 256
    interleave_cycle_length: int = 4
    autotune_ram_budget_mb: int = 0
    repeat: bool = False
    deterministic: bool = False
    seed: int = 0
    drop_remainder: bool = True
    audio_features: tuple[str, ...] = ("mfcc",)
    audio_augmentation: float = 0.0
    speaker_repeats: tuple[tuple[str, int], ...] = ()
    exclude_clips: tuple[str, ...] = ()
    appearance_augmentation: float = 0.0
    audio_offsets: tuple[tuple[str, int], ...] = ()

    @classmethod
    def preset(cls, name: str) -> PipelineConfig:
        """`paper`: VG-net batches of 10 sequences of 16 frames; `small`: 4 x 16 for a CPU."""
        presets = {"paper": cls(batch_size=10), "small": cls(batch_size=4)}
        if name not in presets:
            raise InputError(f"Unknown pipeline preset {name!r}; choose one of {sorted(presets)}.")
        return presets[name]


def read_manifest(prepared_dir: str) -> dict:
    """Loads `manifest.json` of a prepared folder, with an actionable error when it is missing."""
    path = os.path.join(prepared_dir, "manifest.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; run `atvg prepare ... --output {prepared_dir}` first.")
    with open(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise InputError(f"{path} is not a valid manifest ({error}); rerun `atvg prepare ... --output {prepared_dir}`.") from None


def shard_paths(prepared_dir: str, split: str | None = "train") -> list[str]:
    """Shards of one split (all splits for None) listed in the manifest."""
    manifest = read_manifest(prepared_dir)
    paths = [
        os.path.join(prepared_dir, shard["file"])
        for shard in manifest["shards"]
        if split is None or shard["split"] == split
    ]
    if not paths:
        raise InputError(f"{prepared_dir} has no {split or 'any'} shards; check the split fractions used by `atvg prepare`.")
    return sorted(paths)


def _decode_frames(jpegs: tf.Tensor) -> tf.Tensor:
    frames = tf.map_fn(
        lambda jpeg: tf.io.decode_jpeg(jpeg, channels=3),
        jpegs,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )
    return tf.cast(frames, tf.float32) / 127.5 - 1.0


def make_dataset(
    prepared_dir: str,
    split: str | None = "train",
    config: PipelineConfig = PipelineConfig(),
    pca: LandmarkPCA | None = None,
) -> tf.data.Dataset:
    """Builds the batched training dataset of a prepared folder.

    Args:
        prepared_dir: output folder of `atvg prepare`.
        split: `train`, `val`, `test`, or None for all.
        config: pipeline options.
        pca: recompute the PCA codes from the landmarks with this basis instead of using the
            stored codes.

    Returns:
        A dataset of dicts (see the module docstring) batched to [B, ...].
    """
    T = config.sequence_length
    paths = shard_paths(prepared_dir, split)
    settings = read_manifest(prepared_dir)["settings"]
    crop_size = settings["alignment"]["crop_size"]
    num_components = pca.num_components if pca is not None else settings["pca"]["components"]
    options = tf.data.Options()
    options.deterministic = config.deterministic
    if config.autotune_ram_budget_mb:
        options.autotune.ram_budget = config.autotune_ram_budget_mb * 2**20
    written = settings.get("audio_features", {}).get("features", ["mfcc"])
    missing = [feature for feature in config.audio_features if feature not in written]
    if missing:
        raise InputError(
            f"{prepared_dir} has no {' or '.join(missing)} features (prepared with an older version or --no-phones); "
            f"rerun `atvg prepare` into a new folder."
        )
    with_phones = "phones" in config.audio_features
    with_posteriors = "phone_posteriors" in config.audio_features
    with_embeddings = "speech_embeddings" in config.audio_features
    repeats = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant([speaker for speaker, _ in config.speaker_repeats] or [""], tf.string),
            tf.constant([int(factor) for _, factor in config.speaker_repeats] or [1], tf.int32),
        ),
        default_value=1,
    )
    no_offset = tf.int32.min
    offsets = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant([key for key, _ in config.audio_offsets] or [""], tf.string),
            tf.constant([int(k) for _, k in config.audio_offsets] or [no_offset], tf.int32),
        ),
        default_value=no_offset,
    )

    def audio_offset(segment):
        """The segment's clip's offset, else its speaker's, else 0."""
        by_clip, by_speaker = offsets.lookup(segment["clip_id"]), offsets.lookup(segment["speaker_id"])
        return tf.where(by_clip != no_offset, by_clip, tf.where(by_speaker != no_offset, by_speaker, 0))

    files = tf.data.Dataset.from_tensor_slices(paths)
    if config.shuffle_buffer and not config.deterministic:
        files = files.shuffle(len(paths))
    segments = files.interleave(
        tf.data.TFRecordDataset, cycle_length=min(config.interleave_cycle_length, len(paths)), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=config.deterministic,
    )
    segments = segments.map(records.parse_segment, num_parallel_calls=tf.data.AUTOTUNE)
    segments = segments.filter(lambda s: s["num_frames"] >= T)
    if config.exclude_clips:
        excluded = tf.constant(list(config.exclude_clips))
        segments = segments.filter(lambda s: tf.logical_not(tf.reduce_any(tf.equal(s["clip_id"], excluded))))

    if pca is not None:
        mean = tf.constant(pca.mean)
        components = tf.constant(pca.components)
        if pca.space != "crop":
            raise InputError("the pipeline can only recompute codes with a crop-space basis (one from `atvg fit-pca`).")

        def recode(segment):
            flat = tf.reshape(segment["landmarks"], [-1, 136]) / crop_size
            segment["pca_codes"] = tf.matmul(flat * pca.scale - mean, components)
            return segment

        segments = segments.map(recode, num_parallel_calls=tf.data.AUTOTUNE)

    def expand(segment, key):
        count = tf.maximum(tf.cast(segment["num_frames"], tf.int32) // T, 1) * repeats.lookup(segment["speaker_id"])
        picks = tf.data.Dataset.range(tf.cast(count, tf.int64))
        return picks.map(lambda pick: (key, pick, segment), num_parallel_calls=tf.data.AUTOTUNE)

    def sample(key, pick, segment):
        n = tf.cast(segment["num_frames"], tf.int32)
        seed = tf.stack([key, pick])
        start = tf.random.stateless_uniform([], seed, 0, n - T + 1, dtype=tf.int32)
        identity = tf.random.stateless_uniform([], seed + 1, 0, n, dtype=tf.int32)
        picked = tf.concat([tf.range(start, start + T), [identity]], axis=0)
        frames = _decode_frames(tf.gather(segment["frames"], picked))
        landmarks = tf.reshape(tf.gather(segment["landmarks"], picked), [T + 1, 136]) / crop_size
        codes = tf.ensure_shape(tf.gather(segment["pca_codes"], picked), [T + 1, num_components])
        variants = tf.cast(segment["audio_variants"], tf.int32)
        augmented = tf.random.stateless_uniform([], seed + 2) < config.audio_augmentation
        variant = tf.where(
            augmented & (variants > 1), tf.random.stateless_uniform([], seed + 3, 1, tf.maximum(variants, 2), dtype=tf.int32), 0
        )
        heard = tf.clip_by_value(picked[:T] - audio_offset(segment), 0, n - 1)
        windows = tf.gather(segment["mfcc_variants"][variant], heard)
        frames = tf.ensure_shape(frames, [T + 1, crop_size, crop_size, 3])
        if config.appearance_augmentation > 0:
            frames, landmarks = tf.cond(
                tf.random.stateless_uniform([], seed + 4) < config.appearance_augmentation,
                lambda: augment_appearance(frames, landmarks, seed + 5),
                lambda: (frames, landmarks),
            )
        example = {
            "frames": frames[:T],
            "landmarks": landmarks[:T],
            "pca_codes": codes[:T],
            "mfcc_windows": tf.ensure_shape(windows, [T, *records.WINDOW_SHAPE]),
            "identity_frame": frames[T],
            "identity_landmarks": landmarks[T],
            "identity_pca_codes": codes[T],
        }
        if with_phones:
            ids = tf.gather(segment["phone_windows"][variant], heard)
            example["phone_windows"] = tf.ensure_shape(tf.one_hot(ids, NUM_PHONES), [T, records.PHONE_WINDOW_ROWS, NUM_PHONES])
        if with_posteriors:
            posteriors = tf.gather(segment["phone_posteriors"][variant], heard)
            example["phone_posteriors"] = tf.ensure_shape(posteriors, [T, records.PHONE_WINDOW_ROWS, NUM_PHONES])
        if with_embeddings:
            embeddings = tf.gather(segment["speech_embeddings"][variant], heard)
            example["speech_embeddings"] = tf.ensure_shape(embeddings, [T, *records.EMBEDDING_WINDOW_SHAPE])
        return example

    # One random key per segment and pass over the data: every epoch draws new windows, and a
    # deterministic pipeline draws the same sequence of keys on every run.
    keys = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True)
    examples = tf.data.Dataset.zip(segments, keys).flat_map(expand)
    examples = examples.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=config.deterministic)
    if config.shuffle_buffer:
        examples = examples.shuffle(config.shuffle_buffer, seed=config.seed if config.deterministic else None)
    if config.repeat:
        examples = examples.repeat()
    examples = examples.batch(config.batch_size, drop_remainder=config.drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    return examples.prefetch(tf.data.AUTOTUNE).with_options(options)


def fit_pca(prepared_dir: str, num_components: int = 6, split: str | None = "train") -> tuple[LandmarkPCA, int]:
    """Fits a crop-space landmark PCA on every frame of a prepared split.

    Returns:
        (the basis, the number of frames it was fitted on).
    """
    crop_size = read_manifest(prepared_dir)["settings"]["alignment"]["crop_size"]
    landmarks = []
    dataset = tf.data.TFRecordDataset(shard_paths(prepared_dir, split)).map(
        lambda record: records.parse_segment(record)["landmarks"], num_parallel_calls=tf.data.AUTOTUNE
    )
    for segment_landmarks in dataset:
        landmarks.append(segment_landmarks.numpy())
    stacked = np.concatenate(landmarks)
    return LandmarkPCA.fit(stacked, num_components, crop_size), len(stacked)


def prepared_files(prepared_dir: str) -> list[str]:
    """Every shard file present in a prepared folder (listed in the manifest or not)."""
    return sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord")))
