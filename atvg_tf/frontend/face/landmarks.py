"""68-point facial landmarks (iBUG / dlib layout, pixel coordinates) from two backends.

- `mediapipe`: MediaPipe Tasks FaceLandmarker (478-point mesh), mapped to the 68-point layout
  with the table in `mediapipe_to_dlib`. IMAGE mode for photos, VIDEO mode (tracking) for clips.
- `dlib`: frontal HOG detector + the 68-point shape predictor.

Both return float32 arrays of shape [68, 2] (x, y in pixels of the input image). For images every
face is returned, largest first; for clips one face is followed through the frames and frames
without a face are `None`.
"""

from __future__ import annotations

import abc
import logging
import os
from typing import Iterable, Iterator

import numpy as np

from atvg_tf._native import quiet_stderr
from atvg_tf.frontend.face import assets
from atvg_tf.frontend.face.mediapipe_to_dlib import mesh_to_68

logger = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "dlib")


class NoFaceError(ValueError):
    """An image in which no face was found."""


def face_size(landmarks: np.ndarray) -> float:
    """Area of the landmarks' bounding box, used to pick the largest face."""
    extent = landmarks.max(axis=0) - landmarks.min(axis=0)
    return float(extent[0] * extent[1])


def _sort_largest_first(faces: list[np.ndarray]) -> list[np.ndarray]:
    return sorted(faces, key=face_size, reverse=True)


def _closest(faces: list[np.ndarray], previous: np.ndarray | None) -> np.ndarray:
    if previous is None:
        return faces[0]
    centre = previous.mean(axis=0)
    return min(faces, key=lambda face: float(np.linalg.norm(face.mean(axis=0) - centre)))


class LandmarkDetector(abc.ABC):
    """Common interface of the landmark backends.

    Attributes:
        name: backend name (`mediapipe` or `dlib`).
        model_path: the model file the backend loaded (recorded in manifests).
    """

    name: str
    model_path: str

    @abc.abstractmethod
    def image_landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """All faces of an RGB uint8 image as [68, 2] float32 arrays, largest first."""

    # Frames of the last clip in which more than one face was found (set by `clip_landmarks`).
    frames_with_several_faces: int = 0

    @abc.abstractmethod
    def clip_landmarks(self, frames: Iterable[np.ndarray], fps: float = 25.0) -> Iterator[np.ndarray | None]:
        """Landmarks of one face followed through RGB frames; `None` where it is not found.

        With several faces the largest one of the first frame with a face is followed (the face
        closest to the previous detection is taken on later frames), and
        `frames_with_several_faces` counts the frames where that choice had to be made.
        """

    def _follow(self, faces: list[np.ndarray], previous: np.ndarray | None) -> np.ndarray | None:
        if not faces:
            return None
        if len(faces) > 1:
            self.frames_with_several_faces += 1
        return _closest(_sort_largest_first(faces), previous)

    def largest_face(self, image: np.ndarray, face_index: int = 0, warn: bool = True) -> np.ndarray:
        """Landmarks of one face of an image.

        Args:
            image: RGB uint8 image.
            face_index: 0 for the largest face, 1 for the next largest, ...
            warn: log a warning when the image holds several faces.

        Raises:
            NoFaceError: no face, or fewer faces than `face_index + 1`.
        """
        faces = self.image_landmarks(image)
        if not faces:
            raise NoFaceError("no face found in the image; use a photo with a clearly visible frontal face.")
        if face_index >= len(faces):
            raise NoFaceError(f"the image has {len(faces)} face(s); choose a face index below {len(faces)}.")
        if len(faces) > 1 and warn:
            logger.warning("%d faces found; using face %d (faces are numbered largest first).", len(faces), face_index)
        return faces[face_index]

    def close(self) -> None:
        """Releases native resources."""

    def __enter__(self) -> "LandmarkDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MediaPipeLandmarker(LandmarkDetector):
    """MediaPipe FaceLandmarker backend.

    Args:
        model_path: `face_landmarker.task`; found with `assets.find_face_landmarker_model` when omitted.
        allow_download: allow fetching the model file when no local copy exists.
        max_faces: faces the landmarker looks for in one image or frame.
    """

    name = "mediapipe"

    def __init__(self, model_path: str | None = None, allow_download: bool = False, max_faces: int = 4):
        from mediapipe.tasks.python import BaseOptions, vision

        self._vision = vision
        self._base_options = BaseOptions
        self.model_path = assets.find_face_landmarker_model(model_path, allow_download)
        self.max_faces = max_faces
        self._image_landmarker = None

    def _create(self, running_mode, num_faces: int):
        options = self._vision.FaceLandmarkerOptions(
            base_options=self._base_options(model_asset_path=self.model_path),
            running_mode=running_mode,
            num_faces=num_faces,
        )
        with quiet_stderr():  # MediaPipe logs graph and delegate set-up on every creation
            return self._vision.FaceLandmarker.create_from_options(options)

    @staticmethod
    def _to_mp_image(image: np.ndarray):
        import mediapipe as mp

        image = np.ascontiguousarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 image of shape [H, W, 3], got {image.dtype} {image.shape}.")
        return mp.Image(image_format=mp.ImageFormat.SRGB, data=image)

    @staticmethod
    def _meshes(result, width: int, height: int) -> list[np.ndarray]:
        meshes = []
        for face in result.face_landmarks:
            mesh = np.array([(point.x, point.y) for point in face], np.float32)
            mesh *= np.array([width, height], np.float32)
            meshes.append(mesh)
        return meshes

    def image_meshes(self, image: np.ndarray) -> list[np.ndarray]:
        """All faces as raw 478-point meshes [478, 2] in pixels, largest first."""
        if self._image_landmarker is None:
            self._image_landmarker = self._create(self._vision.RunningMode.IMAGE, self.max_faces)
        result = self._image_landmarker.detect(self._to_mp_image(image))
        return _sort_largest_first(self._meshes(result, image.shape[1], image.shape[0]))

    def image_landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        return [mesh_to_68(mesh) for mesh in self.image_meshes(image)]

    def clip_landmarks(self, frames: Iterable[np.ndarray], fps: float = 25.0) -> Iterator[np.ndarray | None]:
        # A fresh VIDEO-mode landmarker per clip: its tracker must not carry a face over from
        # another clip, and its timestamps must start again.
        landmarker = self._create(self._vision.RunningMode.VIDEO, 2)
        previous, self.frames_with_several_faces = None, 0
        try:
            for index, frame in enumerate(frames):
                result = landmarker.detect_for_video(self._to_mp_image(frame), int(round(index * 1000.0 / fps)))
                faces = [mesh_to_68(m) for m in self._meshes(result, frame.shape[1], frame.shape[0])]
                chosen = self._follow(faces, previous)
                previous = chosen if chosen is not None else previous
                yield chosen
        finally:
            landmarker.close()

    def close(self) -> None:
        if self._image_landmarker is not None:
            self._image_landmarker.close()
            self._image_landmarker = None


