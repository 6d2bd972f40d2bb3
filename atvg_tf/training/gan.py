"""The VG-net GAN: a `keras.Model` whose `train_step` alternates discriminator and generator steps.

Discriminator step (Eq. 12): BCE(Ds(real), 1) + BCE(Ds(fake), 0) + masked MSE of Dp on real and on
fake frames against the true landmarks. Generator step, discriminator frozen (Eq. 13):
`pixel_weight * L_pix + BCE(Ds(fake), 1) + masked MSE of Dp(fake)`. VG-net is driven by the true
landmarks (teacher forcing).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from atvg_tf.models.layers import PACKAGE
from atvg_tf.training import losses

LOSS_NAMES = ("d_loss", "d_real", "d_fake", "d_landmarks", "g_loss", "g_pixel", "g_adversarial", "g_landmarks")


@keras.saving.register_keras_serializable(package=PACKAGE)
class VGNetGAN(keras.Model):
    """Trains a VG-net generator against the regression-based discriminator.

    Args:
        generator: a model from `build_vgnet`.
        discriminator: a model from `build_discriminator`.
        pixel_weight: weight of the dynamic pixel-wise loss (10 in the paper).
        attention_beta: beta of Eq. 9.
        mouth_weight: weight of the mouth y values in the landmark mask.
        mouth_pixel_weight: extra weight of the pixel loss inside the mouth box (0 = the paper's
            loss). Short CPU trainings need it: otherwise VG-net settles on copying the identity
            frame (attention ~ 0), which already scores a low pixel loss on GRID.
        discriminator_weight: 1 is the paper's GAN; 0 trains the generator on the pixel loss alone
            and never runs the discriminator (a third faster per step; what fine-tuning on one
            person uses, where a fresh discriminator made the held-out frames worse after a few
            hundred steps).
    """

    def __init__(self, generator, discriminator, pixel_weight: float = 10.0, attention_beta: float = 0.5,
                 mouth_weight: float = 100.0, mouth_pixel_weight: float = 0.0, discriminator_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.pixel_weight = float(pixel_weight)
        self.attention_beta = float(attention_beta)
        self.mouth_weight = float(mouth_weight)
        self.mouth_pixel_weight = float(mouth_pixel_weight)
        self.discriminator_weight = float(discriminator_weight)
        self._mask = tf.constant(losses.landmark_mask(mouth_weight))
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Args: g_optimizer, d_optimizer: Adam(2e-4, beta_1=0.5) each unless given."""
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        # Keras' own `optimizer` slot gets the generator's (else it builds an unused RMSprop).
        super().compile(optimizer=self.g_optimizer, **kwargs)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def build(self, input_shape=None):
        # Both sub-models are functional and already built; build the optimizers' slots.
        if hasattr(self, "g_optimizer") and not self.g_optimizer.built:
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
        self.built = True

    def build_from_config(self, config):
        self.build()

    def get_compile_config(self):
        return {
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
        }

    def compile_from_config(self, config):
        optimizers = {
            name: keras.saving.deserialize_keras_object(config[name])
            for name in ("g_optimizer", "d_optimizer")
            if name in (config or {})
        }
        self.compile(**optimizers)
        self.build()

    @staticmethod
    def _generator_inputs(batch):
        return {key: batch[key] for key in ("identity_frame", "identity_landmarks", "landmarks")}

    def _discriminate(self, frames, batch, training):
        return self.discriminator({"frames": frames, "identity_landmarks": batch["identity_landmarks"]}, training=training)

    def _discriminator_terms(self, real_out, fake_out, target):
        terms = {
            "d_real": losses.bce_with_logits(real_out["realness_logit"], 1.0),
            "d_fake": losses.bce_with_logits(fake_out["realness_logit"], 0.0),
            "d_landmarks": losses.landmark_loss(real_out["landmarks"], target, self._mask)
            + losses.landmark_loss(fake_out["landmarks"], target, self._mask),
        }
        terms["d_loss"] = terms["d_real"] + terms["d_fake"] + terms["d_landmarks"]
        return terms

    def _generator_terms(self, generated, fake_out, batch):
        """The generator's loss terms; with `fake_out` None (no discriminator) the pixel loss alone."""
        region = None
        if self.mouth_pixel_weight:
            region = 1.0 + self.mouth_pixel_weight * losses.mouth_mask(batch["landmarks"], batch["frames"].shape[2])
        terms = {
            "g_pixel": losses.dynamic_pixel_loss(
                batch["frames"], generated["frames"], generated["attention"], self.attention_beta, region
            ),
        }
        terms["g_loss"] = self.pixel_weight * terms["g_pixel"]
        if fake_out is not None:
            terms["g_adversarial"] = losses.bce_with_logits(fake_out["realness_logit"], 1.0)
            terms["g_landmarks"] = losses.landmark_loss(fake_out["landmarks"], batch["landmarks"], self._mask)
            terms["g_loss"] += self.discriminator_weight * (terms["g_adversarial"] + terms["g_landmarks"])
        return terms

    def _replica_scale(self):
        # Under tf.distribute the replicas' gradients are summed: average them instead.
        return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync

    def discriminator_step(self, batch):
        """One update of the discriminator; the generator's output is a constant here."""
        fake = tf.stop_gradient(self.generator(self._generator_inputs(batch), training=True)["frames"])
        with tf.GradientTape() as tape:
            real_out = self._discriminate(batch["frames"], batch, True)
            fake_out = self._discriminate(fake, batch, True)
            terms = self._discriminator_terms(real_out, fake_out, batch["landmarks"])
            loss = terms["d_loss"] * self._replica_scale()
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(loss, variables), variables)
        return terms

    def generator_step(self, batch):
        """One update of the generator; the discriminator is only evaluated (frozen, inference-mode BN)."""
        with tf.GradientTape() as tape:
            generated = self.generator(self._generator_inputs(batch), training=True)
            fake_out = self._discriminate(generated["frames"], batch, False) if self.discriminator_weight else None
            terms = self._generator_terms(generated, fake_out, batch)
            loss = terms["g_loss"] * self._replica_scale()
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(loss, variables), variables)
        return terms

    def train_step(self, batch):
        if not self.discriminator_weight:
            return self._track(self.generator_step(batch))
        return self._track({**self.discriminator_step(batch), **self.generator_step(batch)})

    def test_step(self, batch):
        generated = self.generator(self._generator_inputs(batch), training=False)
        real_out = self._discriminate(batch["frames"], batch, False)
        fake_out = self._discriminate(generated["frames"], batch, False)
        terms = self._discriminator_terms(real_out, fake_out, batch["landmarks"])
        return self._track({**terms, **self._generator_terms(generated, fake_out, batch)})

    def _track(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values}

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "pixel_weight": self.pixel_weight,
            "attention_beta": self.attention_beta,
            "mouth_weight": self.mouth_weight,
            "mouth_pixel_weight": self.mouth_pixel_weight,
            "discriminator_weight": self.discriminator_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)
