"""Input preprocessing on other machines: the tf.data service behind `atvg train --data-service`.

A dispatcher (`atvg data-service dispatcher`) hands the training pipeline to workers
(`atvg data-service worker`, one per CPU host) that read the prepared shards, decode and augment the
frames and send finished batches to the trainers. The workers read the prepared folder at the path
the trainer names, so it must be at that path on every worker host (a shared filesystem).
"""

from __future__ import annotations

import re
import socket

import tensorflow as tf

from atvg_tf.errors import InputError

DEFAULT_DISPATCHER_PORT = 5050
# grpc://HOST:PORT or HOST:PORT; HOST a name, an IPv4 address or a bracketed IPv6 one.
ADDRESS = re.compile(r"^(?:(?P<protocol>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


def parse_address(address: str) -> tuple[str, str, int]:
    """`grpc://HOST:PORT` or `HOST:PORT` -> (protocol, host, port)."""
    match = ADDRESS.match(address.strip())
    if not match or not 0 < int(match["port"]) < 65536 or (match["protocol"] or "grpc") != "grpc":
        raise InputError(f"{address!r} is not a tf.data service address; give grpc://HOST:PORT (e.g. grpc://localhost:{DEFAULT_DISPATCHER_PORT}).")
    return "grpc", match["host"], int(match["port"])


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuses, within `timeout_s`, an address where nothing listens (the tf.data client would retry for minutes)."""
    _, host, port = parse_address(address)
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout_s):
            pass
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise InputError(f"cannot reach a tf.data service dispatcher at {address} ({reason}); start one with "
                         f"`atvg data-service dispatcher --port {port}` on {host}, or correct the address.") from None


def distribute(dataset: tf.data.Dataset, address: str, job_name: str) -> tf.data.Dataset:
    """The elements of `dataset` as made by the service's workers ([B, ...] batches, as `dataset`).

    `distributed_epoch`: each prepared shard goes to one worker per pass over the data, as locally.
    (`parallel_epochs` would run the whole pipeline on every worker with the same seeds: the same
    windows and augmentations once per worker.) Trainers giving the same `job_name` (the workers of
    one multi-worker run) share one stream, each batch going to one of them.
    """
    protocol, host, port = parse_address(address)
    service = dataset.apply(tf.data.experimental.service.distribute(
        processing_mode="distributed_epoch", service=f"{protocol}://{host}:{port}", job_name=job_name))
    options = tf.data.Options()
    # The service already gives each trainer its own batches: a multi-worker strategy must not drop any.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return service.with_options(options)


def start_dispatcher(port: int = DEFAULT_DISPATCHER_PORT) -> tf.data.experimental.service.DispatchServer:
    """Starts a dispatcher on this machine (it serves until the process ends)."""
    _check_port(port)
    config = tf.data.experimental.service.DispatcherConfig(port=port)
    return _start(lambda: tf.data.experimental.service.DispatchServer(config), port)


def start_worker(dispatcher: str, port: int = 0, host: str | None = None) -> tf.data.experimental.service.WorkerServer:
    """Starts a worker that registers with `dispatcher` (HOST:PORT); trainers reach it at `host`:`port`.

    Args:
        dispatcher: the dispatcher's address.
        port: this worker's port (0: a free one).
        host: the name trainers and the dispatcher reach this machine by (default: its host name).
    """
    _check_port(port, allow_any=True)
    check_reachable(dispatcher)
    _, dispatcher_host, dispatcher_port = parse_address(dispatcher)
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=f"{dispatcher_host}:{dispatcher_port}", worker_address=f"{host or socket.gethostname()}:%port%", port=port)
    return _start(lambda: tf.data.experimental.service.WorkerServer(config), port)


def _check_port(port: int, allow_any: bool = False) -> None:
    if not (0 if allow_any else 1) <= port < 65536:
        raise InputError(f"--port must be between {0 if allow_any else 1} and 65535, got {port}.")
    if port:  # gRPC would share a taken port (SO_REUSEPORT) with the server already on it
        try:
            with socket.socket() as probe:
                probe.bind(("", port))
        except OSError as error:
            raise InputError(f"port {port} is not free ({error.strerror}); choose another --port.") from None


def _start(make_server, port: int):
    try:
        return make_server()
    except (tf.errors.OpError, RuntimeError) as error:
        raise InputError(f"cannot start the server on port {port} ({str(error).splitlines()[0][:160]}); choose another --port.") from None
