"""Builds `atvg_tf/assets/calibration.npz`: what full-int8 TF-Lite export calibrates on by default.

Faces: loose square crops (256 px, JPEG) around the faces of the permissively licensed photos and
clip frames in ../shared/data, with their 68 landmarks, so `atvg export` can align them the way
the exported model aligns faces. Speech: runs of 16 frames from permissively licensed recordings,
as MFCC windows (float16), as PocketSphinx phone ids (uint8, `frontend.phones`; one-hot at
export time for AT-nets that hear phones) and as speech embedding windows and activation windows
(float16, `frontend.speech_embedding`, for AT-nets with an embedding or an activation head) of the
same frames. Sources and licences are stored in the
file (`sources`) and listed in atvg_tf/assets/README.md.

    python3 tools/make_calibration_set.py [--shared ../shared/data] [--output atvg_tf/assets/calibration.npz]
    python3 tools/make_calibration_set.py --faces-from atvg_tf/assets/calibration.npz   # rebuild the speech only
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


def detect_faces(shared: str) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """JPEG bytes, landmarks [68, 2] in the crop and a source line of every face in FACE_SOURCES."""
    from atvg_tf.frontend.face.landmarks import create_landmark_detector
    from atvg_tf.frontend.image import load_image

    jpegs, marks, sources = [], [], []
    with create_landmark_detector("mediapipe") as detector:
        for name, licence in FACE_SOURCES:
            path = os.path.join(shared, name)
            image = load_image(path) if name.endswith(".jpg") else first_frame(path)
            crop, points = loose_crop(image, detector.largest_face(image, warn=False))
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            jpegs.append(np.frombuffer(encoded.tobytes(), np.uint8))
            marks.append(points.astype(np.float32))
            sources.append(f"face: {name} ({licence})")
    return jpegs, marks, sources


def stored_faces(path: str) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """The faces of an existing calibration file, byte for byte (as `detect_faces`)."""
    with np.load(path) as data:
        offsets = data["face_offsets"]
        jpegs = [data["face_jpegs"][offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return jpegs, list(data["face_landmarks"]), [str(line) for line in data["sources"] if str(line).startswith("face: ")]


def speech_runs(shared: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[str]]:
    """RUNS_PER_RECORDING runs of SEQUENCE frames, evenly through each recording in SPEECH_SOURCES:
    MFCC windows [runs, 16, 28, 12] float16, phone ids [runs, 16, 28] uint8, {`speech_embeddings`:
    [runs, 16, 11, 96], `speech_activations`: [runs, 16, 48, 96]} float16 of the same frames, source lines."""
    from atvg_tf.frontend.audio import load_audio, mfcc_windows
    from atvg_tf.frontend.phones import NUM_PHONES, phone_windows
    from atvg_tf.frontend.speech_embedding import embedding_windows

    assert NUM_PHONES <= 256  # the ids are stored as uint8
    mfcc_runs, phone_runs, sources = [], [], []
    embedding_runs: dict[str, list] = {"speech_embeddings": [], "speech_activations": []}
    for name, licence in SPEECH_SOURCES:
        waveform = load_audio(os.path.join(shared, name))
        recording = mfcc_windows(waveform)
        # The whole recording: the decoder and the embedding see each run in context.
        phones = phone_windows(waveform, len(recording))
        embeddings = {feature: embedding_windows(waveform, len(recording), activations=feature == "speech_activations")
                      for feature in embedding_runs}
        starts = np.linspace(0, len(recording) - SEQUENCE, RUNS_PER_RECORDING + 2)[1:-1].astype(int)
        mfcc_runs.extend(recording[start : start + SEQUENCE] for start in starts)
        phone_runs.extend(phones[start : start + SEQUENCE] for start in starts)
        for feature, runs in embedding_runs.items():
            runs.extend(embeddings[feature][start : start + SEQUENCE] for start in starts)
        sources.append(f"speech: {name} ({licence})")
    return (np.stack(mfcc_runs).astype(np.float16), np.stack(phone_runs).astype(np.uint8),
            {name: np.stack(runs).astype(np.float16) for name, runs in embedding_runs.items()}, sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(repo), "shared", "data"), help="the shared data folder")
    parser.add_argument("--output", default=os.path.join(repo, "atvg_tf", "assets", "calibration.npz"), help="the file to write")
    parser.add_argument("--faces-from", metavar="NPZ",
                        help="copy the faces from this calibration file instead of detecting them again (they stay byte-identical)")
    args = parser.parse_args()

    from atvg_tf.utils.files import atomic_write

    jpegs, marks, face_sources = stored_faces(args.faces_from) if args.faces_from else detect_faces(args.shared)
    mfcc_runs, phone_runs, embedding_runs, speech_sources = speech_runs(args.shared)
    offsets = np.cumsum([0] + [len(j) for j in jpegs])
    with atomic_write(args.output, "wb") as handle:
        np.savez_compressed(
            handle,
            face_jpegs=np.concatenate(jpegs),
            face_offsets=offsets.astype(np.int64),
            face_landmarks=np.stack(marks).astype(np.float32),
            mfcc_windows=mfcc_runs,
            phone_windows=phone_runs,
            **embedding_runs,
            sources=np.array(face_sources + speech_sources),
        )
    print(f"wrote {args.output}: {len(jpegs)} faces, {len(mfcc_runs)} runs of {SEQUENCE} MFCC, phone, embedding and activation windows, "
          f"{os.path.getsize(args.output) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
