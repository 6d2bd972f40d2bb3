"""`atvg finetune`: a model of one person from a short video of them, within a wall-clock budget.

Steps, each kept in a work folder beside the output (`<output>.work/`) so that rerunning the same
command after an interruption continues where it stopped:

1. the footage shows one person (`footage.check_one_person`);
2. each video is cut into its first 85 % (trained on) and its last 15 % (held out, measured on);
3. `atvg prepare` of the training parts, with the base model's landmark detector and PCA basis
   (a converted official model: the packaged basis, and its networks are moved into crop pixels
   first, `official_start.py`, then fine-tuned from there);
4. each video's audio-video offset is measured on its training part (`evaluation.av_offset`, no
   model involved): footage whose sound runs late or early is trained and scored with it in step;
   with `person_basis`, a landmark basis is also fitted on the training part (the person's own
   mouth shapes and head motion), into which AT-net is rebased (`training.rebase`) and fine-tuned,
   and whose decoded mouth shapes the model then draws (`CropLandmarks.mouth_from_basis`);
5. the base model is scored on the held-out parts (before);
6. AT-net, then VG-net (on the pixel loss alone), are trained on from the base model's weights, sharing the budget;
   a base whose AT-net has a speech head (the packaged model's) has its MFCC network trained, and
   gets the head back with its share afterwards, moved into the person's basis when there is one;
7. the model folder is written, scored on the held-out parts (after), with a contact sheet and the
   first held-out frame as `photo.jpg`, and moved to `<output>` only when complete; the work
   folder is then deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time

import cv2

from atvg_tf.avatar.footage import check_one_person, split_video
from atvg_tf.avatar.official_start import crop_convention_model
from atvg_tf.avatar.report import contact_sheet, summarize
from atvg_tf.data.discovery import sound_source
from atvg_tf.data.pipeline import fit_pca
from atvg_tf.data.prepare import PrepareConfig, prepare
from atvg_tf.errors import InputError
from atvg_tf.evaluation.av_offset import clip_offsets
from atvg_tf.evaluation.evaluate import evaluate, write_report
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.video import read_frames
from atvg_tf.generation.landmark_space import OfficialLandmarks
from atvg_tf.generation.model import TalkingFaceModel, network_configs
from atvg_tf.generation.model_folder import DEFAULT_MODEL_DIR
from atvg_tf.models.config import HEAD_WEIGHT_FIELDS, HEADED_FEATURES, ATNetConfig, VGNetConfig
from atvg_tf.training.bundle import bundle
from atvg_tf.training.phone_head import with_head_of
from atvg_tf.training.time_budget import TimeBudget
from atvg_tf.training.train import TrainConfig, train
from atvg_tf.utils.files import atomic_write

JOURNAL = "finetune.json"
REPORT_FILE, SHEET_FILE, HELDOUT_DIR = "finetune_report.json", "finetune_contact_sheet.png", "heldout"
PHOTO_FILE = "photo.jpg"
NETWORKS = ("atnet", "vgnet")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Options of `atvg finetune`.

    Attributes:
        minutes: wall-clock budget of the training (preparing and scoring come on top).
        heldout_fraction: the tail of each video kept out of training and scored on.
        atnet_share: AT-net's part of the budget (VG-net, the slower network, gets the rest).
        atnet_learning_rate, vgnet_learning_rate: Adam learning rates.
        atnet_ema_momentum: AT-net's checkpoints are the moving average of its weights with this
            momentum (0: the last weights).
        atnet_steps, vgnet_steps: batches per epoch (checkpoints are written at each epoch's end).
        mouth_pixel_weight: VG-net's extra pixel-loss weight inside the mouth box.
        vgnet_discriminator_weight: 0 trains VG-net on the pixel loss alone (see `VGNetGAN`), 1 as a GAN.
        seed: seed of the pipeline (and of the discriminator, when one is trained).
        correct_av_offset: measure each video's audio-video offset and train and score with its
            sound in step (False: as recorded).
        person_basis: fit AT-net's landmark basis (as many codes as the base model's) on the
            training footage and rebase AT-net into it (False: keep the base model's).
    """

    minutes: float = 15.0
    heldout_fraction: float = 0.15
    atnet_share: float = 0.2
    # 2e-4 (the paper's) gave held-out LMD 1.105 and SSIM 0.717 against 1.127 and 0.703 at 1e-4
    # (edtalk_pose_source2_60s.mp4, 15 min, atnet_share 0.2 and 0.25). In the person's basis, 3
    # minutes of AT-net gave 0.913 at 2e-4, 0.911 at 5e-4 and 0.993 at 1e-3 (the same VG-net).
    atnet_learning_rate: float = 2e-4
    vgnet_learning_rate: float = 2e-4
    # 3 minutes of AT-net in the person's basis on that footage, held-out landmark LMD (mouth from
    # the basis): seeds 0-2 at 2e-4, 0.897 / 0.832 / 0.850 with the average at 0.99, 0.943 for seed
    # 0 with the last weights; at 5e-4, 0.885-0.899 averaged against 0.882-0.978 last.
    atnet_ema_momentum: float = 0.99
    atnet_steps: int = 25
    vgnet_steps: int = 25
    mouth_pixel_weight: float = 10.0
    vgnet_discriminator_weight: float = 0.0
    seed: int = 0
    correct_av_offset: bool = True
    # The packaged basis, fitted on GRID s1, holds edtalk_pose_source2_60s's held-out landmarks to
    # LMD 0.91 at best; one fitted on his training part to 0.51 (six codes each). It brings VG-net's
    # frames closer but the default renderer's not (README, "Your own avatar"), so it is asked for.
    person_basis: bool = False

    def __post_init__(self):
        if not self.minutes > 0:
            raise InputError(f"--minutes must be positive, got {self.minutes}.")
        if not 0.05 <= self.heldout_fraction <= 0.5:
            raise InputError(f"the held-out fraction must be in [0.05, 0.5], got {self.heldout_fraction}.")


