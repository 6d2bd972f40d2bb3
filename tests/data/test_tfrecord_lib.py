"""Records written without TensorFlow are the records TensorFlow writes and reads."""

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.data.tfrecord_lib import TFRecordWriter, serialize_example


def _features():
    rng = np.random.default_rng(0)
    return ({"name": [b"clip"], "frames": [b"\xff\xd8jpeg", b"", b"x" * 3000], "none": []},
            {"landmarks": rng.normal(size=(5, 68, 2)), "empty": np.zeros(0)},
            {"count": [7], "ids": rng.integers(-(2**40), 2**40, size=300), "negative": [-1]})


def test_an_example_equals_tensorflows():
    bytes_features, float_features, int_features = _features()
    expected = tf.train.Example(features=tf.train.Features(feature={
        **{k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)) for k, v in bytes_features.items()},
        **{k: tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(v, np.float32).reshape(-1))) for k, v in float_features.items()},
        **{k: tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(v).reshape(-1))) for k, v in int_features.items()},
    }))
    ours = tf.train.Example.FromString(serialize_example(bytes_features, float_features, int_features))
    assert ours == expected
    assert ours.features.feature["empty"].HasField("float_list")  # an empty list keeps its type


def test_tensorflow_reads_the_file_and_checks_its_checksums(tmp_path):
    records = [serialize_example(*_features()), b"", b"second record" * 100]
    path = str(tmp_path / "a.tfrecord")
    writer = TFRecordWriter(path)
    for record in records:
        writer.write(record)
    writer.close()
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == records
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 1  # a flipped bit in the last record's data
    open(path, "wb").write(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(path))
