import numpy as np
import pytest
import tensorflow as tf

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
