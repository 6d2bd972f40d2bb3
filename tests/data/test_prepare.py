import glob
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from atvg_tf.data import records
from atvg_tf.data.clip_preparer import read_grid_alignment
from atvg_tf.data.discovery import assign_split, discover_clips
from atvg_tf.data.prepare import PrepareConfig, PrepareError, prepare
from atvg_tf.data.segments import fill_gaps, find_segments
from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.face.template import TEMPLATE_68
from atvg_tf.frontend.phones import phone_windows
from tests.helpers import HELD_OUT_GRID_CLIPS


def _manifest(prepared_dir):
    with open(os.path.join(prepared_dir, "manifest.json")) as handle:
        return json.load(handle)


def _segments(prepared_dir):
    return records.read_segments(sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord"))))


@pytest.mark.slow
def test_manifest_counts_skips_and_settings(prepared_dir):
    manifest = _manifest(prepared_dir)
    counts = manifest["counts"]
    assert counts["clips_found"] == 7
    assert counts["clips_prepared"] == 5  # four GRID clips and the LRW-format clip
    reasons = {entry["id"]: entry["reason"] for entry in manifest["skipped"]}
    assert set(reasons) == {"s1/broken", "wild/edtalk_mouth_source"}
    assert "no audio stream" in reasons["wild/edtalk_mouth_source"]
    assert reasons["s1/broken"]
    settings = manifest["settings"]
    assert settings["landmarks"]["backend"] == "mediapipe" and len(settings["landmarks"]["model_sha256"]) == 64
    assert settings["pca"]["components"] == 6
    clips = {c["id"]: c for c in manifest["clips"]}
    assert {f"s1/{n}" for n in HELD_OUT_GRID_CLIPS} | {"wild/astorfi_lrw_sample1"} == set(clips)
    assert all(len(c["sha256"]) == 64 and c["split"] in ("train", "val") for c in clips.values())
    assert clips["s1/bbaf4p"]["frames"] == 75 and clips["s1/bbaf4p"]["speaker"] == "s1"
    assert sum(s["frames"] for s in manifest["shards"]) == sum(c["frames"] for c in clips.values())
    assert sum(counts["frames"].values()) == sum(c["frames"] for c in clips.values())
    # Shard files hold exactly what the manifest lists.
    for shard in manifest["shards"]:
        assert shard["file"].startswith(shard["split"] + "-")
        assert len(records.read_segments([os.path.join(prepared_dir, shard["file"])])) == shard["records"]


@pytest.mark.slow
def test_shards_hold_aligned_frames_landmarks_codes_windows_and_words(prepared_dir, shared_data):
    pca = LandmarkPCA.load(os.path.join(prepared_dir, "pca.npz"))
    template = TEMPLATE_68
    by_id = {s["clip_id"].decode(): s for s in _segments(prepared_dir)}
    for clip_id, segment in by_id.items():
        n = segment["num_frames"]
        assert segment["frames"].shape == (n,) and segment["landmarks"].shape == (n, 68, 2)
        first = cv2.imdecode(np.frombuffer(segment["frames"][0], np.uint8), cv2.IMREAD_COLOR)
        assert first.shape == (128, 128, 3)
        # Aligned: the eyes sit on the template in every frame.
        for eye in (slice(36, 42), slice(42, 48)):
            offset = np.linalg.norm(segment["landmarks"][:, eye].mean(1) - template[eye].mean(0), axis=1)
            assert offset.max() < 6.0, clip_id
        np.testing.assert_allclose(segment["pca_codes"], pca.encode(segment["landmarks"]), atol=1e-4)
        assert segment["transforms"].shape == (n, 2, 3)
    grid = by_id["s1/bbaf4p"]
    source = os.path.join(shared_data, "grid", "s1", "bbaf4p")
    expected = mfcc_windows(load_audio(source + ".mpg"), 75)
    frames = slice(grid["start_frame"], grid["start_frame"] + grid["num_frames"])
    np.testing.assert_allclose(grid["mfcc_windows"], expected[frames], atol=1e-4)
    # Phone windows of the recorded audio and of one augmented copy (fixture: audio_variants=1).
    assert grid["audio_variants"] == 2 and grid["mfcc_variants"].shape == (2, grid["num_frames"], 28, 12)
    np.testing.assert_array_equal(grid["phone_windows"][0], phone_windows(load_audio(source + ".mpg"), 75)[frames])
    assert np.abs(grid["mfcc_variants"][1] - grid["mfcc_variants"][0]).mean() > 0.1  # the copy sounds different
    assert _manifest(prepared_dir)["settings"]["audio_features"]["features"] == ["mfcc", "phones"]
    words = read_grid_alignment(source + ".align")
    assert [w.decode() for w in grid["words"]] == [w for w, _, _ in words] == ["bin", "blue", "at", "f", "four", "please"]
    np.testing.assert_allclose(grid["word_start"], [s - grid["start_frame"] for _, s, _ in words])
    assert by_id["wild/astorfi_lrw_sample1"]["words"].size == 0


@pytest.mark.slow
def test_rerun_is_a_no_op(prepared_inputs, prepared_dir):
    files = sorted(glob.glob(os.path.join(prepared_dir, "*")))
    before = {path: (os.path.getmtime(path), os.path.getsize(path)) for path in files}
    config = PrepareConfig(workers=2, val_fraction=0.3, clips_per_shard=2, audio_variants=1)  # as the fixture
    manifest = prepare(prepared_inputs, prepared_dir, config, progress=False)
    assert manifest == _manifest(prepared_dir)
    assert {path: (os.path.getmtime(path), os.path.getsize(path)) for path in sorted(glob.glob(os.path.join(prepared_dir, "*")))} == before


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_finished_clips(prepared_inputs, tmp_path, monkeypatch):
    from atvg_tf.data import prepare as prepare_module

    output = str(tmp_path / "out")
    config = PrepareConfig(workers=1, val_fraction=0.0, clips_per_shard=3)
    real_results = prepare_module._results

    def interrupted(jobs, config):
        for count, result in enumerate(real_results(jobs, config)):
            if count == 2:
                raise KeyboardInterrupt  # Ctrl-C after two finished clips, inside an open shard
            yield result

    monkeypatch.setattr(prepare_module, "_results", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare([prepared_inputs[0]], output, config, progress=False)
    partial = _manifest(output)  # written on the way out, listing the shard closed by Ctrl-C
    assert partial["counts"]["clips_prepared"] + partial["counts"]["clips_skipped"] == 2
    assert len(_segments(output)) == partial["counts"]["clips_prepared"]
    monkeypatch.setattr(prepare_module, "_results", real_results)
    # A crash can also leave half-written files behind (named as today's and earlier versions
    # name them): they are discarded; files that are not atvg's own are left alone.
    for name in (".atvg-k3j_9x2a-train-00007.tfrecord", ".atvg-0q1w2e3r-manifest.json", "train-00008.tfrecord.tmp", "notes.tmp"):
        with open(os.path.join(output, name), "wb") as handle:
            handle.write(b"partial")
    final = prepare([prepared_inputs[0]], output, config, progress=False)
    assert final["counts"]["clips_prepared"] == 4 and final["counts"]["clips_skipped"] == 1
    events = [json.loads(line) for line in open(os.path.join(output, "progress.jsonl"))]
    prepared_ids = [clip["id"] for event in events if event["type"] == "shard" for clip in event["clips"]]
    assert sorted(prepared_ids) == sorted(f"s1/{n}" for n in HELD_OUT_GRID_CLIPS)  # each clip exactly once
    assert len(_segments(output)) == 4
    assert sorted(glob.glob(os.path.join(output, ".atvg-*")) + glob.glob(os.path.join(output, "*.tmp"))) == [os.path.join(output, "notes.tmp")]


def test_a_bad_landmark_model_file_is_one_clear_error(prepared_inputs, tmp_path):
    junk = tmp_path / "junk.task"
    junk.write_bytes(os.urandom(1000))
    for backend in ("mediapipe", "dlib"):
        config = PrepareConfig(backend=backend, face_model=str(junk), workers=1)
        with pytest.raises(PrepareError, match="landmark model"):
            prepare([prepared_inputs[0]], str(tmp_path / backend), config, progress=False)
        assert not glob.glob(str(tmp_path / backend / "*.tfrecord"))


def test_discovery_takes_each_file_once_and_finds_speakers_higher_up(shared_data, tmp_path):
    folder = os.path.join(shared_data, "grid", "s1")
    clips = discover_clips([folder, os.path.join(folder, "bbaf4p.mpg")])
    assert len(clips) == 423
    # VoxCeleb layout: speaker / video / utterance.
    sources = iter(HELD_OUT_GRID_CLIPS)
    for speaker in ("id001", "id002"):
        for video in ("yt_a", "yt_b"):
            (tmp_path / "vox" / speaker / video).mkdir(parents=True)
            os.symlink(os.path.join(folder, next(sources) + ".mpg"), tmp_path / "vox" / speaker / video / "00001.mp4")
    found = discover_clips([str(tmp_path / "vox")], speaker_level=1)
    assert sorted({speaker for _, _, speaker in found}) == ["id001", "id002"]
    assert found[0][1] == "vox/id001/yt_a/00001"
    with pytest.raises(PrepareError, match="would both get the clip id"):
        (tmp_path / "x").mkdir()
        os.symlink(os.path.join(folder, "bbal7s.mpg"), tmp_path / "x" / "a.mpg")
        os.symlink(os.path.join(folder, "bbas2p.mpg"), tmp_path / "x" / "a.mp4")
        discover_clips([str(tmp_path / "x")])


@pytest.mark.slow
def test_other_settings_on_the_same_output_are_refused(prepared_inputs, prepared_dir):
    with pytest.raises(PrepareError, match="other settings.*landmarks.backend"):
        prepare(prepared_inputs, prepared_dir, PrepareConfig(backend="dlib", workers=1, val_fraction=0.3, audio_variants=1), progress=False)


@pytest.mark.slow
def test_a_folder_atvg_did_not_make_is_refused_untouched(prepared_inputs, tmp_path):
    """It overwrote manifest.json and pca.npz, appended to a progress.jsonl and deleted *.tfrecord.tmp
    files; a progress.jsonl of another format crashed after pca.npz was written (issue 11 item 1)."""
    theirs = {"manifest.json": '{"mine": true}', "pca.npz": "my basis", "progress.jsonl": '{"step": 1}\n[2]\n',
              "train-00000.tfrecord.tmp": "half a download"}
    output = tmp_path / "theirs"
    output.mkdir()
    for name, text in theirs.items():
        (output / name).write_text(text)
    with pytest.raises(PrepareError, match=r"holds files atvg did not write \(manifest.json, pca.npz, progress.jsonl\); give a new or empty folder"):
        prepare(prepared_inputs, str(output), PrepareConfig(workers=1), progress=False)
    assert {path.name: path.read_text() for path in output.iterdir()} == theirs


def test_a_skipped_clip_is_tried_again_once_its_file_changed(shared_data, tmp_path):
    """Done-ness was keyed by clip id only: a clip skipped once stayed skipped after the file was
    fixed (issue 11 item 16)."""
    inputs = tmp_path / "s9"
    inputs.mkdir()
    clip = inputs / "clip.mp4"
    shutil.copy(os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4"), clip)  # no sound: skipped
    config = PrepareConfig(workers=1, audio_variants=0)
    first = prepare([str(inputs)], str(tmp_path / "out"), config, progress=False)
    assert first["counts"]["clips_skipped"] == 1 and first["counts"]["clips_prepared"] == 0
    assert prepare([str(inputs)], str(tmp_path / "out"), config, progress=False) == first  # unchanged: not retried
    shutil.copy(os.path.join(shared_data, "grid", "s1", "bbaf4p.mpg"), clip)  # fixed: a clip with sound
    fixed = prepare([str(inputs)], str(tmp_path / "out"), config, progress=False)
    assert fixed["counts"]["clips_prepared"] == 1 and fixed["counts"]["clips_skipped"] == 0 and fixed["skipped"] == []
    # A truncated clip is reported as one, not as a face problem.
    whole = open(os.path.join(shared_data, "grid", "s1", "bbal7s.mpg"), "rb").read()
    (inputs / "cut.mpg").write_bytes(whole[:30000])
    cut = prepare([str(inputs)], str(tmp_path / "out"), config, progress=False)
    assert [entry["reason"] for entry in cut["skipped"]] == [
        "only 6 frames (0.24 s) decode; clips need at least 16: the file is too short or truncated"]


def test_a_clip_without_sound_is_heard_from_the_recording_beside_it(shared_data, tmp_path):
    """EDTalk keeps its clip's sound in a .wav of the same name. Without one the clip is skipped with
    a reason naming the file it looked for; with one a rerun prepares it, hearing that recording."""
    from atvg_tf.frontend.audio import load_audio, mfcc_windows

    inputs = tmp_path / "wild"
    inputs.mkdir()
    shutil.copy(os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4"), inputs / "clip.mp4")
    config = PrepareConfig(workers=1, audio_variants=0, phones=False)
    first = prepare([str(inputs)], str(tmp_path / "out"), config, progress=False)
    assert [entry["reason"] for entry in first["skipped"]] == [
        "clip.mp4 has no audio stream; put its recording beside it as clip.wav or clip.flac"]
    sound = os.path.join(shared_data, "wild", "edtalk_mouth_source.wav")
    shutil.copy(sound, inputs / "clip.wav")
    second = prepare([str(inputs)], str(tmp_path / "out"), config, progress=False)
    assert second["counts"]["clips_prepared"] == 1 and second["skipped"] == []
    (entry,) = second["clips"]
    assert entry["sound"] == str(inputs / "clip.wav") and entry["frames_total"] == 250
    heard = mfcc_windows(load_audio(sound), 250)
    for segment in _segments(str(tmp_path / "out")):
        start = int(segment["start_frame"])
        np.testing.assert_allclose(segment["mfcc_windows"], heard[start:start + len(segment["mfcc_windows"])], atol=1e-4)


def test_a_corrupt_video_with_a_recording_beside_it_is_skipped_on_every_run(shared_data, tmp_path):
    inputs = tmp_path / "wild"
    inputs.mkdir()
    (inputs / "bad.mp4").write_bytes(b"\x00" * 5000)
    shutil.copy(os.path.join(shared_data, "wild", "edtalk_mouth_source.wav"), inputs / "bad.wav")
    config = PrepareConfig(workers=1, audio_variants=0, phones=False)
    for _ in range(2):  # the rerun probes the file to fingerprint it, and must not stop there
        manifest = prepare([str(inputs)], str(tmp_path / "out"), config, progress=False)
        assert manifest["counts"]["clips_skipped"] == 1 and "cannot read" in manifest["skipped"][0]["reason"]


def test_dlib_backend_prepares_a_clip(prepared_inputs, tmp_path):
    manifest = prepare(
        [os.path.join(prepared_inputs[0], "bbal7s.mpg")], str(tmp_path / "out"), PrepareConfig(backend="dlib", workers=1), progress=False
    )
    assert manifest["counts"]["clips_prepared"] == 1
    assert manifest["settings"]["landmarks"]["model_file"] == "shape_predictor_68_face_landmarks.dat"


def test_phone_posteriors_are_written_and_read_by_the_pipeline(prepared_inputs, prepared_dir, tmp_path):
    """`phone_posteriors`: each variant's posterior windows as uint8, read back within 1/255; the
    pipeline carries them for a phone-head AT-net; shards without them read as [0, N, 28, 40] and are refused."""
    from atvg_tf.data.clip_preparer import clip_waveform
    from atvg_tf.data.pipeline import PipelineConfig, make_dataset
    from atvg_tf.frontend.phones import posterior_windows

    clip = os.path.join(prepared_inputs[0], "bbal7s.mpg")
    output = str(tmp_path / "out")
    manifest = prepare([clip], output, PrepareConfig(workers=1, val_fraction=0.0, phone_posteriors=True, audio_variants=1), progress=False)
    assert manifest["settings"]["audio_features"]["features"] == ["mfcc", "phones", "phone_posteriors"]
    (segment,) = records.read_segments(glob.glob(os.path.join(output, "*.tfrecord")))
    n = len(segment["pca_codes"])
    assert segment["phone_posteriors"].shape == (2, n, 28, 40)
    expected = posterior_windows(clip_waveform(clip, 16000), manifest["clips"][0]["frames_total"])[segment["start_frame"]:][:n]
    np.testing.assert_allclose(segment["phone_posteriors"][0], expected, atol=0.5 / 255 + 1e-6)
    assert not np.array_equal(segment["phone_posteriors"][1], segment["phone_posteriors"][0])  # the augmented copy's own
    config = PipelineConfig(batch_size=2, sequence_length=8, shuffle_buffer=0, audio_features=("mfcc", "phone_posteriors"))
    batch = next(iter(make_dataset(output, None, config)))
    assert batch["phone_posteriors"].shape == (2, 8, 28, 40)
    np.testing.assert_allclose(np.sum(batch["phone_posteriors"], axis=-1), 1.0, atol=40 * 0.5 / 255)
    (old,) = records.read_segments(sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord")))[:1])[:1]
    assert old["phone_posteriors"].shape == (0, len(old["pca_codes"]), 28, 40)
    with pytest.raises(Exception, match="phone_posteriors"):
        make_dataset(prepared_dir, None, config)
    # The phone head's closed-form fit reads the same windows from the clip's sound.
    from atvg_tf.training.phone_head import prepared_clips, prepared_examples

    (whole,) = prepared_clips(output, lambda entry: True, workers=1)
    np.testing.assert_array_equal(whole.frames, segment["start_frame"] + np.arange(n))
    np.testing.assert_array_equal(whole.codes, segment["pca_codes"])
    np.testing.assert_allclose(whole.heard(0), segment["phone_posteriors"][0], atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(whole.heard(2)[2:], whole.heard(0)[:-2])
    ((windows, codes, weight),) = prepared_examples(output, lambda entry: 3.0, {manifest["clips"][0]["id"]: 2}, workers=1)
    np.testing.assert_array_equal(windows, whole.heard(2))
    assert weight == 3.0 and not list(prepared_examples(output, lambda entry: 0.0, workers=1))
    # `atvg train atnet` on them: a phone-head AT-net grafted from the packaged MFCC one.
    import keras

    from atvg_tf.generation.model import DEFAULT_MODEL_DIR
    from atvg_tf.training.train import TrainConfig, train

    run = str(tmp_path / "run")
    history = train("atnet", output, run, TrainConfig(epochs=1, steps_per_epoch=2, validation_steps=0, batch_size=2, sequence_length=8,
                                                      audio_features="mfcc+phone_head", init_from=DEFAULT_MODEL_DIR), verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert set(keras.saving.load_model(os.path.join(run, "last.keras")).input) == {"mfcc_windows", "phone_posteriors", "identity_pca_codes"}


def test_speech_embeddings_are_written_and_read_by_the_pipeline(prepared_inputs, prepared_dir, tmp_path, monkeypatch):
    """`speech_embeddings`: each variant's embedding windows as float16, read back within float16
    rounding; the pipeline carries them; shards without them read as [0, N, 11, 96] and are refused;
    `atvg train atnet --audio-features mfcc+embedding_head` trains on them; without openwakeword,
    prepare stops with its one-line error before writing anything."""
    import importlib.util

    from atvg_tf.data.clip_preparer import clip_waveform
    from atvg_tf.data.pipeline import PipelineConfig, make_dataset
    from atvg_tf.errors import AtvgError
    from atvg_tf.frontend import speech_embedding

    assert records.EMBEDDING_WINDOW_SHAPE == (speech_embedding.WINDOW_FRAMES, speech_embedding.EMBEDDING_SIZE)
    clip = os.path.join(prepared_inputs[0], "bbal7s.mpg")
    output = str(tmp_path / "out")
    config = PrepareConfig(workers=1, val_fraction=0.0, phones=False, speech_embeddings=True, audio_variants=1)
    manifest = prepare([clip], output, config, progress=False)
    assert manifest["settings"]["audio_features"]["features"] == ["mfcc", "speech_embeddings"]
    (segment,) = records.read_segments(glob.glob(os.path.join(output, "*.tfrecord")))
    n = len(segment["pca_codes"])
    assert segment["speech_embeddings"].shape == (2, n, 11, 96)
    expected = speech_embedding.embedding_windows(clip_waveform(clip, 16000), manifest["clips"][0]["frames_total"])
    expected = expected[segment["start_frame"]:][:n]
    np.testing.assert_allclose(segment["speech_embeddings"][0], expected, rtol=1e-3, atol=1e-4)
    assert np.abs(segment["speech_embeddings"][1] - segment["speech_embeddings"][0]).max() > 0.05  # the augmented copy's own
    pipeline = PipelineConfig(batch_size=2, sequence_length=8, shuffle_buffer=0, audio_features=("mfcc", "speech_embeddings"))
    batch = next(iter(make_dataset(output, None, pipeline)))
    assert batch["speech_embeddings"].shape == (2, 8, 11, 96)
    rows = [np.flatnonzero(np.all(np.isclose(segment["speech_embeddings"][0], window, atol=1e-6), axis=(1, 2)))
            for window in batch["speech_embeddings"].numpy()[0]]
    assert all(len(found) for found in rows) and np.all(np.diff([found[0] for found in rows]) == 1)  # consecutive frames
    (old,) = records.read_segments(sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord")))[:1])[:1]
    assert old["speech_embeddings"].shape == (0, len(old["pca_codes"]), 11, 96)
    with pytest.raises(Exception, match="speech_embeddings"):
        make_dataset(prepared_dir, None, pipeline)
    import keras

    from atvg_tf.generation.model import DEFAULT_MODEL_DIR
    from atvg_tf.training.train import TrainConfig, train

    run = str(tmp_path / "run")
    history = train("atnet", output, run, TrainConfig(epochs=1, steps_per_epoch=2, validation_steps=0, batch_size=2, sequence_length=8,
                                                      audio_features="mfcc+embedding_head", init_from=DEFAULT_MODEL_DIR), verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert set(keras.saving.load_model(os.path.join(run, "last.keras")).input) == {"mfcc_windows", "speech_embeddings", "identity_pca_codes"}
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "openwakeword" else find_spec(name, *args))
    with pytest.raises(AtvgError, match="pip install openwakeword==0.5.1"):
        prepare([clip], str(tmp_path / "without"), config, progress=False)
    assert not os.path.exists(tmp_path / "without") or not os.listdir(tmp_path / "without")


def test_split_by_speaker_keeps_speakers_together(tmp_path, shared_data):
    config = PrepareConfig(split_by="speaker", val_fraction=0.5)
    clips = discover_clips([os.path.join(shared_data, "grid", "s1")])
    assert len({assign_split(clip_id, speaker, config) for _, clip_id, speaker in clips}) == 1
    assert clips[0][1] == "s1/bbaf4p" and clips[0][2] == "s1"


def test_gap_rules():
    hit, miss = True, False
    found = [miss] * 2 + [hit] * 20 + [miss] * 3 + [hit] * 20 + [miss] * 9 + [hit] * 10 + [miss] * 9 + [hit] * 30
    kept, dropped = find_segments(found, max_gap=5, min_length=16)
    # Leading misses are trimmed, the 3-frame gap is bridged, 9-frame gaps cut, short runs dropped.
    assert kept == [(2, 45), (73, 103)]
    assert dropped == [(54, 64)]
    a, b = np.zeros((68, 2)), np.full((68, 2), 4.0)
    filled, flags = fill_gaps([a, None, None, None, b])
    np.testing.assert_allclose(filled[:, 0, 0], [0, 1, 2, 3, 4])
    assert flags.tolist() == [0, 1, 1, 1, 0]


@pytest.mark.slow
def test_cli_errors_are_one_line_with_nonzero_exit(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "atvg_tf.cli", "prepare", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"atvg prepare: error: input not found: {tmp_path / 'nowhere'}"
    assert not os.path.exists(tmp_path / "out")
    result = subprocess.run([sys.executable, "-m", "atvg_tf.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "prepare" in result.stdout and "fit-pca" in result.stdout


def _children(pid: int) -> dict[int, str]:
    """Live (not zombie) processes whose parent is `pid`: {pid: command line}."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(entry)] = open(f"/proc/{entry}/cmdline").read().replace("\0", " ")
        except (OSError, ValueError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal and /proc are Linux's")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_killing_prepare_leaves_no_worker_behind(prepared_inputs, tmp_path, signal_name):
    """SIGKILL (or an out-of-memory kill) or SIGTERM of `atvg prepare` left its spawn workers (~800 MB
    each) and the resource tracker running forever (issue 11 item 2): workers now die with their
    parent; SIGTERM stops it as Ctrl-C does, with one line."""
    import signal
    import time

    run = subprocess.Popen([sys.executable, "-m", "atvg_tf.cli", "prepare", prepared_inputs[0], "--output", str(tmp_path / "out"),
                            "--workers", "2", "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len([c for c in _children(run.pid).values() if "spawn_main" in c]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    descendants = _children(run.pid)
    assert len([c for c in descendants.values() if "spawn_main" in c]) == 2, (descendants, run.poll())
    run.send_signal(getattr(signal, signal_name))
    _, stderr = run.communicate(timeout=120)
    if signal_name == "SIGTERM":
        assert run.returncode == 143, stderr[-2000:]
        assert stderr.strip().splitlines()[-1] == "atvg prepare: stopped by SIGTERM; finished work is kept, rerun the command to continue."
    deadline = time.time() + 30
    while any(_alive(pid) for pid in descendants) and time.time() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in descendants if _alive(pid)], descendants


@pytest.mark.slow
def test_prepare_writes_its_records_without_tensorflow(shared_data, tmp_path):
    """Neither the command nor a worker's preparer imports TensorFlow (seconds of each one's start-up)."""
    clip = os.path.join(shared_data, "grid", "s1", HELD_OUT_GRID_CLIPS[0] + ".mpg")
    output = str(tmp_path / "out")
    code = (
        "import sys\n"
        "from atvg_tf.cli import main\n"
        "from atvg_tf.data._worker import build_preparer\n"
        "from atvg_tf.data.prepare_config import ClipJob, PrepareConfig\n"
        f"assert main(['prepare', {clip!r}, '--output', {output!r}, '--workers', '1', '--quiet']) == 0\n"
        f"assert build_preparer(PrepareConfig().to_fields())(ClipJob({clip!r}, 'c', 's', 'train'))['entry']['status'] == 'ok'\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'tensorflow'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
    segments = _segments(output)  # TensorFlow reads what was written without it
    assert len(segments) == 1 and segments[0]["frames"].shape[0] == segments[0]["landmarks"].shape[0] > 50


def test_a_dead_worker_is_named_in_the_error(monkeypatch):
    """A worker that dies (native crash, out of memory) fails its clip's future with BrokenProcessPool;
    the error names the clips that were running, the one that killed it included."""
    import concurrent.futures

    from atvg_tf.data import prepare as prepare_module
    from atvg_tf.data.prepare_config import ClipJob

    class DeadPool:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, *args):
            future = concurrent.futures.Future()
            future.set_exception(concurrent.futures.process.BrokenProcessPool("a child process terminated abruptly"))
            return future

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(prepare_module.concurrent.futures, "ProcessPoolExecutor", DeadPool)
    jobs = [ClipJob(f"/clips/{name}.mp4", name, "s1", "train") for name in ("bbaf2n", "bbaf3s")]
    with pytest.raises(PrepareError, match=r"while preparing one of: (bbaf2n, bbaf3s|bbaf3s, bbaf2n);"):
        list(prepare_module._results(jobs, PrepareConfig(workers=4)))
