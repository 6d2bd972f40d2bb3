"""Landmark PCA (ATVGnet Eq. 4): 68-point landmarks <-> a few principal-component codes.

Codes are computed in one of two landmark spaces:
- `crop`: landmarks of the aligned crop divided by the crop size (this project's bases).
- `procrustes`: the shape is first aligned by a similarity transform onto the basis mean, as the
  ATVGnet release's bases (`U_*.npy`, `mean_*.npy`, scaled by 5) expect.

Encode: `h = (p * scale - mean) @ U[:, :K]`; decode: `p = (h @ U[:, :K].T + mean) / scale`.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from atvg_tf.errors import InputError
from atvg_tf.frontend.face.alignment import AlignmentConfig, similarity_transform, transform_points
from atvg_tf.utils.files import atomic_write

SPACES = ("crop", "procrustes")


class LandmarkPCA:
    """A landmark PCA basis.

    Args:
        mean: [136] mean of the scaled landmark vectors.
        components: [136, K] orthonormal components (columns), strongest first.
        scale: factor applied to landmark vectors before the mean is subtracted.
        space: `crop` or `procrustes` (see the module docstring).
        crop_size: crop side the `crop` space divides by.
        explained_variance: optional [K] variances of the components.
    """

    def __init__(
        self,
        mean: np.ndarray,
        components: np.ndarray,
        scale: float = 1.0,
        space: str = "crop",
        crop_size: int = 128,
        explained_variance: np.ndarray | None = None,
    ):
        mean = np.asarray(mean, np.float32).reshape(-1)
        components = np.asarray(components, np.float32)
        if mean.shape != (136,) or components.ndim != 2 or components.shape[0] != 136:
            raise ValueError(f"a landmark PCA needs a [136] mean and [136, K] components, got {mean.shape} and {components.shape}.")
        if space not in SPACES:
            raise ValueError(f"unknown landmark space {space!r}; choose one of {SPACES}.")
        self.mean = mean
        self.components = components
        self.scale = float(scale)
        self.space = space
        self.crop_size = int(crop_size)
        self.explained_variance = None if explained_variance is None else np.asarray(explained_variance, np.float32)

    @property
    def num_components(self) -> int:
        return self.components.shape[1]

    @classmethod
    def fit(cls, landmarks: np.ndarray, num_components: int = 6, crop_size: int = 128) -> LandmarkPCA:
        """Fits a `crop`-space basis.

        Args:
            landmarks: [N, 68, 2] landmarks in crop pixels (N >= num_components + 1).
            num_components: K.
            crop_size: side of the crop the landmarks live in.
        """
        vectors = np.asarray(landmarks, np.float64).reshape(len(landmarks), -1) / crop_size
        if vectors.shape[1] != 136:
            raise ValueError(f"expected [N, 68, 2] landmarks, got {np.shape(landmarks)}.")
        if len(vectors) <= num_components:
            raise ValueError(f"fitting {num_components} components needs more than {num_components} landmark sets, got {len(vectors)}.")
        mean = vectors.mean(0)
        _, singular, rows = np.linalg.svd(vectors - mean, full_matrices=False)
        variance = singular**2 / (len(vectors) - 1)
        return cls(mean, rows[:num_components].T, 1.0, "crop", crop_size, variance[:num_components])

    @classmethod
    def from_official(
        cls, components_path: str, mean_path: str | None = None, num_components: int = 6, scale: float = 5.0
    ) -> LandmarkPCA:
        """Loads a basis of the ATVGnet release (`U_lrw1.npy` + `mean_lrw1.npy`, ...).

        Args:
            components_path: the `U_*.npy` file (136 x 136, columns are components).
            mean_path: the matching `mean_*.npy`; by default the file next to it with `U_` -> `mean_`.
            num_components: components kept (the release uses 6).
            scale: the release multiplies normalised landmarks by 5 before subtracting the mean.
        """
        if mean_path is None:
            folder, name = os.path.split(components_path)
            mean_path = os.path.join(folder, name.replace("U_", "mean_", 1))
        for path in (components_path, mean_path):
            if not os.path.isfile(path):
                raise InputError(f"PCA file not found: {path}")
        components = np.load(components_path)[:, :num_components]
        return cls(np.load(mean_path), components, scale, "procrustes")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LandmarkPCA:
        """Loads a basis saved by `save`, or an official `U_*.npy` file."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputError(f"PCA basis not found: {path}; give a file saved by `atvg fit-pca` or an official U_*.npy.")
        if path.endswith(".npy"):
            return cls.from_official(path)
        with np.load(path) as data:
            variance = data["explained_variance"] if "explained_variance" in data else None
            return cls(data["mean"], data["components"], float(data["scale"]), str(data["space"]), int(data["crop_size"]), variance)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the basis to a `.npz` file (atomically)."""
        arrays = dict(mean=self.mean, components=self.components, scale=self.scale, space=self.space, crop_size=self.crop_size)
        if self.explained_variance is not None:
            arrays["explained_variance"] = self.explained_variance
        with atomic_write(path, "wb") as handle:  # a file object: np.savez adds no extension
            np.savez(handle, **arrays)

    def fingerprint(self) -> str:
        """Short SHA-256 of the basis, to tell bases apart in manifests."""
        digest = hashlib.sha256()
        for array in (self.mean, self.components, np.float32([self.scale])):
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
        digest.update(self.space.encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        return {"components": self.num_components, "space": self.space, "scale": self.scale, "sha256": self.fingerprint()}

    def _to_space(self, landmarks: np.ndarray) -> np.ndarray:
        landmarks = np.asarray(landmarks, np.float32)
        if self.space == "crop":
            return landmarks.reshape(*landmarks.shape[:-2], 136) / self.crop_size
        reference = (self.mean / self.scale).reshape(68, 2)
        flat = landmarks.reshape(-1, 68, 2)
        aligned = [transform_points(shape, similarity_transform(shape, reference)) for shape in flat]
        return np.stack(aligned).reshape(*landmarks.shape[:-2], 136)

    def encode(self, landmarks: np.ndarray) -> np.ndarray:
        """[..., 68, 2] crop-pixel landmarks -> [..., K] float32 codes."""
        vectors = self._to_space(landmarks)
        return ((vectors * self.scale - self.mean) @ self.components).astype(np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """[..., K] codes -> [..., 68, 2] float32 landmarks in crop pixels.

        A `procrustes` basis has no position or size; its shapes are placed onto the crop
        template by a similarity transform.
        """
        codes = np.asarray(codes, np.float32)
        vectors = (codes @ self.components.T + self.mean) / self.scale
        shapes = vectors.reshape(*codes.shape[:-1], 68, 2)
        if self.space == "crop":
            return (shapes * self.crop_size).astype(np.float32)
        template = AlignmentConfig(crop_size=self.crop_size).template()
        flat = shapes.reshape(-1, 68, 2)
        placed = [transform_points(shape, similarity_transform(shape, template)) for shape in flat]
        return np.stack(placed).reshape(shapes.shape).astype(np.float32)
