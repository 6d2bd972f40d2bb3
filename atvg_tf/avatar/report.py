"""What `atvg finetune` reports: held-out scores before and after, and a contact sheet to look at."""

from __future__ import annotations

import cv2
import numpy as np

from atvg_tf.evaluation.evaluate import RENDER_CHUNK, align_clip
from atvg_tf.frontend.face.alignment import warp_to_crop
from atvg_tf.frontend.face.landmarks import create_landmark_detector
from atvg_tf.generation.compose import FaceRenderer
from atvg_tf.generation.model import TalkingFaceModel

SHEET_COLUMNS, SHEET_SCALE = 6, 2  # frames shown; the crops at this multiple of the model's crop size
SHEET_RENDERER = "hybrid"  # what `atvg generate` puts in the video by default


def _scores(report: dict) -> dict:
    hybrid = report["renderers"].get(SHEET_RENDERER, {})
    return {"lmd": report["model"]["lmd"], "ssim": report["model"]["ssim"], "sync_corr": report["sync"]["sync_corr"],
            "hybrid_lmd": hybrid.get("lmd"), "hybrid_sharpness_ratio": hybrid.get("sharpness_ratio"),
            # Where the error comes from: AT-net's landmarks alone, and VG-net driven by the real landmarks.
            "atnet_landmark_lmd": report["atnet_landmark_lmd"], "real_landmarks_lmd": report["ground_truth_landmarks"]["lmd"]}


def summarize(before: dict, after: dict, clips: list[str]) -> dict:
    """The report of a fine-tune from `atvg evaluate` reports of the base and the fine-tuned model on the held-out clips.

    LMD and SSIM are VG-net's frames (128 px) against the real aligned frames; `hybrid_*` are the
    frames of the default renderer; the static baseline repeats the held-out part's first frame.
    """
    static = before["static_baseline"]
    summary = {"base": _scores(before), "finetuned": _scores(after),
               "static_baseline": {"lmd": static["lmd"], "ssim": static["ssim"], "landmark_lmd": before["static_landmark_lmd"]},
               "frames": sum(row["frames"] for row in after["clips"]), "clips": len(clips)}
    summary["lmd_below_base"] = 1.0 - summary["finetuned"]["lmd"] / summary["base"]["lmd"]
    summary["lmd_below_static"] = 1.0 - summary["finetuned"]["lmd"] / static["lmd"]
    return summary


def format_summary(report: dict) -> str:
    """A few lines for the terminal."""
    base, tuned, static = report["base"], report["finetuned"], report["static_baseline"]
    return "\n".join([
        f"held-out footage: {report['frames']} frames of {report['clips']} clip(s)",
        f"{'':12s} {'LMD':>7s} {'SSIM':>7s} {'sync':>6s} {'sharpness':>9s}",
        f"{'static':12s} {static['lmd']:7.3f} {static['ssim']:7.3f}",
        f"{'base model':12s} {base['lmd']:7.3f} {base['ssim']:7.3f} {base['sync_corr']:6.2f} {base['hybrid_sharpness_ratio'] or 0:9.2f}",
        f"{'fine-tuned':12s} {tuned['lmd']:7.3f} {tuned['ssim']:7.3f} {tuned['sync_corr']:6.2f} {tuned['hybrid_sharpness_ratio'] or 0:9.2f}",
        f"LMD {report['lmd_below_base']:.0%} below the base model's, {report['lmd_below_static']:.0%} below the static baseline's",
    ])


def contact_sheet(clip_path: str, before: TalkingFaceModel, after: TalkingFaceModel, path: str,
                  audio_offset_frames: int = 0) -> None:
    """Writes a PNG: rows real | base model | fine-tuned, `SHEET_COLUMNS` frames of the held-out clip
    spread over its length, each the aligned face at twice the crop size as the default renderer
    draws it into the clip's first frame (`audio_offset_frames`: as `align_clip`)."""
    with create_landmark_detector(after.landmark_backend) as detector:
        # What either model hears (the packaged model's head, a person-basis fine-tune without one).
        heard = tuple(dict.fromkeys(before.audio_inputs + after.audio_inputs))
        clip = align_clip(clip_path, detector, after.alignment, heard, mfcc_normalization=after.mfcc_normalization,
                          audio_offset_frames=audio_offset_frames)
    size = after.crop_size * SHEET_SCALE
    transform = clip.transform * SHEET_SCALE
    picks = np.linspace(1, len(clip.crops) - 1, SHEET_COLUMNS).round().astype(int)
    rows = [[cv2.resize(clip.crops[i], (size, size), interpolation=cv2.INTER_CUBIC) for i in picks]]
    for model in (before, after):
        identity_marks = clip.landmarks[0]
        predicted = model.predict_landmarks(clip.windows, identity_marks)
        outputs = model.render(clip.crops[0], identity_marks, predicted, chunk_frames=RENDER_CHUNK)
        chunk = {"frames": outputs["frames"], "landmarks": predicted, "attention": outputs["attention"]}
        face = FaceRenderer(SHEET_RENDERER, clip.photo, clip.transform, identity_marks, model.crop_size, model.hybrid_motion_gain,
                            model.motion_level)
        # Every frame in order, as in a video: the motion level follows the recording frame by frame.
        kept = {}
        for index in range(picks[-1] + 1):
            frame = face.frame(chunk, index)
            if index in picks:
                kept[index] = warp_to_crop(frame, transform, size)
        rows.append([kept[i] for i in picks])
    labels = ("real", "base model", "fine-tuned")
    sheet = []
    for label, row in zip(labels, rows):
        strip = np.concatenate(row, axis=1).copy()
        cv2.putText(strip, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
        sheet.append(strip)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(sheet, axis=0), cv2.COLOR_RGB2BGR))
