"""Builds a TF-Serving request for the exported SavedModel from a photo and a speech file.

Aligns the photo's face the way `atvg generate` does for the exported model (the model folder decides:
the release's `base_68` alignment and dlib for converted official models). The audio goes as the
exported model's signatures take it: the waveform for a model that hears MFCC only (the front end is
in the graph), else the AT-net's precomputed windows (`phone_windows` one-hot, and `mfcc_windows`
for `mfcc+phones`; phones need pocketsphinx). It writes
  - a REST `:predict` body in TF-Serving's columnar ("inputs") JSON format, and/or
  - one .npy file per input, for `saved_model_cli run`.

    python export/make_request.py --model MODEL_DIR --image face.jpg --audio speech.wav --json request.json --npy inputs/
    curl -d @request.json http://localhost:8501/v1/models/atvg:predict
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def request_inputs(image: str, audio: str, model_dir: str | None = None, landmarks: str | None = None) -> dict[str, np.ndarray]:
    """The serving_default inputs: the audio, the aligned 128 x 128 crop (uint8) and its 68 landmarks.

    The audio is the 16 kHz `waveform` [N] for a model that hears MFCC only, else its audio windows
    (`phone_windows` [T, 28, 40] and/or `mfcc_windows` [T, 28, 12], float32).

    Args:
        model_dir: the model folder that was exported (None: the packaged default model); it
            decides the alignment, the audio inputs and, unless `landmarks` is given, the landmark backend.
    """
    from atvg_tf.frontend.audio import load_audio
    from atvg_tf.frontend.audio_windows import audio_windows
    from atvg_tf.generation.talking_face import TalkingFace

    with TalkingFace(model_dir, landmarks) as talker:
        face = talker.identity(image).face
        inputs, normalization = talker.model.audio_inputs, talker.model.mfcc_normalization
    waveform = load_audio(audio)
    sound = {"waveform": waveform} if inputs == ("mfcc_windows",) else audio_windows(waveform, inputs, None, normalization)
    return {
        **sound,
        "identity_frame": face.image,
        "identity_landmarks": face.landmarks.astype(np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, metavar="PHOTO", help="photo with a face")
    parser.add_argument("--audio", required=True, metavar="SPEECH", help="speech recording")
    parser.add_argument("--model", metavar="MODEL_DIR", help="the model folder that was exported (default: the packaged model)")
    parser.add_argument("--landmarks", choices=["mediapipe", "dlib"], help="landmark backend (default: the model's)")
    parser.add_argument("--json", metavar="FILE", help="write the REST request body here")
    parser.add_argument("--npy", metavar="DIR", help="write <input>.npy files here (for saved_model_cli run)")
    parser.add_argument("--signature", default="serving_default", help="signature name in the request body (default: serving_default)")
    args = parser.parse_args()
    if not (args.json or args.npy):
        parser.error("give --json, --npy or both.")
    inputs = request_inputs(args.image, args.audio, args.model, args.landmarks)
    if args.json:
        body = {"signature_name": args.signature, "inputs": {name: value.tolist() for name, value in inputs.items()}}
        with open(args.json, "w") as handle:
            json.dump(body, handle)
    if args.npy:
        os.makedirs(args.npy, exist_ok=True)
        for name, value in inputs.items():
            np.save(os.path.join(args.npy, f"{name}.npy"), value)


if __name__ == "__main__":
    main()
