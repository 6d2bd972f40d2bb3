"""Entry points of `atvg prepare`'s worker processes.

Kept free of MediaPipe imports at module level: a spawned worker unpickles these functions first,
and the heavy imports then happen inside `init` with their log chatter hidden. Workers never import
TensorFlow (records are written by `tfrecord_lib`, MediaPipe loads without it): that import was
about five seconds of each worker's start-up.
"""

from __future__ import annotations

_PREPARER = None


def init(config_fields: dict) -> None:
    """Builds the worker's `ClipPreparer` (one landmark detector per process, single-threaded)."""
    global _PREPARER
    import signal

    # Ctrl-C is the parent's to handle: it closes the shards and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(signal.SIGKILL)
    _PREPARER = build_preparer(config_fields)


def build_preparer(config_fields: dict):
    """A `ClipPreparer` for a process that runs one clip at a time per core (this pool's workers,
    Beam's): OpenCV single-threaded, the native libraries' start-up chatter hidden."""
    from atvg_tf._native import quiet_stderr

    with quiet_stderr():
        import cv2

        from atvg_tf.data.clip_preparer import ClipPreparer
        from atvg_tf.data.prepare_config import PrepareConfig

        cv2.setNumThreads(1)
        return ClipPreparer(PrepareConfig.from_fields(config_fields))


def _die_with_parent(signal_number: int) -> None:
    """Linux: the kernel sends `signal_number` to this worker when the parent dies in any way
    (SIGKILL, out of memory), so no worker is left running or blocked without it."""
    import ctypes
    import multiprocessing
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return  # elsewhere the pool's own shutdown is all there is
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal_number, 0, 0, 0)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent died before the line above
        os._exit(1)


def run(job: tuple) -> dict:
    """Prepares one clip given as (path, clip_id, speaker_id, split)."""
    from atvg_tf.data.prepare_config import ClipJob

    return _PREPARER(ClipJob(*job))
