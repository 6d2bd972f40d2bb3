"""Model folders from training runs (`atvg bundle`): an AT-net and a VG-net, each taken from a run
folder of `atvg train` or from an existing model folder, with the PCA basis AT-net's codes live in.

A run folder records what a model folder needs: `train_config.json` (the options, hence the network
configurations), `pca.npz` and `data.json` (the prepared data's basis and landmark detector).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import keras

from atvg_tf.errors import InputError
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.model import TalkingFaceModel, network_configs
from atvg_tf.generation.model_folder import MODEL_FILES
from atvg_tf.models.atnet import build_atnet
from atvg_tf.models.config import ATNetConfig, VGNetConfig
from atvg_tf.models.vgnet import build_vgnet
from atvg_tf.training.train import RUN_DATA_FILE, RUN_PCA_FILE, TrainConfig, trained_weights

RUN_CONFIG_FILE = "train_config.json"
# AT-net: the checkpoint with the lowest validation loss; VG-net (a GAN, whose losses do not rank
# checkpoints): the last epoch's generator.
CHECKPOINTS = {"atnet": ("best.keras", "last.keras"), "vgnet": ("last.keras",)}


def is_run_folder(path: str) -> bool:
    """Whether `path` is a run folder of `atvg train` (it has `train_config.json`)."""
    return os.path.isfile(os.path.join(path, RUN_CONFIG_FILE))


def run_history(run_dir: str) -> dict:
    """Epochs trained (over every resumed session) and the last epoch's losses, from history.csv."""
    path = os.path.join(run_dir, "history.csv")
    rows = []
    if os.path.isfile(path):
        with open(path) as handle:
            rows = list(csv.DictReader(handle))
    final = {k: round(float(v), 5) for k, v in (rows[-1] if rows else {}).items() if k != "epoch" and _is_number(v)}
    return {"epochs_run": len(rows), "final": final}


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):  # CSVLogger writes NA for a value an epoch did not have
        return False


def read_run_config(run_dir: str, network: str) -> TrainConfig:
    """The options a run folder was trained with; a run of the other network is an `InputError`."""
    with open(os.path.join(run_dir, RUN_CONFIG_FILE)) as handle:
        fields = json.load(handle)
    trained = fields.pop("network", network)
    if trained != network:
        raise InputError(f"{run_dir} is a run of `atvg train {trained}`; give a run of `atvg train {network}` "
                         f"(or a model folder) as --{network}.")
    fields["exclude_clips"] = tuple(fields.get("exclude_clips") or ())
    return TrainConfig(**{k: v for k, v in fields.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}})


def network_from_run(run_dir: str, network: str) -> tuple[keras.Model, ATNetConfig | VGNetConfig, dict]:
    """A run's trained network, rebuilt from its configuration with this version's layer code.

    Returns:
        (AT-net or VG-net generator, its configuration, its training record: options, epochs run, last losses).
    """
    config = read_run_config(run_dir, network)
    checkpoint = next((os.path.join(run_dir, name) for name in CHECKPOINTS[network] if os.path.isfile(os.path.join(run_dir, name))), None)
    if checkpoint is None:
        raise InputError(f"{run_dir} has no finished epoch ({' or '.join(CHECKPOINTS[network])}); train at least one epoch first.")
    if network == "atnet":
        # The run's copy of its basis sets the codes (the `pca_path` it was given may be gone).
        built = dataclasses.replace(config, pca_path=None).atnet_config()
        basis = os.path.join(run_dir, RUN_PCA_FILE)
        if os.path.isfile(basis):
            built = dataclasses.replace(built, pca_components=LandmarkPCA.load(basis).num_components)
    else:
        built = VGNetConfig.preset(config.model_preset)
    fresh = (build_atnet if network == "atnet" else build_vgnet)(built)
    fresh.set_weights(trained_weights(network, checkpoint))
    return fresh, built, {"config": dataclasses.asdict(config), "checkpoint": os.path.basename(checkpoint), **run_history(run_dir)}


def rebuilt(model: TalkingFaceModel) -> TalkingFaceModel:
    """The same model with its networks rebuilt from their configurations by this version's layer
    code (same weights): what a model folder kept from an older atvg is saved as."""
    atnet_config, vgnet_config = network_configs(model.info, model.atnet)
    atnet, vgnet = build_atnet(atnet_config), build_vgnet(vgnet_config)
    atnet.set_weights(model.atnet.get_weights())
    vgnet.set_weights(model.vgnet.get_weights())
    return TalkingFaceModel(atnet, vgnet, model.pca, model.info, model.landmark_space)


