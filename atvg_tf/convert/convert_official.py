"""`atvg convert-official`: the release's .pth files + its basics folder -> a model folder.

The checkpoints are read with `torch.load(..., weights_only=True)`, so a malicious file cannot run
code; PyTorch is an optional dependency (`pip install '.[convert]'`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from atvg_tf.convert.official_weights import CheckpointError, load_state_dict
from atvg_tf.errors import InputError
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.generation.landmark_space import OFFICIAL_FILE
from atvg_tf.utils.files import atomic_folder, sha256_file

# The release's 6-component LRW basis (procrustes space, landmarks x 5), the shape statistics its
# demo derives the identity shape from, and its alignment templates.
BASIS_FILES = ("U_lrw1.npy", "mean_lrw1.npy", "mean_shape_norm.npy", "S.npy", "base_68.npy", "base_68_close.npy")


def read_checkpoint(path: str, what: str) -> dict[str, np.ndarray]:
    """A .pth state dict as numpy arrays, `module.` prefixes (DataParallel) removed.

    Raises:
        CheckpointError: PyTorch is missing, or the file is not a readable state dict.
        FileNotFoundError: no file at `path`.
    """
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            "reading the official checkpoints needs PyTorch: pip install '.[convert]' (the CPU build is enough)."
        ) from None
    if not os.path.isfile(path):
        raise InputError(f"{what} checkpoint not found: {path}; download it from the link in the official ATVGnet repository.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad files (pickle, zip, EOF, runtime)
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint ({error.__class__.__name__}); the file is damaged or not a .pth, "
            f"download it again."
        ) from None
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(hasattr(v, "numpy") for v in loaded.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors; give the official {what} checkpoint.")
    return {key.removeprefix("module."): value.detach().cpu().numpy() for key, value in loaded.items()}


def convert_official(atnet_path: str, vgnet_path: str, basics_dir: str, output_dir: str) -> str:
    """Writes a model folder (atnet.keras, vgnet.keras, pca.npz, training.json) from the release's files.

    Args:
        atnet_path: `atnet_lstm_18.pth`.
        vgnet_path: `generator_23.pth`.
        basics_dir: the release's `basics/` folder (with U_lrw1.npy and mean_lrw1.npy).
        output_dir: the model folder to write; it appears only when complete.

    Returns:
        `output_dir`.
    """
    from atvg_tf.models.atnet import build_atnet
    from atvg_tf.models.config import ATNetConfig, VGNetConfig
    from atvg_tf.models.vgnet import build_vgnet

    if os.path.exists(output_dir):
        raise FileExistsError(f"{output_dir} exists; give a new --output folder.")
    for name in BASIS_FILES:
        if not os.path.isfile(os.path.join(basics_dir, name)):
            raise InputError(f"{os.path.join(basics_dir, name)} not found; --basics must be the release's basics/ folder.")
    atnet_state = read_checkpoint(atnet_path, "AT-net")
    vgnet_state = read_checkpoint(vgnet_path, "VG-net")
    atnet = build_atnet(ATNetConfig.preset("paper"))
    load_state_dict(atnet, atnet_state, "atnet")
    vgnet = build_vgnet(VGNetConfig.preset("official"))
    load_state_dict(vgnet, vgnet_state, "vgnet")
    pca = LandmarkPCA.from_official(os.path.join(basics_dir, BASIS_FILES[0]), os.path.join(basics_dir, BASIS_FILES[1]))

    with atomic_folder(output_dir) as partial:
        atnet.save(os.path.join(partial, "atnet.keras"))
        vgnet.save(os.path.join(partial, "vgnet.keras"))
        pca.save(os.path.join(partial, "pca.npz"))
        np.savez(os.path.join(partial, OFFICIAL_FILE), **official_inference_arrays(basics_dir))
        info = {
            "source": "official ATVGnet release (converted by atvg convert-official)",
            "checkpoints": {"atnet": {"file": os.path.basename(atnet_path), "sha256": sha256_file(atnet_path)},
                            "vgnet": {"file": os.path.basename(vgnet_path), "sha256": sha256_file(vgnet_path)}},
            "presets": {"atnet": "paper", "vgnet": "official"},
            "pca": pca.describe(),
            "inference": "official: fixed identity shape, boosted absolute decoding, base_68 alignment (official.npz)",
            "landmark_backend": "dlib",
        }
        with open(os.path.join(partial, "training.json"), "w") as handle:
            json.dump(info, handle, indent=1)
    return output_dir


def official_inference_arrays(basics_dir: str) -> dict[str, np.ndarray]:
    """What `official.npz` holds, computed from the release's basics folder.

    The release's demo Procrustes-normalises the photo's landmarks and corrects them in the `S`
    shape basis relative to themselves, which leaves, for any single photo, the mean shape
    `mean_shape_norm` with the mouth closed by the basis' mouth parameter 1 = -0.06.
    """
    mean_shape = np.load(os.path.join(basics_dir, "mean_shape_norm.npy")).reshape(136)
    basis = np.load(os.path.join(basics_dir, "S.npy"))  # [100, 136]
    mouth = np.zeros(basis.shape[0])
    mouth[1] = -0.06
    closed = mean_shape.copy()
    closed[96:] += (mouth @ basis)[96:]  # points 48-67: the mouth
    opening = basis @ (closed - mean_shape)
    identity_shape = mean_shape - opening @ basis
    # The release warps to 163 px and keeps pixels [1:129]: crop pixel = template pixel - 1.
    templates = {name: np.load(os.path.join(basics_dir, f"{name}.npy")).astype(np.float64) - 1.0
                 for name in ("base_68", "base_68_close")}
    return {
        "identity_shape": identity_shape,
        "code_boost": np.array([1.0, 2.2, 2.4, 2.6, 2.8, 3.0]),
        "template_open": templates["base_68"].ravel(),
        "template_closed": templates["base_68_close"].ravel(),
    }
