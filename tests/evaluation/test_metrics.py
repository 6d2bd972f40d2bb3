import numpy as np
import pytest

from atvg_tf.evaluation import metrics
from atvg_tf.frontend.face.template import TEMPLATE_68


def test_lmd_is_the_mean_mouth_point_distance_after_centring():
    real = TEMPLATE_68.copy()
    assert metrics.landmark_distance(real, real + 5.0) == pytest.approx(0.0, abs=1e-4)  # shifts do not count
    opened = real.copy()
    opened[57, 1] += 4.0  # lower lip centre 4 px lower
    # Centring moves every mouth point by 4 / 20 px: 19 points off by 0.2, one by 3.8.
    assert metrics.landmark_distance(real, opened) == pytest.approx((19 * 0.2 + 3.8) / 20, abs=1e-4)
    opened[10, 0] += 50  # the jaw is not part of LMD
    assert metrics.landmark_distance(real, opened) == pytest.approx((19 * 0.2 + 3.8) / 20, abs=1e-4)


def test_psnr_and_the_release_wrapped_psnr():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 16, np.uint8)
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 256))
    # 16 ** 2 = 256 wraps to 0 in uint8: the release calls these two different images identical.
    assert metrics.psnr_legacy(a, b) == float("inf")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert metrics.psnr(x, y) == pytest.approx(7.7, abs=0.3)
    assert metrics.psnr_legacy(x, y) == pytest.approx(27.9, abs=0.3)
    assert metrics.psnr_legacy(np.zeros_like(x), np.full_like(x, 255)) >= 24.0


def test_ssim_of_identical_and_different_images():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ssim(image, 255 - image) < 0.1


def test_mouth_aperture_is_the_inner_lip_gap_over_the_eye_corner_distance():
    face = TEMPLATE_68.astype(np.float64).copy()
    closed = metrics.mouth_aperture(face)
    opened = face.copy()
    opened[[65, 66, 67], 1] += 6.0  # the inner lower lip 6 px lower
    eyes = np.linalg.norm(face[36] - face[45])
    assert metrics.mouth_aperture(opened) == pytest.approx(np.mean([np.linalg.norm(opened[a] - opened[b])
                                                                    for a, b in ((61, 67), (62, 66), (63, 65))]) / eyes)
    assert metrics.mouth_aperture(opened) > closed
    # Scale-free and batched: a face twice as large has the same aperture.
    both = metrics.mouth_aperture(np.stack([opened, 2.0 * opened + 7.0]))
    assert both.shape == (2,) and both[0] == pytest.approx(both[1])


def test_pearson_and_std_ratio_skip_undefined_frames():
    real = np.sin(np.linspace(0, 6, 50))
    generated = 0.5 * real + 0.1
    generated[[3, 10]] = np.nan  # frames where no face was found
    assert metrics.pearson(generated, real) == pytest.approx(1.0)
    assert metrics.pearson(-generated, real) == pytest.approx(-1.0)
    assert metrics.std_ratio(generated, real) == pytest.approx(0.5, rel=0.02)
    assert np.isnan(metrics.pearson(np.ones(50), real))  # a mouth that never moves has no correlation
    assert np.isnan(metrics.pearson(real[:2], real[:2]))
