"""`atvg prepare --runner beam`: the per-clip work of `atvg prepare` as an Apache Beam pipeline.

The same `ClipPreparer` (decode, landmarks, alignment, MFCC and phone windows, PCA codes) runs in a
`DoFn` that loads the landmark model once per worker (`setup`); each split's records go through
Beam's TFRecord sink into a staging folder, `<output>/.beam-staging/`. When the job has finished,
the launcher reads the staged shards once to see which clips and how many frames each holds,
renames them into place with the local runner's names (`train-00000.tfrecord`, numbered on from
the shards already there), and writes the same journal and manifest as the local runner. So the
output folder is the local runner's in every way: `tf.data` reads it unchanged, and a rerun (with
either runner) prepares only the clips not in it yet. A job that fails or is interrupted leaves
nothing but the staging folder, which the next run removes.

Every worker must see the inputs and the output folder at the same paths as the launcher: on one
machine that is a given; on a cluster (Flink, Spark, Dataflow) they sit on a shared filesystem.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import os
import shutil
from collections import Counter, defaultdict

# Beam warns at import about Google Cloud client libraries that only its GCP I/O needs.
logging.disable(logging.WARNING)
try:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
finally:
    logging.disable(logging.NOTSET)

from atvg_tf.data import shards  # noqa: E402
from atvg_tf.data.prepare import PrepareRun, start_run  # noqa: E402
from atvg_tf.data.prepare_config import SPLITS, ClipJob, PrepareConfig, PrepareError  # noqa: E402

STAGING = ".beam-staging"
ENTRIES = "entries"


def local_beam_options(workers: int) -> list[str]:
    """Beam's local runner, one SDK worker process per core: the default of `--runner beam`."""
    return ["--runner=DirectRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}",
            "--default_sdk_harness_log_level=WARNING"]


class PrepareClipFn(beam.DoFn):
    """(path, clip_id, speaker_id, split) -> the clip's serialised segments, tagged with its split,
    and its manifest entry as JSON, tagged `entries`."""

    def __init__(self, config_fields: dict):
        self.config_fields = config_fields
        self.preparer = None

    def setup(self):
        from atvg_tf.data._worker import build_preparer

        self.preparer = build_preparer(self.config_fields)

    def process(self, job: tuple):
        result = self.preparer(ClipJob(*job))
        entry = result["entry"]
        for record in result["records"]:
            yield beam.pvalue.TaggedOutput(entry["split"], record)
        yield beam.pvalue.TaggedOutput(ENTRIES, json.dumps(entry))

    def teardown(self):
        if self.preparer is not None:
            self.preparer.detector.close()


def prepare_with_beam(inputs: list[str], output: str, config: PrepareConfig = PrepareConfig(),
                      beam_options: list[str] = (), progress: bool = True) -> dict:
    """`atvg prepare` on Apache Beam; see the module docstring.

    Args:
        inputs, output, config: as `prepare.prepare` (`config.workers` sizes the local runner).
        beam_options: Beam pipeline flags (`--runner=FlinkRunner`, ...), after the local defaults.
        progress: say what runs where.

    Returns:
        The manifest (also written to `<output>/manifest.json`).
    """
    run = start_run(inputs, output, config)
    staging = os.path.join(output, STAGING)
    shutil.rmtree(staging, ignore_errors=True)  # an earlier job that did not finish
    if run.jobs:
        options = PipelineOptions([*local_beam_options(run.config.workers), *beam_options])
        if progress:
            runner = options.get_all_options()["runner"]
            print(f"preparing {len(run.jobs)} clips on Apache Beam ({runner})", flush=True)
        os.makedirs(staging)
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
        try:
            _run_pipeline(run, staging, options)
        except Exception as error:  # the runner's own errors: a bad flag, a lost worker, ...
            shutil.rmtree(staging, ignore_errors=True)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise PrepareError(f"the Beam job failed ({error.__class__.__name__}: {reason}); none of its clips were kept: "
                               f"fix the cause (check the --beam-option flags) and rerun.") from error
        _move_into_place(output, staging, run)
        shutil.rmtree(staging)
    manifest = shards.build_manifest(output, run.settings, run.events, run.clips_found)
    shards.write_manifest(output, manifest)
    return manifest


