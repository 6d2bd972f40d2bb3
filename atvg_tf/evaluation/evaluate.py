"""`atvg evaluate`: generate each test clip from its first frame and its audio, compare with the real clip.

For each clip: the face is aligned as the model aligns faces (`TalkingFaceModel.alignment`: this
project's template, as `atvg prepare`, or the release's `base_68` for converted official models),
with the model's landmark backend unless another is given; the identity frame is the first aligned
frame; AT-net predicts landmarks from the clip's audio and VG-net renders them. LMD (mouth, per
point, pixels at 128 px), SSIM, PSNR and the release's legacy PSNR are computed for the model, for
the static baseline (the identity frame repeated) and for VG-net driven by the real landmarks (the
upper bound that isolates AT-net's error), on every frame but the identity frame.
Frames where landmark detection fails on either image are counted and left out of LMD.

Lip-sync as a viewer sees it (docs/EVALUATION.md): per frame, the inner-lip aperture over the
outer eye-corner distance of the generated and the real video; `sync_corr` is their Pearson
correlation (frames where both faces are found), `sync_corr_control` the same generated curve
against another clip of the run (a model that moves the mouth without following the speech scores
about the control), `aperture_std_ratio` how strongly the mouth moves compared with the real one,
and `atnet_sync_corr` the same correlation for AT-net's landmarks alone. For GRID clips with an
`.align` file beside them only the spoken frames count (the silence around every GRID sentence
would inflate the correlation). A renderer's full-resolution frames are read as the real clip's
are (followed as a video); the model's own 128 px crops are read one by one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from atvg_tf.data.clip_preparer import clip_waveform, read_grid_alignment
from atvg_tf.data.discovery import no_sound_advice, sound_source
from atvg_tf.data.segments import fill_gaps, find_segments
from atvg_tf.errors import AtvgError, InputError
from atvg_tf.evaluation import metrics, render_scores
from atvg_tf.evaluation.render_scores import RenderScorer
from atvg_tf.frontend.audio import AudioConfig
from atvg_tf.frontend.audio_windows import audio_windows
from atvg_tf.frontend.face.alignment import AlignmentConfig, clip_transforms, transform_points, warp_to_crop
from atvg_tf.frontend.face.landmarks import LandmarkDetector, create_landmark_detector
from atvg_tf.frontend.video import VideoError, probe, read_frames
from atvg_tf.generation.compose import FaceRenderer
from atvg_tf.generation.model import TalkingFaceModel
from atvg_tf.rendering import RENDERERS
from atvg_tf.utils.files import atomic_write


@dataclasses.dataclass
class AlignedClip:
    """A clip's longest face segment, aligned.

    Attributes:
        crops: [N, 128, 128, 3] uint8 aligned frames.
        landmarks: [N, 68, 2] landmarks in crop pixels.
        windows: the audio windows AT-net asked for, {input: [N, 28, F]} (see `frontend.audio_windows`).
        start: first frame of the segment in the clip.
        alignment: the alignment used.
        speech: [N] bool, the frames inside the spoken part (GRID `.align` file beside the clip;
            all frames otherwise).
        photo: the segment's first frame at the clip's resolution (the renderers' photo).
        transform: [2, 3] its photo -> crop transform.
    """

    crops: np.ndarray
    landmarks: np.ndarray
    windows: dict[str, np.ndarray]
    start: int
    alignment: AlignmentConfig
    speech: np.ndarray
    photo: np.ndarray
    transform: np.ndarray


def align_clip(path: str, detector: LandmarkDetector,
               alignment: AlignmentConfig | Callable[[np.ndarray], AlignmentConfig] = AlignmentConfig(),
               audio_inputs: tuple[str, ...] = ("mfcc_windows",), min_frames: int = 16, max_frames: int | None = None,
               mfcc_normalization: dict | None = None, audio_offset_frames: int = 0) -> AlignedClip:
    """Aligns a short clip in memory, as `atvg prepare` does (gaps up to 5 frames interpolated).

    Args:
        audio_inputs: the audio windows to compute (`TalkingFaceModel.audio_inputs`).
        alignment: an alignment, or a function of the segment's first landmarks [68, 2] that
            chooses one (`TalkingFaceModel.alignment`).
        max_frames: keep at most this many frames from the start of the segment (None: all).
        mfcc_normalization: the model's voice normalisation (`TalkingFaceModel.mfcc_normalization`).
        audio_offset_frames: the clip's sound runs this many frames ahead of its picture (negative:
            behind it); it is moved that much later (`benchmarks/bench_av_offset.py` measures it).

    Raises:
        VideoError: unreadable clip, no sound, or no run of `min_frames` frames with a face.
    """
    info = probe(path)
    if sound_source(path, info) is None:
        raise VideoError(f"{path} has no audio stream; {no_sound_advice(path)}: evaluation needs the clip's sound.")
    frames = list(read_frames(path))
    found = list(detector.clip_landmarks(frames))
    kept, _ = find_segments([f is not None for f in found], 5, min_frames)
    if not kept:
        raise VideoError(f"{path}: no run of {min_frames} frames with a detected face.")
    start, end = max(kept, key=lambda r: r[1] - r[0])
    end = min(end, start + max_frames) if max_frames else end
    landmarks, _ = fill_gaps(found[start:end])
    if callable(alignment):
        alignment = alignment(landmarks[0])
    transforms = clip_transforms(landmarks, alignment)
    crops = np.stack([warp_to_crop(frames[start + i], m, alignment.crop_size) for i, m in enumerate(transforms)])
    crop_landmarks = np.stack([transform_points(p, m) for p, m in zip(landmarks, transforms)])
    rate = AudioConfig().sample_rate
    delay = audio_offset_frames / AudioConfig().video_fps
    waveform = clip_waveform(path, rate, info, delay)
    windows = {name: w[start:end] for name, w in audio_windows(waveform, audio_inputs, len(frames), mfcc_normalization).items()}
    return AlignedClip(crops, crop_landmarks, windows, start, alignment, _speech_frames(path, start, end), frames[start], transforms[0])


def _speech_frames(path: str, start: int, end: int) -> np.ndarray:
    """[end - start] bool: frames between the first word's start and the last word's end of a GRID
    `.align` file beside the clip, or all frames when there is none."""
    align_path = os.path.splitext(path)[0] + ".align"
    frames = np.arange(start, end)
    if not os.path.isfile(align_path):
        return np.ones(len(frames), bool)
    words = read_grid_alignment(align_path)
    if not words:
        return np.ones(len(frames), bool)
    return (frames >= np.floor(words[0][1])) & (frames < np.ceil(words[-1][2]))


def _apertures(marks: list) -> np.ndarray:
    """Mouth apertures of per-frame detections; NaN where detection failed."""
    return np.array([metrics.mouth_aperture(m) if m is not None else np.nan for m in marks], np.float64)


def _sync(generated: np.ndarray, real: np.ndarray, atnet: np.ndarray, speech: np.ndarray) -> dict:
    generated, real, atnet = generated[speech], real[speech], atnet[speech]
    return {
        "sync_corr": metrics.pearson(generated, real),
        "aperture_std_ratio": metrics.std_ratio(generated, real),
        "atnet_sync_corr": metrics.pearson(atnet, real),
        "atnet_aperture_std_ratio": metrics.std_ratio(atnet, real),
        "sync_frames": int((np.isfinite(generated) & np.isfinite(real)).sum()),
    }


def _add_controls(rows: list[dict], curves: list[dict[str, np.ndarray]]) -> None:
    """Each clip's generated curves against the next clip's real curve (cut to the shorter length):
    the model's crops (`sync`) and every renderer's frames (`renderers`)."""
    for index, row in enumerate(rows):
        partner = (index + 1) % len(rows)
        targets = {"model": row["sync"], **row.get("renderers", {})}
        for name, target in targets.items():
            target["sync_corr_control"] = float("nan")
            if len(rows) < 2:
                continue
            generated, speech = curves[index][name], curves[index]["speech"]
            real, partner_speech = curves[partner]["real"], curves[partner]["speech"]
            n = min(len(generated), len(real))
            keep = speech[:n] & partner_speech[:n]
            target["sync_corr_control"] = metrics.pearson(generated[:n][keep], real[:n][keep])
        row["sync"]["control_clip"] = rows[partner]["clip"] if len(rows) > 1 else None


def _render_scores(clip: AlignedClip, model: TalkingFaceModel, detector: LandmarkDetector, outputs: dict, predicted: np.ndarray,
                   real_marks: list, real_curve: np.ndarray, renderers: tuple[str, ...]) -> tuple[dict, dict]:
    """Each renderer's frames of the clip (its first frame as the photo): LMD and lip-sync on the
    frames aligned as the identity was, and `RenderScorer`'s scores at the photo's resolution.

    Returns:
        {renderer: scores} and {renderer: aperture curve [N - 1]}.
    """
    identity_marks = clip.landmarks[0]
    chunk = {"frames": outputs["frames"], "landmarks": predicted, "attention": outputs["attention"]}
    scores, curves = {}, {}
    speech = clip.speech[1:]
    for name in renderers:
        face = FaceRenderer(name, clip.photo, clip.transform, identity_marks, model.crop_size, model.hybrid_motion_gain,
                            model.motion_level)
        scorer = RenderScorer(clip.photo, clip.transform, identity_marks, model.crop_size)
        crops = []
        # The rendered video's mouth is read as the real one's is (`align_clip`): its full-resolution
        # frames followed as a video. Read from the 128 px crops instead, small or turned faces were
        # missed (a whole real-world clip) and small openings lost, which the real curve does not suffer.
        frames = _rendered_frames(face, chunk, predicted, scorer, crops, clip.transform, model.crop_size)
        curves[name] = _apertures(list(detector.clip_landmarks(frames)))
        marks = _detect_each(detector, np.stack(crops))  # LMD: crop against crop, as the real crops are read
        distances = [metrics.landmark_distance(r, f) for r, f in zip(real_marks, marks) if r is not None and f is not None]
        scores[name] = {
            "lmd": float(np.mean(distances)) if distances else float("nan"),
            "lmd_failed_frames": sum(1 for r, f in zip(real_marks, marks) if r is None or f is None),
            "sync_corr": metrics.pearson(curves[name][speech], real_curve[speech]),
            "aperture_std_ratio": metrics.std_ratio(curves[name][speech], real_curve[speech]),
            **scorer.result(),
        }
    return scores, curves


def _rendered_frames(face: FaceRenderer, chunk: dict, predicted: np.ndarray, scorer: RenderScorer, crops: list,
                     transform: np.ndarray, crop_size: int) -> Iterator[np.ndarray]:
    """The renderer's full-resolution frames 1 ... N - 1, each scored and its aligned crop appended to
    `crops` before the next is rendered (the renderer reuses its buffer)."""
    for index in range(1, len(predicted)):
        frame = face.frame(chunk, index)
        scorer.add(frame, face.placed_landmarks(predicted[index]))
        crops.append(warp_to_crop(frame, transform, crop_size))
        yield frame


def _scores(real: np.ndarray, fake: np.ndarray, real_marks: list, fake_marks: list) -> dict:
    distances = [metrics.landmark_distance(r, f) for r, f in zip(real_marks, fake_marks) if r is not None and f is not None]
    failed = sum(1 for r, f in zip(real_marks, fake_marks) if r is None or f is None)
    return {
        "lmd": float(np.mean(distances)) if distances else float("nan"),
        "ssim": float(np.mean([metrics.ssim(r, f) for r, f in zip(real, fake)])),
        "psnr": float(np.mean([metrics.psnr(r, f) for r, f in zip(real, fake)])),
        "psnr_legacy": float(np.mean([metrics.psnr_legacy(r, f) for r, f in zip(real, fake)])),
        "lmd_failed_frames": failed,
    }


def _detect_each(detector: LandmarkDetector, images: np.ndarray) -> list:
    marks = []
    for image in images:
        faces = detector.image_landmarks(image)
        marks.append(faces[0] if faces else None)
    return marks


def _offset_of(path: str, offsets: int | Mapping[str, int]) -> int:
    return int(offsets.get(path, 0)) if isinstance(offsets, Mapping) else int(offsets)


def evaluate(videos: list[str], model: TalkingFaceModel, backend: str | None = None, progress: bool = True,
             renderers: tuple[str, ...] = (), max_frames: int | None = None,
             audio_offset_frames: int | Mapping[str, int] = 0) -> dict:
    """Evaluates a model on clips; returns the report (see the module docstring).

    Args:
        videos: clips with sound.
        model: the cascade to evaluate.
        backend: landmark backend for alignment and LMD (`dlib` or `mediapipe`); None takes the
            model's (`TalkingFaceModel.landmark_backend`).
        progress: show a progress bar.
        renderers: also render each clip into its first frame with these renderers (`hybrid`,
            `vgnet`) and score what reaches the video (`render_scores`, LMD and lip-sync).
        max_frames: score at most this many frames of each clip (its first face segment's start).
        audio_offset_frames: move the clips' sound this many frames later (`align_clip`); a mapping
            gives each clip (by its path in `videos`) its own, 0 for clips it does not name.
    """
    unknown = [name for name in renderers if name not in RENDERERS]
    if unknown:
        raise InputError(f"unknown renderer(s) {', '.join(unknown)}; choose from {', '.join(RENDERERS)}.")
    from tqdm import tqdm

    rows, skipped, curves = [], [], []
    with create_landmark_detector(backend or model.landmark_backend, fallback=backend is None) as detector:
        backend = detector.backend
        for path in tqdm(videos, unit="clip", disable=not progress):
            try:
                clip = align_clip(path, detector, model.alignment, model.audio_inputs, max_frames=max_frames,
                                  mfcc_normalization=model.mfcc_normalization,
                                  audio_offset_frames=_offset_of(path, audio_offset_frames))
            except AtvgError as error:
                skipped.append({"clip": path, "reason": str(error)})
                continue
            identity, identity_marks = clip.crops[0], clip.landmarks[0]
            predicted = model.predict_landmarks(clip.windows, identity_marks)
            outputs = model.render(identity, identity_marks, predicted, chunk_frames=RENDER_CHUNK)
            generated = outputs["frames"][1:]
            upper = model.render(identity, identity_marks, clip.landmarks, chunk_frames=RENDER_CHUNK)["frames"][1:]
            # Frame 0 is the identity itself: score frames 1.. only.
            real = clip.crops[1:]
            static = np.repeat(identity[None], len(real), axis=0)
            real_marks = _detect_each(detector, real)
            generated_marks = _detect_each(detector, generated)
            # The real video's aperture: the clip's own landmarks (detected on the source frames).
            real_curve, generated_curve = metrics.mouth_aperture(clip.landmarks[1:]), _apertures(generated_marks)
            speech = clip.speech[1:]
            rendered, rendered_curves = _render_scores(clip, model, detector, outputs, predicted, real_marks, real_curve, renderers)
            curves.append({"model": generated_curve, "real": real_curve, "speech": speech, **rendered_curves})
            row = {
                "clip": os.path.basename(path),
                "audio_offset_frames": _offset_of(path, audio_offset_frames),
                "frames": len(real),
                "alignment": model.describe_alignment(clip.alignment),
                "model": _scores(real, generated, real_marks, generated_marks),
                "static_baseline": _scores(real, static, real_marks, _detect_each(detector, identity[None]) * len(static)),
                "ground_truth_landmarks": _scores(real, upper, real_marks, _detect_each(detector, upper)),
                # AT-net alone: its landmarks against the clip's (no image, no detector).
                "atnet_landmark_lmd": float(np.mean([metrics.landmark_distance(r, p) for r, p in zip(clip.landmarks[1:], predicted[1:])])),
                "static_landmark_lmd": float(np.mean([metrics.landmark_distance(r, identity_marks) for r in clip.landmarks[1:]])),
                "sync": _sync(generated_curve, real_curve, metrics.mouth_aperture(predicted[1:]), speech),
            }
            if renderers:
                row["renderers"] = rendered
            rows.append(row)
    _add_controls(rows, curves)
    return {
        "landmarks": backend,
        "model": _mean(rows, "model"),
        "static_baseline": _mean(rows, "static_baseline"),
        "ground_truth_landmarks": _mean(rows, "ground_truth_landmarks"),
        "atnet_landmark_lmd": float(np.mean([row["atnet_landmark_lmd"] for row in rows])) if rows else None,
        "static_landmark_lmd": float(np.mean([row["static_landmark_lmd"] for row in rows])) if rows else None,
        "sync": _mean(rows, "sync", SYNC_NAMES),
        "renderers": {name: _mean([row["renderers"] for row in rows], name, RENDER_NAMES) for name in renderers},
        "clips": rows,
        "skipped": skipped,
        "notes": "LMD: mean distance per mouth point (pixels at 128 px) after centring each mouth; frames where "
                 "detection failed on either image are counted in lmd_failed_frames and left out. psnr is correct; "
                 "psnr_legacy reproduces the release's uint8 wrap-around (docs/EVALUATION.md).",
    }


# VG-net renders long clips this many frames at a time (one call on a minute of video needs > 20 GB).
RENDER_CHUNK = 64
SYNC_NAMES = ("sync_corr", "sync_corr_control", "aperture_std_ratio", "atnet_sync_corr", "atnet_aperture_std_ratio")
RENDER_NAMES = ("lmd", "sync_corr", "sync_corr_control", "aperture_std_ratio", *render_scores.NAMES)


def _mean(rows: list[dict], key: str, names: tuple[str, ...] = ("lmd", "ssim", "psnr", "psnr_legacy")) -> dict:
    """Means over the clips of `row[key][name]` (clips where a value is undefined are left out)."""
    if not rows:
        return {}
    summary = {}
    for name in names:
        values = np.array([row[key][name] for row in rows], np.float64)
        summary[name] = float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")
    if "lmd" in names and "lmd_failed_frames" in rows[0][key]:
        summary["lmd_failed_frames"] = int(sum(row[key]["lmd_failed_frames"] for row in rows))
    return summary


def write_report(report: dict, path: str) -> None:
    """Writes the JSON report atomically."""
    with atomic_write(path) as handle:
        json.dump(report, handle, indent=1)


def format_table(report: dict) -> str:
    """A readable summary table of a report."""
    lines = [f"{'':23s}{'LMD':>8s}{'SSIM':>8s}{'PSNR':>8s}{'PSNR*':>8s}{'LMD fails':>11s}"]
    for key in ("model", "static_baseline", "ground_truth_landmarks"):
        values = report.get(key) or {}
        if values:
            lines.append(
                f"{key:23s}{values['lmd']:8.3f}{values['ssim']:8.3f}{values['psnr']:8.2f}{values['psnr_legacy']:8.2f}"
                f"{values['lmd_failed_frames']:11d}"
            )
    if report["clips"]:
        lines.append(f"AT-net landmarks alone: LMD {report['atnet_landmark_lmd']:.3f} (identity landmarks: {report['static_landmark_lmd']:.3f})")
        sync = report["sync"]
        lines.append(
            f"lip-sync: sync_corr {sync['sync_corr']:.3f} (mismatched control {sync['sync_corr_control']:.3f}), "
            f"aperture std ratio {sync['aperture_std_ratio']:.2f}; AT-net landmarks: r {sync['atnet_sync_corr']:.3f}, "
            f"std ratio {sync['atnet_aperture_std_ratio']:.2f}"
        )
    for name, values in report.get("renderers", {}).items():
        if values:
            lines.append(
                f"renderer {name}: LMD {values['lmd']:.3f}, sync_corr {values['sync_corr']:.3f} (control {values['sync_corr_control']:.3f}), "
                f"aperture std ratio {values['aperture_std_ratio']:.2f}, sharpness ratio {values['sharpness_ratio']:.2f}, "
                f"static region error {values['static_region_error']:.2f}, lip colour dE {values['lip_colour_delta_e']:.1f}"
            )
    lines.append(f"{len(report['clips'])} clips, {len(report['skipped'])} skipped; PSNR* = the release's wrapped PSNR")
    return "\n".join(lines)
