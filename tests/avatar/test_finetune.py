"""`atvg finetune`: one person's footage -> a model folder, resumable, and refused for two people."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.io.wavfile

from atvg_tf.cli import main
from atvg_tf.frontend.audio import load_audio
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.video import read_frames
from atvg_tf.frontend.video_writer import Mp4Writer
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # prepares, trains and evaluates


def _clip(path, parts, tmp_path):
    """Writes an MP4 with sound from `parts`: [(source video, seconds)] one after the other, or side by side
    when `parts` is a tuple of two lists of equal length."""
    side_by_side = isinstance(parts, tuple)
    sources = list(zip(*parts)) if side_by_side else [[part] for part in parts]
    speech, frames = [], []
    for group in sources:
        seconds = group[0][1]
        count = int(seconds * 25)
        speech.append(load_audio(group[0][0])[: count * 640])
        videos = [[frame for _, frame in zip(range(count), read_frames(video))] for video, _ in group]
        for index in range(count):
            images = [video[index] for video in videos]
            height = min(image.shape[0] for image in images)
            images = [image[:height, : height] for image in images]
            frames.append(np.concatenate(images, axis=1))
    wav = str(tmp_path / (os.path.basename(path) + ".wav"))
    scipy.io.wavfile.write(wav, 16000, np.concatenate(speech).astype(np.float32))
    with Mp4Writer(str(path), wav) as writer:
        for frame in frames:
            writer.write(frame)
    return str(path)


def _wild(shared_data, name):
    return os.path.join(shared_data, "wild_train", name)


def _finetune_command(video, output, *more):
    return [sys.executable, "-m", "atvg_tf.cli", "finetune", video, "--output", output, "--minutes", "1", "--quiet", *more]


def test_finetune_writes_a_model_that_generates_and_resumes_after_an_interrupt(shared_data, tmp_path, capsys):
    video = _clip(tmp_path / "andrew.mp4", [(_wild(shared_data, "styletalk_andrew_clip_1.mp4"), 6.0)], tmp_path)
    output = str(tmp_path / "avatar")
    work = output + ".work"
    run = subprocess.Popen(_finetune_command(video, output, "--person-basis"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ledger = os.path.join(work, "vgnet_seconds.json")
    deadline = time.time() + 400
    while time.time() < deadline and run.poll() is None:  # interrupt VG-net's fine-tune a few batches in
        if os.path.isfile(ledger) and json.load(open(ledger))["seconds"] > 8:
            break
        time.sleep(0.5)
    assert run.poll() is None, run.stdout.read()
    run.send_signal(signal.SIGINT)
    printed = run.communicate(timeout=120)[0]
    assert run.returncode == 130, printed
    assert not os.path.exists(output)  # nothing half-written where the model goes
    journal = json.load(open(os.path.join(work, "finetune.json")))
    assert journal["done"]["atnet"] and "vgnet" not in journal["done"]
    atnet_epochs = len(open(os.path.join(work, "atnet", "history.csv")).read().splitlines()) - 1

    assert main(["finetune", video, "--output", output, "--minutes", "1", "--quiet", "--person-basis"]) == 0
    printed = capsys.readouterr().out
    assert "LMD" in printed and "below the base model's" in printed
    assert not os.path.exists(work)
    info = json.load(open(os.path.join(output, "training.json")))
    assert info["runs"]["atnet"]["epochs_run"] == atnet_epochs  # AT-net was not trained again
    assert isinstance(info["finetune"]["sound_late_frames"][os.path.abspath(video)], int)
    # AT-net learnt codes of a basis fitted on this footage, with as many codes as the packaged one's.
    basis, packaged = LandmarkPCA.load(os.path.join(output, "pca.npz")), LandmarkPCA.load(os.path.join(DEFAULT_MODEL_DIR, "pca.npz"))
    assert basis.num_components == packaged.num_components and basis.fingerprint() != packaged.fingerprint()
    assert info["inference"]["mouth_from_basis"] and TalkingFaceModel.load(output).landmark_space.mouth_from_basis
    # The packaged model's speech head is back, moved into that basis.
    assert TalkingFaceModel.load(output).audio_inputs == TalkingFaceModel.load().audio_inputs
    # A motion level measures the base AT-net on GRID (this AT-net has learnt the person's own voice); the
    # renderer's factor on the motion is the renderer's and stays.
    assert "motion_level" not in info["inference"] and info["inference"]["hybrid_motion_gain"] == TalkingFaceModel.load().hybrid_motion_gain
    seconds = info["finetune"]["training_seconds"]
    assert 0.75 * 12 <= seconds["atnet"] < 12 + 10 and 0.75 * 48 <= seconds["vgnet"] < 48 + 10  # the budget continued
    report = json.load(open(os.path.join(output, "finetune_report.json")))
    assert report["frames"] >= 16 and np.isfinite([report["base"]["lmd"], report["finetuned"]["lmd"]]).all()
    assert os.path.getsize(os.path.join(output, "finetune_contact_sheet.png")) > 50_000
    assert os.path.isfile(os.path.join(output, report["heldout_clips"][0]))

    speech = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    photo = os.path.join(output, "photo.jpg")  # the person, as the held-out part starts
    assert main(["generate", "--image", photo, "--audio", speech, "--model", output, "--output", str(tmp_path / "new.mp4"),
                 "--runtime", "keras", "--quiet"]) == 0


def test_finetune_from_a_converted_official_model_trains_its_networks_in_crop_pixels(shared_data, tmp_path, capsys):
    from atvg_tf.generation.landmark_space import CropLandmarks
    from tests.avatar.test_official_start import official_model

    base = official_model(os.path.join(shared_data, "atvgnet", "basics"))
    base.save(str(tmp_path / "official"))
    video = _clip(tmp_path / "kristi.mp4", [(_wild(shared_data, "styletalk_KristiNoem.mp4"), 5.0)], tmp_path)
    output = str(tmp_path / "avatar")
    assert main(["finetune", video, "--output", output, "--from", str(tmp_path / "official"), "--minutes", "1", "--quiet"]) == 0
    assert "below the base model's" in capsys.readouterr().out
    model = TalkingFaceModel.load(output)
    # This project's convention, the packaged basis, the release's architecture (conv-GRU VG-net).
    assert isinstance(model.landmark_space, CropLandmarks) and not os.path.exists(os.path.join(output, "official.npz"))
    assert model.pca.fingerprint() == LandmarkPCA.load(os.path.join(DEFAULT_MODEL_DIR, "pca.npz")).fingerprint()
    info = json.load(open(os.path.join(output, "training.json")))
    assert info["presets"]["vgnet"]["rnn"] == "conv_gru" and info["presets"]["vgnet"]["rnn_time_major_quirk"]
    assert info["runs"]["vgnet"]["config"]["model_preset"] == "official" and info["runs"]["vgnet"]["config"]["batch_size"] == 1
    assert info["inference"] == {} and info["finetune"]["base"] == str(tmp_path / "official")
    # Trained on from the release's weights: the decoder moved, and not far (a few Adam steps at 2e-4).
    start, tuned = base.vgnet.get_layer("decoder2").get_weights()[0], model.vgnet.get_layer("decoder2").get_weights()[0]
    assert 0 < float(np.abs(tuned - start).max()) < 0.05
    report = json.load(open(os.path.join(output, "finetune_report.json")))
    assert np.isfinite([report["base"]["lmd"], report["finetuned"]["lmd"]]).all()
    speech = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    assert main(["generate", "--image", os.path.join(output, "photo.jpg"), "--audio", speech, "--model", output,
                 "--output", str(tmp_path / "new.mp4"), "--runtime", "keras", "--quiet"]) == 0


def test_footage_of_two_people_is_refused_before_anything_is_written(shared_data, tmp_path, capsys):
    andrew, kristi = _wild(shared_data, "styletalk_andrew_clip_1.mp4"), _wild(shared_data, "styletalk_KristiNoem.mp4")
    together = _clip(tmp_path / "together.mp4", ([(andrew, 4.0)], [(kristi, 4.0)]), tmp_path)
    one_then_other = _clip(tmp_path / "one_then_other.mp4", [(andrew, 5.0), (kristi, 5.0)], tmp_path)
    for video, message in ((together, "shows two or more people at once"), (one_then_other, "shows a different person around")):
        output = tmp_path / f"model_{os.path.basename(video)}"
        assert main(["finetune", video, "--output", str(output), "--quiet"]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and "\n" not in error, error
        assert not os.path.exists(output) and not os.path.exists(str(output) + ".work")
    # Two videos of two people are refused the same way.
    assert main(["finetune", andrew, kristi, "--output", str(tmp_path / "two"), "--quiet"]) == 2
    assert "shows a different person" in capsys.readouterr().err
    assert main(["finetune", andrew, "--output", str(tmp_path / "none"), "--minutes", "0"]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err