def _run_data(run_dir: str) -> tuple[LandmarkPCA, dict]:
    """The basis and the data record an AT-net run copied from its prepared folder."""
    pca_path, data_path = os.path.join(run_dir, RUN_PCA_FILE), os.path.join(run_dir, RUN_DATA_FILE)
    if not os.path.isfile(pca_path):
        raise InputError(f"{run_dir} has no {RUN_PCA_FILE} (a run of an older atvg); copy the prepared folder's "
                         f"pca.npz into it and run again.")
    data = {}
    if os.path.isfile(data_path):
        with open(data_path) as handle:
            data = json.load(handle)
    return LandmarkPCA.load(pca_path), data


def _source_kind(path: str, network: str) -> str:
    if is_run_folder(path):
        return "run"
    if all(os.path.isfile(os.path.join(path, name)) for name in MODEL_FILES):
        return "model"
    raise InputError(f"--{network} {path} is neither a run folder of `atvg train {network}` (train_config.json) nor a "
                     f"model folder ({', '.join(MODEL_FILES)}); check the path.")


def bundle(atnet_source: str, vgnet_source: str, output: str, command: str = "", vgnet_blend: float = 1.0,
           inference: dict | None = None, extra_info: dict | None = None, run_notes: dict | None = None,
           replace: bool = False) -> TalkingFaceModel:
    """Writes a model folder from two sources and returns the model.

    Args:
        atnet_source: a run folder of `atvg train atnet` or a model folder (its AT-net, basis and
            inference settings are kept).
        vgnet_source: a run folder of `atvg train vgnet` or a model folder (its VG-net is kept).
        output: the model folder to write (it appears only when complete).
        command: the command line, recorded in training.json.
        vgnet_blend: the written VG-net is (1 - blend) x the run's `init_from` weights + blend x the
            trained ones (a weight-space ensemble of a fine-tune and its start); 1 keeps the trained ones.
        inference: inference settings (`generation.model_folder.ModelSettings`); None keeps those
            of a model-folder AT-net source (a run has none).
        extra_info: more training.json entries.
        run_notes: {network: entries} added to that network's training record.
        replace: replace an existing `output` folder.
    """
    if os.path.exists(output) and not replace:
        raise InputError(f"{output} exists; give a new --output folder.")
    runs, info, space, configs = {}, {}, None, {}
    if _source_kind(atnet_source, "atnet") == "run":
        atnet, configs["atnet"], runs["atnet"] = network_from_run(atnet_source, "atnet")
        pca, data = _run_data(atnet_source)
        info = {"data": data, "landmark_backend": data.get("landmarks"), "inference": {}}
    else:
        kept = rebuilt(TalkingFaceModel.load(atnet_source))
        atnet, pca, space = kept.atnet, kept.pca, kept.landmark_space
        configs["atnet"] = network_configs(kept.info, kept.atnet)[0]
        info = {key: kept.info[key] for key in ("data", "landmark_backend", "inference") if key in kept.info}
        runs["atnet"] = {**(kept.info.get("runs") or {}).get("atnet", {}), "note": f"kept from {atnet_source}"}
    if _source_kind(vgnet_source, "vgnet") == "run":
        vgnet, configs["vgnet"], runs["vgnet"] = network_from_run(vgnet_source, "vgnet")
        start = runs["vgnet"]["config"].get("init_from")
        if vgnet_blend < 1.0:
            if not start:
                raise InputError(f"a VG-net blend needs a run started from other weights (init_from); {vgnet_source} was not.")
            vgnet.set_weights([(1.0 - vgnet_blend) * old + vgnet_blend * new
                               for old, new in zip(trained_weights("vgnet", start), vgnet.get_weights())])
            runs["vgnet"]["blend"] = vgnet_blend
    else:
        kept = rebuilt(TalkingFaceModel.load(vgnet_source))
        vgnet, configs["vgnet"] = kept.vgnet, network_configs(kept.info)[1]
        runs["vgnet"] = {**(kept.info.get("runs") or {}).get("vgnet", {}), "note": f"kept from {vgnet_source}"}
    if inference is not None:
        info["inference"] = inference
    for network, notes in (run_notes or {}).items():
        runs[network].update(notes)
    presets = {network: dataclasses.asdict(config) for network, config in configs.items()}
    info = {"command": command, **info, "runs": runs, "presets": presets, **(extra_info or {})}
    model = TalkingFaceModel(atnet, vgnet, pca, {k: v for k, v in info.items() if v is not None}, space)
    model.save(output, replace=replace)
    return TalkingFaceModel.load(output)
