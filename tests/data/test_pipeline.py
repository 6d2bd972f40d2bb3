import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.data import records
from atvg_tf.data.pipeline import PipelineConfig, fit_pca, make_dataset
from atvg_tf.errors import InputError
from atvg_tf.frontend.face.pca import LandmarkPCA

pytestmark = pytest.mark.slow  # every test reads `prepared_dir` (`atvg prepare`)


def test_batches_have_the_documented_shapes_and_dtypes(prepared_dir):
    config = PipelineConfig(batch_size=3, shuffle_buffer=8, repeat=True)
    batch = next(iter(make_dataset(prepared_dir, None, config)))
    expected = {
        "frames": ([3, 16, 128, 128, 3], tf.float32),
        "landmarks": ([3, 16, 136], tf.float32),
        "pca_codes": ([3, 16, 6], tf.float32),
        "mfcc_windows": ([3, 16, 28, 12], tf.float32),
        "identity_frame": ([3, 128, 128, 3], tf.float32),
        "identity_landmarks": ([3, 136], tf.float32),
        "identity_pca_codes": ([3, 6], tf.float32),
    }
    assert set(batch) == set(expected)
    dataset = make_dataset(prepared_dir, None, config)
    for key, (shape, _) in expected.items():  # static shapes: Keras layers can be built on them
        assert dataset.element_spec[key].shape.as_list() == shape, key
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape.as_list() == shape, key
        assert batch[key].dtype == dtype, key
    frames = batch["frames"].numpy()
    assert frames.min() >= -1.0 and frames.max() <= 1.0 and frames.std() > 0.1
    assert 0.0 < batch["landmarks"].numpy().min() and batch["landmarks"].numpy().max() < 1.2
    # Consecutive frames of one example are neighbours in time: they differ only a little.
    step = np.abs(np.diff(frames[0], axis=0)).mean()
    assert step < 0.1


def test_deterministic_pipeline_repeats_exactly(prepared_dir):
    config = PipelineConfig(batch_size=2, deterministic=True, seed=7)
    first = [b["pca_codes"].numpy() for b in make_dataset(prepared_dir, None, config)]
    second = [b["pca_codes"].numpy() for b in make_dataset(prepared_dir, None, config)]
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = [b["pca_codes"].numpy() for b in make_dataset(prepared_dir, None, PipelineConfig(batch_size=2, deterministic=True, seed=8))]
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_every_epoch_draws_new_windows(prepared_dir):
    dataset = make_dataset(prepared_dir, None, PipelineConfig(batch_size=2, shuffle_buffer=0, deterministic=True))
    epochs = [np.concatenate([b["pca_codes"].numpy() for b in dataset]) for _ in range(2)]
    assert epochs[0].shape == epochs[1].shape
    assert not np.array_equal(epochs[0], epochs[1])


def test_codes_can_be_recomputed_with_another_basis(prepared_dir, tmp_path):
    basis, frames = fit_pca(prepared_dir, num_components=4, split=None)
    assert frames > 300
    basis.save(tmp_path / "basis.npz")
    config = PipelineConfig(batch_size=2, deterministic=True)
    batch = next(iter(make_dataset(prepared_dir, None, config, pca=LandmarkPCA.load(tmp_path / "basis.npz"))))
    landmarks = batch["landmarks"].numpy().reshape(2, 16, 68, 2) * 128
    np.testing.assert_allclose(batch["pca_codes"].numpy(), basis.encode(landmarks), atol=1e-4)


def test_missing_split_and_missing_folder_are_clear_errors(prepared_dir, tmp_path):
    with pytest.raises(InputError, match="no test shards"):
        make_dataset(prepared_dir, "test")
    with pytest.raises(FileNotFoundError, match="atvg prepare"):
        make_dataset(str(tmp_path), "train")


def test_phone_windows_and_augmented_audio_reach_the_batches(prepared_dir):
    clean = PipelineConfig(batch_size=2, deterministic=True, audio_features=("mfcc", "phones"))
    batch = next(iter(make_dataset(prepared_dir, None, clean)))
    assert batch["phone_windows"].shape == (2, 16, 28, 40)
    np.testing.assert_array_equal(batch["phone_windows"].numpy().sum(axis=-1), 1.0)  # one-hot ids
    augmented = next(iter(make_dataset(prepared_dir, None, dataclasses.replace(clean, audio_augmentation=1.0))))
    np.testing.assert_array_equal(augmented["pca_codes"], batch["pca_codes"])  # the same frames
    assert not np.allclose(augmented["mfcc_windows"], batch["mfcc_windows"])  # another copy of their sound


def test_speaker_repeats_and_excluded_clips(prepared_dir):
    def count(**options):
        return sum(len(b["pca_codes"]) for b in make_dataset(prepared_dir, None, PipelineConfig(batch_size=1, shuffle_buffer=0, **options)))

    plain = count()
    assert count(speaker_repeats=(("s1", 3),)) > 2 * plain
    assert count(exclude_clips=("s1/bbaf4p",)) < plain


