"""`atvg train --strategy multi_worker`: two worker processes on this machine (TF_CONFIG, CPU)."""

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow  # trains in two subprocesses on `prepared_dir` (`atvg prepare`)

# Three one-batch epochs: the run is killed after the first one's backup.
CONFIG = {"model_preset": "small", "epochs": 3, "steps_per_epoch": 1, "validation_steps": 1, "batch_size": 2,
          "sequence_length": 4, "backup_every": 100}
RUN_TIMEOUT_S = 240


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def _workers(prepared_dir: str, output: str, config_path: str, log_prefix: str):
    """Starts the two workers of a fresh cluster; kills whichever is still running on the way out."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes, logs = [], []
    try:
        for index in range(2):
            env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            log = open(f"{log_prefix}_{index}.log", "w")
            logs.append(log)
            command = [sys.executable, "-m", "atvg_tf.cli", "train", "vgnet", prepared_dir, "--output", output,
                       "--config", config_path, "--strategy", "multi_worker", "--quiet"]
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO))
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        for log in logs:
            log.close()


def _wait(processes, log_prefix: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    for index, process in enumerate(processes):
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {index} still running after {RUN_TIMEOUT_S} s:\n{_tail(log_prefix, index)}")
        assert process.returncode == 0, f"worker {index} exited {process.returncode}:\n{_tail(log_prefix, index)}"


def _tail(log_prefix: str, index: int) -> str:
    with open(f"{log_prefix}_{index}.log") as handle:
        return handle.read()[-3000:]


def _epochs_in(history_csv: str) -> list[int]:
    with open(history_csv) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _backed_up_epoch(output: str) -> int:
    try:
        with open(os.path.join(output, "backup", "training_metadata.json")) as handle:
            return json.load(handle)["epoch"]
    except (OSError, ValueError):  # not written yet, or being written
        return 0


def test_two_workers_train_in_step_and_resume_together_after_a_worker_is_killed(prepared_dir, tmp_path):
    from atvg_tf.training.gan import VGNetGAN  # registers the class for load_model

    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(CONFIG))
    output, logs = str(tmp_path / "run"), str(tmp_path / "worker")
    worker_dir = os.path.join(output, "worker_1")

    # Run 1: worker 1 is killed once the first epoch is backed up; the cluster manager then stops the chief too.
    with _workers(prepared_dir, output, str(config_path), logs + "_first") as processes:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while _backed_up_epoch(output) < 1:
            assert time.monotonic() < deadline, "no backup after the first epoch:\n" + _tail(logs + "_first", 0)
            assert all(p.poll() is None for p in processes), "a worker stopped early:\n" + _tail(logs + "_first", 0)
            time.sleep(0.1)
        assert all(p.poll() is None for p in processes), "the run ended before it could be interrupted"
        processes[1].send_signal(signal.SIGKILL)
        processes[0].send_signal(signal.SIGKILL)
    finished = _epochs_in(os.path.join(output, "history.csv"))
    assert finished and len(finished) < CONFIG["epochs"], finished

    # Run 2, same command on a fresh cluster: both workers resume from the chief's backup.
    with _workers(prepared_dir, output, str(config_path), logs + "_second") as processes:
        _wait(processes, logs + "_second")
    for index in range(2):
        resumed = _tail(logs + "_second", index)
        assert "Epoch 1/3" not in resumed and "Epoch 3/3" in resumed, resumed  # the finished epoch is not trained again
    assert _epochs_in(os.path.join(output, "history.csv")) == [0, 1, 2]  # each epoch once, across both runs
    assert _epochs_in(os.path.join(worker_dir, "history.csv"))[-1] == 2

    # The chief wrote the run folder; the other worker only its own copies, in worker_1/.
    for name in ("best.keras", "last.keras", "history.csv", "train_config.json", "pca.npz", "samples/epoch_003.mp4"):
        assert os.path.isfile(os.path.join(output, name)), name
    assert sorted(os.listdir(output)) == sorted(["backup", "best.keras", "data.json", "history.csv", "last.keras", "logs",
                                                 "pca.npz", "samples", "train_config.json", "worker_1"])

    chief = keras.saving.load_model(os.path.join(output, "last.keras"))
    other = keras.saving.load_model(os.path.join(worker_dir, "last.keras"))
    assert isinstance(chief, VGNetGAN)
    # Weights restored from the backup, not only the epoch number: one optimizer step per batch of the three epochs.
    assert int(chief.g_optimizer.iterations) == int(chief.d_optimizer.iterations) == CONFIG["epochs"] * CONFIG["steps_per_epoch"]
    # Each worker trained on its own share of the batches and applied the gradients averaged over both:
    # the same weights and optimizer slots on both.
    # (BatchNormalization's moving statistics are not compared: Keras 3 keeps them per worker.)
    learned = [(chief.generator.trainable_weights, other.generator.trainable_weights),
               (chief.discriminator.trainable_weights, other.discriminator.trainable_weights),
               (chief.g_optimizer.variables, other.g_optimizer.variables),
               (chief.d_optimizer.variables, other.d_optimizer.variables)]
    for mine, theirs in learned:
        assert len(mine) == len(theirs) > 0
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
