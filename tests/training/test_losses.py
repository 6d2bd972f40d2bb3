import numpy as np
import tensorflow as tf

from atvg_tf.training import losses


def test_dynamic_pixel_loss_value_and_no_gradient_to_attention():
    real = tf.constant(np.zeros((1, 2, 2, 1), np.float32))
    fake = tf.constant(np.full((1, 2, 2, 1), 2.0, np.float32))
    attention = tf.Variable(np.array([0.0, 0.5, 1.0, 1.0], np.float32).reshape(1, 2, 2, 1))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(fake)
        loss = losses.dynamic_pixel_loss(real, fake, attention, beta=0.5)
    # mean(2 * (a + 0.5)) = 2 * mean(0.5, 1.0, 1.5, 1.5)
    np.testing.assert_allclose(loss.numpy(), 2 * np.mean([0.5, 1.0, 1.5, 1.5]))
    assert tape.gradient(loss, attention) is None
    assert np.abs(tape.gradient(loss, fake).numpy()).sum() > 0


def test_landmark_mask_weights_the_mouth_y_values():
    mask = losses.landmark_mask()
    assert mask.shape == (136,) and mask.sum() == 116 + 20 * 100
    assert mask[97] == mask[135] == 100 and mask[96] == mask[98] == 1  # y of points 48 and 67; x of 48, 49
    predicted = np.zeros((1, 136), np.float32)
    target = np.zeros((1, 136), np.float32)
    target[0, 97] = 0.01
    np.testing.assert_allclose(losses.landmark_loss(predicted, target, mask).numpy(), (0.01 * 100) ** 2 / 136, rtol=1e-5)


def test_bce_with_logits():
    np.testing.assert_allclose(losses.bce_with_logits(tf.zeros((4, 1)), 1.0).numpy(), np.log(2), rtol=1e-6)
    assert losses.bce_with_logits(tf.fill((2, 1), 10.0), 1.0).numpy() < 1e-3
    assert losses.bce_with_logits(tf.fill((2, 1), 10.0), 0.0).numpy() > 9
