"""Training AT-net and VG-net with `model.fit` on the prepared-data pipeline.

Each run writes into its output folder:
- `best.keras` (lowest validation loss) and `last.keras` (end of the latest epoch),
- `backup/` (Keras BackupAndRestore: rerunning the same command after an interruption resumes
  from the last backup instead of starting again),
- `worker_N/` (multi-worker runs: what the other workers write, see `multi_worker.py`),
- `logs/` (TensorBoard scalars; for VG-net also sample panels: real | generated | attention | motion),
- `samples/epoch_NNN.mp4` (VG-net: those panels as video after every epoch),
- `history.csv` (every finished epoch's losses, kept across resumed runs),
- `train_config.json` (the options used),
- `pca.npz` and `data.json` (the prepared data's landmark basis, counts and landmark detector: what
  `atvg bundle` needs to make a model folder of the run).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os

import keras
import tensorflow as tf

from atvg_tf.data.pipeline import PipelineConfig, make_dataset
from atvg_tf.errors import InputError
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.models.atnet import build_atnet
from atvg_tf.models.config import ATNetConfig, DiscriminatorConfig, VGNetConfig
from atvg_tf.models.discriminator import build_discriminator
from atvg_tf.models.vgnet import build_vgnet
from atvg_tf.training import data_service as data_service_lib
from atvg_tf.training.averaged_checkpoints import AveragedWeightsSwap
from atvg_tf.training.epoch_backup import EpochBackupAndRestore
from atvg_tf.training.gan import VGNetGAN
from atvg_tf.training.graft import graft_weights
from atvg_tf.training.multi_worker import check_backup_is_shared, make_multi_worker_strategy, num_workers, worker_output_dir
from atvg_tf.training.rebase import rebase_atnet
from atvg_tf.training.samples import VGNetSamples
from atvg_tf.utils.files import atomic_write
from atvg_tf.utils.interrupts import raise_if_stop_requested

NETWORKS = ("atnet", "vgnet")
# What a run folder keeps of its prepared data for `atvg bundle`: the basis of AT-net's codes and
# the data's counts and landmark detector.
RUN_PCA_FILE, RUN_DATA_FILE = "pca.npz", "data.json"
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
STRATEGIES = ("default", "mirrored", "multi_worker")

logger = logging.getLogger(__name__)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs, or CPU devices), `multi_worker` (TF_CONFIG cluster)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return make_multi_worker_strategy()
    raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of a training run.

    Attributes:
        model_preset: `paper` or `small` network sizes (`official`: the release's networks, for fine-tuning a
            converted model moved into crop pixels; VG-net then trains with batch_size 1).
        epochs: epochs to train.
        steps_per_epoch: batches per epoch (the pipeline repeats).
        validation_steps: validation batches per epoch (0: no validation).
        batch_size: sequences per batch.
        sequence_length: frames per sequence (T).
        learning_rate, beta_1: Adam settings (2e-4 and 0.5 in the paper).
        backup_every: steps between BackupAndRestore saves inside an epoch.
        jit_compile: XLA (for GPUs; off on CPU).
        mixed_precision: float16 compute (GPUs only).
        seed: seed of the pipeline's random choices and of the weight initialisation.
        mouth_pixel_weight: VG-net: extra pixel-loss weight inside the mouth box (0 = the paper).
        discriminator_weight: VG-net: weight of the discriminator's terms in the generator's loss (1 =
            the paper's GAN; 0 = the pixel loss alone, the discriminator never runs).
        audio_features: AT-net: `mfcc` (the paper), `phones`, `mfcc+phones`, `mfcc+phone_head`
            (needs `atvg prepare --phone-posteriors`) or `mfcc+embedding_head` (needs `atvg prepare
            --speech-embeddings`); None keeps the preset's. `mfcc+activation_head` is not trained here
            (its head is fitted in closed form: `training/train_default_model.py --recipe activation_head`).
        mfcc_normalisation: AT-net: `none` (the paper) or `window` (see `ATNetConfig`); None keeps the preset's.
        audio_augmentation: AT-net: probability of training on an augmented copy of a clip's audio
            (needs `atvg prepare --audio-variants N`).
        speaker_repeats: speaker id -> factor: that speaker's clips are drawn `factor` times as often.
        exclude_clips: clip ids (as in the manifest) not trained on.
        audio_offsets: AT-net: clip or speaker id -> k: that clip's frame t is trained on the audio of
            frame t - k (`PipelineConfig.audio_offsets`: footage whose sound is out of step with the rest).
        appearance_augmentation: VG-net: probability of one random colour + scale/shift change of
            an example's identity frame, target frames and landmarks together (`data/appearance.py`).
        shuffle_buffer: examples in the training pipeline's shuffle buffer (each holds 17 decoded
            frames, 3.3 MB at 128 px: docs/SCALING.md).
        interleave_cycle_length: shards the training pipeline reads at once.
        autotune_ram_budget_mb: RAM tf.data's autotuner may use for prefetching (0: half the machine's).
        init_from: start from these weights instead of random ones: a model folder (its
            `atnet.keras` / `vgnet.keras`) or a `.keras` file of the same network (VG-net: the
            generator; the discriminator starts fresh). A resumed run continues from its backup.
        pca_path: AT-net: a crop-space landmark basis (`.npz`, e.g. fitted on one person's footage)
            to learn codes of instead of the prepared folder's; its K sets AT-net's codes, and an
            `init_from` model folder of another basis is rebased into it (`rebase.py`).
        ema_momentum: AT-net: keep an exponential moving average of the weights with this momentum
            (Adam's `use_ema`); checkpoints and validation then use the average. 0: none.
    """

    model_preset: str = "small"
    epochs: int = 10
    steps_per_epoch: int = 200
    validation_steps: int = 10
    batch_size: int = 4
    sequence_length: int = 16
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    backup_every: int = 50
    jit_compile: bool = False
    mixed_precision: bool = False
    seed: int = 0
    mouth_pixel_weight: float = 0.0
    discriminator_weight: float = 1.0
    audio_features: str | None = None
    mfcc_normalisation: str | None = None
    audio_augmentation: float = 0.0
    speaker_repeats: dict[str, int] = dataclasses.field(default_factory=dict)
    exclude_clips: tuple[str, ...] = ()
    audio_offsets: dict[str, int] = dataclasses.field(default_factory=dict)
    appearance_augmentation: float = 0.0
    shuffle_buffer: int = 256
    interleave_cycle_length: int = 4
    autotune_ram_budget_mb: int = 0
    init_from: str | None = None
    pca_path: str | None = None
    ema_momentum: float = 0.0

    def atnet_config(self) -> ATNetConfig:
        """The AT-net configuration this run builds: the preset, with `audio_features` if given (and
        as many codes as `pca_path`'s basis has)."""
        changes = {"audio_features": self.audio_features, "mfcc_normalisation": self.mfcc_normalisation,
                   "pca_components": self.basis().num_components if self.pca_path else None}
        return dataclasses.replace(ATNetConfig.preset(self.model_preset), **{k: v for k, v in changes.items() if v is not None})

    def basis(self) -> LandmarkPCA | None:
        """The basis of `pca_path`, or None (the prepared folder's)."""
        if not self.pca_path:
            return None
        if not os.path.isfile(self.pca_path):
            raise InputError(f"pca_path: {self.pca_path} not found; give a basis written by `atvg fit-pca`.")
        basis = LandmarkPCA.load(self.pca_path)
        if basis.space != "crop":
            raise InputError(f"pca_path: {self.pca_path} is a {basis.space} basis; give one written by `atvg fit-pca`.")
        return basis

    @classmethod
    def from_file(cls, path: str, **overrides) -> TrainConfig:
        """Reads a JSON config, or a named one shipped in `atvg_tf/training/configs/` (`cpu`, `grid`,
        `lrw`), then applies the overrides that are not None."""
        named = os.path.join(CONFIG_DIR, f"{path}.json")
        if not os.path.isfile(path) and os.path.isfile(named):
            path = named
        if not os.path.isfile(path):
            names = sorted(f[:-5] for f in os.listdir(CONFIG_DIR))
            raise InputError(f"training config not found: {path}; give a JSON file or one of {', '.join(names)}.")
        with open(path) as handle:
            fields = json.load(handle)
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"{path}: unknown option(s) {sorted(unknown)}.")
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)