class DlibLandmarker(LandmarkDetector):
    """dlib backend: HOG frontal face detector + 68-point shape predictor.

    Args:
        predictor_path: `shape_predictor_68_face_landmarks.dat`; taken from face-recognition-models
            when omitted.
        upsample: detector upsampling steps tried when the first pass finds nothing (small faces).
    """

    name = "dlib"

    def __init__(self, predictor_path: str | None = None, upsample: int = 1):
        import dlib

        self._dlib = dlib
        self.model_path = assets.find_dlib_predictor(predictor_path)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(self.model_path)
        self.upsample = upsample

    def _boxes(self, image: np.ndarray):
        boxes = self._detector(image, 0)
        for level in range(1, self.upsample + 1):
            if len(boxes):
                break
            boxes = self._detector(image, level)
        return boxes

    def _shape(self, image: np.ndarray, box) -> np.ndarray:
        shape = self._predictor(image, box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def image_landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        image = np.ascontiguousarray(image)
        return _sort_largest_first([self._shape(image, box) for box in self._boxes(image)])

    def clip_landmarks(self, frames: Iterable[np.ndarray], fps: float = 25.0) -> Iterator[np.ndarray | None]:
        previous, self.frames_with_several_faces = None, 0
        for frame in frames:
            chosen = self._follow(self.image_landmarks(frame), previous)
            previous = chosen if chosen is not None else previous
            yield chosen


def create_landmark_detector(
    backend: str = "mediapipe", model_path: str | None = None, allow_download: bool = False
) -> LandmarkDetector:
    """Builds a landmark backend by name.

    Args:
        backend: `mediapipe` or `dlib`.
        model_path: the backend's model file; found automatically when omitted.
        allow_download: mediapipe only: allow fetching `face_landmarker.task`.
    """
    if backend == "mediapipe":
        return MediaPipeLandmarker(model_path, allow_download=allow_download)
    if backend == "dlib":
        return DlibLandmarker(model_path)
    raise ValueError(f"unknown landmark backend {backend!r}; choose one of {', '.join(BACKENDS)}.")


def describe(detector: LandmarkDetector) -> dict:
    """Backend name, model file and its SHA-256, for manifests."""
    return {
        "backend": detector.name,
        "model_file": os.path.basename(detector.model_path),
        "model_sha256": assets.file_sha256(detector.model_path),
    }
