"""Writing files and folders so that they appear only when complete, and hashing files.

Temporary names start with `.atvg-<pid>-` (hidden, recognisable as atvg's own, and naming the
process that writes them, so `remove_stale_temps` can clean what a killed run left) and end with the
destination's name, so libraries that pick a format from the extension (`np.savez`, Keras, PyAV)
write the right one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

TEMP_PREFIX = ".atvg-"
_OWNED_TEMP = re.compile(rf"{re.escape(TEMP_PREFIX)}(\d+)-")


def _own_prefix() -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path_beside(path: str | os.PathLike) -> str:
    """Creates an empty, private temporary file in `path`'s folder, named `.atvg-<pid>-XXXX-<basename>`."""
    path = os.fspath(path)
    handle, partial = tempfile.mkstemp(prefix=_own_prefix(), suffix="-" + os.path.basename(path), dir=os.path.dirname(os.path.abspath(path)))
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
    partial = tempfile.mkdtemp(prefix=_own_prefix(), suffix="-" + os.path.basename(path), dir=parent)
    try:
        yield partial
        os.chmod(partial, 0o777 & ~_umask())
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=_own_prefix() + "old-", dir=parent)
            os.rename(path, os.path.join(old, "folder"))
            os.rename(partial, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(partial, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def remove_stale_temps(folder: str | os.PathLike) -> list[str]:
    """Deletes the temporary files and folders in `folder` that atvg processes no longer running
    left behind (killed with SIGKILL, or the machine stopped); returns their paths.

    Only `.atvg-<pid>-*` names count, and only when no process with that id exists: anything
    else, including a live process's temporaries, is left alone.
    """
    removed = []
    for name in os.listdir(folder):
        match = _OWNED_TEMP.match(name)
        if not match or _process_exists(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed.append(path)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; or not a process id at all
        return True
    return True


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