def _run_pipeline(run: PrepareRun, staging: str, options: PipelineOptions) -> None:
    per_split = Counter(job.split for job in run.jobs)
    with beam.Pipeline(options=options) as pipeline:
        prepared = (
            pipeline
            | "Clips" >> beam.Create([dataclasses.astuple(job) for job in run.jobs])
            | "Spread" >> beam.Reshuffle()  # one clip per work item, so the workers share them
            | "Prepare" >> beam.ParDo(PrepareClipFn(run.config.to_fields())).with_outputs(ENTRIES, *SPLITS)
        )
        for split, count in per_split.items():
            _ = prepared[split] | f"Write {split}" >> beam.io.WriteToTFRecord(
                os.path.join(staging, split), file_name_suffix=".tfrecord",
                num_shards=math.ceil(count / run.config.clips_per_shard), shard_name_template="-SSSSS")
        _ = prepared[ENTRIES] | "Write entries" >> beam.io.WriteToText(os.path.join(staging, ENTRIES), file_name_suffix=".jsonl")


def _move_into_place(output: str, staging: str, run: PrepareRun) -> None:
    """Renames the staged shards to the local runner's names and journals them and the skipped clips."""
    entries = {}
    for path in sorted(glob.glob(os.path.join(staging, f"{ENTRIES}*.jsonl"))):
        with open(path) as handle:
            entries.update((entry["id"], entry) for entry in map(json.loads, handle))
    listed = set()
    for split in SPLITS:
        next_index = shards.next_shard_index(output, split)
        for staged in sorted(glob.glob(os.path.join(staging, f"{split}-*.tfrecord"))):
            frames_per_clip = _clip_frames(staged)
            if not frames_per_clip:  # the sink writes every shard it was asked for, empty ones too
                continue
            name = f"{split}-{next_index:05d}.tfrecord"
            os.replace(staged, os.path.join(output, name))
            next_index += 1
            # A clip's segments may land in different shards; its entry goes with the first.
            clips = [entries[clip_id] for clip_id in sorted(frames_per_clip) if clip_id not in listed]
            listed.update(frames_per_clip)
            records = sum(count for count, _ in frames_per_clip.values())
            frames = sum(frames for _, frames in frames_per_clip.values())
            _log(output, run, {"type": "shard", "shard": {"file": name, "split": split, "records": records, "frames": frames},
                               "clips": clips})
    for clip_id, entry in sorted(entries.items()):
        if entry["status"] != "ok":
            _log(output, run, {"type": entry["status"], "clip": entry})
        elif clip_id not in listed:
            raise PrepareError(f"Beam reported {clip_id} prepared but none of its records reached a shard; rerun.")


def _clip_frames(path: str) -> dict[str, tuple[int, int]]:
    """{clip id: (records, frames)} of one shard."""
    from atvg_tf._native import import_quietly

    import_quietly()
    import tensorflow as tf

    spec = {"clip_id": tf.io.FixedLenFeature([], tf.string), "num_frames": tf.io.FixedLenFeature([], tf.int64)}
    found = defaultdict(lambda: (0, 0))
    for batch in tf.data.TFRecordDataset(path).batch(256).map(lambda records: tf.io.parse_example(records, spec)):
        for clip_id, frames in zip(batch["clip_id"].numpy(), batch["num_frames"].numpy()):
            records, total = found[clip_id.decode()]
            found[clip_id.decode()] = (records + 1, total + int(frames))
    return dict(found)


def _log(output: str, run: PrepareRun, event: dict) -> None:
    shards.append_event(output, event)
    run.events.append(event)
