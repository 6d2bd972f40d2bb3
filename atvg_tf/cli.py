"""The `atvg` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading
import traceback

# Quiet the native libraries' start-up chatter before they are imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GLOG_minloglevel", "2")

from atvg_tf import __version__  # noqa: E402
from atvg_tf.errors import AtvgError, InputError, one_line  # noqa: E402
from atvg_tf.utils.interrupts import Terminated, install_stop_handlers  # noqa: E402


def _add_model(parser) -> None:
    parser.add_argument("--model", metavar="MODEL_DIR", help="model folder (default: the model shipped in the package)")


def _add_quiet(parser, what: str = "no progress bar") -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help=what)


def _add_prepare(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="talking-face videos -> aligned training shards (TFRecord) + manifest",
        description=(
            "Walks files and folders of talking-face clips (GRID .mpg, LRW/VoxCeleb .mp4, any clip with "
            "sound), aligns the face of every frame to 128 x 128, and writes TFRecord shards with frames, "
            "68-point landmarks, PCA codes, MFCC and phone windows and GRID word timings, plus manifest.json. "
            "Rerunning the same command resumes: finished clips are skipped."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="VIDEO", help="clip files or folders of clips (searched recursively)")
    parser.add_argument("--output", "-o", required=True, metavar="PREPARED_DIR", help="output folder (rerun with the same one to resume)")
    parser.add_argument("--landmarks", choices=["mediapipe", "dlib"],
                        help="landmark backend (default: mediapipe, what the packaged model was trained with; "
                        "dlib when MediaPipe's model is not on the machine and cannot be downloaded)")
    parser.add_argument("--face-model", metavar="FILE", help="the backend's model file (face_landmarker.task or the dlib .dat)")
    parser.add_argument("--no-download", dest="allow_download", action="store_false",
                        help="never download face_landmarker.task (default: download it once into ~/.cache/atvg_tf if no local copy exists)")
    parser.add_argument("--download-models", action="store_true", help=argparse.SUPPRESS)  # the earlier opt-in; downloading is the default now
    parser.add_argument("--pca", metavar="FILE.npz",
                        help="landmark PCA basis: .npz from `atvg fit-pca` or an official U_*.npy (default: the packaged basis)")
    parser.add_argument("--split-by", choices=["clip", "speaker"], default="clip",
                        help="hash clip ids or speaker ids into splits (default: clip)")
    parser.add_argument("--speaker-level", type=int, default=0,
                        help="folder that names the speaker: 0 = the clip's folder, 1 = its parent, ... (default: 0)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the val split (default: 0.1)")
    parser.add_argument("--test-fraction", type=float, default=0.0, help="share of the test split (default: 0)")
    parser.add_argument("--max-gap-frames", type=int, default=5,
                        help="interpolate face-detection gaps up to this length; longer gaps cut the clip (default: 5)")
    parser.add_argument("--min-segment-frames", type=int, default=16, help="drop shorter segments (default: 16)")
    parser.add_argument("--clips-per-shard", type=int, default=32, help="clips per TFRecord shard (default: 32)")
    parser.add_argument("--no-phones", dest="phones", action="store_false",
                        help="do not write PocketSphinx phone windows (only MFCC-only AT-nets can train on the result)")
    parser.add_argument("--phone-posteriors", action="store_true",
                        help="also write PocketSphinx phone posterior windows, for AT-nets with a phone head "
                        "(--audio-features mfcc+phone_head; about 5 ms of one core per frame and audio variant)")
    parser.add_argument("--speech-embeddings", action="store_true",
                        help="also write speech embedding windows, for AT-nets with an embedding head "
                        "(--audio-features mfcc+embedding_head; about 1 ms of one core per frame and audio variant)")
    parser.add_argument("--audio-variants", type=int, default=0, metavar="N",
                        help="also write the audio features of N augmented copies of each clip's sound (reverb, noise, "
                        "band limits, EQ, pitch) for robust AT-net training (default: 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    parser.add_argument("--runner", choices=["local", "beam"], default="local",
                        help="local: this machine's worker processes (default); beam: an Apache Beam pipeline, on Beam's "
                        "local runner with --workers processes unless --beam-option names another (needs the [beam] extra)")
    parser.add_argument("--beam-option", action="append", default=[], metavar="FLAG",
                        help="a Beam pipeline flag, repeatable, e.g. --beam-option=--runner=FlinkRunner "
                        "--beam-option=--flink_master=HOST:8081 (README: `atvg prepare --runner beam` on a cluster)")
    _add_quiet(parser)
    parser.set_defaults(handler=_run_prepare)


def _run_prepare(args) -> int:
    from atvg_tf.data.prepare import PrepareConfig, prepare

    config = PrepareConfig(
        backend=args.landmarks or "mediapipe",
        landmark_fallback=args.landmarks is None,
        face_model=args.face_model,
        allow_download=args.allow_download,
        pca_path=args.pca,
        split_by=args.split_by,
        speaker_level=args.speaker_level,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        max_gap_frames=args.max_gap_frames,
        min_segment_frames=args.min_segment_frames,
        clips_per_shard=args.clips_per_shard,
        workers=args.workers,
        phones=args.phones,
        phone_posteriors=args.phone_posteriors,
        speech_embeddings=args.speech_embeddings,
        audio_variants=args.audio_variants,
    )
    if args.beam_option and args.runner != "beam":
        raise InputError("--beam-option needs --runner beam.")
    if args.runner == "beam":
        try:
            from atvg_tf.data.beam_prepare import prepare_with_beam
        except ImportError:
            raise InputError("--runner beam needs Apache Beam: pip install 'atvg-tf[beam]'.") from None
        manifest = prepare_with_beam(args.inputs, args.output, config, args.beam_option, progress=not args.quiet)
    else:
        manifest = prepare(args.inputs, args.output, config, progress=not args.quiet)
    counts = manifest["counts"]
    frames = ", ".join(f"{split} {n}" for split, n in counts["frames"].items() if n)
    print(
        f"prepared {counts['clips_prepared']}/{counts['clips_found']} clips ({counts['segments']} segments; frames: "
        f"{frames or 'none'}); skipped {counts['clips_skipped']}, failed {counts['clips_failed']}; "
        f"manifest: {os.path.join(args.output, 'manifest.json')}"
    )
    return 0


def _add_fit_pca(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit-pca",
        help="fit a landmark PCA basis on a prepared dataset",
        description="Fits the landmark PCA (ATVGnet Eq. 4) on the landmarks of a prepared dataset's train split.",
    )
    parser.add_argument("prepared", metavar="PREPARED_DIR", help="output folder of `atvg prepare`")
    parser.add_argument("--output", "-o", required=True, metavar="FILE.npz", help="where to write the basis")
    parser.add_argument("--components", type=int, default=6, help="number of components (default: 6, as the paper)")
    parser.add_argument("--split", default="train", choices=["train", "val", "test", "all"], help="split to fit on (default: train)")
    parser.set_defaults(handler=_run_fit_pca)


def _run_fit_pca(args) -> int:
    from atvg_tf.data.pipeline import fit_pca

    pca, frames = fit_pca(args.prepared, args.components, None if args.split == "all" else args.split)
    pca.save(args.output)
    explained = pca.explained_variance
    print(f"fitted {pca.num_components} components on {frames} frames; variances {[float(f'{v:.3g}') for v in explained]}; wrote {args.output}")
    return 0


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train AT-net (audio -> landmarks) or VG-net (landmarks -> frames, GAN) on prepared data",
        description=(
            "Trains with model.fit on the shards of `atvg prepare` (train split; val split for validation). "
            "The output folder gets best.keras, last.keras, backup/ and TensorBoard logs/. Rerunning the same "
            "command after an interruption resumes from the last backup."
        ),
    )
    parser.add_argument("network", choices=["atnet", "vgnet"], help="atnet (audio -> landmarks) or vgnet (landmarks + photo -> frames, GAN)")
    parser.add_argument("prepared", metavar="PREPARED_DIR", help="output folder of `atvg prepare`")
    parser.add_argument("--output", "-o", required=True, metavar="RUN_DIR", help="run folder (rerun with the same one to resume)")
    parser.add_argument("--config", default="cpu", metavar="NAME|FILE.json", help="training options: cpu (default), grid, lrw, or a JSON file")
    parser.add_argument("--preset", choices=["paper", "small"], help="network sizes (overrides the config)")
    parser.add_argument("--epochs", type=int, help="epochs to train (overrides the config)")
    parser.add_argument("--steps-per-epoch", type=int, help="training batches per epoch (overrides the config)")
    parser.add_argument("--validation-steps", type=int, help="validation batches after each epoch; 0 = no validation (overrides the config)")
    parser.add_argument("--batch-size", type=int, help="sequences per batch (overrides the config)")
    parser.add_argument("--audio-features", choices=["mfcc", "phones", "mfcc+phones", "mfcc+phone_head", "mfcc+embedding_head"],
                        help="atnet: what it hears: mfcc (the paper), phones (PocketSphinx phone windows, speaker-independent), "
                        "both, or mfcc with a linear head on phone posteriors or on speech embeddings (prepared with "
                        "--phone-posteriors or --speech-embeddings) (overrides the config; default: mfcc)")
    parser.add_argument("--audio-augmentation", type=float, metavar="P",
                        help="atnet: train on an augmented copy of the audio with probability P (needs `atvg prepare --audio-variants N`)")
    parser.add_argument("--init-from", metavar="MODEL_DIR",
                        help="start from this model folder's (or .keras file's) weights of the network instead of random ones")
    parser.add_argument("--pca", metavar="FILE.npz",
                        help="atnet: learn the codes of this landmark basis (from `atvg fit-pca`, e.g. on one person's footage) "
                        "instead of the prepared folder's; an --init-from model of another basis is rebased into it")
    parser.add_argument("--strategy", choices=["default", "mirrored", "multi_worker"], default="default",
                        help="tf.distribute strategy (default: one device); multi_worker: the TF_CONFIG cluster, every worker "
                        "running this command with the same --output on a shared filesystem")
    parser.add_argument("--data-service", metavar="ADDRESS",
                        help="make the training batches on tf.data service workers: their dispatcher's grpc://HOST:PORT "
                        "(see `atvg data-service`; the prepared folder must be at the same path on their hosts)")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None, help="XLA compilation (GPU only)")
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None, help="float16 compute (GPU only)")
    _add_quiet(parser, "no per-batch progress bar (one line per epoch)")
    parser.set_defaults(handler=_run_train)


def _run_train(args) -> int:
    from atvg_tf.training.train import TrainConfig, train

    config = TrainConfig.from_file(
        args.config, model_preset=args.preset, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        validation_steps=args.validation_steps, batch_size=args.batch_size, jit_compile=args.xla,
        mixed_precision=args.mixed_precision, audio_features=args.audio_features, audio_augmentation=args.audio_augmentation,
        init_from=args.init_from, pca_path=args.pca,
    )
    history = train(args.network, args.prepared, args.output, config, strategy=args.strategy, verbose=2 if args.quiet else "auto",
                    data_service=args.data_service)
    last = {name: f"{values[-1]:.4g}" for name, values in history.history.items()}
    print(f"trained {args.network} ({config.model_preset}); last epoch: {last}; checkpoints in {args.output}")
    other = "--vgnet RUN_OR_MODEL_DIR" if args.network == "atnet" else "--atnet RUN_OR_MODEL_DIR"
    print(f"make a model folder for --model: atvg bundle --{args.network} {args.output} {other} --output MODEL_DIR")
    return 0


def _add_data_service(subparsers) -> None:
    parser = subparsers.add_parser(
        "data-service",
        help="run a tf.data service dispatcher or worker: `atvg train --data-service` makes its batches there",
        description="Moves the training input pipeline (reading shards, decoding and augmenting frames) to other CPU "
        "hosts. Start one dispatcher, then one worker per host, then `atvg train ... --data-service grpc://HOST:PORT` "
        "with the dispatcher's address. Each serves until stopped (Ctrl-C or SIGTERM).",
    )
    parser.add_argument("role", choices=["dispatcher", "worker"], help="dispatcher (one per cluster) or worker (one per CPU host)")
    parser.add_argument("--port", type=int, help="port to serve on (default: 5050 for the dispatcher, 5051 for a worker; 0 = any free port)")
    parser.add_argument("--dispatcher", metavar="ADDRESS", help="worker: the dispatcher's HOST:PORT")
    parser.add_argument("--host", help="worker: the name the dispatcher and the trainers reach this machine by (default: its host name)")
    parser.set_defaults(handler=_run_data_service)


def _run_data_service(args) -> int:
    import time

    from atvg_tf.training.data_service import DEFAULT_DISPATCHER_PORT, start_dispatcher, start_worker

    if args.role == "dispatcher":
        if args.dispatcher or args.host:
            raise InputError("--dispatcher and --host are worker options; start the dispatcher with --port only.")
        port = DEFAULT_DISPATCHER_PORT if args.port is None else args.port
        server = start_dispatcher(port)
        print(f"tf.data service dispatcher on port {port}: start workers with `atvg data-service worker --dispatcher "
              f"THIS_HOST:{port}`, then train with --data-service grpc://THIS_HOST:{port}; Ctrl-C stops it", flush=True)
    else:
        if not args.dispatcher:
            raise InputError("a worker needs --dispatcher HOST:PORT (the address of `atvg data-service dispatcher`).")
        port = DEFAULT_DISPATCHER_PORT + 1 if args.port is None else args.port
        server = start_worker(args.dispatcher, port, args.host)
        print(f"tf.data service worker on port {port or 'any'}, registered with {args.dispatcher}; Ctrl-C stops it", flush=True)
    while server:  # it serves from its own threads (while referenced); sleeping here lets Ctrl-C and SIGTERM through
        time.sleep(1)
    return 0


def _add_bundle(subparsers) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="training runs -> a model folder that generate, evaluate, export and finetune accept",
        description="Takes AT-net from --atnet (a run folder of `atvg train atnet`: its best.keras, with the PCA basis of "
        "its prepared data; or a model folder) and VG-net from --vgnet (a run folder of `atvg train vgnet`: the generator "
        "of its last.keras; or a model folder), and writes a model folder with their configurations in training.json.",
    )
    parser.add_argument("--atnet", metavar="RUN_OR_MODEL_DIR", help="where AT-net comes from (default: the packaged model)")
    parser.add_argument("--vgnet", metavar="RUN_OR_MODEL_DIR", help="where VG-net comes from (default: the packaged model)")
    parser.add_argument("--output", "-o", required=True, metavar="MODEL_DIR", help="the model folder to write (must not exist)")
    parser.set_defaults(handler=_run_bundle)


def _run_bundle(args) -> int:
    from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR
    from atvg_tf.training.bundle import bundle

    if not args.atnet and not args.vgnet:
        raise InputError("give --atnet RUN_DIR and/or --vgnet RUN_DIR (the other network comes from the packaged model).")
    for flag, path in (("--atnet", args.atnet), ("--vgnet", args.vgnet)):
        if path and not os.path.isdir(path):
            raise InputError(f"{flag} {path} is not a folder; give a run folder of `atvg train` or a model folder.")
    model = bundle(args.atnet or DEFAULT_MODEL_DIR, args.vgnet or DEFAULT_MODEL_DIR, args.output, command=" ".join(["atvg", *sys.argv[1:]]))
    features = model.audio_inputs
    print(f"wrote {args.output} (AT-net hears {', '.join(features)}); use it with --model {args.output}")
    return 0


def _add_finetune(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="your own avatar: fine-tune a model on a short video of one person (with their speech)",
        description="Checks that the videos show one person, holds out the last 15%% of each, prepares the rest and "
        "fine-tunes AT-net and VG-net (pixel loss) from the packaged model (or --from) within --minutes of training. Writes "
        "a model folder for `atvg generate --model` with finetune_report.json (held-out LMD, SSIM, sharpness before and "
        "after) and finetune_contact_sheet.png (real | before | after). Progress is kept in OUTPUT.work/: rerun the "
        "same command after an interruption to continue.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="videos of the person talking, with sound (a minute is plenty)")
    parser.add_argument("--output", "-o", required=True, metavar="MODEL_DIR", help="the model folder to write (must not exist)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget in minutes (default: 15)")
    parser.add_argument("--from", dest="base", metavar="MODEL_DIR",
                        help="the model to start from (default: the packaged model; a converted official model is "
                        "moved into this project's landmark convention first)")
    parser.add_argument("--sound-as-recorded", action="store_true",
                        help="train and score on the sound as recorded, even where it is measured out of step with the picture")
    parser.add_argument("--person-basis", action="store_true",
                        help="fit AT-net's landmark basis on the footage instead of keeping the base model's: closer "
                        "VG-net frames (--renderer vgnet), not closer default-renderer frames")
    _add_quiet(parser, "no progress bars")
    parser.set_defaults(handler=_run_finetune)


def _run_finetune(args) -> int:
    from atvg_tf.avatar.finetune import FinetuneConfig, finetune
    from atvg_tf.avatar.report import format_summary

    for video in args.videos:
        if not os.path.isfile(video):
            raise InputError(f"video not found: {video}; check the path.")
    if args.base and not os.path.isdir(args.base):
        raise InputError(f"--from {args.base} is not a folder; give a model folder.")
    config = FinetuneConfig(minutes=args.minutes, correct_av_offset=not args.sound_as_recorded, person_basis=args.person_basis)
    report = finetune(args.videos, args.output, args.base, config, progress=not args.quiet, log=lambda line: print(line, flush=True))
    print(format_summary(report))
    print(f"wrote {args.output} (report: finetune_report.json, contact sheet: finetune_contact_sheet.png); "
          f"use it with --model {args.output}")
    return 0


def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="generate test clips from their first frame and audio; LMD, SSIM, PSNR vs the static baseline, lip-sync, renderer scores",
        description=(
            "For each clip (with sound) the first aligned frame is the identity and the clip's audio drives the "
            "model; the generated frames are compared with the real aligned frames. The JSON report has per-clip "
            "rows and means for the model and for the static baseline (the identity frame repeated)."
        ),
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="clips with sound (the first frame is the identity)")
    _add_model(parser)
    report = parser.add_mutually_exclusive_group(required=True)
    report.add_argument("--output", "-o", metavar="FILE.json", help="the JSON report to write")
    report.add_argument("--report", dest="output", help=argparse.SUPPRESS)  # the earlier name of --output
    parser.add_argument("--landmarks", choices=["mediapipe", "dlib"],
                        help="detector for alignment and LMD (default: the model's, as for generate: dlib for converted official models)")
    parser.add_argument("--renderers", nargs="*", choices=["hybrid", "vgnet"], default=["hybrid", "vgnet"], metavar="RENDERER",
                        help="also render each clip into its first frame with these renderers (hybrid, vgnet; default both; none: "
                        "give the flag alone) and report LMD, lip-sync, sharpness_ratio, static_region_error and lip_colour_delta_e")
    parser.add_argument("--audio-offset", type=int, default=0, metavar="FRAMES",
                        help="the clips' sound runs FRAMES frames (25 fps) ahead of their picture (negative: behind it); it is "
                        "moved that much later before scoring (measure it with benchmarks/bench_av_offset.py; default 0)")
    _add_quiet(parser)
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> int:
    from atvg_tf.evaluation.evaluate import evaluate, format_table, write_report
    from atvg_tf.generation.model import TalkingFaceModel

    for video in args.videos:
        if not os.path.isfile(video):
            raise InputError(f"video not found: {video}; check the path.")
    if abs(args.audio_offset) > 25:
        raise InputError(f"--audio-offset {args.audio_offset} is over a second; give the offset in frames at 25 fps.")
    report = evaluate(args.videos, TalkingFaceModel.load(args.model), args.landmarks, progress=not args.quiet,
                      renderers=tuple(dict.fromkeys(args.renderers)), audio_offset_frames=args.audio_offset)
    if not report["clips"]:  # a report of nothing is not a result
        first = report["skipped"][0]
        raise InputError(f"none of the {len(args.videos)} clip(s) could be evaluated ({first['clip']}: {first['reason']}); "
                         f"give clips with sound and a visible face for at least 16 frames.")
    write_report(report, args.output)
    print(format_table(report))
    return 0


def _add_generate(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="photo + speech -> talking-face MP4 (H.264 + AAC, 25 fps)",
        description="Detects and aligns the face of the photo, predicts landmarks from the speech (AT-net), renders "
        "the frames (VG-net) and writes an MP4 with the speech. Uses the model shipped in the package unless --model is given.",
    )
    parser.add_argument("--image", required=True, metavar="PHOTO", help="photo with a face (jpg, png, ...)")
    parser.add_argument("--audio", required=True, metavar="SPEECH", help="speech: wav, flac, mp3, m4a or a video file's sound")
    parser.add_argument("--output", "-o", required=True, metavar="OUT.mp4", help="the video to write (H.264 + AAC)")
    _add_model(parser)
    parser.add_argument("--landmarks", choices=["mediapipe", "dlib"],
                        help="landmark backend for the photo (default: the model's, dlib for converted official models; else mediapipe)")
    parser.add_argument("--face-index", type=int, default=0, help="which face when the photo has several (0 = largest)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--paste-back", dest="mode", action="store_const", const="paste-back", help="the face back in the full photo (default)")
    mode.add_argument("--crop", dest="mode", action="store_const", const="crop", help="the 128 x 128 aligned crops, as the paper")
    mode.add_argument("--panels", dest="mode", action="store_const", const="panels",
                      help="rendered face | VG-net frame | attention | motion | landmarks")
    parser.add_argument("--renderer", choices=["hybrid", "vgnet"], default="hybrid",
                        help="hybrid (default): the photo's own face at full resolution, its lips and jaw moved by the predicted "
                        "landmarks, VG-net only inside an opening mouth; vgnet: VG-net's 128 px frames where the face changes (the paper)")
    parser.add_argument("--runtime", choices=["auto", "keras", "litert", "openvino"], default="auto",
                        help="what runs the networks: litert (the model's TF-Lite models, built once per model and precision and "
                        "cached in ~/.cache/atvg_tf/litert or $ATVG_CACHE_DIR/litert), openvino (the same float32 TF-Lite models "
                        "run by OpenVINO), keras, or auto (default: keras where TensorFlow sees a GPU, else openvino on x86-64 "
                        "CPUs, else litert)")
    parser.add_argument("--precision", choices=["float32", "float16", "dynamic", "int8", "bfloat16"],
                        help="litert: the TF-Lite variant (a precision alone implies litert, except bfloat16 and, on x86-64 CPUs, "
                        "int8; default: dynamic, int8 weights, within 50 dB PSNR of Keras; int8: int8 activations too, furthest "
                        "from Keras); openvino: bfloat16 (default: VG-net in bfloat16 where the CPU computes it natively, within "
                        "50 dB of Keras), float32, or int8 (VG-net's step quantized by NNCF once, the fastest for large networks)")
    parser.add_argument("--landmarks-out", metavar="FILE.npy", help="also save the predicted landmarks [T, 68, 2] (crop pixels)")
    parser.add_argument("--motion-gain", type=float, metavar="G",
                        help="scale the predicted mouth and face motion (default: the model's own, 1.0 unless its training.json sets it); "
                        "lips that a larger motion would push through each other meet instead")
    parser.add_argument("--as-predicted", action="store_true",
                        help="hybrid renderer: the mouth moves exactly as AT-net predicts, without the model's motion level "
                        "(which raises the motion of a voice the model moves too little for to what it does for its training "
                        "speech) and its factor on the vertical motion (the packaged model's 1.2 makes good what rendering "
                        "loses of the opening; docs/METHOD.md), for models that have them")
    parser.add_argument("--raw-mfcc", action="store_true",
                        help="AT-net hears the raw MFCC, as in the paper, without the model's voice normalisation "
                        "(which maps the speech's cepstral statistics onto its training voices'; docs/METHOD.md), for models that have one")
    _add_quiet(parser)
    parser.set_defaults(handler=_run_generate, mode="paste-back")


def _import_in_background(module: str) -> None:
    """Starts importing `module` in a thread; an import that fails is reported where it is used."""
    def load() -> None:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the runtime's own import raises it again, as a one-line error
            pass

    threading.Thread(target=load, name=f"atvg-import-{module}", daemon=True).start()


def _run_generate(args) -> int:
    from atvg_tf.export.litert_runtime import load_model, resolve_runtime
    from atvg_tf.frontend.audio import iter_audio
    from atvg_tf.frontend.image import load_image
    from atvg_tf.generation.talking_face import TalkingFace

    if not args.output.lower().endswith(".mp4"):
        raise InputError(f"--output must end in .mp4, got {args.output}.")
    if args.face_index < 0:
        raise InputError(f"--face-index must be 0 (the largest face) or more, got {args.face_index}.")
    runtime, precision = resolve_runtime(args.runtime, args.precision, args.model)
    if runtime == "keras":
        from atvg_tf._native import import_quietly

        import_quietly(args.verbose)
    if runtime == "openvino":  # its import (0.2 s) overlaps reading the photo and the speech
        _import_in_background("openvino")
    _check_generate_outputs(args)
    image = load_image(args.image)
    next(iter_audio(args.audio))  # fail fast on unusable speech, before the models load
    if args.motion_gain is not None and not 0.0 <= args.motion_gain <= 5.0:
        raise InputError(f"--motion-gain must be between 0 and 5, got {args.motion_gain}.")
    model = load_model(args.model, runtime, precision,
                       progress=None if args.quiet else lambda message: print(f"atvg generate: {message}", file=sys.stderr))
    with TalkingFace(model, args.landmarks) as talker:
        if args.motion_gain is not None:
            talker.model.landmark_space.motion_gain = args.motion_gain
        if args.raw_mfcc:
            talker.model.mfcc_normalization = None
        if args.as_predicted:
            talker.model.motion_level, talker.model.hybrid_motion_gain = None, 1.0
        summary = talker.write_video(
            image, args.audio, args.output, args.mode, args.face_index, args.landmarks_out, progress=not args.quiet,
            renderer=args.renderer,
        )
    print(summary)
    return 0


def _check_generate_outputs(args) -> None:
    """Refuses, before any work, outputs that would replace an input, land on a folder or in a missing one."""
    inputs = {"--image": args.image, "--audio": args.audio}
    for flag, path in (("--output", args.output), ("--landmarks-out", args.landmarks_out)):
        if path is None:
            continue
        if os.path.isdir(path):
            raise InputError(f"{flag} {path} is a folder; give a file name inside it.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise InputError(f"cannot write {flag} {path}: {folder} is not a writable folder; create it or choose another path.")
        for name, source in inputs.items():
            if os.path.exists(path) and os.path.exists(source) and os.path.samefile(path, source):
                raise InputError(f"{flag} {path} is the {name} file itself; choose another {flag} (atvg never overwrites its inputs).")


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="a model folder -> SavedModel for TF-Serving, or streaming TF-Lite models",
        description="saved_model: the cascade (MFCC front end, AT-net, landmark decoding, VG-net) as a versioned SavedModel "
        "(<output>/<version>/saved_model.pb) with the signatures serving_default (waveform + identity -> frames), "
        "generate_from_mfcc and landmarks; for an AT-net that hears phones, serving_default and landmarks take the "
        "audio windows computed by the client (PocketSphinx does not run in a graph). tflite: per-frame streaming models "
        "(mfcc, identity_encoder, atnet_step, vgnet_step; builtin ops only) in float32, float16, dynamic-range int8 and full int8. "
        "Uses the model shipped in the package unless --model is given.",
    )
    parser.add_argument("--format", choices=["saved_model", "tflite"], default="saved_model", help="what to write (default: saved_model)")
    _add_model(parser)
    parser.add_argument("--output", "-o", required=True, metavar="EXPORT_DIR",
                        help="saved_model: the base folder TF-Serving watches; tflite: the folder for the .tflite files")
    version = parser.add_mutually_exclusive_group()
    version.add_argument("--serving-version", type=int, default=1, metavar="N", help="saved_model: version folder to write (default: 1)")
    version.add_argument("--version", dest="serving_version", type=int, help=argparse.SUPPRESS)  # the earlier name
    parser.add_argument("--variants", nargs="+", default=["float32", "float16", "dynamic", "int8"], metavar="VARIANT",
                        help="tflite: float32, float16, dynamic, int8 (default: all)")
    parser.add_argument("--calibration", metavar="PREPARED_DIR",
                        help="tflite int8: calibrate on a folder written by `atvg prepare` "
                        "(default: the real faces and speech shipped in the package)")
    parser.add_argument("--calibration-samples", type=int, default=128, metavar="N", help="tflite int8: samples per network (default: 128)")
    parser.add_argument("--avatar", metavar="PHOTO", help="tflite: also write avatar.npz (the photo's aligned face) for mobile_demo")
    _add_quiet(parser, "no progress lines")
    parser.set_defaults(handler=_run_export)


def _run_export(args) -> int:
    from atvg_tf.generation.model import TalkingFaceModel

    model = TalkingFaceModel.load(args.model)
    if args.format == "saved_model":
        from atvg_tf.export.saved_model import export_saved_model, signature_names

        destination = export_saved_model(model, args.output, args.serving_version)
        print(f"wrote {destination} (signatures: {', '.join(signature_names(model))})")
        return 0
    from atvg_tf.export.tflite import export_tflite, write_avatar

    if args.avatar:
        write_avatar(args.avatar, args.output, model)
    written = export_tflite(model, args.output, args.variants, args.calibration, args.calibration_samples,
                            progress=None if args.quiet else lambda name: print(f"converting {name}", flush=True))
    print(f"wrote {len(written)} TF-Lite models to {args.output}")
    return 0


def _add_convert_official(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-official",
        help="the official ATVGnet PyTorch checkpoints -> a model folder",
        description="Maps every tensor of the release's atnet_lstm_18.pth and generator_23.pth onto AT-net (paper) and "
        "VG-net (official: conv-GRU, PyTorch alignment) and writes a model folder that generate, evaluate and export "
        "accept, with the release's LRW landmark basis. Needs PyTorch: pip install '.[convert]'.",
    )
    parser.add_argument("--atnet", required=True, metavar="PTH", help="atnet_lstm_18.pth")
    parser.add_argument("--vgnet", required=True, metavar="PTH", help="generator_23.pth")
    parser.add_argument("--basics", required=True, metavar="BASICS_DIR", help="the release's basics/ folder (U_lrw1.npy, mean_lrw1.npy, ...)")
    parser.add_argument("--output", "-o", required=True, metavar="MODEL_DIR", help="the model folder to write (must not exist)")
    parser.set_defaults(handler=_run_convert_official)


def _run_convert_official(args) -> int:
    from atvg_tf.convert.convert_official import convert_official

    print(f"wrote {convert_official(args.atnet, args.vgnet, args.basics, args.output)}")
    return 0


def _add_app(subparsers) -> None:
    parser = subparsers.add_parser(
        "app",
        help="a web page where anyone makes a photo talk (Gradio; pip install '.[app]')",
        description="Serves a page on this machine (by default only to itself: 127.0.0.1) where a photo and speech, "
        "uploaded or taken with the webcam and microphone, become a talking-face video to watch and download. "
        "The same generation is an API endpoint, /generate, for gradio_client. Nothing is shared publicly and no "
        "usage data is sent; each request's files go to a folder of their own, deleted after an hour.",
    )
    _add_model(parser)
    parser.add_argument("--models-dir", metavar="DIR", help="also offer every model folder directly under DIR (e.g. converted official weights)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only; 0.0.0.0: every network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--share-nothing", action="store_true", help="the page only: no API endpoint and no API page")
    parser.add_argument("--max-audio-seconds", type=float, default=60.0, metavar="S", help="longest speech accepted (default: 60)")
    parser.add_argument("--max-image-pixels", type=float, default=20e6, metavar="N", help="largest photo accepted (default: 20e6)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, metavar="MB", help="largest uploaded file (default: 50)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N", help="videos generated at once; others wait in a queue (default: 1)")
    parser.add_argument("--outputs", metavar="DIR", help="where results are written (default: a new temporary folder)")
    parser.add_argument("--runtime", choices=["auto", "keras", "litert", "openvino"], default="auto", help="as atvg generate (default: auto)")
    parser.set_defaults(handler=_run_app)


def _run_app(args) -> int:
    import tempfile

    from atvg_tf.app.service import AppLimits, TalkingFaceService, find_models
    from atvg_tf.export.litert_runtime import resolve_runtime

    if resolve_runtime(args.runtime)[0] == "keras":
        from atvg_tf._native import import_quietly

        import_quietly(args.verbose)
    try:
        from atvg_tf.app.page import serve
    except ImportError as error:
        raise InputError(f"atvg app needs Gradio ({error.name} is missing); install it with pip install '.[app]'.") from None
    for name, value in (("--max-audio-seconds", args.max_audio_seconds), ("--max-image-pixels", args.max_image_pixels),
                        ("--max-upload-mb", args.max_upload_mb)):
        if not value > 0:
            raise InputError(f"{name} must be above 0, got {value:g}.")
    limits = AppLimits(args.max_audio_seconds, int(args.max_image_pixels), args.max_upload_mb, args.concurrency)
    models = find_models(args.models_dir)
    if args.model:
        models = {"default": args.model, **{k: v for k, v in models.items() if k != "default"}}
    outputs = os.path.abspath(args.outputs or tempfile.mkdtemp(prefix="atvg-app-"))
    service = TalkingFaceService(models, outputs, limits, args.runtime)
    print(f"atvg app: loading the {next(iter(models))} model", file=sys.stderr, flush=True)
    service.preload(next(iter(models)))
    examples = os.path.join(outputs, "examples")
    os.makedirs(examples, exist_ok=True)
    serve(service, examples, args.host, args.port, api=not args.share_nothing)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atvg",
        description="atvg-tf: ATVGnet talking-face generation in TensorFlow / Keras 3.",
    )
    parser.add_argument("--version", action="version", version=f"atvg-tf {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="more log output, and a traceback with every error")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    _add_prepare(subparsers)
    _add_fit_pca(subparsers)
    _add_train(subparsers)
    _add_data_service(subparsers)
    _add_bundle(subparsers)
    _add_finetune(subparsers)
    _add_evaluate(subparsers)
    _add_generate(subparsers)
    _add_export(subparsers)
    _add_convert_official(subparsers)
    _add_app(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="atvg: %(levelname)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    restore_handlers = install_stop_handlers()
    try:
        # generate and app import TensorFlow only for the keras runtime; prepare never needs it
        if args.command not in ("generate", "app", "prepare"):
            from atvg_tf._native import import_quietly

            import_quietly(args.verbose)
        return args.handler(args)
    except (AtvgError, OSError) as error:
        # The user's input or environment: one line that says what to do (a traceback only when asked).
        if args.verbose:
            traceback.print_exc()
        print(f"atvg {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        return _interrupted(args.command, interrupt)
    except Exception as error:
        interrupt = _caused_by_interrupt(error)
        if interrupt:  # Ctrl-C inside a native module's import: "ImportError: initialization failed"
            return _interrupted(args.command, interrupt)
        # Anything else is a bug: show where it happened so it can be reported.
        traceback.print_exc()
        print(f"atvg {args.command}: internal error (a bug in atvg, not in your input); please report it with the traceback above.",
              file=sys.stderr)
        return 1
    finally:
        restore_handlers()


def _interrupted(command: str, interrupt: KeyboardInterrupt) -> int:
    resumable = command in ("prepare", "train", "finetune")
    outcome = "finished work is kept, rerun the command to continue" if resumable else "no output was written"
    terminated = isinstance(interrupt, Terminated)
    print(f"atvg {command}: {'stopped by SIGTERM' if terminated else 'interrupted'}; {outcome}.", file=sys.stderr)
    return 143 if terminated else 130


def _caused_by_interrupt(error: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt in the exception's chain of causes, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


if __name__ == "__main__":
    sys.exit(main())
