"""Photo + speech -> talking-face frames, and writing them as an MP4 with the speech muxed in.

    from atvg_tf.generation.talking_face import TalkingFace
    talker = TalkingFace()                      # the packaged default model, MediaPipe landmarks
    result = talker.generate("face.jpg", "speech.wav")
    talker.save(result, "out.mp4")              # pasted back into the photo, 25 fps, H.264 + AAC
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import av
import cv2
import numpy as np

from atvg_tf.frontend.audio import load_audio, mfcc_windows
from atvg_tf.frontend.face.alignment import AlignedFace, align_face, invert_transform
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.frontend.image import load_image
from atvg_tf.generation.model import TalkingFaceModel

OUTPUT_MODES = ("paste-back", "crop", "panels")


@dataclasses.dataclass
class Generation:
    """The result of `TalkingFace.generate`.

    Attributes:
        image: the original RGB photo.
        face: its aligned face (crop, crop landmarks, transform).
        frames: [T, 128, 128, 3] uint8 generated crops.
        landmarks: [T, 68, 2] predicted landmarks (crop pixels).
        attention: [T, 128, 128, 1] attention maps in [0, 1].
        motion: [T, 128, 128, 3] uint8 motion/colour maps.
        audio_path: the speech the frames follow.
    """

    image: np.ndarray
    face: AlignedFace
    frames: np.ndarray
    landmarks: np.ndarray
    attention: np.ndarray
    motion: np.ndarray
    audio_path: str


class TalkingFace:
    """Loads a model once and turns (photo, speech) pairs into talking-face videos.

    Args:
        model: a `TalkingFaceModel`, a model folder, or None for the packaged default model.
        landmarks: landmark backend for the photo (`mediapipe` or `dlib`).
    """

    def __init__(self, model: TalkingFaceModel | str | None = None, landmarks: str = "mediapipe"):
        self.model = model if isinstance(model, TalkingFaceModel) else TalkingFaceModel.load(model)
        self.detector = create_landmark_detector(landmarks)

    def close(self) -> None:
        """Releases the landmark detector."""
        self.detector.close()

    def __enter__(self) -> "TalkingFace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def generate(self, image: str | np.ndarray, audio: str, face_index: int = 0) -> Generation:
        """Generates the frames for a photo (path or RGB array) and a speech file."""
        photo = load_image(image) if isinstance(image, str) else np.asarray(image)
        face = align_face(photo, self.detector.largest_face(photo, face_index=face_index))
        waveform = load_audio(audio)
        landmarks = self.model.predict_landmarks(mfcc_windows(waveform), face.landmarks)
        rendered = self.model.render(face.image, face.landmarks, landmarks)
        return Generation(photo, face, rendered["frames"], landmarks, rendered["attention"], rendered["motion"], audio)

    def save(self, generation: Generation, path: str, mode: str = "paste-back", fps: int = 25) -> None:
        """Writes an H.264 MP4 with the speech as AAC; the file appears only when complete.

        Args:
            mode: `paste-back` (the face back in the full photo), `crop` (128 x 128 crops) or
                `panels` (frame | attention | motion | landmarks).
        """
        if mode not in OUTPUT_MODES:
            raise ValueError(f"unknown output mode {mode!r}; choose one of {', '.join(OUTPUT_MODES)}.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise PermissionError(f"cannot write {path}: {folder} is not a writable folder.")
        frames = {"paste-back": paste_back, "crop": lambda g: g.frames, "panels": panel_frames}[mode](generation)
        handle, partial = tempfile.mkstemp(suffix=".mp4", dir=folder, prefix=".atvg-")
        os.close(handle)
        try:
            write_mp4(frames, load_audio(generation.audio_path, 48000), partial, fps)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(partial, 0o666 & ~umask)  # mkstemp makes it private; give it normal permissions
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)


def paste_back(generation: Generation) -> np.ndarray:
    """The generated crops warped back into the photo with a feathered mask (no box edge shows)."""
    height, width = generation.image.shape[:2]
    inverse = invert_transform(generation.face.transform)
    size = generation.frames.shape[1]
    mask = np.zeros((size, size), np.float32)
    border = size // 10
    mask[border:-border, border:-border] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), border / 2)
    mask = cv2.warpAffine(mask, inverse, (width, height))[..., None]
    out = np.empty((len(generation.frames), height, width, 3), np.uint8)
    for index, crop in enumerate(generation.frames):
        warped = cv2.warpAffine(crop, inverse, (width, height), flags=cv2.INTER_LINEAR)
        out[index] = (warped * mask + generation.image * (1 - mask)).astype(np.uint8)
    return out


def panel_frames(generation: Generation) -> np.ndarray:
    """frame | attention map | motion map | predicted landmarks, side by side (the paper's Fig. 1 view)."""
    heat = np.repeat((generation.attention * 255).astype(np.uint8), 3, axis=-1)
    canvas = []
    for points in generation.landmarks:
        sketch = np.zeros(generation.frames.shape[1:], np.uint8)
        for x, y in points:
            cv2.circle(sketch, (int(round(x)), int(round(y))), 1, (255, 255, 255), -1)
        canvas.append(sketch)
    return np.concatenate([generation.frames, heat, generation.motion, np.stack(canvas)], axis=2)


def write_mp4(frames: np.ndarray, audio_48k: np.ndarray, path: str, fps: int = 25) -> None:
    """Encodes [T, H, W, 3] uint8 frames (H.264, yuv420p) and mono 48 kHz audio (AAC) into `path`."""
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2  # yuv420p needs even sizes
    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=48000, layout="mono")
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = av.AudioFrame.from_ndarray(audio_48k.astype(np.float32)[None], format="flt", layout="mono")
        samples.sample_rate = 48000
        resampler = av.AudioResampler(format=sound.format, layout="mono", rate=48000)
        for chunk in resampler.resample(samples) + resampler.resample(None):
            for packet in sound.encode(chunk):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)

