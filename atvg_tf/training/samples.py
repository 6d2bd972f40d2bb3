"""A callback that shows what VG-net makes of a fixed validation batch after every epoch.

TensorBoard gets, per sample, the real frame, the generated frame, the attention map `a_t` and the
motion map `m_t` side by side; `samples/epoch_NNN.mp4` gets the same panels for every frame of the
first sequence, so progress can be watched as video.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from atvg_tf.frontend.image import heat_to_uint8, to_uint8
from atvg_tf.frontend.video_writer import Mp4Writer
from atvg_tf.generation.compose import side_by_side


def panels(real, generated, attention, motion) -> np.ndarray:
    """[..., H, 4W, 3] uint8 strips: real | generated | attention | motion (inputs in [-1, 1], attention in [0, 1])."""
    return side_by_side(to_uint8(real), to_uint8(generated), heat_to_uint8(attention), to_uint8(motion))


def write_video(frames: np.ndarray, path: str, fps: int = 25) -> None:
    """Writes [T, H, W, 3] uint8 frames as a silent H.264 MP4 that appears only when complete."""
    with Mp4Writer(path, None, fps) as writer:
        for frame in frames:
            writer.write(frame)


class VGNetSamples(keras.callbacks.Callback):
    """Renders a fixed batch with the GAN's generator at the end of every `every` epochs.

    Args:
        batch: a pipeline batch (dict) to render.
        output_dir: the run folder (`logs/samples` and `samples/` go inside).
        every: epochs between samples.
    """

    def __init__(self, batch: dict, output_dir: str, every: int = 1):
        super().__init__()
        self.batch, self.output_dir, self.every = batch, output_dir, every
        self.writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs", "samples"))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        inputs = {k: self.batch[k] for k in ("identity_frame", "identity_landmarks", "landmarks")}
        out = self.model.generator(inputs, training=False)
        strips = panels(self.batch["frames"], out["frames"], out["attention"], out["motion"])  # [B, T, H, 4W, 3]
        with self.writer.as_default():
            tf.summary.image("real | generated | attention | motion", strips[:, 0], step=epoch + 1, max_outputs=4)
        os.makedirs(os.path.join(self.output_dir, "samples"), exist_ok=True)
        write_video(strips[0], os.path.join(self.output_dir, "samples", f"epoch_{epoch + 1:03d}.mp4"))
