"""Builds a TF-Serving request for the exported SavedModel from a photo and a speech file.

Aligns the photo's face the way `atvg generate` does and writes
  - a REST `:predict` body in TF-Serving's columnar ("inputs") JSON format, and/or
  - one .npy file per input, for `saved_model_cli run`.

    python export/make_request.py --image face.jpg --audio speech.wav --json request.json --npy inputs/
    curl -d @request.json http://localhost:8501/v1/models/atvg:predict
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def request_inputs(image: str, audio: str, landmarks: str = "mediapipe") -> dict[str, np.ndarray]:
    """The serving_default inputs: 16 kHz waveform, aligned 128 x 128 crop (uint8), its 68 landmarks."""
    from atvg_tf.frontend.audio import load_audio
    from atvg_tf.frontend.face.alignment import align_face
    from atvg_tf.frontend.face.landmarks import create_landmark_detector
    from atvg_tf.frontend.image import load_image

    photo = load_image(image)
    with create_landmark_detector(landmarks) as detector:
        face = align_face(photo, detector.largest_face(photo))
    return {
        "waveform": load_audio(audio),
        "identity_frame": face.image,
        "identity_landmarks": face.landmarks.astype(np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--json", metavar="FILE", help="write the REST request body here")
    parser.add_argument("--npy", metavar="DIR", help="write <input>.npy files here (for saved_model_cli run)")
    parser.add_argument("--signature", default="serving_default")
    args = parser.parse_args()
    if not (args.json or args.npy):
        parser.error("give --json, --npy or both.")
    inputs = request_inputs(args.image, args.audio)
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