def test_audio_offsets_pair_each_frame_with_earlier_sound(prepared_dir):
    plain = PipelineConfig(batch_size=2, deterministic=True, audio_features=("mfcc", "phones"))
    batch = next(iter(make_dataset(prepared_dir, None, plain)))
    # Every speaker's sound moved: which clip comes first depends on which worker finished first.
    speakers = sorted({row["speaker"] for row in json.load(open(f"{prepared_dir}/manifest.json"))["clips"]})
    shifted = next(iter(make_dataset(prepared_dir, None, dataclasses.replace(plain, audio_offsets=tuple((s, 2) for s in speakers)))))
    np.testing.assert_array_equal(shifted["pca_codes"], batch["pca_codes"])  # the same frames
    for name in ("mfcc_windows", "phone_windows"):  # frame t hears what frame t - 2 heard
        np.testing.assert_array_equal(shifted[name][:, 2:], batch[name][:, :-2])
        assert not np.array_equal(shifted[name], batch[name])
    other_speaker = next(iter(make_dataset(prepared_dir, None, dataclasses.replace(plain, audio_offsets=(("s2", 2),)))))
    np.testing.assert_array_equal(other_speaker["mfcc_windows"], batch["mfcc_windows"])
    # A clip's own offset comes before its speaker's: here every clip of s1 gets -1 (sound late) but s1's 2.
    clips = {row["id"] for row in json.load(open(f"{prepared_dir}/manifest.json"))["clips"]}
    by_clip = dataclasses.replace(plain, audio_offsets=(("s1", 2), *((clip, -1) for clip in sorted(clips))))
    later = next(iter(make_dataset(prepared_dir, None, by_clip)))
    np.testing.assert_array_equal(later["mfcc_windows"][:, :-1], batch["mfcc_windows"][:, 1:])


def test_old_shards_without_phones_are_read_and_refused_for_phone_models(tmp_path):
    n = 3
    record = records.encode_segment(
        clip_id="s1/x", speaker_id="s1", source="x.mpg", segment=0, start_frame=0, jpeg_frames=[b"jpeg"] * n,
        landmarks=np.zeros((n, 68, 2)), pca_codes=np.zeros((n, 6)), mfcc_windows=np.ones((n, 28, 12)),
        transforms=np.zeros((n, 6)), interpolated=np.zeros(n),
    )
    example = tf.train.Example.FromString(record)
    for key in ("phone_windows", "audio_variants"):  # what shards of earlier versions lack
        del example.features.feature[key]
    parsed = records.parse_segment(tf.constant(example.SerializeToString()))
    assert parsed["mfcc_windows"].shape == (n, 28, 12) and parsed["mfcc_variants"].shape == (1, n, 28, 12)
    assert parsed["phone_windows"].shape == (0, n, 28)
    folder = tmp_path / "old"
    folder.mkdir()
    with tf.io.TFRecordWriter(str(folder / "train-00000.tfrecord")) as writer:
        writer.write(example.SerializeToString())
    manifest = {"settings": {"alignment": {"crop_size": 128}, "pca": {"components": 6}},
                "shards": [{"file": "train-00000.tfrecord", "split": "train"}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="no phones features.*rerun `atvg prepare`"):
        make_dataset(str(folder), "train", PipelineConfig(audio_features=("phones",)))


def test_appearance_augmentation_changes_identity_and_targets_together(prepared_dir):
    base = PipelineConfig(batch_size=2, shuffle_buffer=0, deterministic=True, seed=3)
    plain = next(iter(make_dataset(prepared_dir, None, base)))
    changed = next(iter(make_dataset(prepared_dir, None, dataclasses.replace(base, appearance_augmentation=1.0))))
    # Same examples (same windows, codes and audio), other colours and positions.
    np.testing.assert_array_equal(plain["pca_codes"].numpy(), changed["pca_codes"].numpy())
    np.testing.assert_array_equal(plain["mfcc_windows"].numpy(), changed["mfcc_windows"].numpy())
    assert np.abs(plain["frames"].numpy() - changed["frames"].numpy()).mean() > 0.02
    assert not np.allclose(plain["landmarks"].numpy(), changed["landmarks"].numpy())
    # One transform per example: the identity frame's colour moves as its target frames' do.
    shift = lambda key: changed[key].numpy().mean(axis=(-3, -2)) - plain[key].numpy().mean(axis=(-3, -2))  # noqa: E731
    np.testing.assert_allclose(shift("identity_frame"), shift("frames")[:, 0], atol=0.05)


def test_the_landmarks_move_with_the_pixels():
    from atvg_tf.data.appearance import augment_appearance

    image = np.zeros((128, 128, 3), np.float32) - 1.0
    landmarks = np.full((68, 2), 0.5, np.float32)
    landmarks[30] = [0.3, 0.7]
    image[89:91, 38:40] = 1.0  # a bright dot around (38.5 + 0.5, 89.5 + 0.5) = 128 * (0.3, 0.7)
    frames = tf.constant(np.stack([image, image]))
    for seed in range(5):
        out, moved = augment_appearance(frames, tf.constant(landmarks.reshape(1, 136).repeat(2, 0)), tf.constant([seed, 1]))
        out = out.numpy()
        np.testing.assert_array_equal(out[0], out[1])
        brightness = out[1].mean(axis=2) + 1.0
        rows, columns = np.nonzero(brightness > 0.5 * brightness.max())
        expected = moved.numpy()[0].reshape(68, 2)[30] * 128
        np.testing.assert_allclose([columns.mean() + 0.5, rows.mean() + 0.5], expected, atol=1.0)
