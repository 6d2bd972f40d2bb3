"""`atvg app` served for real on a free localhost port, driven by Chromium (Playwright) and gradio_client."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import av
import cv2
import numpy as np
import pytest
import soundfile

from atvg_tf.frontend.audio import load_audio
from tests.helpers import REPO

pytestmark = pytest.mark.slow
pytest.importorskip("gradio", reason="atvg app needs the [app] extra: pip install '.[app]'")
SCREENSHOT = os.path.join(REPO, "docs", "images", "app.png")
SPEECH_SECONDS = 6.0  # atvgnet/audio/audio_sample.wav


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(shared_data, tmp_path_factory):
    """`atvg app` in a subprocess (the packaged model, the default LiteRT runtime, two at once)."""
    outputs = tmp_path_factory.mktemp("app_outputs")
    port = _free_port()
    log = open(outputs / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "atvg_tf.cli", "app", "--port", str(port), "--outputs", str(outputs),
                               "--concurrency", "2", "--max-audio-seconds", "30"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    log.flush()
                    pytest.fail(f"atvg app did not start: {(outputs / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _video_facts(path: str) -> tuple[float, int, bool]:
    """(duration s, video frames, has an audio track) of an MP4."""
    with av.open(path) as container:
        frames = sum(1 for _ in container.decode(video=0))
        has_audio = bool(container.streams.audio)
        duration = container.duration / 1e6
    return duration, frames, has_audio


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium on this machine: `apt-get install chromium` (tools/install_test_browser.sh does it)")


def test_the_page_makes_a_video_and_shows_bad_input_in_one_line(app_url, shared_data, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the [test] extra)")
    photo = os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg")
    speech = os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")
    no_face = str(tmp_path / "no_face.png")
    cv2.imwrite(no_face, np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1)))
    two_faces = str(tmp_path / "two_faces.png")  # Elektra and a smaller Ezra Miller beside her
    big, small = cv2.imread(photo), cv2.resize(cv2.imread(os.path.join(shared_data, "atvgnet", "image", "EzraMiller_00075.jpg")), (150, 150))
    canvas = np.full((big.shape[0], big.shape[1] + 170, 3), 255, np.uint8)
    canvas[:, : big.shape[1]], canvas[40:190, big.shape[1] + 10 : big.shape[1] + 160] = big, small
    cv2.imwrite(two_faces, canvas)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.goto(app_url)
        page.locator("#photo input[type=file]").set_input_files(photo)
        page.locator("#speech input[type=file]").set_input_files(speech)
        page.locator("#photo img").wait_for(timeout=30_000)
        page.locator("#speech audio, #speech canvas, #speech .waveform-container").first.wait_for(state="attached", timeout=30_000)
        pressed = time.perf_counter()
        page.locator("#generate").click()
        video = page.locator("#video video")
        video.wait_for(timeout=120_000)
        seconds_to_video = time.perf_counter() - pressed
        page.wait_for_function("document.querySelector('#video video').duration > 0", timeout=30_000)
        duration = page.evaluate("document.querySelector('#video video').duration")
        assert abs(duration - SPEECH_SECONDS) < 0.3, duration
        summary = page.locator("#summary textarea").input_value()
        assert "150 frames" in summary, summary
        with page.expect_download() as download:
            page.locator("#download").click()
        saved = str(tmp_path / "downloaded.mp4")
        download.value.save_as(saved)
        seconds, frames, has_audio = _video_facts(saved)
        assert frames == 150 and has_audio and abs(seconds - SPEECH_SECONDS) < 0.3
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        print(f"first video on the page {seconds_to_video:.1f} s after pressing Generate ({SPEECH_SECONDS:g} s of speech)")

        # What the CLI warns about is a note under the run's figures.
        page.locator("#photo button[aria-label='Remove Image']").click()
        page.locator("#photo input[type=file]").set_input_files(two_faces)
        page.locator("#photo img").wait_for(timeout=30_000)
        page.locator("#generate").click()
        page.wait_for_function("document.querySelector('#summary textarea').value.includes('Note:')", timeout=120_000)
        summary = page.locator("#summary textarea").input_value()
        assert "150 frames" in summary and "Note: 2 faces found; using face 0" in summary, summary
        page.screenshot(path=str(tmp_path / "app_note.png"), full_page=True)

        page.locator("#photo button[aria-label='Remove Image']").click()
        page.locator("#photo input[type=file]").set_input_files(no_face)
        page.locator("#photo img").wait_for(timeout=30_000)
        page.locator("#generate").click()
        error = page.get_by_text("no face", exact=False).first
        error.wait_for(timeout=60_000)
        message = error.inner_text()
        assert "Traceback" not in page.content() and len(message.splitlines()) <= 2, message
        browser.close()
    if os.environ.get("ATVG_UPDATE_SCREENSHOT"):
        shutil.copy(tmp_path / "app.png", SCREENSHOT)


def test_the_api_endpoint_serves_two_users_at_once(app_url, shared_data):
    from gradio_client import Client, handle_file

    photo = handle_file(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"))
    requests = {"short": os.path.join(shared_data, "wild", "retalking_1.wav"),  # 5.0 s
                "long": os.path.join(shared_data, "atvgnet", "audio", "audio_sample.wav")}  # 6.0 s
    results: dict[str, tuple] = {}

    def call(name: str) -> None:
        client = Client(app_url, verbose=False)
        results[name] = client.predict(photo, handle_file(requests[name]), "default", "hybrid", "paste-back", api_name="/generate")

    threads = [threading.Thread(target=call, args=(name,)) for name in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert set(results) == set(requests)
    for name, frames_expected in (("short", 125), ("long", 150)):
        video, download, landmarks, summary = results[name]
        seconds, frames, has_audio = _video_facts(video)
        assert frames == frames_expected and has_audio, (name, frames)
        assert np.load(landmarks, allow_pickle=False).shape == (frames_expected, 68, 2)
        assert f"{frames_expected} frames" in summary
    assert results["short"][0] != results["long"][0]


def test_bad_requests_get_the_cli_message(app_url, shared_data, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    long_speech = str(tmp_path / "long.wav")
    soundfile.write(long_speech, np.tile(load_audio(os.path.join(shared_data, "wild", "edtalk_mouth_source.wav")), 4)[: 16000 * 35], 16000)
    photo = handle_file(os.path.join(shared_data, "atvgnet", "image", "Elektra.jpg"))
    with pytest.raises(AppError, match=r"the speech is 3\d\.\d s long; this page takes up to 30 s"):
        client.predict(photo, handle_file(long_speech), "default", "hybrid", "paste-back", api_name="/generate")
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("not a recording")
    with pytest.raises(AppError, match="cannot read .* as audio"):
        client.predict(photo, handle_file(str(not_audio)), "default", "hybrid", "paste-back", api_name="/generate")
    # The server keeps serving after bad requests.
    video, *_ = client.predict(photo, handle_file(os.path.join(shared_data, "wild", "retalking_1.wav")), "default", "hybrid", "crop",
                               api_name="/generate")
    assert _video_facts(video)[1] == 125
