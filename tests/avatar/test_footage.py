"""A person's footage for `atvg finetune`: its sound, from the video or from the recording beside it."""

import os
import shutil

import numpy as np

from atvg_tf.avatar.footage import split_video
from atvg_tf.cli import main
from atvg_tf.frontend.audio import load_audio
from atvg_tf.frontend.video import probe


def test_a_silent_video_is_split_with_the_recording_beside_it(shared_data, tmp_path):
    video = tmp_path / "her.mp4"
    shutil.copy(os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4"), video)
    shutil.copy(os.path.join(shared_data, "wild", "edtalk_mouth_source.wav"), tmp_path / "her.wav")
    train, heldout = str(tmp_path / "train.mp4"), str(tmp_path / "heldout.mp4")
    counts = split_video(str(video), train, heldout, 0.2)
    assert counts == {"frames": 250, "heldout_start": 200}
    assert probe(train).has_audio and probe(heldout).has_audio
    recording = load_audio(str(tmp_path / "her.wav"))
    held = load_audio(heldout)
    assert abs(len(held) - 50 * 640) <= 2048, len(held)
    # The held-out part's sound is the recording's last two seconds (through the AAC round trip).
    tail = recording[200 * 640:200 * 640 + len(held)]
    assert np.corrcoef(held[: len(tail)], tail)[0, 1] > 0.9


def test_a_silent_video_without_a_recording_is_refused_in_one_line(silent_clip, tmp_path, capsys):
    assert main(["finetune", silent_clip, "--output", str(tmp_path / "model"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "has no sound" in error and "beside the video under its name" in error and "\n" not in error, error
    assert not os.path.exists(tmp_path / "model")