def _pipeline(prepared_dir: str, split: str, network: str, config: TrainConfig, shuffle: bool) -> tf.data.Dataset:
    # The prepared features each AT-net input comes from (`mfcc+phone_head`: MFCC and phone posteriors).
    prepared_feature = {"mfcc": "mfcc", "phones": "phones", "phone_head": "phone_posteriors", "embedding_head": "speech_embeddings"}
    heard = config.atnet_config().audio_features
    if network == "atnet" and any(part not in prepared_feature for part in heard.split("+")):
        # 4,608 activations per frame: prepare does not store them; the head is fitted from the sound.
        raise InputError(f"audio_features {heard} is fitted in closed form, not trained: "
                         "python3 training/train_default_model.py --recipe activation_head --export DIR")
    atnet_audio = [prepared_feature[part] for part in heard.split("+")] if network == "atnet" else ["mfcc"]
    pipeline = PipelineConfig(
        sequence_length=config.sequence_length, batch_size=config.batch_size, shuffle_buffer=config.shuffle_buffer if shuffle else 0,
        interleave_cycle_length=config.interleave_cycle_length, autotune_ram_budget_mb=config.autotune_ram_budget_mb,
        repeat=True, seed=config.seed, audio_features=tuple(atnet_audio),
        # Validation measures the recorded audio.
        audio_augmentation=config.audio_augmentation if shuffle else 0.0,
        speaker_repeats=tuple(config.speaker_repeats.items()) if shuffle else (),
        exclude_clips=tuple(config.exclude_clips),
        # Validation too: it then measures the timing the model is trained for.
        audio_offsets=tuple(config.audio_offsets.items()) if network == "atnet" else (),
        appearance_augmentation=config.appearance_augmentation if shuffle and network == "vgnet" else 0.0,
    )
    return make_dataset(prepared_dir, split, pipeline, pca=config.basis() if network == "atnet" else None)


