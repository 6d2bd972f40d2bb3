"""A person's own footage for `atvg finetune`: one person in every video, and each video cut into a
part to train on and a held-out tail to measure on."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import scipy.io.wavfile

from atvg_tf.data.clip_preparer import clip_waveform
from atvg_tf.errors import InputError
from atvg_tf.frontend.audio import AudioConfig
from atvg_tf.frontend.face.identity import FaceIdentity, distance
from atvg_tf.frontend.face.landmarks import LandmarkDetector, face_size
from atvg_tf.frontend.video import probe, read_frames
from atvg_tf.frontend.video_writer import Mp4Writer

# One look per second; descriptors pooled over windows of this many looks (a median is steadier than one frame).
LOOKS_PER_SECOND, WINDOW_LOOKS = 1, 4
# A second face counts as a person when it is at least this fraction of the largest face's size,
# in at least this share of the looks (a poster or a passer-by in a few frames is tolerated).
SECOND_FACE_SIZE, SECOND_FACE_SHARE = 0.5, 0.2
# Pooled descriptors of one person measured within 0.29 of each other on the shared clips, of two
# people 0.47 or more apart: windows further than this from the first one are another person.
OTHER_PERSON_DISTANCE = 0.38


class NotOnePersonError(InputError):
    """The footage shows several people at once, or a face that changes identity."""


def check_one_person(videos: list[str], detector: LandmarkDetector, on_look=None) -> None:
    """Raises `NotOnePersonError` unless every video shows one and the same person.

    Args:
        videos: the footage.
        detector: finds every face in a frame (largest first).
        on_look: called after each frame looked at (progress).
    """
    identity = FaceIdentity()
    reference, reference_video = None, None
    for video in videos:
        step = max(1, round(25 / LOOKS_PER_SECOND))
        looks, several, window = 0, [], []
        for index, frame in enumerate(read_frames(video)):
            if index % step:
                continue
            faces = detector.photo_landmarks(frame)  # small faces of wide shots included
            looks += 1
            if on_look:
                on_look()
            if not faces:
                continue
            if len(faces) > 1 and face_size(faces[1]) >= SECOND_FACE_SIZE * face_size(faces[0]):
                several.append(index / 25)
            window.append(identity.descriptor(frame, faces[0]))
            if len(window) == WINDOW_LOOKS:
                pooled = np.median(window, axis=0)
                window = []
                if reference is None:
                    reference, reference_video = pooled, video
                elif distance(pooled, reference) > OTHER_PERSON_DISTANCE:
                    raise NotOnePersonError(
                        f"{video} shows a different person around {index / 25:.0f} s than {reference_video} at its start; "
                        f"fine-tuning learns one person: give only footage of that person.")
        if looks and len(several) >= SECOND_FACE_SHARE * looks:
            raise NotOnePersonError(
                f"{video} shows two or more people at once (e.g. at {several[0]:.1f} s); fine-tuning learns one person: "
                f"crop the video to that person's face or choose footage where they are alone.")
    if reference is None:
        raise NotOnePersonError(f"no face was found for {WINDOW_LOOKS} s in {', '.join(videos)}; give footage of a face.")


def split_video(video: str, train_path: str, heldout_path: str, heldout_fraction: float) -> dict:
    """Writes the first (1 - heldout_fraction) of a video and its last heldout_fraction as two MP4s with sound.

    Both are re-encoded at 25 fps; each file appears only when complete.

    Returns:
        {"frames", "heldout_start"} in 25 fps frames.
    """
    info = probe(video)
    config = AudioConfig()
    rate, per_frame = config.sample_rate, config.samples_per_video_frame
    waveform = clip_waveform(video, rate, info)  # its own sound, or the recording beside it
    total = int(round(info.duration * 25))
    cut = int(round(total * (1.0 - heldout_fraction)))
    if cut < 16 or total - cut < 16:
        raise InputError(f"{video} is {info.duration:.1f} s long: too short to hold out {heldout_fraction:.0%} "
                         f"(at least 16 frames each side); give longer footage.")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(train_path))) as scratch:
        train_wav, heldout_wav = os.path.join(scratch, "train.wav"), os.path.join(scratch, "heldout.wav")
        for path, part in ((train_wav, waveform[:cut * per_frame]), (heldout_wav, waveform[cut * per_frame:])):
            scipy.io.wavfile.write(path, rate, np.asarray(part, np.float32))
        with Mp4Writer(train_path, train_wav) as train, Mp4Writer(heldout_path, heldout_wav) as heldout:
            frames = 0
            for index, frame in enumerate(read_frames(video)):
                (train if index < cut else heldout).write(frame)
                frames += 1
    return {"frames": frames, "heldout_start": cut}
