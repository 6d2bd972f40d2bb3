"""Runs the streaming TF-Lite models of `atvg export --format tflite`, frame by frame, without TensorFlow.

Needs only numpy and ai-edge-litert (LiteRT), so it runs where TensorFlow does not (a Raspberry Pi,
an Android Python environment: `mobile_demo/` imports this file from the repository) and starts
fast (`atvg generate --runtime litert`). Exports whose AT-net hears phones also need pocketsphinx
(`atvg_tf.frontend.phones`, also TensorFlow-free), but only to turn phone ids into windows; those
with a phone head take phone posterior windows (`phones.PhoneWindowStream(posteriors=True)`), those
with an embedding head speech embedding windows (`speech_embedding.SpeechEmbeddingStream`), those
with an activation head the embedding network's activations (`SpeechEmbeddingStream(activations=True)`).

    engine = LiteTalkingFace("exported/", variant="int8", threads=2)
    engine.start(identity_frame, identity_landmarks)             # aligned crop uint8, [68, 2] crop px
    frame, landmarks = engine.step(pcm=pcm_window)               # [1, 4880] PCM (mobile_demo/atvg_lite.py)
    frame, landmarks = engine.step_audio({"mfcc_window": w})     # or AT-net's window(s) computed elsewhere
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from atvg_tf.frontend.mfcc_normalization import MfccNormalizer
from atvg_tf.rendering.face_points import uncross_lips

WINDOW_SAMPLES = 4880  # what mfcc.tflite reads per frame
NETWORKS = ("identity_encoder", "atnet_step", "vgnet_step")


class LiteTalkingFace:
    """The TF-Lite models of one export, with the recurrent states kept between frames.

    Args:
        model_dir: folder written by `atvg export --format tflite`.
        variant: float32, float16, dynamic or int8.
        threads: CPU threads per interpreter.
        runner: what runs a network instead of LiteRT: `runner(network)` -> a callable like
            LiteRT's signature runner (`generation.openvino_runner.OpenVINORunner`), or None for
            LiteRT; network is `mfcc`, `identity_encoder`, `atnet_step` or `vgnet_step`.

    Attributes:
        attention: [S, S, 1] the last frame's attention (the `vgnet` renderer's mask).
        motion: [S, S, 3] in [-1, 1], the last frame's motion/colour map (None for exports that
            predate it).
        crop_size: side S of the aligned crops.
        motion_factor: factor on the landmarks' motion from the identity before VG-net sees them
            (1: as exported; `--motion-gain` relative to the export's `motion_gain`).
    """

    def __init__(self, model_dir: str, variant: str = "float32", threads: int = 2,
                 runner: Callable[[str], Callable[..., dict] | None] | None = None):
        def load(network: str):
            replacement = runner(network) if runner else None
            if replacement is not None:
                return replacement
            path = os.path.join(model_dir, f"{network}.tflite" if network == "mfcc" else f"{network}.{variant}.tflite")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found; export it with `atvg export --format tflite --variants {variant}`.")
            return Interpreter(model_path=path, num_threads=threads).get_signature_runner("serving_default")

        self.atnet = load("atnet_step")
        audio = self.atnet.get_input_details()
        self.uses_mfcc, self.uses_phones, self.uses_posteriors = "mfcc_window" in audio, "phone_window" in audio, "phone_posterior" in audio
        # An embedding or activation head: `step(embeddings=...)` takes the window its export hears.
        self.embedding_activations = "speech_activation" in audio
        self.uses_embeddings = self.embedding_activations or "speech_embedding" in audio
        self.mfcc = load("mfcc") if self.uses_mfcc else None
        self.phones = phone_front_end() if self.uses_phones or self.uses_posteriors else None
        self.embedding = embedding_front_end() if self.uses_embeddings else None
        self.encoder = load("identity_encoder")
        self.vgnet = load("vgnet_step")
        self.crop_size = int(self.encoder.get_input_details()["identity_frame"]["shape"][1])
        settings = os.path.join(model_dir, "inference.json")  # absent in exports of earlier versions
        self.inference = {"rest_on_silence": False, "silence_frames": 16, "silence_settled": 4, "hybrid_motion_gain": 1.0, "motion_gain": 1.0,
                          "motion_level": None}
        if os.path.isfile(settings):
            with open(settings) as handle:
                self.inference.update(json.load(handle))
        self._normalizer = self._live_normalizer()
        self._identity: dict[str, np.ndarray] = {}
        self._offset = np.zeros((1, 136), np.float32)
        self.attention: np.ndarray | None = None
        self.motion: np.ndarray | None = None
        self.motion_factor = 1.0

    def warm_up(self) -> None:
        """Runs every LiteRT network once on zeros: LiteRT prepares its kernels (and prints its
        delegate notice) on the first call, not on a user's first frame. Runners that compile in the
        background (`compiles_in_background`) are left to finish. No state is touched."""
        for runner in (self.mfcc, self.encoder, self.atnet, self.vgnet):
            if runner is not None and not getattr(runner, "compiles_in_background", False):
                runner(**{name: np.zeros(detail["shape"], detail["dtype"]) for name, detail in runner.get_input_details().items()})

    @staticmethod
    def _zero_states(runner) -> dict[str, np.ndarray]:
        return {
            name: np.zeros(detail["shape"], np.float32)
            for name, detail in runner.get_input_details().items()
            if name.endswith(("_h", "_c"))
        }

    def start(self, identity_frame: np.ndarray, identity_landmarks: np.ndarray) -> None:
        """Sets the identity (aligned S x S RGB uint8 crop, [68, 2] landmarks in crop pixels) and
        resets the states: the next `step` is frame 0 of a new recording."""
        frame = (identity_frame.astype(np.float32) / 127.5 - 1.0)[None]
        marks = np.asarray(identity_landmarks, np.float32).reshape(1, 136)
        self._identity = {"identity_frame": frame, **self.encoder(identity_frame=frame, identity_landmarks=marks)}
        self._marks = marks
        self._offset = np.zeros((1, 136), np.float32)
        if self.inference["rest_on_silence"]:  # the face's rest pose: what AT-net does on silence (inference.json)
            self._atnet_states = self._zero_states(self.atnet)
            silence = self.silence_audio()
            silent = [self._landmarks(silence) for _ in range(self.inference["silence_frames"])]
            self._offset = np.mean(silent[self.inference["silence_settled"]:], axis=0) - marks
        self._atnet_states = self._zero_states(self.atnet)
        self._vgnet_states = self._zero_states(self.vgnet)
        self._normalizer = self._live_normalizer()

    def _live_normalizer(self) -> MfccNormalizer | None:
        """The voice normalisation of `step`'s MFCC windows (inference.json `mfcc_normalization`),
        without a lead: live audio cannot wait 2 s, so the first frames lean on the training statistics."""
        normalization = self.inference.get("mfcc_normalization")
        return MfccNormalizer.from_config({**normalization, "lead_frames": 1}) if normalization else None

    def silence_audio(self) -> dict[str, np.ndarray]:
        """atnet_step's audio inputs for a frame of silence."""
        return self.audio(np.zeros((1, WINDOW_SAMPLES), np.float32) if self.uses_mfcc else None,
                          np.zeros(28, np.int64) if self.uses_phones else None,
                          self.phones.one_hot(np.zeros(28, np.int64)) if self.uses_posteriors else None,
                          self.embedding.embedding_windows(np.zeros(self.embedding.SAMPLE_RATE // 25, np.float32), 1,
                                                           self.embedding_activations)[0]
                          if self.uses_embeddings else None)

    def audio(self, pcm: np.ndarray | None = None, phone_ids: np.ndarray | None = None,
              posteriors: np.ndarray | None = None, embeddings: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One frame's atnet_step audio inputs from its [1, 4880] PCM window, its [28] phone ids, its
        [28, 40] phone posterior window and/or its [11, 96] speech embedding window ([48, 96] activation
        window for an activation head), as the export's AT-net hears."""
        audio = {}
        if self.uses_mfcc:
            if pcm is None:
                raise ValueError("this export's AT-net hears MFCC: give the frame's [1, 4880] PCM window (pcm=...).")
            audio["mfcc_window"] = self.mfcc(pcm=pcm)["mfcc_window"]
            if self._normalizer:
                audio["mfcc_window"] = self._normalizer.push(audio["mfcc_window"][0]).reshape(audio["mfcc_window"].shape)
        if self.uses_phones:
            if phone_ids is None:
                raise ValueError("this export's AT-net hears phones: give the frame's [28] phone ids (phone_ids=...).")
            audio["phone_window"] = self.phones.one_hot(phone_ids).reshape(1, 1, self.phones.WINDOW_ROWS, self.phones.NUM_PHONES)
        if self.uses_posteriors:
            if posteriors is None:
                raise ValueError("this export's AT-net has a phone head: give the frame's [28, 40] phone posterior window (posteriors=...).")
            audio["phone_posterior"] = np.asarray(posteriors, np.float32).reshape(1, 1, self.phones.WINDOW_ROWS, self.phones.NUM_PHONES)
        if self.uses_embeddings:
            rows, name = ((self.embedding.ACTIVATION_ROWS, "activation") if self.embedding_activations
                          else (self.embedding.WINDOW_FRAMES, "embedding"))
            if embeddings is None or np.size(embeddings) != rows * self.embedding.EMBEDDING_SIZE:
                raise ValueError(f"this export's AT-net has an {name} head: give the frame's [{rows}, 96] speech {name} window (embeddings=...).")
            audio[f"speech_{name}"] = np.asarray(embeddings, np.float32).reshape(1, 1, rows, self.embedding.EMBEDDING_SIZE)
        return audio

    def step(self, pcm: np.ndarray | None = None, phone_ids: np.ndarray | None = None,
             posteriors: np.ndarray | None = None, embeddings: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One frame from raw inputs: RGB uint8 [S, S, 3] and landmarks [68, 2] (crop px).

        Args:
            pcm: the frame's [1, 4880] PCM window (`mobile_demo/atvg_lite.py: pcm_window`), for exports that hear MFCC.
            phone_ids: the frame's [28] phone ids (`atvg_tf.frontend.phones.PhoneWindowStream`),
                for exports that hear phones.
            posteriors: the frame's [28, 40] phone posterior window
                (`PhoneWindowStream(posteriors=True)`), for exports with a phone head.
            embeddings: the frame's [11, 96] speech embedding window (`SpeechEmbeddingStream`), for
                exports with an embedding head; its [48, 96] activation window
                (`SpeechEmbeddingStream(activations=True)`) for exports with an activation head.
        """
        return self.step_audio(self.audio(pcm, phone_ids, posteriors, embeddings))

    def step_audio(self, audio: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One frame from atnet_step's audio inputs (`mfcc_window` [1, 1, 28, 12], `phone_window` or
        `phone_posterior` [1, 1, 28, 40]): RGB uint8 [S, S, 3] and landmarks [68, 2] (crop px)."""
        if not self._identity:
            raise ValueError("call start(identity_frame, identity_landmarks) first.")
        landmarks = self._landmarks(audio) - self._offset
        if self.motion_factor != 1.0:
            landmarks = uncross_lips((self._marks + self.motion_factor * (landmarks - self._marks)).reshape(68, 2)).reshape(1, 136)
        rendered = self.vgnet(landmarks=landmarks, identity_landmarks=self._marks, **self._identity, **self._vgnet_states)
        self._vgnet_states = {name[5:]: value for name, value in rendered.items() if name.startswith("next_")}
        frame = np.clip(np.round((rendered["frame"][0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
        self.attention = rendered["attention"][0]
        self.motion = rendered["motion"][0] if "motion" in rendered else None
        return frame, landmarks.reshape(68, 2)

    def _landmarks(self, audio: dict[str, np.ndarray]) -> np.ndarray:
        """atnet_step on one frame's audio, carrying its states: [1, 136] landmarks (crop px)."""
        out = self.atnet(**audio, identity_landmarks=self._marks, **self._atnet_states)
        self._atnet_states = {name[5:]: value for name, value in out.items() if name.startswith("next_")}
        return out["landmarks"]


def embedding_front_end():
    """The TensorFlow-free module `atvg_tf.frontend.speech_embedding`; checks that its models are installed."""
    from atvg_tf.frontend import speech_embedding

    speech_embedding.model_path("embedding_model")
    return speech_embedding


def phone_front_end():
    """The TensorFlow-free module `atvg_tf.frontend.phones`; checks that pocketsphinx is installed."""
    import importlib.util

    from atvg_tf.frontend import phones

    if importlib.util.find_spec("pocketsphinx") is None:
        raise ImportError("this export's AT-net hears phones, which need pocketsphinx: pip install pocketsphinx==5.1.1")
    return phones
