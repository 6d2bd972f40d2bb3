"""How long the web page keeps a visitor waiting: `atvg app` served for real, driven by Chromium.

Starts `atvg app` (packaged model, its default runtime) on a free port with --concurrency 1 and 2,
and measures
  - the time from pressing Generate to a playable video on the page (Chromium via Playwright, the
    shared photo and 6 s of shared speech uploaded first), --repeats times;
  - two visitors at once (two gradio_client calls started together, 5 s and 6 s of speech): each
    one's wait and whether both videos are right (frames, sound).

    python benchmarks/bench_app.py [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.environ.get("ATVG_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


def start_app(concurrency: int, outputs: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "atvg_tf.cli", "app", "--port", str(port), "--outputs", outputs,
                               "--concurrency", str(concurrency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 300
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit("atvg app did not start") from None
            time.sleep(0.5)


def press_to_video(url: str, photo: str, speech: str) -> float:
    """Seconds from pressing Generate to a video with a duration on the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.locator("#photo input[type=file]").set_input_files(photo)
        page.locator("#speech input[type=file]").set_input_files(speech)
        page.locator("#photo img").wait_for(timeout=30_000)
        page.locator("#speech audio, #speech canvas, #speech .waveform-container").first.wait_for(state="attached", timeout=30_000)
        pressed = time.perf_counter()
        page.locator("#generate").click()
        page.wait_for_function("document.querySelector('#video video') && document.querySelector('#video video').duration > 0",
                               timeout=300_000)
        seconds = time.perf_counter() - pressed
        browser.close()
    return seconds


def two_at_once(url: str, photo: str, speeches: list[str]) -> list[dict]:
    import av
    from gradio_client import Client, handle_file

    rows: list[dict] = [{} for _ in speeches]

    def call(index: int) -> None:
        started = time.perf_counter()
        video, *_ = Client(url, verbose=False).predict(handle_file(photo), handle_file(speeches[index]), "default", "hybrid",
                                                       "paste-back", api_name="/generate")
        with av.open(video) as container:
            frames = sum(1 for _ in container.decode(video=0))
            has_audio = bool(container.streams.audio)
        rows[index] = {"speech": os.path.basename(speeches[index]), "seconds": round(time.perf_counter() - started, 2),
                       "frames": frames, "audio": has_audio}

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(speeches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    photo = os.path.join(args.data, "atvgnet", "image", "Elektra.jpg")
    speech = os.path.join(args.data, "atvgnet", "audio", "audio_sample.wav")  # 6.0 s
    other = os.path.join(args.data, "wild", "retalking_1.wav")  # 5.0 s
    results = []
    for concurrency in (1, 2):
        with tempfile.TemporaryDirectory() as outputs:
            server, url = start_app(concurrency, outputs)
            try:
                waits = [round(press_to_video(url, photo, speech), 2) for _ in range(args.repeats)]
                row = {"concurrency": concurrency, "press_to_video_seconds": waits, "two_at_once": two_at_once(url, photo, [other, speech])}
            finally:
                server.terminate()
                server.wait()
        print(json.dumps(row), flush=True)
        results.append(row)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