def _atnet_pairs(audio_inputs: tuple[str, ...]):
    def pairs(batch):
        inputs = {name: batch[name] for name in (*audio_inputs, "identity_pca_codes")}
        return inputs, {"pca_codes": batch["pca_codes"]}

    return pairs


def _callbacks(output_dir: str, config: TrainConfig, monitor: str, restore_dir: str) -> list[keras.callbacks.Callback]:
    # With a moving average, the checkpoints (and validation) get the averaged weights, the backup the trained ones.
    averaged = [AveragedWeightsSwap(swaps_for_validation=True), AveragedWeightsSwap()] if config.ema_momentum else [None, None]
    callbacks = [
        # A Ctrl-C swallowed inside a garbage-collection `__del__` is raised again at the next batch.
        keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: raise_if_stop_requested()),
        keras.callbacks.TerminateOnNaN(),
        averaged[0],
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "best.keras"), monitor=monitor, mode="min", save_best_only=True),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "last.keras")),
        averaged[1],
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), update_freq=config.backup_every),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv"), append=True),
        # Last: an epoch counts as done for a resumed run only once its checkpoints and history row are written.
        EpochBackupAndRestore(os.path.join(output_dir, "backup"), os.path.join(restore_dir, "backup"), save_freq=config.backup_every,
                              delete_checkpoint=False),
    ]
    return [callback for callback in callbacks if callback is not None]


def build_trainable(network: str, config: TrainConfig) -> keras.Model:
    """The compiled model `fit` trains: AT-net, or the VG-net GAN (call inside a strategy scope)."""
    keras.utils.set_random_seed(config.seed)
    if (config.jit_compile or config.mixed_precision) and not tf.config.list_physical_devices("GPU"):
        logger.warning("no GPU: XLA and mixed precision stay off on the CPU.")
        config = dataclasses.replace(config, jit_compile=False, mixed_precision=False)
    keras.mixed_precision.set_global_policy("mixed_float16" if config.mixed_precision else "float32")

    def optimizer():
        ema = dict(use_ema=True, ema_momentum=config.ema_momentum) if config.ema_momentum and network == "atnet" else {}
        adam = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1, **ema)
        return keras.optimizers.LossScaleOptimizer(adam) if config.mixed_precision else adam

    if network == "atnet":
        model = build_atnet(config.atnet_config())
        model.compile(optimizer=optimizer(), loss={"pca_codes": "mse"}, jit_compile=config.jit_compile)
        return model
    if network == "vgnet":
        gan = VGNetGAN(
            build_vgnet(VGNetConfig.preset(config.model_preset)),
            build_discriminator(DiscriminatorConfig.preset(config.model_preset)),
            mouth_pixel_weight=config.mouth_pixel_weight,
            discriminator_weight=config.discriminator_weight,
        )
        gan.compile(g_optimizer=optimizer(), d_optimizer=optimizer(), jit_compile=config.jit_compile)
        gan.build()  # BackupAndRestore needs the variables (optimizer slots too) before fit()
        return gan
    raise InputError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}.")


