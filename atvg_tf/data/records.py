"""The TFRecord layout of a prepared clip segment (one `tf.train.Example` per segment).

| feature | type | shape | meaning |
|---|---|---|---|
| clip_id, speaker_id, source | bytes | [] | clip id, speaker, source file name |
| segment, start_frame, num_frames | int64 | [] | segment index, first frame in the clip, N |
| frames | bytes | [N] | aligned 128 x 128 RGB crops, JPEG |
| landmarks | float | [N * 136] | 68 landmarks per frame in crop pixels, (x0, y0, x1, ...) |
| pca_codes | float | [N * K] | landmark PCA codes; K = num_pca_components |
| mfcc_windows | float | [V * N * 28 * 12] | the MFCC window of each frame, for each audio variant |
| phone_windows | int64 | [V * N * 28] | the phone ids (`frontend.phones`) of each frame's window; empty in shards written before phones |
| phone_posteriors | bytes | [V] | per audio variant, the phone posterior windows [N, 28, 40] as uint8 (x 255, rounded); absent unless asked for |
| speech_embeddings | bytes | [V] | per audio variant, the speech embedding windows [N, 11, 96] as float16; absent unless asked for |
| audio_variants | int64 | [] | V: 1 (the recorded audio) + augmented copies; absent (1) in older shards |
| transforms | float | [N * 6] | source-frame -> crop similarity per frame (2 x 3) |
| interpolated | int64 | [N] | 1 where the landmarks were interpolated over a detection gap |
| words | bytes | [W] | GRID words (silences left out), empty without an `.align` file |
| word_start, word_end | float | [W] | word times in frames relative to the segment start |
"""

from __future__ import annotations

import functools

import numpy as np

from atvg_tf.data.tfrecord_lib import serialize_example
from atvg_tf.frontend.phones import NUM_PHONES

WINDOW_SHAPE = (28, 12)
PHONE_WINDOW_ROWS = 28
# `frontend.speech_embedding` windows (WINDOW_FRAMES, EMBEDDING_SIZE); that module needs LiteRT, this one must not.
EMBEDDING_WINDOW_SHAPE = (11, 96)


def encode_segment(
    *,
    clip_id: str,
    speaker_id: str,
    source: str,
    segment: int,
    start_frame: int,
    jpeg_frames: list[bytes],
    landmarks: np.ndarray,
    pca_codes: np.ndarray,
    mfcc_windows: np.ndarray,
    phone_windows: np.ndarray | None = None,
    phone_posteriors: np.ndarray | None = None,
    speech_embeddings: np.ndarray | None = None,
    transforms: np.ndarray,
    interpolated: np.ndarray,
    words: list[tuple[str, float, float]] = (),
) -> bytes:
    """Serialises one segment to a `tf.train.Example` (see the module docstring for the layout).

    `mfcc_windows` is [N, 28, 12] or, with augmented audio, [V, N, 28, 12]; `phone_windows` is
    None, [N, 28] or [V, N, 28] with the same V; `phone_posteriors` None, [N, 28, 40] or [V, N, 28, 40];
    `speech_embeddings` None, [N, 11, 96] or [V, N, 11, 96].
    """
    num_frames = len(jpeg_frames)
    mfcc_windows = np.asarray(mfcc_windows, np.float32)
    mfcc_windows = mfcc_windows[None] if mfcc_windows.ndim == 3 else mfcc_windows
    variants = len(mfcc_windows)
    phone_windows = _per_variant("phone_windows", phone_windows, 2, variants)
    phone_posteriors = _per_variant("phone_posteriors", phone_posteriors, 3, variants, np.float32)
    speech_embeddings = _per_variant("speech_embeddings", speech_embeddings, 3, variants, np.float16)
    per_frame = [("landmarks", landmarks), ("pca_codes", pca_codes), ("mfcc_windows", mfcc_windows[0]),
                 ("transforms", transforms), ("interpolated", interpolated)]
    if phone_windows is not None:
        per_frame.append(("phone_windows", phone_windows[0]))
    if phone_posteriors is not None:
        per_frame.append(("phone_posteriors", phone_posteriors[0]))
    if speech_embeddings is not None:
        per_frame.append(("speech_embeddings", speech_embeddings[0]))
    for name, array in per_frame:
        if len(array) != num_frames:
            raise ValueError(f"{name} has {len(array)} rows for {num_frames} frames.")
    return serialize_example(
        {"clip_id": [clip_id.encode()], "speaker_id": [speaker_id.encode()], "source": [source.encode()],
         "frames": jpeg_frames, "words": [w.encode() for w, _, _ in words],
         "phone_posteriors": () if phone_posteriors is None else [
             np.round(np.clip(variant, 0.0, 1.0) * 255.0).astype(np.uint8).tobytes() for variant in phone_posteriors],
         "speech_embeddings": () if speech_embeddings is None else [variant.astype("<f2").tobytes() for variant in speech_embeddings]},
        {"landmarks": landmarks, "pca_codes": pca_codes, "mfcc_windows": mfcc_windows, "transforms": transforms,
         "word_start": [s for _, s, _ in words], "word_end": [e for _, _, e in words]},
        {"segment": [segment], "start_frame": [start_frame], "num_frames": [num_frames],
         "num_pca_components": [pca_codes.shape[-1]], "phone_windows": () if phone_windows is None else phone_windows,
         "audio_variants": [variants], "interpolated": interpolated},
    )


