"""Keeping the native libraries' log chatter (TensorFlow, MediaPipe) off the user's terminal."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_stderr(enabled: bool = True):
    """Points file descriptor 2 at /dev/null for the duration (C++ loggers write there directly)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_quietly(verbose: bool = False) -> None:
    """Imports TensorFlow and MediaPipe once, hiding what they print at start-up."""
    with quiet_stderr(not verbose):
        import mediapipe  # noqa: F401
        import tensorflow

        tensorflow.config.list_physical_devices()  # device discovery logs too