def trained_network(network: str, source: str) -> keras.Model:
    """A trained network (`atnet`, or `vgnet`'s generator) from a model folder or `.keras` file, read in safe mode."""
    path = os.path.join(source, f"{network}.keras") if os.path.isdir(source) else source
    if not os.path.isfile(path):
        raise InputError(f"init_from: {path} not found; give a model folder with {network}.keras or a .keras file.")
    trained = keras.saving.load_model(path, compile=False, safe_mode=True)
    return trained.generator if isinstance(trained, VGNetGAN) else trained


def trained_weights(network: str, source: str) -> list:
    """The weights (numpy arrays) of `trained_network(network, source)`."""
    return trained_network(network, source).get_weights()


def initialise_from(model: keras.Model, network: str, source: str, basis: LandmarkPCA | None = None) -> None:
    """Copies the weights of a trained network (model folder or `.keras` file, read in safe mode) into `model`.

    An AT-net that hears more audio inputs than the trained one (`mfcc+phones` or `mfcc+phone_head`
    from an `mfcc` AT-net) is grafted (`graft.graft_weights`): the trained layers, the new input's
    branch fresh. An AT-net
    from a model folder whose basis is not `basis` is rebased into it (`rebase.rebase_atnet`).
    """
    trained = trained_network(network, source)
    source_basis = os.path.join(source, RUN_PCA_FILE)
    if network == "atnet" and basis is not None and os.path.isfile(source_basis):
        old = LandmarkPCA.load(source_basis)
        if old.fingerprint() != basis.fingerprint():
            try:
                rebase_atnet(trained, model, old, basis)
            except ValueError as error:
                raise InputError(f"init_from: {source}'s AT-net cannot be moved into the basis of pca_path ({error}).") from None
            logger.info("init_from %s: rebased from its landmark basis into %s", source, basis.fingerprint())
            return
    try:
        model.set_weights(trained.get_weights())
        return
    except ValueError as error:
        problem = str(error)
    if network == "atnet":
        try:
            widened = graft_weights(model, trained)
        except ValueError as error:
            problem = str(error)
        else:
            logger.info("init_from %s: grafted (new inputs in %s)", source, ", ".join(widened) or "their own layers only")
            return
    raise InputError(f"init_from: {source} does not fit this run's {network} ({problem}); use the same model preset.")


def train(
    network: str,
    prepared_dir: str,
    output_dir: str,
    config: TrainConfig = TrainConfig(),
    strategy: str = "default",
    verbose: int | str = "auto",
    extra_callbacks: list[keras.callbacks.Callback] = (),
    data_service: str | None = None,
) -> keras.callbacks.History:
    """Trains AT-net or VG-net on a prepared folder.

    Args:
        network: `atnet` or `vgnet`.
        prepared_dir: output folder of `atvg prepare` (train split; val split for validation).
        output_dir: where checkpoints, backups and logs go; rerunning resumes from `backup/`. A
            multi-worker run's workers share it: the others write into `worker_N/` inside it.
        config: training options.
        strategy: `default`, `mirrored` or `multi_worker` (tf.distribute).
        verbose: Keras progress-bar verbosity.
        extra_callbacks: callbacks added to the standard ones.
        data_service: a tf.data service dispatcher (`grpc://HOST:PORT`) whose workers make the
            training batches (`data_service.py`); validation batches are made here.

    Returns:
        The Keras History of this call.
    """
    if network not in NETWORKS:
        raise InputError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}.")
    if data_service:
        data_service_lib.check_reachable(data_service)
    basis = config.basis() if network == "atnet" else None  # a missing basis fails before anything is written
    if network == "vgnet" and config.ema_momentum:
        raise InputError("ema_momentum applies to AT-net only (the GAN has two optimizers); leave it 0 for VG-net.")
    if network == "vgnet" and VGNetConfig.preset(config.model_preset).rnn_time_major_quirk and config.batch_size != 1:
        # The quirk runs the conv-GRU across the batch: clips of a batch would feed each other.
        raise InputError(f"the {config.model_preset} VG-net trains one clip per batch; set batch_size 1 "
                         f"(sequence_length sets the frames per step).")
    settings = json.loads(json.dumps({"network": network, **dataclasses.asdict(config)}))  # as the file holds them
    distribution = make_strategy(strategy)  # before any other TensorFlow op (MultiWorkerMirroredStrategy needs it)
    run_dir = worker_output_dir(output_dir, distribution)
    _check_resumable(run_dir, settings)
    check_backup_is_shared(output_dir, run_dir)
    os.makedirs(run_dir, exist_ok=True)
    with atomic_write(os.path.join(run_dir, "train_config.json")) as handle:
        json.dump(settings, handle, indent=1)
    _keep_data_record(prepared_dir, run_dir, config.pca_path if network == "atnet" else None)
    with distribution.scope():
        model = build_trainable(network, config)
        if config.init_from:
            initialise_from(model.generator if network == "vgnet" else model, network, config.init_from, basis)
    train_data = _pipeline(prepared_dir, "train", network, config, shuffle=True)
    validation = _pipeline(prepared_dir, "val", network, config, shuffle=False) if config.validation_steps else None
    if network == "atnet":
        pairs = _atnet_pairs(config.atnet_config().audio_inputs)
        train_data = train_data.map(pairs, num_parallel_calls=tf.data.AUTOTUNE)
        validation = validation.map(pairs, num_parallel_calls=tf.data.AUTOTUNE) if validation else None
    if num_workers(distribution) > 1:
        # Each worker keeps its share of the batches: FILE sharding cannot split this pipeline (its
        # random keys are a second source), and a split may have fewer shards than there are workers.
        train_data, validation = (_shard_by_batch(data) if data is not None else None for data in (train_data, validation))
    if data_service:
        train_data = data_service_lib.distribute(train_data, data_service, job_name=f"atvg-{network}:{os.path.abspath(output_dir)}")
    monitor = ("val_loss" if network == "atnet" else "val_g_loss") if validation else ("loss" if network == "atnet" else "g_loss")
    callbacks = _callbacks(run_dir, config, monitor, restore_dir=output_dir) + list(extra_callbacks)
    if network == "vgnet":
        callbacks.append(VGNetSamples(next(iter(validation or train_data)), run_dir))
    try:
        return model.fit(
            train_data,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            validation_data=validation,
            validation_steps=config.validation_steps or None,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles; Keras would warn that it cannot
        )
    except tf.errors.DataLossError as error:  # a damaged shard: name it instead of a 40-line traceback
        raise InputError(f"{_damaged_shards(prepared_dir) or prepared_dir} cannot be read ({error.message.splitlines()[0][:160]}); "
                         f"the prepared data is damaged: run `atvg prepare` again into a new folder. Finished epochs "
                         f"are kept in {output_dir}.") from None


