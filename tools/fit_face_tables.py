"""Fits the face tables of the front end from real frames and writes them as Python modules.

- `mediapipe_to_dlib.py`: the MediaPipe 478-point mesh -> dlib 68-point table.
- `template.py`: the canonical 68-point face in the 128 x 128 aligned crop (alignment target).

Each dlib point is modelled as an affine combination (weights summing to one) of the few mesh
vertices that lie closest to it on average. Both detectors run on the same frames (GRID s1 clips
whose sorted index is 5 mod 10, the other GRID speakers, and the shared photos); coordinates are
divided by the dlib inter-ocular distance so every face counts alike. Clips with other indices stay
unseen, so tests can measure the agreement on them.

The template is the generalised-Procrustes mean of the dlib shapes and their mirror images (so it is
symmetric), placed with its eye midpoint and mouth centre where the ATVGnet release's template has
them: (63.5, 37.4) and (63.5, 94.9).

    PYTHONPATH=. python tools/fit_face_tables.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import glob
import os

import cv2
import numpy as np

from atvg_tf.frontend.face.landmarks import DlibLandmarker, MediaPipeLandmarker
from atvg_tf.frontend.video import read_frames

VERTICES_PER_POINT = 3
REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48), "mouth": range(48, 68)}


def collect_pairs(data_dir: str, frame_step: int) -> tuple[np.ndarray, np.ndarray]:
    mediapipe, dlib = MediaPipeLandmarker(), DlibLandmarker()
    try:
        return _pairs(mediapipe, dlib, data_dir, frame_step)
    finally:
        mediapipe.close()


def _pairs(mediapipe, dlib, data_dir: str, frame_step: int) -> tuple[np.ndarray, np.ndarray]:
    clips = sorted(glob.glob(os.path.join(data_dir, "grid", "s1", "*.mpg")))
    clips = [c for i, c in enumerate(clips) if i % 10 == 5] + sorted(glob.glob(os.path.join(data_dir, "grid", "other", "*.mpg")))
    images = []
    for clip in clips:
        images += [f for i, f in enumerate(read_frames(clip)) if i % frame_step == 0]
    for photo in sorted(glob.glob(os.path.join(data_dir, "atvgnet", "image", "*.jpg"))):
        image = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
        images.append(image)
        images.append(image[:, ::-1].copy())  # mirrored copies keep the fit left/right balanced
    meshes, shapes = [], []
    for image in images:
        found_mesh, found_dlib = mediapipe.image_meshes(image), dlib.image_landmarks(image)
        if not found_mesh or not found_dlib:
            continue
        mesh, shape = found_mesh[0], found_dlib[0]
        if np.linalg.norm(mesh.mean(0) - shape.mean(0)) > 0.2 * np.ptp(shape[:, 0]):
            continue  # the two detectors picked different faces
        meshes.append(mesh)
        shapes.append(shape)
    return np.stack(meshes), np.stack(shapes)


def normalise(meshes: np.ndarray, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eyes = shapes[:, 36:42].mean(1) - shapes[:, 42:48].mean(1)
    scale = np.linalg.norm(eyes, axis=1)[:, None, None]
    origin = shapes[:, 27:28]
    return (meshes - origin) / scale, (shapes - origin) / scale


def fit(meshes: np.ndarray, shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indices = np.zeros((68, VERTICES_PER_POINT), np.int64)
    weights = np.zeros((68, VERTICES_PER_POINT), np.float64)
    for k in range(68):
        distance = np.linalg.norm(meshes - shapes[:, k : k + 1], axis=2).mean(0)
        chosen = np.argsort(distance)[:VERTICES_PER_POINT]
        # shape_k = v_last + sum_j w_j (v_j - v_last), the last weight being 1 - sum w_j.
        last = meshes[:, chosen[-1]]
        design = np.stack([meshes[:, j] - last for j in chosen[:-1]], axis=-1).reshape(-1, VERTICES_PER_POINT - 1)
        target = (shapes[:, k] - last).reshape(-1)
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        indices[k] = chosen
        weights[k] = np.append(solution, 1.0 - solution.sum())
    return indices, weights


def report(meshes, shapes, indices, weights) -> None:
    mapped = np.einsum("kj,nkjc->nkc", weights, meshes[:, indices])
    error = np.linalg.norm(mapped - shapes, axis=2)
    print(f"{len(meshes)} frames; mean error / inter-ocular distance: {error.mean():.4f}")
    for region, points in REGIONS.items():
        print(f"  {region:6s} {error[:, list(points)].mean():.4f}")


# Where the ATVGnet release's template puts the eye midpoint and the mouth centre in the crop.
EYE_MIDPOINT = (63.5, 37.4)
MOUTH_CENTRE = (63.5, 94.9)
# iBUG 68-point indices after a left-right mirror.
MIRROR_68 = (
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] + [67, 66, 65]
)


def mean_shape(shapes: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Symmetric generalised-Procrustes mean, placed by its eye midpoint and mouth centre."""
    from atvg_tf.frontend.face.alignment import similarity_transform, transform_points

    mirrored = shapes[:, MIRROR_68] * np.array([-1.0, 1.0])
    shapes = np.concatenate([shapes, mirrored])
    mean = shapes[0]
    for _ in range(iterations):
        mean = np.mean([transform_points(s, similarity_transform(s, mean)) for s in shapes], axis=0)
    anchors = np.stack([(mean[36:42].mean(0) + mean[42:48].mean(0)) / 2, mean[48:68].mean(0)])
    placement = similarity_transform(anchors, np.array([EYE_MIDPOINT, MOUTH_CENTRE]))
    return transform_points(mean, placement)


