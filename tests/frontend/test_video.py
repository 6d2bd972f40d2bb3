import os

import numpy as np
import pytest

from atvg_tf.frontend.video import VideoError, probe, read_frames


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
