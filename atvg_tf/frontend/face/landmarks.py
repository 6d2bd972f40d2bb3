"""68-point facial landmarks (iBUG / dlib layout, pixel coordinates) from two backends.

- `mediapipe`: MediaPipe Tasks FaceLandmarker (478-point mesh), mapped to the 68-point layout
  with the table in `mediapipe_to_dlib`. IMAGE mode for photos, VIDEO mode (tracking) for clips.
- `dlib`: frontal HOG detector + the 68-point shape predictor.

MediaPipe is the default; its model file is downloaded on first use, and when that is impossible
(offline, no copy anywhere) `create_landmark_detector` returns the dlib backend with a warning.

Both return float32 arrays of shape [68, 2] (x, y in pixels of the input image). For images every
face is returned, largest first; for clips one face is followed through the frames and frames
without a face are `None`.
"""

from __future__ import annotations

import abc
import logging
import os
import sys
import types
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from atvg_tf._native import quiet_stderr
from atvg_tf.errors import AtvgError, InputError
from atvg_tf.frontend.face import assets
from atvg_tf.frontend.face.mediapipe_to_dlib import mesh_to_68

logger = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "dlib")


class NoFaceError(AtvgError, ValueError):
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


JAW, MOUTH = slice(0, 17), slice(48, 68)  # in the 68-point layout
SMALL_FACE_WIDTH = 64  # px, jaw to jaw: below this a photo's face gets a warning


def _check_mouth_inside(landmarks: np.ndarray, shape: tuple[int, ...]) -> None:
    """A face whose mouth the photo cuts off cannot be made to speak: a `NoFaceError` says so."""
    mouth = landmarks[MOUTH]
    if (mouth < -1).any() or (mouth[:, 0] > shape[1] + 1).any() or (mouth[:, 1] > shape[0] + 1).any():
        raise NoFaceError("the face's mouth is cut off by the photo's edge; use a photo that shows the whole face.")


class LandmarkDetector(abc.ABC):
    """Common interface of the landmark backends.

    Attributes:
        name: backend name (`mediapipe` or `dlib`); also readable as `backend`.
        model_path: the model file the backend loaded (recorded in manifests).
        fallback_reason: why this backend stands in for MediaPipe (see `create_landmark_detector`),
            or None when it is the backend that was asked for.
    """

    name: str
    model_path: str
    fallback_reason: str | None = None

    @property
    def backend(self) -> str:
        """The backend actually in use (`mediapipe` or `dlib`)."""
        return self.name

    @abc.abstractmethod
    def image_landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """All faces of an RGB uint8 image as [68, 2] float32 arrays, largest first."""

    def photo_landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """All faces of a photo, largest first: `image_landmarks`, plus whatever a backend does
        for faces that are small in the frame (`largest_face` uses it)."""
        return self.image_landmarks(image)

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
        if face_index < 0:  # -1 would silently pick the smallest face
            raise InputError(f"the face index must be 0 (the largest face) or more, got {face_index}.")
        faces = self.photo_landmarks(image)
        if not faces:
            raise NoFaceError("no face found in the image; use an upright photo with a clearly visible frontal face.")
        if face_index >= len(faces):
            raise NoFaceError(f"the image has {len(faces)} face(s); choose a face index below {len(faces)}.")
        if len(faces) > 1 and warn:
            logger.warning("%d faces found; using face %d (faces are numbered largest first).", len(faces), face_index)
        face = faces[face_index]
        _check_mouth_inside(face, image.shape)
        width = float(np.ptp(face[JAW, 0]))
        if width < SMALL_FACE_WIDTH and warn:
            logger.warning("the face is only %d px wide, so its mouth will look coarse; a photo in which it is %d px "
                           "wide or more looks better.", round(width), SMALL_FACE_WIDTH)
        return face

    def close(self) -> None:  # noqa: B027 (a no-op unless the backend holds native resources)
        """Releases native resources."""

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# The small-face search of photos (`MediaPipeLandmarker.photo_meshes`): tile sides halve from half
# the image's shorter side down to SMALLEST_TILE px and a TILES_ACROSS-th of its longer side (finer
# tiles would look for faces too small to animate, at a thousand detections in a 4000 px photo),
# tiles overlap by half; a face found in a tile must be found again in a crop FACE_CROP_SCALE times
# its width.
SMALLEST_TILE = 160
TILES_ACROSS = 12
TILE_PIXELS = 384
CROP_PIXELS = 768
FACE_CROP_SCALE = 2.5
# Clips (`MediaPipeLandmarker.clip_landmarks`): frames between tile searches while no face is seen;
# a face narrower than 1/SMALL_IN_FRAME of the frame is followed in a region REGION_SCALE face
# widths wide.
SEARCH_EVERY = 25
SMALL_IN_FRAME = 7
REGION_SCALE = 3.0


