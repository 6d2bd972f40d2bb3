"""`atvg train --data-service` and `atvg data-service`: the tf.data service on this machine."""

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from atvg_tf import cli
from atvg_tf.training.data_service import distribute
from atvg_tf.training.train import TrainConfig, train
from tests.helpers import REPO

START_TIMEOUT_S = 120


@pytest.mark.slow  # trains on `prepared_dir` (`atvg prepare`)
def test_atnet_trains_on_batches_made_by_the_data_service(prepared_dir, tmp_path):
    dispatcher = tf.data.experimental.service.DispatchServer(tf.data.experimental.service.DispatcherConfig(port=0))
    address = dispatcher.target.split("://")[1]
    worker = tf.data.experimental.service.WorkerServer(tf.data.experimental.service.WorkerConfig(dispatcher_address=address))
    try:
        config = TrainConfig(epochs=1, steps_per_epoch=2, validation_steps=1, batch_size=2, sequence_length=8,
                             audio_augmentation=0.5)  # random choices made on the service's worker
        history = train("atnet", prepared_dir, str(tmp_path / "run"), config, verbose=0, data_service=f"grpc://{address}")
        assert np.isfinite(history.history["loss"]).all() and np.isfinite(history.history["val_loss"]).all()
        assert worker._num_tasks() >= 1  # the training batches came from the service's worker
    finally:
        worker._stop()
        dispatcher._stop()


@pytest.mark.parametrize("address, problem", [
    ("grpc://localhost:{free}", "cannot reach a tf.data service dispatcher at grpc://localhost:{free} (Connection refused)"),
    ("localhost", "'localhost' is not a tf.data service address; give grpc://HOST:PORT"),
    ("http://localhost:5050", "is not a tf.data service address"),
])
def test_a_wrong_data_service_address_is_one_line_and_quick(address, problem, tmp_path, capsys):
    free = _free_port()
    started = time.monotonic()
    code = cli.main(["train", "atnet", str(tmp_path / "prepared"), "--output", str(tmp_path / "run"), "--data-service", address.format(free=free),
                     "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and problem.format(free=free) in err, err
    assert time.monotonic() - started < 30
    assert not os.path.exists(tmp_path / "run")  # refused before anything was written


def test_data_service_options_are_checked_before_a_server_starts(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {("worker", "--port", "0"): "a worker needs --dispatcher HOST:PORT",
                 ("dispatcher", "--port", "70000"): "--port must be between 1 and 65535, got 70000.",
                 ("dispatcher", "--port", str(port)): f"port {port} is not free (Address already in use); choose another --port.",
                 ("worker", "--dispatcher", f"localhost:{port}", "--port", str(port)): f"port {port} is not free"}
        for flags, problem in cases.items():
            assert cli.main(["data-service", *flags]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and problem in err, (flags, err)


@pytest.mark.slow  # two CLI subprocesses
def test_data_service_commands_start_a_dispatcher_and_a_worker_that_serve(tmp_path):
    port = _free_port()
    commands = {"dispatcher": ["dispatcher", "--port", str(port)],
                "worker": ["worker", "--dispatcher", f"localhost:{port}", "--port", "0", "--host", "localhost"]}
    processes = {}
    try:
        for role, flags in commands.items():  # the worker only once the dispatcher listens
            log = tmp_path / f"{role}.log"
            with open(log, "w") as handle:
                processes[role] = subprocess.Popen([sys.executable, "-m", "atvg_tf.cli", "data-service", *flags],
                                                   stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
            _wait_for_line(processes[role], log, rf"tf\.data service {role} on port")
        served = tf.data.Dataset.range(6).map(lambda x: x * 10)
        values = [int(v) for v in distribute(served, f"grpc://localhost:{port}", job_name="test")]
        assert values == [0, 10, 20, 30, 40, 50]  # every element once (distributed_epoch), made by the CLI's worker
        for role in ("worker", "dispatcher"):
            processes[role].terminate()
            assert processes[role].wait(timeout=30) == 143, (tmp_path / f"{role}.log").read_text()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_line(process, log, pattern: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not re.search(pattern, log.read_text()):
        assert process.poll() is None, f"exited {process.returncode}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"not started after {START_TIMEOUT_S} s: {log.read_text()[-2000:]}"
        time.sleep(0.2)
