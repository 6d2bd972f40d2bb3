"""Who a face is: dlib's face-recognition network (128-d descriptors; the same person lies within 0.6).

The network file comes with the `face-recognition-models` package, a dependency (as the dlib
landmark predictor does), so it works offline.
"""

from __future__ import annotations

import numpy as np

from atvg_tf.frontend.face import assets

RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# dlib's published threshold: descriptors of one person are closer than this (99.38 % on LFW).
SAME_PERSON_DISTANCE = 0.6


class FaceIdentity:
    """Face descriptors from an image and the face's 68 landmarks (any backend's dlib-68 points)."""

    def __init__(self):
        import dlib

        path = assets._package_file("face_recognition_models", "models", RECOGNITION_FILE)
        if path is None:
            raise assets.ModelFileError(f"{RECOGNITION_FILE} not found; `pip install face-recognition-models==0.3.0`.")
        self._dlib = dlib
        self._network = dlib.face_recognition_model_v1(path)

    def descriptor(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """[128] float32 descriptor of the face at `landmarks` [68, 2] (pixels) in RGB uint8 `image`."""
        dlib = self._dlib
        left, top = np.floor(landmarks.min(axis=0)).astype(int)
        right, bottom = np.ceil(landmarks.max(axis=0)).astype(int)
        shape = dlib.full_object_detection(dlib.rectangle(int(left), int(top), int(right), int(bottom)),
                                           [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])
        return np.asarray(self._network.compute_face_descriptor(np.ascontiguousarray(image), shape), np.float32)


def distance(first: np.ndarray, second: np.ndarray) -> float:
    """Euclidean distance of two descriptors (below `SAME_PERSON_DISTANCE`: one person)."""
    return float(np.linalg.norm(np.asarray(first) - np.asarray(second)))
