import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.data import records
from atvg_tf.errors import InputError
from atvg_tf.evaluation.av_offset import clip_offset, clip_offsets, lagged_correlations, phone_openness
from atvg_tf.frontend.phones import PHONES


def _faces(aperture: np.ndarray) -> np.ndarray:
    """[N, 68, 2] landmarks whose eye corners are 1 apart and whose inner lips are `aperture` apart."""
    faces = np.zeros((len(aperture), 68, 2), np.float32)
    faces[:, 45, 0] = 1.0
    faces[:, [65, 66, 67], 1] = aperture[:, None]  # the lower inner lip; the upper one stays at 0
    return faces


def _speech(frames: int, seed: int = 0) -> np.ndarray:
    """[N, 28] phone-id windows of a random phone sequence, 4 rows per frame, framed like `frontend.phones`."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(rng.integers(0, len(PHONES), size=frames + 8), 4 * rng.integers(1, 3, size=frames + 8))[: 4 * frames + 28]
    return np.stack([rows[4 * t: 4 * t + 28] for t in range(frames)])


@pytest.mark.parametrize("offset", [-3, 0, 2])
def test_the_offset_between_sound_and_picture_is_found(offset):
    windows = _speech(200)
    openness = phone_openness(windows)
    # The picture shows at frame t what the sound says at frame t + offset.
    picture = np.roll(openness, -offset) + 0.01
    lag, correlations = clip_offset(windows, _faces(picture))
    assert lag == offset
    assert correlations.shape == (13,) and correlations[lag + 6] > 0.9


def test_lagged_correlations_read_the_sound_driven_curve_later_at_positive_lags():
    curve = np.sin(np.linspace(0, 12, 120)) + np.random.default_rng(1).normal(0, 0.05, 120)
    later = np.concatenate([np.zeros(3), curve[:-3]])  # the same curve, 3 frames after
    correlations = lagged_correlations(later, curve, 5)
    assert int(np.argmax(correlations)) - 5 == 3


def test_silence_expects_a_closed_mouth():
    assert phone_openness(np.zeros((10, 28), int)).max() == 0.0


def _segment(clip_id: str, windows: np.ndarray, aperture: np.ndarray, segment: int = 0, with_phones: bool = True) -> bytes:
    n = len(windows)
    return records.encode_segment(
        clip_id=clip_id, speaker_id="person", source=clip_id + ".mp4", segment=segment, start_frame=0,
        jpeg_frames=[b""] * n, landmarks=_faces(aperture).reshape(n, 136), pca_codes=np.zeros((n, 2), np.float32),
        mfcc_windows=np.zeros((n, 28, 12), np.float32), phone_windows=windows if with_phones else None,
        transforms=np.zeros((n, 6), np.float32), interpolated=np.zeros(n, np.int64))


def _write_shard(path, serialized: list[bytes]) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in serialized:
            writer.write(record)


def test_a_prepared_folder_gives_each_clip_its_offset_and_unreliable_clips_none(tmp_path):
    # One clip in two segments whose sound comes 3 frames late: the picture shows at t what the sound says at t + 3.
    late = [_speech(150, seed) for seed in (1, 2)]
    in_step, unrelated = _speech(120, 3), _speech(120, 4)
    _write_shard(tmp_path / "train-00000.tfrecord", [
        _segment("train/late", late[0], np.roll(phone_openness(late[0]), -3) + 0.01),
        _segment("train/late", late[1], np.roll(phone_openness(late[1]), -3) + 0.01, segment=1),
        _segment("train/in_step", in_step, phone_openness(in_step) + 0.01),
        # A mouth that follows other speech: no lag is trustworthy.
        _segment("train/unrelated", unrelated, phone_openness(_speech(120, 5)) + 0.01),
        _segment("train/short", in_step[:40], np.roll(phone_openness(in_step[:40]), 2) + 0.01),
    ])
    assert clip_offsets(str(tmp_path)) == {"train/late": 3, "train/in_step": 0, "train/unrelated": 0}


def test_offsets_need_a_folder_prepared_with_phones(tmp_path):
    with pytest.raises(InputError, match="no shards"):
        clip_offsets(str(tmp_path))
    windows = _speech(60)
    _write_shard(tmp_path / "train-00000.tfrecord", [_segment("a", windows, phone_openness(windows), with_phones=False)])
    with pytest.raises(InputError, match="without phones"):
        clip_offsets(str(tmp_path))