def work_folder(output: str) -> str:
    """Where a fine-tune into `output` keeps its progress."""
    return os.path.normpath(output) + ".work"


def _preset_names(atnet: ATNetConfig, vgnet: VGNetConfig) -> dict[str, str]:
    """{network: the `model_preset` whose network it is} (what AT-net hears, and its head's share, aside)."""
    heard = dict(audio_features=atnet.audio_features, mfcc_normalisation=atnet.mfcc_normalisation,
                 **{field: getattr(atnet, field) for field in HEAD_WEIGHT_FIELDS.values()})
    names = {"atnet": next((name for name in ATNetConfig.PRESETS if dataclasses.replace(ATNetConfig.preset(name), **heard) == atnet), None),
             "vgnet": next((name for name in VGNetConfig.PRESETS if VGNetConfig.preset(name) == vgnet), None)}
    for network, name in names.items():
        if name is None:
            presets = (ATNetConfig if network == "atnet" else VGNetConfig).PRESETS
            raise InputError(f"the base model's {network} matches no preset ({', '.join(presets)}); fine-tune a model trained by atvg.")
    return names


def _settings(videos: list[str], base: str, config: FinetuneConfig) -> dict:
    sources = []
    for video in videos:
        sound = sound_source(video)  # a silent video's recording is part of it
        sources.append({"path": os.path.abspath(video), "bytes": os.path.getsize(video),
                        **({"sound_bytes": os.path.getsize(sound)} if sound not in (None, video) else {})})
    return {"videos": sources, "base": os.path.abspath(base), **dataclasses.asdict(config)}


def _open_journal(work: str, settings: dict) -> dict:
    """The journal of an earlier run with the same settings, or a new one; another run's folder is refused."""
    path = os.path.join(work, JOURNAL)
    if os.path.isfile(path):
        with open(path) as handle:
            journal = json.load(handle)
        if journal.get("settings") != settings:
            changed = sorted(k for k in set(settings) | set(journal.get("settings", {}))
                             if settings.get(k) != journal.get("settings", {}).get(k))
            raise InputError(f"{work} holds a fine-tune with other settings ({', '.join(changed)}); rerun it with the same "
                             f"videos and options to continue, or give another --output.")
        return journal
    if os.path.isdir(work) and os.listdir(work):
        raise InputError(f"{work} exists and was not made by atvg finetune; move it away or give another --output.")
    os.makedirs(work, exist_ok=True)
    return {"settings": settings, "done": {}}


def _save_journal(work: str, journal: dict) -> None:
    with atomic_write(os.path.join(work, JOURNAL)) as handle:
        json.dump(journal, handle, indent=1)


