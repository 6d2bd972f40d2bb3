"""`atvg prepare`: talking-face clips -> aligned, labelled training shards (TFRecord) + a manifest.

The orchestration only; the parts live beside it:

| module | what |
|---|---|
| `prepare_config` | `PrepareConfig`, `PrepareError`, `ClipJob` |
| `discovery` | finding the clips, their stable split |
| `clip_preparer` | per clip, in worker processes: landmarks, alignment, MFCC windows, serialised segments |
| `segments` | cutting a clip at face-detection gaps, filling the short ones |
| `shards` | the output folder: shards, progress journal, settings, manifest |
| `beam_prepare` | the same work as an Apache Beam pipeline (`--runner beam`), over `start_run` and `shards` |

Resumable: finished shards are renamed into place and logged in `progress.jsonl` together with the
clips they hold (and the clips that were skipped, with the reason); a rerun of the same command
skips every logged clip, and an interrupted run keeps every shard closed before the interruption
(Ctrl-C closes the open shards cleanly).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import multiprocessing
import os
import time

import numpy as np

from atvg_tf.data import shards
from atvg_tf.data.clip_preparer import ClipPreparer, load_pca
from atvg_tf.data.discovery import assign_split, clip_fingerprint, discover_clips
from atvg_tf.data.prepare_config import SPLITS, ClipJob, PrepareConfig, PrepareError
from atvg_tf.frontend.face import assets
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.frontend.video import VideoError
from atvg_tf.utils.files import sha256_file

__all__ = ["PrepareConfig", "PrepareError", "prepare"]


def prepare(inputs: list[str], output: str, config: PrepareConfig = PrepareConfig(), progress: bool = True) -> dict:
    """Prepares talking-face clips into shards; see the module docstring.

    Args:
        inputs: clip files and folders (searched recursively).
        output: output folder (created; reused to resume).
        config: options.
        progress: show a progress bar.

    Returns:
        The manifest (also written to `<output>/manifest.json`).

    Raises:
        PrepareError: bad options, no clips, or an output folder prepared with other settings.
    """
    run = start_run(inputs, output, config)
    config, jobs, events = run.config, run.jobs, run.events

    def log(event: dict) -> None:
        shards.append_event(output, event)
        events.append(event)

    def on_close(shard: dict, shard_clips: list[dict]) -> None:
        log({"type": "shard", "shard": shard, "clips": shard_clips})

    writers = {split: shards.ShardWriter(output, split, shards.next_shard_index(output, split), on_close) for split in SPLITS}

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="clip", disable=not progress or not jobs, dynamic_ncols=True)
    frames_done, started = 0, time.perf_counter()
    try:
        for result in _results(jobs, config):
            entry = result["entry"]
            if entry["status"] == "ok":
                writer = writers[entry["split"]]
                writer.add(entry, result["records"])
                frames_done += entry["frames"]
                for note in entry["notes"]:
                    bar.write(f"warning: {entry['id']}: {note}")
                if len(writer.clips) >= config.clips_per_shard:
                    writer.close()
            else:
                log({"type": entry["status"], "clip": entry})
                bar.write(f"{entry['status']} {entry['id']}: {entry['reason']}")
            bar.update(1)
            bar.set_postfix(frames_per_s=f"{frames_done / (time.perf_counter() - started):.0f}")
    finally:
        # Also on Ctrl-C or a crash: close the open shards so the clips already in them are kept,
        # and bring the manifest up to date with them.
        for writer in writers.values():
            writer.close()
        bar.close()
        manifest = shards.build_manifest(output, run.settings, events, run.clips_found)
        shards.write_manifest(output, manifest)
    return manifest


@dataclasses.dataclass
class PrepareRun:
    """A checked output folder and the clips still to prepare into it.

    Attributes:
        config: the options, naming the landmark backend and model file every worker loads.
        settings: what determines the shards' content (the journal's first line).
        jobs: the clips not yet in a closed shard (or skipped, unchanged since).
        events: the journal so far (without its settings line).
        clips_found: clips found in the inputs.
    """

    config: PrepareConfig
    settings: dict
    jobs: list[ClipJob]
    events: list[dict]
    clips_found: int


def start_run(inputs: list[str], output: str, config: PrepareConfig) -> PrepareRun:
    """Checks the options and the output folder (new, empty, or started by `atvg prepare` with the same
    settings), opens its journal and lists the clips left to prepare; shared by every runner."""
    config.validate()
    clips = discover_clips(inputs, config.speaker_level)
    pca = load_pca(config.pca_path)
    # The backend and model file checked here are the ones every worker loads.
    config, landmark_model = _check_landmark_model(config)
    settings = shards.run_settings(config, landmark_model, pca)
    if os.path.exists(output) and not os.path.isdir(output):
        raise PrepareError(f"--output {output} exists and is not a folder.")
    previous, events = shards.read_progress(output) if os.path.isdir(output) else (None, [])
    if previous is None and shards.foreign_files(output):
        # Only a new or empty folder, or one an earlier `atvg prepare` started (its journal), is written into.
        raise PrepareError(f"--output {output} holds files atvg did not write ({', '.join(shards.foreign_files(output)[:3])}); "
                           f"give a new or empty folder.")
    os.makedirs(output, exist_ok=True)
    if not os.access(output, os.W_OK):
        raise PrepareError(f"cannot write to {output}; choose a writable --output.")
    if previous is not None and previous != settings:
        raise PrepareError(
            f"{output} was prepared with other settings ({shards.first_difference(previous, settings)}); "
            f"rerun with the same options or choose a new --output."
        )
    if previous is None:  # the journal first: from here on the folder is recognisably atvg's
        shards.append_event(output, {"type": "settings", "settings": settings})
    if not os.path.exists(os.path.join(output, shards.PCA_FILE)):
        pca.save(os.path.join(output, shards.PCA_FILE))
    shards.remove_stale_temps(output)
    done = shards.logged_clips(events)
    jobs = [
        ClipJob(path, clip_id, speaker, assign_split(clip_id, speaker, config))
        for path, clip_id, speaker in clips
        if clip_id not in done or (done[clip_id] is not None and done[clip_id] != _fingerprint_or_none(path))
    ]
    # In a stable pseudo-random order, not the folders': a shard of LRW (word/WORD_00001.mp4) or
    # VoxCeleb (speaker/video/00001.mp4) then holds many words and speakers, not one.
    jobs.sort(key=lambda job: hashlib.sha1(job.clip_id.encode()).hexdigest())
    return PrepareRun(config, settings, jobs, events, len(clips))


def _fingerprint_or_none(path: str) -> str | None:
    try:
        return clip_fingerprint(path)
    except (OSError, VideoError):  # tried again, and reported by the worker
        return None


def _check_landmark_model(config: PrepareConfig) -> tuple[PrepareConfig, dict]:
    """Loads the landmark backend once in this process, so a bad model file is one clear error.

    Returns:
        (the config naming the backend and model file in use, so that the workers load exactly
        those, without a fallback of their own; their description for the settings).
    """
    model_path = None
    if not (config.backend == "mediapipe" and config.landmark_fallback and config.face_model is None):
        model_path = (
            assets.find_face_landmarker_model(config.face_model, config.allow_download)
            if config.backend == "mediapipe"
            else assets.find_dlib_predictor(config.face_model)
        )
    try:
        with create_landmark_detector(config.backend, model_path, config.allow_download, fallback=config.landmark_fallback) as detector:
            backend, model_path = detector.name, detector.model_path
            detector.image_landmarks(np.zeros((64, 64, 3), np.uint8))
    except (assets.ModelFileError, assets.DownloadError):
        raise  # no model file to be had: the lookup's own message says what to do
    except Exception as error:
        what = model_path if model_path is not None else "the model file found"
        raise PrepareError(f"cannot use {what} as the {config.backend} landmark model ({error.__class__.__name__}); give the right file.") from None
    config = dataclasses.replace(config, backend=backend, face_model=model_path, landmark_fallback=False)
    return config, {"backend": backend, "model_file": os.path.basename(model_path), "model_sha256": sha256_file(model_path)}


def _results(jobs: list[ClipJob], config: PrepareConfig):
    """Yields per-clip results as they finish, from worker processes (or in-process for one worker)."""
    if not jobs:
        return
    if config.workers == 1:
        preparer = ClipPreparer(config)
        try:
            for job in jobs:
                yield preparer(job)
        finally:
            preparer.detector.close()
        return
    from atvg_tf.data import _worker

    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=config.workers, mp_context=context, initializer=_worker.init, initargs=(config.to_fields(),)
    )
    running: dict = {}
    try:
        # Bounded look-ahead keeps memory flat however many clips there are.
        for job in jobs:
            running[pool.submit(_worker.run, dataclasses.astuple(job))] = job
            if len(running) >= 2 * config.workers:
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    result = future.result()  # before the pop: a failed clip stays named in the error below
                    running.pop(future)
                    yield result
        for future in concurrent.futures.as_completed(list(running)):
            result = future.result()
            running.pop(future)
            yield result
    except concurrent.futures.process.BrokenProcessPool:
        names = ", ".join(job.clip_id for job in running.values())
        raise PrepareError(
            f"a worker process died (native crash or out of memory) while preparing one of: {names}; "
            f"finished clips are kept: rerun to continue, or move the culprit out of the input."
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
