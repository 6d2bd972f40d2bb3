"""Writing files and folders so that they appear only when complete, and hashing files.

Temporary names start with `.atvg-` (hidden, and recognisable as atvg's own) and end with the
destination's name, so libraries that pick a format from the extension (`np.savez`, Keras, PyAV)
write the right one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator

TEMP_PREFIX = ".atvg-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path_beside(path: str | os.PathLike) -> str:
    """Creates an empty, private temporary file in `path`'s folder, named `.atvg-XXXX-<basename>`."""
    path = os.fspath(path)
    handle, partial = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix="-" + os.path.basename(path), dir=os.path.dirname(os.path.abspath(path)))
    os.close(handle)
    return partial


def publish(partial: str, path: str | os.PathLike) -> None:
    """Gives a finished temporary file normal permissions and renames it to `path`."""
    os.chmod(partial, 0o666 & ~_umask())  # mkstemp makes the file private
    os.replace(partial, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `path`; renamed to `path` when the block succeeds, deleted when it fails.

        with atomic_path("out/pca.npz") as partial:
            np.savez(partial, ...)
    """
    partial = temp_path_beside(path)
    try:
        yield partial
        publish(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Opens a temporary file for writing (`mode` "w" or "wb") that replaces `path` when the block succeeds."""
    with atomic_path(path) as partial, open(partial, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False) -> Iterator[str]:
    """Yields a new temporary folder beside `path`, renamed to `path` when the block succeeds, deleted when it fails.

    Args:
        replace: an existing folder at `path` is replaced (only once the new one is complete).

    Raises:
        FileExistsError: `path` exists already and `replace` is False.
    """
    path = os.fspath(path).rstrip("/") or "/"
    if os.path.exists(path) and not replace:
        raise FileExistsError(f"{path} exists; give a new output folder.")
    parent = os.path.dirname(os.path.abspath(path))
    partial = tempfile.mkdtemp(prefix=TEMP_PREFIX, suffix="-" + os.path.basename(path), dir=parent)
    try:
        yield partial
        os.chmod(partial, 0o777 & ~_umask())
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=TEMP_PREFIX + "old-", dir=parent)
            os.rename(path, os.path.join(old, "folder"))
            os.rename(partial, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(partial, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
