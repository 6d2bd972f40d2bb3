"""The web page's service without a server: model discovery, limits checked before any model loads, clean-up."""

from __future__ import annotations

import logging
import os
import threading
import time

import cv2
import numpy as np
import pytest
import soundfile

from atvg_tf.app.service import AppLimits, Result, TalkingFaceService, find_models, logged_warnings
from atvg_tf.errors import InputError


def _service(tmp_path, **limits) -> TalkingFaceService:
    service = TalkingFaceService({"default": None}, str(tmp_path / "outputs"), AppLimits(**limits))

    def no_model(model):  # every refusal must come before a model is loaded
        raise AssertionError("a model was loaded for a request that should have been refused")

    service._worker = no_model
    return service


def test_model_folders_under_models_dir_are_offered_by_name(tmp_path):
    for name in ("official", "mine"):
        (tmp_path / name).mkdir()
        for part in ("atnet.keras", "vgnet.keras", "pca.npz", "training.json"):
            (tmp_path / name / part).write_bytes(b"")
    (tmp_path / "notes").mkdir()
    assert find_models(str(tmp_path)) == {"default": None, "mine": str(tmp_path / "mine"), "official": str(tmp_path / "official")}
    assert find_models(None) == {"default": None}
    with pytest.raises(InputError, match="is not a folder"):
        find_models(str(tmp_path / "missing"))


def test_requests_over_the_limits_are_refused_before_any_model_loads(tmp_path):
    photo = str(tmp_path / "big.png")
    cv2.imwrite(photo, np.zeros((300, 400, 3), np.uint8))
    speech = str(tmp_path / "long.wav")
    soundfile.write(speech, np.zeros(16000 * 12, np.float32), 16000)
    service = _service(tmp_path, max_audio_seconds=10, max_image_pixels=100_000)
    with pytest.raises(InputError, match=r"400 x 300 pixels .* above the limit of 0.1 MP; .*--max-image-pixels"):
        service.generate(photo, speech)
    small = str(tmp_path / "small.png")
    cv2.imwrite(small, np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(InputError, match=r"the speech is 12.0 s long; this page takes up to 10 s"):
        service.generate(small, speech)
    with pytest.raises(InputError, match="no photo"):
        service.generate(None, speech)
    with pytest.raises(InputError, match="no speech"):
        service.generate(small, None)
    with pytest.raises(InputError, match="unknown model 'other'"):
        service.generate(small, speech, model="other")
    assert os.listdir(tmp_path / "outputs") == []  # nothing half-written


def test_results_older_than_the_limit_are_deleted(tmp_path):
    service = _service(tmp_path, keep_outputs_seconds=3600)
    outputs = tmp_path / "outputs"
    old, new, foreign = outputs / ("a" * 32), outputs / ("b" * 32), outputs / "examples"
    for folder in (old, new, foreign):
        folder.mkdir()
        (folder / "talking.mp4").write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for folder in (old, foreign):
        os.utime(folder, (two_hours_ago, two_hours_ago))
    service.remove_old_outputs()
    assert sorted(p.name for p in outputs.iterdir()) == sorted([new.name, foreign.name])


def test_a_requests_warnings_reach_its_summary_and_no_other_requests():
    detector_log = logging.getLogger("atvg_tf.frontend.face.landmarks")
    with logged_warnings() as notes:
        detector_log.warning("%d faces found; using face %d (faces are numbered largest first).", 2, 0)
        other_request = threading.Thread(target=lambda: detector_log.warning("another request's photo"))
        other_request.start()
        other_request.join()
        detector_log.info("not a warning")
    detector_log.warning("after the request")
    assert notes == ["2 faces found; using face 0 (faces are numbered largest first)."]
    summary = Result("talking.mp4", "landmarks.npy", 25, 1.0, 0.2, tuple(notes)).summary
    assert summary.splitlines() == ["25 frames (1.00 s of video) in 1.0 s: 25.0 frames/s, first frame after 0.20 s",
                                    "Note: 2 faces found; using face 0 (faces are numbered largest first)."]
