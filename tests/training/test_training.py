import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from atvg_tf.data.pipeline import PipelineConfig, make_dataset
from atvg_tf.models.config import DiscriminatorConfig, VGNetConfig
from atvg_tf.models.discriminator import build_discriminator
from atvg_tf.models.vgnet import build_vgnet
from atvg_tf.training.gan import VGNetGAN
from atvg_tf.training.train import TrainConfig, build_trainable, train
from atvg_tf.utils.interrupts import install_stop_handlers, raise_if_stop_requested

pytestmark = pytest.mark.slow  # every test trains on `prepared_dir` (`atvg prepare`)

TINY = TrainConfig(epochs=2, steps_per_epoch=3, validation_steps=1, batch_size=2, sequence_length=8, backup_every=2)


@pytest.fixture(scope="module")
def batch(prepared_dir):
    config = PipelineConfig(batch_size=2, sequence_length=8, shuffle_buffer=0, deterministic=True)
    return next(iter(make_dataset(prepared_dir, None, config)))


def _snapshot(model):
    return [np.array(v) for v in model.weights]


def _changed(before, model):
    return [not np.array_equal(a, np.array(b)) for a, b in zip(before, model.weights)]


def _gan(**options):
    gan = VGNetGAN(build_vgnet(VGNetConfig.preset("small")), build_discriminator(DiscriminatorConfig.preset("small")), **options)
    gan.compile()
    gan.build()
    return gan


def test_generator_step_does_not_touch_the_discriminator(batch):
    gan = _gan()
    discriminator, generator = _snapshot(gan.discriminator), _snapshot(gan.generator)
    terms = gan.generator_step(batch)
    assert not any(_changed(discriminator, gan.discriminator))  # weights and BatchNorm statistics
    assert any(_changed(generator, gan.generator))
    assert set(terms) == {"g_loss", "g_pixel", "g_adversarial", "g_landmarks"}
    generator_trainable = [np.array(v) for v in gan.generator.trainable_weights]
    discriminator = _snapshot(gan.discriminator)
    gan.discriminator_step(batch)
    assert any(_changed(discriminator, gan.discriminator))
    after = [np.array(v) for v in gan.generator.trainable_weights]
    assert all(np.array_equal(a, b) for a, b in zip(generator_trainable, after))


def test_pixel_only_training_never_runs_the_discriminator(batch, tmp_path):
    gan = _gan(discriminator_weight=0.0)
    discriminator = _snapshot(gan.discriminator)
    logs = [gan.train_step(batch) for _ in range(6)]
    assert set(logs[0]) == {"g_loss", "g_pixel"}
    assert float(logs[-1]["g_pixel"]) < float(logs[0]["g_pixel"])
    assert not any(_changed(discriminator, gan.discriminator)) and int(gan.d_optimizer.iterations) == 0
    gan.save(tmp_path / "gan.keras")
    assert keras.saving.load_model(tmp_path / "gan.keras").discriminator_weight == 0.0