def write_template(path: str, template: np.ndarray, frames: int) -> None:
    rows = ",\n".join(f"    ({x:.2f}, {y:.2f})" for x, y in template)
    source = f'''"""The canonical face of the 128 x 128 aligned crop: 68 points (iBUG/dlib layout) in pixels.

Generated by tools/fit_face_tables.py: the symmetric Procrustes mean of dlib landmarks on {frames}
real frames, eye midpoint at {EYE_MIDPOINT} and mouth centre at {MOUTH_CENTRE}.
"""

import numpy as np

TEMPLATE_SIZE = 128

TEMPLATE_68 = np.array([
{rows},
], np.float32)
'''
    with open(path, "w") as handle:
        handle.write(source)


def write_module(path: str, indices: np.ndarray, weights: np.ndarray, frames: int) -> None:
    rows_i = ",\n".join("    (" + ", ".join(str(v) for v in row) + ")" for row in indices)
    rows_w = ",\n".join("    (" + ", ".join(f"{v:.5f}" for v in row) + ")" for row in weights)
    source = f'''"""MediaPipe 478-point face mesh -> 68-point iBUG/dlib layout.

Generated by tools/fit_mediapipe_to_dlib.py from {frames} frames on which both detectors ran: each
dlib point is the weighted sum of {VERTICES_PER_POINT} mesh vertices (weights sum to one), fitted by least squares.
"""

import numpy as np

MESH_INDICES = np.array([
{rows_i},
], np.int64)

MESH_WEIGHTS = np.array([
{rows_w},
], np.float32)


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """Maps a [478, 2] (or [478, 3]) MediaPipe mesh to [68, 2] float32 landmarks."""
    points = np.asarray(mesh, np.float32)[:, :2]
    return np.einsum("kj,kjc->kc", MESH_WEIGHTS, points[MESH_INDICES]).astype(np.float32)
'''
    with open(path, "w") as handle:
        handle.write(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--frame-step", type=int, default=6)
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(__file__), "..", "atvg_tf", "frontend", "face"))
    args = parser.parse_args()
    raw_meshes, raw_shapes = collect_pairs(args.data, args.frame_step)
    meshes, shapes = normalise(raw_meshes, raw_shapes)
    indices, weights = fit(meshes, shapes)
    report(meshes, shapes, indices, weights)
    for name, writer, table in [
        ("mediapipe_to_dlib.py", write_module, (indices, weights)),
        ("template.py", write_template, (mean_shape(raw_shapes),)),
    ]:
        path = os.path.join(args.output_dir, name)
        writer(path, *table, len(meshes))
        print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
