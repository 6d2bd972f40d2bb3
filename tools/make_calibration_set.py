"""Builds `atvg_tf/assets/calibration.npz`: what full-int8 TF-Lite export calibrates on by default.

Faces: loose square crops (256 px, JPEG) around the faces of the permissively licensed photos and
clip frames in ../shared/data, with their 68 landmarks, so `atvg export` can align them the way
the exported model aligns faces. Speech: runs of 16 MFCC windows from permissively licensed
recordings. Sources and licences are stored in the file (`sources`) and listed in
atvg_tf/assets/README.md.

    python3 tools/make_calibration_set.py [--shared ../shared/data] [--output atvg_tf/assets/calibration.npz]
"""

from __future__ import annotations

import argparse
import os

import cv2
import numpy as np

# (path relative to the shared data folder, licence): faces from photos and clip frames.
FACE_SOURCES = [
    ("atvgnet/image/Elektra.jpg", "MIT (ATVGnet release)"),
    ("atvgnet/image/image_sample.jpg", "MIT (ATVGnet release)"),
    ("atvgnet/image/musk1.jpg", "MIT (ATVGnet release)"),
    ("atvgnet/image/EzraMiller_00075.jpg", "MIT (ATVGnet release)"),
    ("atvgnet/image/Eddie_Kaye_Thomas_00227.jpg", "MIT (ATVGnet release)"),
    ("atvgnet/image/ABOUT_00001_00001.jpg", "MIT (ATVGnet release)"),
    ("atvgnet/image/test1.jpg", "MIT (ATVGnet release)"),
    ("wild/pcavs_512400353.jpg", "CC BY 4.0 (Talking-Face_PC-AVS)"),
    ("wild/pcavs_517600055.jpg", "CC BY 4.0 (Talking-Face_PC-AVS)"),
    ("wild/retalking_1.mp4", "Apache-2.0 (video-retalking)"),
    ("wild/edtalk_pose_source2_60s.mp4", "Apache-2.0 (EDTalk)"),
    ("grid/other/brbk7n.mpg", "CC BY 4.0 (GRID corpus)"),
    ("grid/other/lbax4n.mpg", "CC BY 4.0 (GRID corpus)"),
    ("grid/other/lrwp9a.mpg", "CC BY 4.0 (GRID corpus)"),
    ("grid/other/sbia1a.mpg", "CC BY 4.0 (GRID corpus)"),
    ("grid/s1/bbaf4p.mpg", "CC BY 4.0 (GRID corpus)"),
]
# Speech: (path, licence); runs of windows are taken evenly through each recording.
SPEECH_SOURCES = [
    ("atvgnet/audio/audio_sample.wav", "MIT (ATVGnet release)"),
    ("atvgnet/audio/test.wav", "MIT (ATVGnet release)"),
    ("wild/sadtalker_RD_Radio31_000.wav", "Apache-2.0 (SadTalker)"),
    ("wild/retalking_1.wav", "Apache-2.0 (video-retalking)"),
    ("wild/edtalk_mouth_source.wav", "Apache-2.0 (EDTalk)"),
    ("grid/other/lbbc2a.mpg", "CC BY 4.0 (GRID corpus)"),
    ("grid/other/brbk7n.mpg", "CC BY 4.0 (GRID corpus)"),
    ("grid/s1/bbaf4p.mpg", "CC BY 4.0 (GRID corpus)"),
]
CROP = 256
SEQUENCE = 16
RUNS_PER_RECORDING = 2


def loose_crop(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A square CROP x CROP crop around the face (2.2 x its landmark box) and the landmarks in it."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    centre, side = (low + high) / 2, 2.2 * float(np.max(high - low))
    scale = CROP / side
    transform = np.array([[scale, 0, CROP / 2 - scale * centre[0]], [0, scale, CROP / 2 - scale * centre[1]]])
    crop = cv2.warpAffine(image, transform, (CROP, CROP), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return crop, landmarks @ transform[:, :2].T + transform[:, 2]


def first_frame(path: str) -> np.ndarray:
    from atvg_tf.frontend.video import read_frames

    return next(iter(read_frames(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(repo), "shared", "data"), help="the shared data folder")
    parser.add_argument("--output", default=os.path.join(repo, "atvg_tf", "assets", "calibration.npz"), help="the file to write")
    args = parser.parse_args()

    from atvg_tf.frontend.audio import load_audio, mfcc_windows
    from atvg_tf.frontend.face.landmarks import create_landmark_detector
    from atvg_tf.frontend.image import load_image
    from atvg_tf.utils.files import atomic_write

    jpegs, marks, sources = [], [], []
    with create_landmark_detector("mediapipe") as detector:
        for name, licence in FACE_SOURCES:
            path = os.path.join(args.shared, name)
            image = load_image(path) if name.endswith(".jpg") else first_frame(path)
            crop, points = loose_crop(image, detector.largest_face(image, warn=False))
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            jpegs.append(np.frombuffer(encoded.tobytes(), np.uint8))
            marks.append(points.astype(np.float32))
            sources.append(f"face: {name} ({licence})")
    windows = []
    for name, licence in SPEECH_SOURCES:
        recording = mfcc_windows(load_audio(os.path.join(args.shared, name)))
        starts = np.linspace(0, len(recording) - SEQUENCE, RUNS_PER_RECORDING + 2)[1:-1].astype(int)
        windows.extend(recording[start : start + SEQUENCE] for start in starts)
        sources.append(f"speech: {name} ({licence})")
    offsets = np.cumsum([0] + [len(j) for j in jpegs])
    with atomic_write(args.output, "wb") as handle:
        np.savez_compressed(
            handle,
            face_jpegs=np.concatenate(jpegs),
            face_offsets=offsets.astype(np.int64),
            face_landmarks=np.stack(marks),
            mfcc_windows=np.stack(windows).astype(np.float16),
            sources=np.array(sources),
        )
    print(f"wrote {args.output}: {len(jpegs)} faces, {len(windows)} runs of {SEQUENCE} MFCC windows, "
          f"{os.path.getsize(args.output) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
