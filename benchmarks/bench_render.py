"""What the renderers make of real photos: the shared photos driven by speech, both renderers, scored and shown.

For each photo of `data/atvgnet/image/` (or --photos): generate with the model (default: the packaged
one) from the speech, render every frame with `hybrid` and `vgnet`, and score them at the photo's
resolution with `atvg_tf.evaluation.render_scores` (sharpness_ratio, static_region_error,
lip_colour_delta_e; docs/EVALUATION.md). Writes a contact sheet PNG: per photo one row of the lower
half of the face: photo | vgnet x 3 | hybrid x 3, at the frames where the predicted mouth is the
least, the median and the most open; and prints a table (and --json).

    python benchmarks/bench_render.py --sheet renders.png [--model DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.environ.get("ATVG_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
RENDERERS = ("vgnet", "hybrid")
TILE = 200  # px, height of a contact-sheet tile


def face_tile(frame: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """The aligned face of a full-resolution frame at TILE x TILE px, resampled from the full resolution."""
    scaled = np.asarray(transform, np.float64) * (TILE / 128.0)
    return cv2.warpAffine(frame, scaled, (TILE, TILE), flags=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--photos", nargs="+", help="photos (default: data/atvgnet/image/*.jpg)")
    parser.add_argument("--audio", help="speech (default: data/atvgnet/audio/audio_sample.wav)")
    parser.add_argument("--model", help="model folder (default: the packaged model)")
    parser.add_argument("--sheet", required=True, metavar="FILE.png", help="the contact sheet to write")
    parser.add_argument("--json", metavar="FILE", help="also write the scores here")
    args = parser.parse_args()
    sys.path.insert(0, REPO)
    from atvg_tf._native import import_quietly

    import_quietly()
    from atvg_tf.evaluation.render_scores import NAMES, RenderScorer
    from atvg_tf.generation.compose import FaceRenderer
    from atvg_tf.generation.talking_face import TalkingFace
    from atvg_tf.rendering.face_points import inner_aperture

    photos = args.photos or sorted(glob.glob(os.path.join(args.data, "atvgnet", "image", "*.jpg")))
    audio = args.audio or os.path.join(args.data, "atvgnet", "audio", "audio_sample.wav")
    rows, sheet_rows = [], []
    with TalkingFace(args.model) as talker:
        for photo in photos:
            generation = talker.generate(photo, audio)
            face = generation.face
            chunk = {"frames": generation.frames, "landmarks": generation.landmarks, "attention": generation.attention}
            apertures = inner_aperture(generation.landmarks)
            order = np.argsort(apertures)
            instants = [int(order[0]), int(order[len(order) // 2]), int(order[-1])]
            tiles = [face_tile(generation.image, face.transform)]
            row = {"photo": os.path.basename(photo), "size": f"{generation.image.shape[1]}x{generation.image.shape[0]}"}
            for name in RENDERERS:
                renderer = FaceRenderer(name, generation.image, face.transform, face.landmarks, talker.model.crop_size,
                                        talker.model.hybrid_motion_gain, talker.model.motion_level)
                scorer = RenderScorer(generation.image, face.transform, face.landmarks, talker.model.crop_size)
                started = time.perf_counter()
                kept = {}
                for index in range(len(generation.frames)):
                    frame = renderer.frame(chunk, index)
                    if index in instants:
                        kept[index] = face_tile(frame, face.transform)
                    scorer.add(frame, renderer.placed_landmarks(generation.landmarks[index]))
                row[name] = {**scorer.result(), "ms_per_frame": 1000 * (time.perf_counter() - started) / len(generation.frames)}
                tiles += [kept[index] for index in instants]
            rows.append(row)
            sheet_rows.append(np.concatenate(tiles, axis=1))
            print(json.dumps(row), flush=True)
    sheet = np.concatenate(sheet_rows, axis=0)
    header = np.full((28, sheet.shape[1], 3), 255, np.uint8)
    for column, label in enumerate(["photo"] + [f"{name} {when}" for name in RENDERERS for when in ("closed", "median", "open")]):
        cv2.putText(header, label, (column * TILE + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(args.sheet, cv2.cvtColor(np.concatenate([header, sheet]), cv2.COLOR_RGB2BGR))
    print("\n| photo | size | " + " | ".join(f"{name} {score}" for name in RENDERERS for score in NAMES) + " |")
    print("|---|---|" + "---|" * (len(RENDERERS) * len(NAMES)))
    for row in rows + [{"photo": "**mean**", "size": "", **{name: {s: float(np.mean([r[name][s] for r in rows])) for s in NAMES}
                                                            for name in RENDERERS}}]:
        print(f"| {row['photo']} | {row['size']} | " + " | ".join(f"{row[name][s]:.2f}" for name in RENDERERS for s in NAMES) + " |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