def _shard_by_batch(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The dataset with tf.distribute's DATA auto-sharding: worker i keeps its slice of every batch it makes."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _keep_data_record(prepared_dir: str, output_dir: str, pca_path: str | None = None) -> None:
    """Copies the basis (the prepared folder's, or `pca_path`) and a summary of the manifest into the run folder."""
    manifest_path = os.path.join(prepared_dir, "manifest.json")
    if not os.path.isfile(manifest_path):
        raise InputError(f"{prepared_dir} is not a prepared folder (no manifest.json); run `atvg prepare` first.")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    record = {"prepared": os.path.abspath(prepared_dir), "clips": manifest["counts"]["clips"],
              "frames": manifest["counts"]["frames"], "landmarks": manifest["settings"]["landmarks"]["backend"]}
    with atomic_write(os.path.join(output_dir, RUN_DATA_FILE)) as handle:
        json.dump(record, handle, indent=1)
    with open(pca_path or os.path.join(prepared_dir, manifest.get("pca_file") or "pca.npz"), "rb") as source, \
            atomic_write(os.path.join(output_dir, RUN_PCA_FILE), "wb") as handle:
        handle.write(source.read())


def _check_resumable(output_dir: str, settings: dict) -> None:
    """A run folder is resumed only with the settings it was started with (`epochs` may grow)."""
    path = os.path.join(output_dir, "train_config.json")
    if not os.path.isfile(path):
        return
    try:
        with open(path) as handle:
            previous = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {path} ({error.__class__.__name__}); give a new --output.") from None
    # An option added since the run began counts as its default there.
    defaults = json.loads(json.dumps(dataclasses.asdict(TrainConfig())))
    changed = sorted(key for key in set(previous) | set(settings)
                     if key != "epochs" and previous.get(key, defaults.get(key)) != settings.get(key))
    if changed:
        shown = ", ".join(f"{key} {previous.get(key)!r} -> {settings.get(key)!r}" for key in changed[:4])
        raise InputError(f"{output_dir} holds a run with other settings ({shown}); give a new --output, or the "
                         f"same settings to resume it.")


def _damaged_shards(prepared_dir: str) -> str:
    """The shards of a prepared folder whose records fail their checksums, comma-separated."""
    damaged = []
    for path in sorted(glob.glob(os.path.join(prepared_dir, "*.tfrecord"))):
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError:
            damaged.append(path)
    return ", ".join(damaged)