def _tile_sides(shape: tuple[int, int]) -> list[int]:
    sides, side = [], min(shape) // 2
    while side >= max(SMALLEST_TILE, max(shape) / TILES_ACROSS):
        sides.append(side)
        side //= 2
    return sides


def _tile_corners(shape: tuple[int, int], side: int) -> list[tuple[int, int]]:
    """Top-left corners of square tiles of `side` px covering an image, overlapping by half."""
    starts = lambda length: sorted({*range(0, length - side + 1, side // 2), length - side})  # noqa: E731
    return [(x, y) for y in starts(shape[0]) for x in starts(shape[1])]


def _is_small(face: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether a face ([68, 2]) needs a region of its own: narrower than 1/SMALL_IN_FRAME of the frame."""
    return float(np.ptp(face[:, 0])) * SMALL_IN_FRAME < max(shape[:2])


def _region_around(face: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): a square REGION_SCALE face widths wide centred on a face ([68, 2]), inside the frame."""
    side = min(int(REGION_SCALE * float(np.ptp(face[:, 0]))), *shape[:2])
    centre = (face.min(axis=0) + face.max(axis=0)) / 2
    x0 = int(np.clip(round(centre[0] - side / 2), 0, shape[1] - side))
    y0 = int(np.clip(round(centre[1] - side / 2), 0, shape[0] - side))
    return x0, y0, x0 + side, y0 + side


def _distinct(meshes: list[np.ndarray]) -> list[np.ndarray]:
    """One mesh per face: a mesh whose centre lies within half a face width of a kept one is dropped."""
    kept: list[np.ndarray] = []
    for mesh in meshes:
        centre, width = mesh.mean(axis=0), float(np.ptp(mesh[:, 0]))
        if all(np.linalg.norm(centre - other.mean(axis=0)) > width / 2 for other in kept):
            kept.append(mesh)
    return kept


class MediaPipeLandmarker(LandmarkDetector):
    """MediaPipe FaceLandmarker backend.

    Args:
        model_path: `face_landmarker.task`; found with `assets.find_face_landmarker_model` when omitted.
        allow_download: fetch the model file into the user cache when no local copy exists.
        max_faces: faces the landmarker looks for in one image or frame.
    """

    name = "mediapipe"

    def __init__(self, model_path: str | None = None, allow_download: bool = True, max_faces: int = 4):
        self.model_path = assets.find_face_landmarker_model(model_path, allow_download)
        BaseOptions, vision = _import_mediapipe_tasks()

        self._vision = vision
        self._base_options = BaseOptions
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

    def photo_landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        return [mesh_to_68(mesh) for mesh in self.photo_meshes(image)]

    def photo_meshes(self, image: np.ndarray) -> list[np.ndarray]:
        """`image_meshes`, and when the whole image shows no face, a search for small faces.

        MediaPipe's face detector sees the image at 128 px and misses a face narrower than about a
        seventh of the image (a half-body photo, a group): such photos are searched in overlapping
        square tiles, finest last, and each face found is measured again in a crop around it.
        """
        meshes = self.image_meshes(image)
        for side in [] if meshes else _tile_sides(image.shape[:2]):
            found = [mesh + np.float32([x, y]) for x, y in _tile_corners(image.shape[:2], side)
                     for mesh in self._downscaled_meshes(image[y : y + side, x : x + side])]
            # Overlapping tiles see one face several times: measure each face again once.
            confirmed = [mesh for mesh in (self._remeasured(image, mesh) for mesh in _distinct(found)) if mesh is not None]
            if confirmed:
                return _sort_largest_first(_distinct(confirmed))
        return meshes

    def _downscaled_meshes(self, image: np.ndarray, longest: int = TILE_PIXELS) -> list[np.ndarray]:
        """`image_meshes` on the image shrunk to at most `longest` px (the detector sees 128 px anyway)."""
        scale = min(1.0, longest / max(image.shape[:2]))
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return [mesh / np.float32(scale) for mesh in self.image_meshes(image)]

    def _remeasured(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray | None:
        """The mesh measured again in a crop of `FACE_CROP_SCALE` face widths around it (the one
        nearest the crop's centre), or None when the crop shows no face: what one tile alone took
        for a face (a texture, seen by hundreds of tiles of a large photo) is dropped."""
        centre, width = (mesh.min(axis=0) + mesh.max(axis=0)) / 2, float(np.ptp(mesh[:, 0]))
        half = FACE_CROP_SCALE * width / 2
        x0, y0 = np.maximum(np.floor(centre - half), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(centre + half), image.shape[1::-1]).astype(int)
        again = self._downscaled_meshes(image[y0:y1, x0:x1], CROP_PIXELS)
        if not again:
            return None
        return min((m + np.float32([x0, y0]) for m in again), key=lambda m: float(np.linalg.norm(m.mean(axis=0) - centre)))

    def clip_landmarks(self, frames: Iterable[np.ndarray], fps: float = 25.0) -> Iterator[np.ndarray | None]:
        # A fresh VIDEO-mode landmarker per clip: its tracker must not carry a face over from
        # another clip, and its timestamps must start again. A face too small in the frame for the
        # detector (a wide shot) is found with the photos' tile search, then followed in a region
        # REGION_SCALE face widths wide that moves with it and is given up after SEARCH_EVERY
        # frames without the face. The search runs only before any face or after a small one, and
        # while no face is seen every SEARCH_EVERY frames, twice as long after each search that
        # finds none (up to 8 times: long faceless footage).
        landmarker = self._create(self._vision.RunningMode.VIDEO, 2)
        previous, self.frames_with_several_faces = None, 0
        region, searched, wait, misses = None, -SEARCH_EVERY, SEARCH_EVERY, 0
        try:
            for index, frame in enumerate(frames):
                x0, y0 = region[:2] if region is not None else (0, 0)
                view = frame if region is None else frame[y0 : region[3], x0 : region[2]]
                result = landmarker.detect_for_video(self._to_mp_image(view), int(round(index * 1000.0 / fps)))
                meshes = [m + np.float32([x0, y0]) for m in self._meshes(result, view.shape[1], view.shape[0])]
                # Not after a face big in the frame: a cut away from it must not pick up a passer-by.
                may_search = previous is None or _is_small(previous, frame.shape)
                if not meshes and region is None and may_search and index - searched >= wait:
                    searched, meshes = index, self.photo_meshes(frame)
                    wait = SEARCH_EVERY if meshes else min(2 * wait, 8 * SEARCH_EVERY)
                chosen = self._follow([mesh_to_68(m) for m in meshes], previous)
                misses = 0 if chosen is not None else misses + 1
                if chosen is not None and (region is not None or _is_small(chosen, frame.shape)):
                    region = _region_around(chosen, frame.shape)
                elif chosen is None and misses >= SEARCH_EVERY:
                    region = None
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


DEFAULT_BACKEND = "mediapipe"

_fallback_noticed = False


def create_landmark_detector(
    backend: str | None = None,
    model_path: str | os.PathLike | None = None,
    allow_download: bool = True,
    *,
    fallback: bool = True,
) -> LandmarkDetector:
    """Builds a landmark backend by name.

    MediaPipe's model file is looked up locally and otherwise downloaded on first use (see
    `assets.find_face_landmarker_model`). When that fails (offline, no copy anywhere) and no model
    file was named, the dlib backend, whose predictor is a dependency, is returned instead, with a
    warning logged once per process; the detector's `name` (`backend`) says which one is in use
    and `fallback_reason` why.

    Args:
        backend: `mediapipe` or `dlib`; None means the default, `mediapipe`.
        model_path: the backend's model file; found automatically when omitted. A named file that
            does not exist is an error, never a fallback.
        allow_download: mediapipe: fetch `face_landmarker.task` into the user cache when no local
            copy exists.
        fallback: mediapipe without `model_path`: use dlib when MediaPipe's model is unavailable.
            False makes that a `ModelUnavailableError` (for a user who asked for MediaPipe).

    Raises:
        assets.ModelFileError: a named model file (or `$ATVG_FACE_LANDMARKER`) does not exist, or
            no backend's model can be found.
        InputError: an unknown backend.
    """
    backend = DEFAULT_BACKEND if backend is None else backend
    if backend == "mediapipe":
        if model_path is not None or not fallback:
            return MediaPipeLandmarker(model_path, allow_download=allow_download)
        try:
            return MediaPipeLandmarker(None, allow_download=allow_download)
        except assets.ModelUnavailableError as error:
            return _dlib_instead_of_mediapipe(error, allow_download)
    if backend == "dlib":
        return DlibLandmarker(model_path)
    raise InputError(f"unknown landmark backend {backend!r}; choose one of {', '.join(BACKENDS)}.")


def _dlib_instead_of_mediapipe(reason: assets.ModelUnavailableError, allow_download: bool) -> LandmarkDetector:
    global _fallback_noticed
    try:
        detector = DlibLandmarker()
    except (ImportError, assets.ModelFileError) as error:
        raise assets.ModelFileError(f"{reason} The dlib backend cannot stand in either: {error}") from None
    detector.fallback_reason = str(reason)
    if not _fallback_noticed:
        _fallback_noticed = True
        logger.warning(
            "MediaPipe's %s is not on this machine and %s; using the dlib landmark backend instead "
            "(to use MediaPipe, run once with network access or set %s=PATH).",
            assets.FACE_LANDMARKER_FILE,
            "could not be downloaded" if allow_download else "downloading is turned off",
            assets.FACE_LANDMARKER_ENV,
        )
    logger.info("why MediaPipe is not used: %s", reason)
    return detector


def describe(detector: LandmarkDetector) -> dict:
    """Backend name, model file and its SHA-256, for manifests."""
    return {
        "backend": detector.name,
        "model_file": os.path.basename(detector.model_path),
        "model_sha256": assets.file_sha256(detector.model_path),
    }


def _import_mediapipe_tasks():
    """`mediapipe.tasks.python`'s BaseOptions and vision, without TensorFlow or matplotlib.

    mediapipe.tasks imports `tensorflow.tools.docs.doc_controls` (only for its API documentation)
    whenever TensorFlow is installed, and its vision package imports `matplotlib.pyplot` (only for
    drawing helpers atvg never calls): seconds of start-up for `atvg generate --runtime litert`,
    which needs neither. Stand-ins for those modules are in place while mediapipe loads and are
    removed afterwards, so a later `import tensorflow` or `import matplotlib` gets the real package.
    """
    stand_ins = {}
    if "tensorflow" not in sys.modules:
        stand_ins.update(_stand_ins(("tensorflow", "tensorflow.tools", "tensorflow.tools.docs", "tensorflow.tools.docs.doc_controls")))
        stand_ins["tensorflow.tools.docs.doc_controls"].do_not_generate_docs = lambda item: item
    if "matplotlib" not in sys.modules:
        stand_ins.update(_stand_ins(("matplotlib", "matplotlib.pyplot")))
    sys.modules.update(stand_ins)
    try:
        from mediapipe.tasks.python import BaseOptions, vision
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return BaseOptions, vision


def _stand_ins(names: tuple[str, ...]) -> dict[str, types.ModuleType]:
    """Empty modules for a dotted chain of names, each an attribute of its parent."""
    modules = {name: types.ModuleType(name) for name in names}
    for parent, child in zip(names, names[1:]):
        setattr(modules[parent], child.rsplit(".", 1)[1], modules[child])
    return modules