def finetune(videos: list[str], output: str, base: str | None = None, config: FinetuneConfig = FinetuneConfig(),
             progress: bool = True, log=print) -> dict:
    """Fine-tunes `base` (default: the packaged model) on footage of one person; writes the model folder `output`.

    Returns:
        The report (also `<output>/finetune_report.json`): held-out LMD, SSIM and sharpness before and after.

    Raises:
        InputError: missing or silent videos, several people, an existing output, or a base model
            this cannot fine-tune.
    """
    base = base or DEFAULT_MODEL_DIR
    if os.path.exists(output):
        raise InputError(f"{output} exists; give a new --output folder (the model folder is written there when done).")
    for video in videos:
        if sound_source(video) is None:
            raise InputError(f"{video} has no sound; fine-tuning learns the mouth from the person's own speech: give videos with "
                             f"sound, or put the recording beside the video under its name (.wav or .flac).")
    base_model = TalkingFaceModel.load(base)
    # A converted official model hears the release's landmark space; the fine-tune trains in crop
    # pixels, with the packaged basis, from its networks moved there.
    official = isinstance(base_model.landmark_space, OfficialLandmarks)
    crop_basis = os.path.join(DEFAULT_MODEL_DIR if official else base, "pca.npz")
    work = work_folder(output)
    settings = _settings(videos, base, config)
    journal = _open_journal(work, settings) if os.path.isdir(work) else None
    if journal is None or not journal["done"].get("person"):  # nothing is written before the footage is known to show one person
        started = time.time()
        with create_landmark_detector(base_model.landmark_backend) as detector:
            log(f"checking that {len(videos)} video(s) show one person")
            check_one_person(videos, detector)
        journal = journal or _open_journal(work, settings)
        journal["done"]["person"] = True
        journal["wall_seconds"] = {"person": round(time.time() - started, 1)}
        _save_journal(work, journal)

    with _timed(journal, "split"):
        clips = _split(videos, work, config, journal, log)
    prepared = os.path.join(work, "prepared")
    atnet_config, vgnet_config = network_configs(base_model.info, base_model.atnet)
    prepare_config = PrepareConfig(
        backend=base_model.landmark_backend, pca_path=crop_basis, val_fraction=0.0,
        # Phones also measure the footage's audio-video offset.
        phones=True, workers=2,
        # As `atvg generate` does: MediaPipe's model is fetched once, or dlib stands in (the model
        # folder then records dlib, so its later runs align as it was trained).
        allow_download=True, landmark_fallback=True)
    if not journal["done"].get("prepare"):
        log("preparing the training footage")
        with _timed(journal, "prepare"):
            prepare([os.path.join(work, "clips", "train")], prepared, prepare_config, progress=progress)
        journal["done"]["prepare"] = True
        _save_journal(work, journal)
    if "offsets" not in journal["done"]:
        journal["done"]["offsets"] = _measure_offsets(prepared, clips, config, log)
        _save_journal(work, journal)
    offsets = journal["done"]["offsets"]
    basis_path = os.path.join(work, "person_pca.npz") if config.person_basis else None
    if basis_path and not journal["done"].get("basis"):
        basis, frames = fit_pca(prepared, base_model.pca.num_components)
        basis.save(basis_path)
        log(f"fitted a landmark basis of {basis.num_components} codes on {frames} training frames")
        journal["done"]["basis"] = True
        _save_journal(work, journal)
    start = os.path.join(work, "start") if official else base
    if official and not journal["done"].get("start"):
        shutil.rmtree(start, ignore_errors=True)
        log("moving the official model's networks into this project's landmark convention")
        crop_convention_model(base_model, LandmarkPCA.load(crop_basis), prepare_config.alignment.template()).save(start)
        journal["done"]["start"] = True
        _save_journal(work, journal)
    heldout = [clip["heldout"] for clip in clips]
    # The held-out part is scored with its sound in step, as AT-net was trained.
    heldout_offsets = {clip["heldout"]: -offsets[_clip_id(clip)] for clip in clips}
    before_path = os.path.join(work, "before.json")
    if not os.path.isfile(before_path):
        log("scoring the base model on the held-out footage")
        with _timed(journal, "score_base"):
            write_report(evaluate(heldout, base_model, progress=False, renderers=("hybrid",),
                                  audio_offset_frames=heldout_offsets), before_path)
        _save_journal(work, journal)

    presets = _preset_names(atnet_config, vgnet_config)
    for network in NETWORKS:
        with _timed(journal, f"train_{network}"):
            _train_network(network, prepared, work, start, presets[network], atnet_config, config, journal, progress, log,
                           {_clip_id(clip): -offsets[_clip_id(clip)] for clip in clips}, basis_path)

    model_dir = os.path.join(work, "model")
    if not journal["done"].get("model"):
        shutil.rmtree(model_dir, ignore_errors=True)
        bundle(os.path.join(work, "atnet"), os.path.join(work, "vgnet"), model_dir,
               command=" ".join(["atvg finetune", *videos, "--output", output]),
               inference={**({} if official else _kept_inference(base_model.info)),
                          # In the person's own basis, the photo's mouth outside it is one frame's noise.
                          **({"mouth_from_basis": True} if config.person_basis else {})},
               extra_info={"finetune": {"base": os.path.abspath(base), "videos": [v["path"] for v in settings["videos"]],
                                        "minutes": config.minutes, "heldout_fraction": config.heldout_fraction,
                                        "training_frames": sum(clip["heldout_start"] for clip in clips),
                                        "sound_late_frames": {v["path"]: offsets[_clip_id(clip)]
                                                              for v, clip in zip(settings["videos"], clips)},
                                        "training_seconds": {network: journal["done"][network]["seconds"] for network in NETWORKS}}})
        if atnet_config.audio_features in HEADED_FEATURES:  # moved into the person's basis, if one was fitted
            with_head_of(TalkingFaceModel.load(model_dir), base_model).save(model_dir, replace=True)
        model = TalkingFaceModel.load(model_dir)
        log("scoring the fine-tuned model on the held-out footage")
        with _timed(journal, "score_finetuned"):
            after = evaluate(heldout, model, progress=False, renderers=("hybrid",), audio_offset_frames=heldout_offsets)
        with open(before_path) as handle:
            report = summarize(json.load(handle), after, heldout)
        os.makedirs(os.path.join(model_dir, HELDOUT_DIR))
        for clip in heldout:
            shutil.copy(clip, os.path.join(model_dir, HELDOUT_DIR, os.path.basename(clip)))
        report["heldout_clips"] = [os.path.join(HELDOUT_DIR, os.path.basename(clip)) for clip in heldout]
        report["wall_seconds"] = journal.get("wall_seconds", {})
        for network in NETWORKS:  # the losses of every epoch, kept when the work folder goes
            shutil.copy(os.path.join(work, network, "history.csv"), os.path.join(model_dir, f"finetune_{network}_history.csv"))
        contact_sheet(heldout[0], base_model, model, os.path.join(model_dir, SHEET_FILE), heldout_offsets[heldout[0]])
        first = next(read_frames(heldout[0]))  # a photo of the person to animate (what the scores used)
        cv2.imwrite(os.path.join(model_dir, PHOTO_FILE), cv2.cvtColor(first, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        with atomic_write(os.path.join(model_dir, REPORT_FILE)) as handle:
            json.dump(report, handle, indent=1)
        journal["done"]["model"] = True
        _save_journal(work, journal)
    with open(os.path.join(model_dir, REPORT_FILE)) as handle:
        report = json.load(handle)
    os.rename(model_dir, output)
    shutil.rmtree(work, ignore_errors=True)
    return report


def _kept_inference(info: dict) -> dict:
    """The base model's inference settings that still hold after fine-tuning: not its motion level,
    which measured how widely the base AT-net moves the lips for its training voices, not this person's."""
    return {key: value for key, value in (info.get("inference") or {}).items() if key != "motion_level"}


@contextlib.contextmanager
def _timed(journal: dict, phase: str):
    """Adds the wall seconds of a phase to `journal["wall_seconds"]` (summed over resumed sessions)."""
    started = time.time()
    try:
        yield
    finally:
        spent = journal.setdefault("wall_seconds", {})
        spent[phase] = round(spent.get(phase, 0.0) + time.time() - started, 1)


def _split(videos: list[str], work: str, config: FinetuneConfig, journal: dict, log) -> list[dict]:
    """Cuts each video into clips/train/ and clips/heldout/ (once); returns their paths and frame counts."""
    if journal["done"].get("split"):
        return journal["done"]["split"]
    clips = []
    for folder in ("train", "heldout"):
        os.makedirs(os.path.join(work, "clips", folder), exist_ok=True)
    for index, video in enumerate(videos):
        name = f"{index:02d}_{os.path.splitext(os.path.basename(video))[0]}.mp4"
        train_path, heldout_path = (os.path.join(work, "clips", folder, name) for folder in ("train", "heldout"))
        log(f"cutting {video}: the last {config.heldout_fraction:.0%} is held out")
        counts = split_video(video, train_path, heldout_path, config.heldout_fraction)
        clips.append({"train": train_path, "heldout": heldout_path, **counts})
    journal["done"]["split"] = clips
    _save_journal(work, journal)
    return clips


def _clip_id(clip: dict) -> str:
    """The prepared clip id of a training part (`data.discovery`: its path under clips/, as train/NAME)."""
    train_folder = os.path.dirname(clip["train"])
    return os.path.splitext(os.path.relpath(clip["train"], os.path.dirname(train_folder)))[0].replace(os.sep, "/")


def _measure_offsets(prepared: str, clips: list[dict], config: FinetuneConfig, log) -> dict[str, int]:
    """{clip id: frames its sound comes after its picture}, 0 for every clip unless `correct_av_offset`."""
    measured = clip_offsets(prepared) if config.correct_av_offset else {}
    offsets = {_clip_id(clip): int(measured.get(_clip_id(clip), 0)) for clip in clips}
    for clip_id, lag in offsets.items():
        if lag:
            log(f"{clip_id}: the sound comes {abs(lag)} frame(s) {'after' if lag > 0 else 'before'} the picture; "
                f"training and scoring with it in step")
    return offsets


def _train_network(network: str, prepared: str, work: str, start: str, preset: str, atnet_config: ATNetConfig,
                   config: FinetuneConfig, journal: dict, progress: bool, log, audio_offsets: dict[str, int],
                   basis_path: str | None) -> None:
    """Trains one network from the weights of the model folder `start` until its share of the budget is spent.

    Args:
        audio_offsets: AT-net: clip id -> k, frame t is trained on the sound of frame t - k.
        basis_path: AT-net: the landmark basis to learn codes of (None: the base model's).
    """
    if journal["done"].get(network):
        return
    share = config.atnet_share if network == "atnet" else 1.0 - config.atnet_share
    if network == "atnet":
        # A head (the packaged model's activation head) stays as it is: the MFCC network learns the person.
        heard = "mfcc" if atnet_config.audio_features in HEADED_FEATURES else atnet_config.audio_features
        options = dict(audio_features=heard, mfcc_normalisation=atnet_config.mfcc_normalisation,
                       steps_per_epoch=config.atnet_steps, batch_size=8, sequence_length=16,
                       learning_rate=config.atnet_learning_rate, audio_offsets=audio_offsets, pca_path=basis_path,
                       ema_momentum=config.atnet_ema_momentum)
    else:
        # The release's VG-net runs its conv-GRU across the batch (`ConvGRU2D.time_major_quirk`): one clip a batch.
        clips, frames = (1, 16) if VGNetConfig.preset(preset).rnn_time_major_quirk else (4, 8)
        options = dict(steps_per_epoch=config.vgnet_steps, batch_size=clips, sequence_length=frames,
                       learning_rate=config.vgnet_learning_rate, mouth_pixel_weight=config.mouth_pixel_weight,
                       discriminator_weight=config.vgnet_discriminator_weight)
    # Epochs are a formality here: the budget ends the run.
    train_config = TrainConfig(model_preset=preset, epochs=100_000, validation_steps=0, backup_every=5, seed=config.seed,
                               init_from=start, **options)
    budget = TimeBudget(share * config.minutes * 60, os.path.join(work, f"{network}_seconds.json"), progress,
                        label=f"fine-tuning {'AT-net' if network == 'atnet' else 'VG-net'}")
    if not progress:
        log(f"fine-tuning {network} for {share * config.minutes:.1f} min")
    train(network, prepared, os.path.join(work, network), train_config, verbose=0, extra_callbacks=[budget])
    journal["done"][network] = {"seconds": round(budget.spent, 1)}
    _save_journal(work, journal)
