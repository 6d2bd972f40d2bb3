import json
import os

import numpy as np

from atvg_tf.data.voice_statistics import voice_normalization
from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.mfcc_normalization import fit_mfcc_statistics
from tests.helpers import grid_clip


def test_statistics_come_from_the_train_clips_of_the_chosen_speakers(shared_data, tmp_path):
    clips = [
        {"id": "s1/bbaf4p", "speaker": "s1", "split": "train", "source": grid_clip(shared_data, "bbaf4p")},
        {"id": "s1/bbal7s", "speaker": "s1", "split": "train", "source": grid_clip(shared_data, "bbal7s")},
        {"id": "s1/bbas2p", "speaker": "s1", "split": "val", "source": grid_clip(shared_data, "bbas2p")},
        {"id": "wild/retalking_1", "speaker": "wild", "split": "train", "source": os.path.join(shared_data, "wild", "retalking_1.mp4")},
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"clips": clips}))
    config = voice_normalization(str(tmp_path), speakers=["s1"], exclude_clips=["s1/bbal7s"], lead_frames=10)
    expected = fit_mfcc_statistics([mfcc_windows(load_audio(grid_clip(shared_data, "bbaf4p")))])
    np.testing.assert_allclose(config["mean"], expected["mean"])
    np.testing.assert_allclose(config["std"], expected["std"])
    assert config["lead_frames"] == 10 and config["fitted_on"] == {"clips": 1, "speakers": ["s1"]}
    everyone = voice_normalization(str(tmp_path))
    assert everyone["fitted_on"]["clips"] == 3 and not np.allclose(everyone["mean"], config["mean"])
