import os

import av
import cv2
import numpy as np
import pytest

from atvg_tf.frontend.video import VideoError, probe, read_frames
from atvg_tf.frontend.video_writer import Mp4Writer, even_box


@pytest.mark.parametrize(
    "name, fps", [("astorfi_sample_video.mp4", 29.97), ("retalking_1.mp4", 22.13), ("pcavs_00098.mp4", 25.0)]
)
def test_clips_are_resampled_to_25_fps(shared_data, name, fps):
    path = os.path.join(shared_data, "wild", name)
    info = probe(path)
    assert info.fps == pytest.approx(fps, abs=0.01) and info.has_audio
    frames = list(read_frames(path))
    assert abs(len(frames) - info.duration * 25) <= 1
    assert frames[0].dtype == np.uint8 and frames[0].shape == (info.height, info.width, 3)
    # Consecutive output frames are real, distinct frames most of the time (not one frame repeated).
    changed = np.mean([np.abs(a.astype(int) - b).mean() > 0 for a, b in zip(frames, frames[1:])])
    assert changed > (0.7 if fps < 25 else 0.95)


def test_stream_start_times_are_reported(shared_data):
    info = probe(os.path.join(shared_data, "wild", "retalking_1.mp4"))
    assert info.video_start > info.audio_start  # its first frame comes ~33 ms after the audio starts


def test_unreadable_clips_raise_video_errors(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        probe(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(3000))
    with pytest.raises(VideoError):
        probe(broken)
    with pytest.raises(VideoError):
        list(read_frames(broken))


def test_patches_encode_what_whole_frames_encode(tmp_path):
    """`write_patch` (only the changed box converted) gives the video `write` of whole frames gives."""
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (151, 203, 3), dtype=np.uint8), (0, 0), 2)  # odd: encoded 202 x 150
    x0, y0, x1, y1 = even_box((61, 47, 141, 150), *photo.shape[:2])
    assert (x0, y0, x1, y1) == (60, 46, 142, 150)
    frames = [photo.copy() for _ in range(6)]
    for index, frame in enumerate(frames[1:]):
        frame[y0:y1, x0:x1] = np.roll(photo[y0:y1, x0:x1], 3 * (index + 1), axis=1)
    with Mp4Writer(str(tmp_path / "whole.mp4"), None) as writer:
        for frame in frames:
            writer.write(frame)
    with Mp4Writer(str(tmp_path / "patched.mp4"), None) as writer:
        with pytest.raises(ValueError, match="whole frame"):
            writer.write_patch(frames[1][y0:y1, x0:x1], x0, y0)
        writer.write(frames[0])
        for frame in frames[1:]:
            writer.write_patch(frame[y0:y1, x0:x1].copy(), x0, y0)
        with pytest.raises(ValueError, match="not an even box"):
            writer.write_patch(frames[1][y0:y1, x0:x1], x0 + 1, y0)
    def decode(name):
        return np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(tmp_path / name)).decode(video=0)])

    whole, patched = decode("whole.mp4"), decode("patched.mp4")
    assert whole.shape == (6, 150, 202, 3)
    np.testing.assert_array_equal(patched, whole)
    assert np.abs(whole[1].astype(int) - whole[0]).max() > 20  # the frames did change