def test_a_few_steps_reduce_the_losses(batch):
    atnet = build_trainable("atnet", TINY)
    inputs = {"mfcc_windows": batch["mfcc_windows"], "identity_pca_codes": batch["identity_pca_codes"]}
    data = tf.data.Dataset.from_tensors((inputs, {"pca_codes": batch["pca_codes"]})).repeat()
    history = atnet.fit(data, epochs=4, steps_per_epoch=5, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    gan = _gan()
    pixel = [float(gan.train_step(batch)["g_pixel"]) for _ in range(8)]
    assert np.mean(pixel[-3:]) < 0.8 * pixel[0]


def test_training_run_writes_checkpoints_and_resumes_after_a_crash(prepared_dir, tmp_path):
    output = str(tmp_path / "run")

    class Crash(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            Crash.seen += 1
            if Crash.seen == 5:  # epoch 2, second batch: after the backup at its first batch
                raise RuntimeError("simulated kill")

    config = TrainConfig(epochs=3, steps_per_epoch=3, validation_steps=1, batch_size=2, sequence_length=8, backup_every=1)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train("atnet", prepared_dir, output, config, verbose=0, extra_callbacks=[Crash()])
    assert os.path.isdir(os.path.join(output, "backup"))
    history = train("atnet", prepared_dir, output, config, verbose=0)
    assert len(history.history["loss"]) == 2  # epochs 2 and 3 only: epoch 1 was not trained again
    for name in ("best.keras", "last.keras", "train_config.json"):
        assert os.path.exists(os.path.join(output, name))
    assert os.listdir(os.path.join(output, "logs"))
    assert json.load(open(os.path.join(output, "train_config.json")))["network"] == "atnet"
    model = keras.saving.load_model(os.path.join(output, "last.keras"))
    assert set(model.input) == {"mfcc_windows", "identity_pca_codes"}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost interrupt, as Python reports it
def test_a_ctrl_c_lost_in_garbage_collection_still_stops_training(prepared_dir, tmp_path):
    class LostInterrupt:
        def __del__(self):  # the handler runs inside __del__: Python prints "Exception ignored" and goes on
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # interrupted at once: KeyboardInterrupt is raised here

    class InterruptInsideDel(keras.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            InterruptInsideDel.batches += 1
            if InterruptInsideDel.batches == 2:
                LostInterrupt()

    config = TrainConfig(epochs=1, steps_per_epoch=6, validation_steps=0, batch_size=2, sequence_length=8)
    restore = install_stop_handlers()
    try:
        with pytest.raises(KeyboardInterrupt):
            train("atnet", prepared_dir, str(tmp_path / "run"), config, verbose=0, extra_callbacks=[InterruptInsideDel()])
    finally:
        restore()
    # Lost at the second batch's end (the counting callback ran no more), raised again at the third's,
    # long before the epoch's end would have written last.keras.
    assert InterruptInsideDel.batches == 2 and not os.path.exists(tmp_path / "run" / "last.keras")
    raise_if_stop_requested()  # forgotten once the handlers are restored: later runs in this process go on


def test_phone_atnet_trains_on_augmented_audio_and_round_trips(prepared_dir, tmp_path):
    config = TrainConfig(epochs=1, steps_per_epoch=2, validation_steps=1, batch_size=2, sequence_length=8,
                         audio_features="phones", audio_augmentation=0.5, speaker_repeats={"s1": 2})
    history = train("atnet", prepared_dir, str(tmp_path / "run"), config, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model = keras.saving.load_model(os.path.join(tmp_path, "run", "last.keras"))
    assert set(model.input) == {"phone_windows", "identity_pca_codes"}
    assert json.load(open(os.path.join(tmp_path, "run", "train_config.json")))["audio_features"] == "phones"


def test_an_activation_head_atnet_is_refused_with_the_recipe_that_fits_it(prepared_dir, tmp_path):
    """`mfcc+activation_head` is fitted in closed form from the sound (prepare does not store its 4,608
    values a frame): `atvg train` says so and names the recipe instead of failing on a missing feature."""
    from atvg_tf.errors import InputError

    config = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, sequence_length=8, audio_features="mfcc+activation_head")
    with pytest.raises(InputError, match="--recipe activation_head"):
        train("atnet", prepared_dir, str(tmp_path / "run"), config, verbose=0)


def test_vgnet_run_writes_sample_videos(prepared_dir, tmp_path):
    import av

    config = TrainConfig(epochs=1, steps_per_epoch=1, validation_steps=1, batch_size=2, sequence_length=4)
    train("vgnet", prepared_dir, str(tmp_path / "run"), config, verbose=0)
    video = tmp_path / "run" / "samples" / "epoch_001.mp4"
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (128, 512, 3)
    assert os.listdir(tmp_path / "run" / "logs" / "samples")


def test_a_vgnet_run_starts_from_a_trained_generator_with_appearance_augmentation(prepared_dir, tmp_path):
    from atvg_tf.errors import InputError
    from atvg_tf.generation.model import DEFAULT_MODEL_DIR
    from atvg_tf.training.train import build_trainable, initialise_from

    config = TrainConfig(epochs=1, steps_per_epoch=1, validation_steps=0, batch_size=2, sequence_length=4,
                         appearance_augmentation=1.0, init_from=DEFAULT_MODEL_DIR)
    train("vgnet", prepared_dir, str(tmp_path / "run"), config, verbose=0)
    trained = keras.saving.load_model(os.path.join(tmp_path, "run", "last.keras")).generator.trainable_weights
    packaged = keras.saving.load_model(os.path.join(DEFAULT_MODEL_DIR, "vgnet.keras")).trainable_weights
    # One Adam step moves every trainable weight by about the learning rate: the run started from the packaged weights.
    assert len(trained) == len(packaged)
    assert max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(trained, packaged)) < 2e-3
    with pytest.raises(InputError, match="does not fit this run's atnet"):
        initialise_from(build_trainable("atnet", TrainConfig(model_preset="paper")), "atnet", DEFAULT_MODEL_DIR)


def test_an_atnet_run_learns_the_codes_of_its_own_basis_from_a_rebased_model(prepared_dir, tmp_path, capsys):
    from atvg_tf.cli import main
    from atvg_tf.frontend.face.pca import LandmarkPCA
    from atvg_tf.generation.model import DEFAULT_MODEL_DIR

    basis_path = str(tmp_path / "four.npz")
    assert main(["fit-pca", prepared_dir, "--output", basis_path, "--components", "4"]) == 0
    run = str(tmp_path / "run")
    assert main(["train", "atnet", prepared_dir, "--output", run, "--epochs", "1", "--steps-per-epoch", "2",
                 "--validation-steps", "1", "--batch-size", "2", "--init-from", DEFAULT_MODEL_DIR, "--pca", basis_path, "--quiet"]) == 0
    atnet = keras.saving.load_model(os.path.join(run, "last.keras"), safe_mode=True)
    assert atnet.output["pca_codes"].shape[-1] == 4
    assert LandmarkPCA.load(os.path.join(run, "pca.npz")).fingerprint() == LandmarkPCA.load(basis_path).fingerprint()
    # Started from the packaged AT-net: its LSTMs moved by about two Adam steps only.
    packaged = keras.saving.load_model(os.path.join(DEFAULT_MODEL_DIR, "atnet.keras"), safe_mode=True)
    lstm, before = atnet.get_layer("lstm_0").get_weights()[0], packaged.get_layer("lstm_0").get_weights()[0]
    assert 0 < np.abs(lstm - before).max() < 5e-3
    # A model folder of it, after the basis it was given is gone (the run keeps its own copy).
    os.remove(basis_path)
    model_dir = str(tmp_path / "model")
    assert main(["bundle", "--atnet", run, "--vgnet", DEFAULT_MODEL_DIR, "--output", model_dir]) == 0
    from atvg_tf.generation.model import TalkingFaceModel

    model = TalkingFaceModel.load(model_dir)
    assert model.pca.num_components == 4
    identity = model.pca.decode(np.zeros(4, np.float32))
    marks = model.predict_landmarks(np.zeros((6, 28, 12), np.float32), identity)
    assert marks.shape == (6, 68, 2) and np.isfinite(marks).all()
    capsys.readouterr()
    assert main(["train", "atnet", prepared_dir, "--output", str(tmp_path / "bad"), "--pca", str(tmp_path / "none.npz")]) == 2
    assert "pca_path" in capsys.readouterr().err and not os.path.exists(tmp_path / "bad")


def test_vgnet_gan_trains_under_mirrored_strategy_on_two_cpu_devices(prepared_dir, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from atvg_tf.training.train import TrainConfig, train
        config = TrainConfig(epochs=1, steps_per_epoch=2, validation_steps=0, batch_size=2, sequence_length=4)
        history = train("vgnet", {prepared_dir!r}, {str(tmp_path / "run")!r}, config, strategy="mirrored", verbose=0)
        import math
        assert all(math.isfinite(v[-1]) for v in history.history.values()), history.history
        print("REPLICAS", tf.distribute.MirroredStrategy().num_replicas_in_sync)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPLICAS 2" in result.stdout


def test_gan_keras_file_round_trips_with_its_optimizers(batch, tmp_path):
    gan = _gan()
    gan.train_step(batch)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    inputs = {k: batch[k] for k in ("identity_frame", "identity_landmarks", "landmarks")}
    np.testing.assert_array_equal(np.asarray(loaded(inputs)["frames"]), np.asarray(gan(inputs)["frames"]))
    assert loaded.g_optimizer.built and loaded.d_optimizer.built
    assert int(loaded.g_optimizer.iterations) == 1


def test_a_damaged_shard_is_named_in_one_line(prepared_dir, tmp_path):
    """A corrupt shard crashed `atvg train` with a 41-line DataLossError that did not name it (issue 11 item 6)."""
    import glob
    import shutil

    from atvg_tf.errors import InputError

    copy = str(tmp_path / "prepared")
    shutil.copytree(prepared_dir, copy)
    shard = sorted(glob.glob(os.path.join(copy, "train-*.tfrecord")))[0]
    with open(shard, "r+b") as handle:
        handle.seek(200)  # inside the first record's data: its checksum no longer matches
        handle.write(b"\xff" * 64)
    config = TrainConfig(epochs=1, steps_per_epoch=2, validation_steps=0, batch_size=2, sequence_length=8)
    with pytest.raises(InputError) as raised:
        train("atnet", copy, str(tmp_path / "run"), config, verbose=0)
    message = str(raised.value)
    assert "\n" not in message and shard in message and "run `atvg prepare` again" in message, message


def test_a_run_folder_is_resumed_only_with_its_own_settings(prepared_dir, tmp_path):
    """Other settings overwrote train_config.json and ended in 8 KB of Keras warnings (issue 11 item 11)."""
    from atvg_tf.errors import InputError

    output = str(tmp_path / "run")
    config = TrainConfig(epochs=1, steps_per_epoch=1, validation_steps=0, batch_size=2, sequence_length=8)
    train("atnet", prepared_dir, output, config, verbose=0)
    written = open(os.path.join(output, "train_config.json")).read()
    with pytest.raises(InputError, match=r"holds a run with other settings \(batch_size 2 -> 4, sequence_length 8 -> 12\); give a new --output"):
        train("atnet", prepared_dir, output, dataclasses.replace(config, batch_size=4, sequence_length=12), verbose=0)
    with pytest.raises(InputError, match=r"network 'atnet' -> 'vgnet'"):
        train("vgnet", prepared_dir, output, config, verbose=0)
    assert open(os.path.join(output, "train_config.json")).read() == written
    # More epochs resume it: epoch 2 only, although its epochs (1 batch) are shorter than backup_every
    # (the backup at the epoch's end; before, there was none and training restarted from random weights).
    assert config.steps_per_epoch < config.backup_every
    history = train("atnet", prepared_dir, output, dataclasses.replace(config, epochs=2), verbose=0)
    assert len(history.history["loss"]) == 1
    rows = open(os.path.join(output, "history.csv")).read().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"]  # one history row per epoch, none repeated
    # A run begun before an option existed resumes: the missing option counts as its default.
    saved = json.load(open(os.path.join(output, "train_config.json")))
    del saved["interleave_cycle_length"]
    json.dump(saved, open(os.path.join(output, "train_config.json"), "w"))
    assert len(train("atnet", prepared_dir, output, dataclasses.replace(config, epochs=3), verbose=0).history["loss"]) == 1
    with pytest.raises(InputError, match=r"interleave_cycle_length 4 -> 8|interleave_cycle_length None -> 8"):
        train("atnet", prepared_dir, output, dataclasses.replace(config, epochs=4, interleave_cycle_length=8), verbose=0)


def test_lrw_config_follows_the_scaling_plan():
    """docs/SCALING.md: an epoch is one pass over LRW's train windows, the shuffle buffer fits in 2 GB,
    many shards are read at once, and the pipeline takes those settings."""
    config = TrainConfig.from_file("lrw")
    lrw_train_clips = 488_766  # one 16-frame window per 29-frame clip and pass
    assert config.steps_per_epoch * config.batch_size >= lrw_train_clips > (config.steps_per_epoch - 1) * config.batch_size
    example_bytes = (config.sequence_length + 1) * 128 * 128 * 3 * 4  # decoded float32 frames, identity included
    assert config.shuffle_buffer * example_bytes < 2 * 2**30
    assert config.interleave_cycle_length >= 32 and config.autotune_ram_budget_mb > 0
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "SCALING.md")) as handle:
        plan = handle.read()
    for name in ("steps_per_epoch", "shuffle_buffer", "interleave_cycle_length", "autotune_ram_budget_mb", "backup_every"):
        assert f'"{name}": {getattr(config, name)}' in plan, name


def test_pipeline_takes_the_scaling_settings(prepared_dir):
    config = PipelineConfig(sequence_length=8, batch_size=2, interleave_cycle_length=1, autotune_ram_budget_mb=512, deterministic=True)
    dataset = make_dataset(prepared_dir, "train", config)
    assert dataset.options().autotune.ram_budget == 512 * 2**20
    assert all(np.isfinite(batch["pca_codes"].numpy()).all() for batch in dataset.take(2))


def test_an_mfcc_and_phones_atnet_grafted_on_an_mfcc_one_starts_where_it_was(tmp_path):
    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig
    from atvg_tf.training.graft import graft_weights
    from atvg_tf.training.train import initialise_from

    small = ATNetConfig.preset("small")
    keras.utils.set_random_seed(1)
    mfcc_only = build_atnet(small)
    path = str(tmp_path / "atnet.keras")
    mfcc_only.save(path)
    wider = build_atnet(dataclasses.replace(small, audio_features="mfcc+phones"))
    rng = np.random.default_rng(0)
    inputs = {"mfcc_windows": rng.normal(size=(2, 5, 28, 12)).astype("float32"),
              "identity_pca_codes": rng.normal(size=(2, 6)).astype("float32")}
    phones = np.eye(40, dtype="float32")[rng.integers(0, 40, size=(2, 5, 28))]
    expected = mfcc_only.predict(inputs, verbose=0)["pca_codes"]
    assert graft_weights(wider, mfcc_only, new_rows_scale=0.0) == ["lstm_0"]
    np.testing.assert_allclose(wider.predict({**inputs, "phone_windows": phones}, verbose=0)["pca_codes"], expected, atol=1e-5)
    # Through TrainConfig.init_from: the phones start small but do count.
    wider = build_atnet(dataclasses.replace(small, audio_features="mfcc+phones"))
    initialise_from(wider, "atnet", path)
    grafted = wider.predict({**inputs, "phone_windows": phones}, verbose=0)["pca_codes"]
    assert 0 < np.abs(grafted - expected).max() < 0.5 * np.abs(expected).max()
    with pytest.raises(Exception, match="does not fit"):
        initialise_from(build_atnet(dataclasses.replace(ATNetConfig.preset("paper"), audio_features="mfcc+phones")), "atnet", path)


def test_the_official_vgnet_trains_one_clip_per_batch(tmp_path):
    from atvg_tf.errors import InputError

    # The release's conv-GRU runs across the batch axis; two clips in a batch would feed each other.
    with pytest.raises(InputError, match="batch_size 1"):
        train("vgnet", str(tmp_path / "prepared"), str(tmp_path / "run"), TrainConfig(model_preset="official", batch_size=4))
    assert not os.path.exists(tmp_path / "run")