def _per_variant(name: str, array: np.ndarray | None, frame_ndim: int, variants: int, dtype=None) -> np.ndarray | None:
    """A per-frame audio feature as [V, N, ...] (a single variant may come without its V axis)."""
    if array is None:
        return None
    array = np.asarray(array, dtype)
    array = array[None] if array.ndim == frame_ndim else array
    if len(array) != variants:
        raise ValueError(f"{name} has {len(array)} variants, mfcc_windows {variants}.")
    return array


@functools.cache
def _feature_spec() -> dict:
    import tensorflow as tf  # only readers need it: `atvg prepare` writes records without it

    return {
        "clip_id": tf.io.FixedLenFeature([], tf.string),
        "speaker_id": tf.io.FixedLenFeature([], tf.string),
        "source": tf.io.FixedLenFeature([], tf.string),
        "segment": tf.io.FixedLenFeature([], tf.int64),
        "start_frame": tf.io.FixedLenFeature([], tf.int64),
        "num_frames": tf.io.FixedLenFeature([], tf.int64),
        "num_pca_components": tf.io.FixedLenFeature([], tf.int64),
        "frames": tf.io.VarLenFeature(tf.string),
        "landmarks": tf.io.VarLenFeature(tf.float32),
        "pca_codes": tf.io.VarLenFeature(tf.float32),
        "mfcc_windows": tf.io.VarLenFeature(tf.float32),
        "phone_windows": tf.io.VarLenFeature(tf.int64),
        "phone_posteriors": tf.io.VarLenFeature(tf.string),
        "speech_embeddings": tf.io.VarLenFeature(tf.string),
        "audio_variants": tf.io.FixedLenFeature([], tf.int64, default_value=1),
        "transforms": tf.io.VarLenFeature(tf.float32),
        "interpolated": tf.io.VarLenFeature(tf.int64),
        "words": tf.io.VarLenFeature(tf.string),
        "word_start": tf.io.VarLenFeature(tf.float32),
        "word_end": tf.io.VarLenFeature(tf.float32),
    }


def parse_segment(serialized):
    """Parses one serialised segment into dense tensors (frames stay JPEG-encoded).

    Returns:
        A dict with the scalar fields, `frames` [N] string, `landmarks` [N, 68, 2],
        `pca_codes` [N, K], `mfcc_windows` [N, 28, 12] (the recorded audio), `mfcc_variants`
        [V, N, 28, 12], `phone_windows` [V, N, 28] int32 ([0, N, 28] in shards without phones),
        `phone_posteriors` [V, N, 28, 40] float32 ([0, N, 28, 40] in shards without them),
        `speech_embeddings` [V, N, 11, 96] float32 ([0, N, 11, 96] in shards without them),
        `transforms` [N, 2, 3], `interpolated` [N], `words` [W], `word_start` [W], `word_end` [W].
    """
    import tensorflow as tf

    parsed = tf.io.parse_single_example(serialized, _feature_spec())
    dense = {key: tf.sparse.to_dense(value) if isinstance(value, tf.SparseTensor) else value for key, value in parsed.items()}
    n = tf.cast(dense["num_frames"], tf.int32)
    dense["landmarks"] = tf.reshape(dense["landmarks"], [n, 68, 2])
    dense["pca_codes"] = tf.reshape(dense["pca_codes"], [n, tf.cast(dense["num_pca_components"], tf.int32)])
    variants = tf.cast(dense["audio_variants"], tf.int32)
    dense["mfcc_variants"] = tf.reshape(dense["mfcc_windows"], [variants, n, *WINDOW_SHAPE])
    dense["mfcc_windows"] = dense["mfcc_variants"][0]
    dense["phone_windows"] = tf.reshape(tf.cast(dense["phone_windows"], tf.int32), [-1, n, PHONE_WINDOW_ROWS])
    posteriors = tf.io.decode_raw(dense["phone_posteriors"], tf.uint8)  # [V, N * 28 * 40]; [0, 0] when absent
    dense["phone_posteriors"] = tf.reshape(tf.cast(posteriors, tf.float32) / 255.0, [-1, n, PHONE_WINDOW_ROWS, NUM_PHONES])
    embeddings = tf.io.decode_raw(dense["speech_embeddings"], tf.float16, little_endian=True)
    dense["speech_embeddings"] = tf.reshape(tf.cast(embeddings, tf.float32), [-1, n, *EMBEDDING_WINDOW_SHAPE])
    dense["transforms"] = tf.reshape(dense["transforms"], [n, 2, 3])
    return dense


def read_segments(paths: list[str]) -> list[dict]:
    """Reads every segment of some shards eagerly as numpy dicts (for tools and tests)."""
    import tensorflow as tf

    segments = []
    for record in tf.data.TFRecordDataset(paths):
        parsed = parse_segment(record)
        segments.append({key: value.numpy() for key, value in parsed.items()})
    return segments
