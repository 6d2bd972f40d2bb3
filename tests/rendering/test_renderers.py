"""The renderers on a synthetic photo whose face sits where known landmarks say (no TensorFlow, no model)."""

import cv2
import numpy as np
import pytest

from atvg_tf.rendering.face_points import LOWER_FACE, OUTER_LIPS, inner_aperture, uncross_lips
from atvg_tf.rendering.hybrid_renderer import FALLOFF, HybridRenderer
from atvg_tf.rendering.piecewise_affine import MIN_AREA_RATIO, PiecewiseAffineWarp, signed_areas, split_detail
from atvg_tf.rendering.vgnet_renderer import VGNetRenderer
from tests.helpers import CROP, IDENTITY, SCALE, SHIFT, TRANSFORM, synthetic_photo

LOWER_LIP_OUTER, LOWER_LIP_INNER = (55, 56, 57, 58, 59), (65, 66, 67)


def opened(amount):
    """IDENTITY with the lower lip (outer and inner contour) and the chin lowered by `amount` crop px."""
    landmarks = IDENTITY.copy()
    landmarks[list(LOWER_LIP_OUTER + LOWER_LIP_INNER), 1] += amount
    landmarks[6:11, 1] += amount / 2
    return landmarks


def red_centroid(image):
    red = (image[..., 0] > 150) & (image[..., 1] < 90)
    rows, columns = np.nonzero(red)
    return np.array([columns.mean(), rows.mean()])


def upper_face_rows(shift=SHIFT):
    """Photo rows above the nose base, where nothing may change."""
    return slice(0, int((IDENTITY[29, 1]) * SCALE + shift[1]))


def test_the_warp_keeps_unmoved_images_exact_and_moves_points_by_their_displacement():
    points = np.array([[0, 0], [199, 0], [0, 149], [199, 149], [100, 75], [60, 50], [140, 100]], float)
    warp = PiecewiseAffineWarp(points, (200, 150))
    image = np.random.default_rng(1).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp(image, points), image)
    moved = points.copy()
    moved[4] += [6, 4]
    dx, dy = warp.displacement(moved)
    np.testing.assert_allclose([dx[79, 106], dy[79, 106]], [-6, -4], atol=0.2)  # output (106, 79) samples source (100, 75)
    assert dx[0].max() == dx[:, 0].max() == 0  # the image's edge stays



def test_folded_triangles_are_pulled_back_so_that_no_pixel_samples_far_away():
    """Lips that close past each other turn triangles over; their maps would fetch distant pixels (dark dots)."""
    points = np.array([[0, 0], [199, 0], [0, 149], [199, 149], [100, 60], [100, 90], [60, 75], [140, 75]], float)
    warp = PiecewiseAffineWarp(points, (200, 150))
    crossed = points.copy()
    crossed[4], crossed[5] = [100, 95], [100, 55]  # the upper lip below the lower one
    assert (signed_areas(crossed, warp.triangles) / signed_areas(points, warp.triangles) < 0).any()
    unfolded = warp.unfolded(crossed)
    assert warp.area_ratios(unfolded).min() >= 0
    assert np.abs(unfolded - points).max() > 1  # pulled back, not frozen
    dx, dy = warp.displacement(crossed)
    assert np.hypot(dx, dy).max() <= np.abs(crossed - points).max()
    warp.yielding[[4, 5]] = False  # points that keep their motion (the renderer's lips)
    np.testing.assert_array_equal(warp.unfolded(crossed), crossed)
    assert warp.area_ratios(crossed).min() < MIN_AREA_RATIO  # so its turned-over triangles are not drawn
    dx, dy = warp.displacement(crossed)
    assert np.hypot(dx, dy).max() <= np.abs(crossed - points).max()
    gentle = points.copy()
    gentle[4] += [0, 5]
    np.testing.assert_array_equal(warp.unfolded(gentle), gentle)  # no fold: nothing changes


def test_a_fold_gives_way_at_the_jaw_and_outer_lips_and_the_inner_lips_keep_their_motion():
    renderer = HybridRenderer(synthetic_photo(), TRANSFORM, IDENTITY)
    assert all(renderer.warp.yielding[: len(renderer.moving)] == [i < 60 for i in renderer.moving])
    assert renderer.warp.yielding[len(renderer.moving):].all()  # fixed points do not move anyway


def test_detail_layers_keep_texture_that_resampling_would_soften():
    rng = np.random.default_rng(2)
    image = cv2.GaussianBlur(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8), (0, 0), 0.7)  # fine grain
    layers = split_detail(image)
    base, lighter, darker = (layer.astype(int) for layer in layers)
    np.testing.assert_array_equal(base + lighter - darker, image)
    points = np.array([[0, 0], [199, 0], [0, 149], [199, 149], [100, 75], [60, 50], [140, 100]], float)
    warp = PiecewiseAffineWarp(points, (200, 150))
    np.testing.assert_array_equal(warp(image, points, layers), image)
    moved = points.copy()
    moved[4] += [0.5, 0.5]  # sub-pixel shifts around the middle

    def grain(frame):
        return cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_64F)[65:85, 90:110].var()

    lanczos, layered = warp(image, moved), warp(image, moved, layers)
    assert grain(lanczos) < 0.9 * grain(image)  # Lanczos, the sharpest kernel, loses a tenth or more
    assert grain(layered) > 1.06 * grain(lanczos)
    assert 0.92 < grain(layered) / grain(image) < 1.08
    # Both put the picture in the same place: they differ by grain, not by position.
    assert np.abs(cv2.GaussianBlur(layered, (0, 0), 2.0).astype(int) - cv2.GaussianBlur(lanczos, (0, 0), 2.0)).mean() < 2.0
def test_silence_renders_the_photo_itself():
    photo = synthetic_photo()
    grey = np.full((CROP, CROP, 3), 128, np.uint8)
    frame = HybridRenderer(photo, TRANSFORM, IDENTITY).render(grey, IDENTITY)
    np.testing.assert_array_equal(frame, photo)
    # VG-net pixels leave the photo only where its attention says the face changes.
    frame = VGNetRenderer(photo, TRANSFORM, IDENTITY).render(grey, IDENTITY, np.zeros((CROP, CROP, 1), np.float32))
    np.testing.assert_array_equal(frame, photo)


@pytest.mark.parametrize("renderer", ["hybrid", "vgnet"])
def test_an_opening_mouth_leaves_the_upper_face_identical(renderer):
    photo = synthetic_photo()
    crop = np.zeros((CROP, CROP, 3), np.uint8)
    if renderer == "hybrid":
        frame = HybridRenderer(photo, TRANSFORM, IDENTITY).render(crop, opened(6))
    else:
        frame = VGNetRenderer(photo, TRANSFORM, IDENTITY).render(crop, opened(6), np.ones((CROP, CROP, 1), np.float32))
    rows = upper_face_rows()
    np.testing.assert_array_equal(frame[rows], photo[rows])
    assert np.abs(frame.astype(int) - photo).max() > 50  # and the mouth did change


@pytest.mark.parametrize("renderer", ["hybrid", "vgnet"])
def test_frames_differ_from_the_photo_only_inside_the_changed_box(renderer):
    """`atvg generate` encodes only this box of every frame after the first."""
    from atvg_tf.generation.compose import FaceRenderer

    photo = synthetic_photo()
    face = FaceRenderer(renderer, photo, TRANSFORM, IDENTITY, CROP)
    x0, y0, x1, y1 = face.changed_box
    rng = np.random.default_rng(3)
    chunk = {"frames": rng.integers(0, 255, (3, CROP, CROP, 3), dtype=np.uint8), "landmarks": np.stack([opened(a) for a in (0, 4, 8)]),
             "attention": np.ones((3, CROP, CROP, 1), np.float32)}
    for index, frame in enumerate(face(chunk)):
        outside = np.ones(photo.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(frame[outside], photo[outside])
        assert index == 0 or np.abs(frame[y0:y1, x0:x1].astype(int) - photo[y0:y1, x0:x1]).max() > 30
    assert 0 < (x1 - x0) * (y1 - y0) < 0.8 * photo.shape[0] * photo.shape[1]


def test_the_motion_fades_out_next_to_the_lower_face():
    """With the chin dropped far, the photo outside the lower face's hull grown by FALLOFF stays exact
    (cheeks, the face's outline and the hair beside it do not wobble)."""
    photo = synthetic_photo()
    frame = HybridRenderer(photo, TRANSFORM, IDENTITY).render(np.zeros((CROP, CROP, 3), np.uint8), opened(12))
    points = (IDENTITY[list(LOWER_FACE)] * SCALE + SHIFT).astype(np.float32)
    near = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillConvexPoly(near, np.round(cv2.convexHull(points)).astype(np.int32), 1)
    radius = FALLOFF * np.linalg.norm(points[14 - 2] - points[0]) + 8  # + the resampling kernel and field grid
    grow = 2 * int(np.ceil(radius)) + 1
    near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))).astype(bool)
    changed = np.abs(frame.astype(int) - photo).max(axis=-1) > 0
    assert changed.sum() > 100 and not (changed & ~near).any()


def test_the_warp_moves_the_lips_by_the_predicted_displacement():
    photo = synthetic_photo()
    renderer = HybridRenderer(photo, TRANSFORM, IDENTITY)
    moved = IDENTITY.copy()
    moved[48:68] += [2.0, 3.0]  # the whole mouth, not opening: crop px
    frame = renderer.render(np.zeros((CROP, CROP, 3), np.uint8), moved)
    np.testing.assert_allclose(red_centroid(frame) - red_centroid(photo), np.array([2.0, 3.0]) * SCALE, atol=1.0)


def vgnet_like_crop(landmarks, interior):
    """A crop as VG-net paints it: skin, pink lips, the opening in `interior` grey."""
    crop = np.full((CROP, CROP, 3), 160, np.uint8)
    cv2.fillPoly(crop, [np.round(landmarks[list(OUTER_LIPS)]).astype(np.int32)], (180, 70, 80))
    cv2.fillPoly(crop, [np.round(landmarks[60:68]).astype(np.int32)], (interior,) * 3)
    return crop


def test_the_inner_mouth_comes_from_vgnet_only_when_the_mouth_opens():
    photo = synthetic_photo()
    black, white = vgnet_like_crop(opened(6), 20), vgnet_like_crop(opened(6), 120)
    renderer = HybridRenderer(photo, TRANSFORM, IDENTITY)
    for landmarks in (IDENTITY, opened(0.3)):  # closed, or opening less than OPEN_FROM
        assert inner_aperture(landmarks) - inner_aperture(IDENTITY) < 0.5
        np.testing.assert_array_equal(renderer.render(black, landmarks), renderer.render(white, landmarks))
    landmarks = opened(6)
    dark, light = renderer.render(black, landmarks).astype(int), renderer.render(white, landmarks).astype(int)
    inner = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(landmarks[60:68] * SCALE + SHIFT).astype(np.int32)], 1)
    differs = np.abs(dark - light).max(axis=2) > 0
    assert differs[inner > 0].mean() > 0.9  # VG-net paints inside the opening ...
    lips = np.zeros_like(inner)
    cv2.fillPoly(lips, [np.round(landmarks[list(OUTER_LIPS)] * SCALE + SHIFT).astype(np.int32)], 1)
    grown = cv2.dilate(lips, np.ones((9, 9), np.uint8))
    assert not differs[grown == 0].any()  # ... and nowhere outside the mouth
    assert dark[inner > 0].mean() < photo[inner > 0].mean() - 40  # an opening is darker than the lips were


def test_lips_closing_a_photos_open_mouth_cover_its_teeth():
    """Closed by the warp, an open mouth's teeth would be squeezed into the lip seam (a grey line, bright dots)."""
    photo_landmarks = opened(6)
    photo = synthetic_photo()
    points = photo_landmarks * SCALE + SHIFT
    cv2.fillPoly(photo, [np.round(points[list(OUTER_LIPS)]).astype(np.int32)], (150, 30, 40))
    cv2.fillPoly(photo, [np.round(points[60:68]).astype(np.int32)], (255, 255, 255))
    renderer = HybridRenderer(photo, TRANSFORM, photo_landmarks)
    crop = np.zeros((CROP, CROP, 3), np.uint8)
    mouth = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(points[list(OUTER_LIPS)]).astype(np.int32)], 1)
    mouth = cv2.dilate(mouth, np.ones((9, 9), np.uint8)) > 0

    def teeth(frame):
        return int((frame[mouth].min(axis=1) > 235).sum())

    assert teeth(renderer.render(crop, photo_landmarks)) == teeth(photo) > 100  # unmoved: the photo's own teeth
    assert teeth(renderer.render(crop, opened(3))) > 20  # half closed: squeezed teeth still show
    shut = opened(-3.4)  # the inner lips meet
    assert inner_aperture(shut) < 0.1 * inner_aperture(photo_landmarks) and teeth(renderer.render(crop, shut)) == 0
    renderer._cover = None  # what the warp alone does
    assert teeth(renderer.render(crop, shut)) > 0


@pytest.mark.parametrize("renderer", ["hybrid", "vgnet"])
def test_a_face_cut_by_the_photo_border(renderer):
    shift = np.array([-60.0, 120.0])  # the left cheek and the chin outside a 300 x 320 photo
    photo = synthetic_photo(300, 320, shift)
    transform = np.array([[1 / SCALE, 0, -shift[0] / SCALE], [0, 1 / SCALE, -shift[1] / SCALE]])
    crop = np.zeros((CROP, CROP, 3), np.uint8)
    if renderer == "hybrid":
        frame = HybridRenderer(photo, transform, IDENTITY).render(crop, opened(6))
    else:
        frame = VGNetRenderer(photo, transform, IDENTITY).render(crop, opened(6), np.ones((CROP, CROP, 1), np.float32))
    assert frame.shape == photo.shape
    rows = upper_face_rows(shift)
    np.testing.assert_array_equal(frame[rows], photo[rows])


def test_overlapping_inner_lips_meet_halfway():
    crossed = opened(-4)  # the lower lip 4 px above the photo's: past closed for IDENTITY's inner lips
    assert inner_aperture(crossed) < 0
    met = uncross_lips(crossed)
    np.testing.assert_allclose(inner_aperture(met), 0.0, atol=1e-6)
    middle = (crossed[[61, 62, 63], 1] + crossed[[67, 66, 65], 1]) / 2
    np.testing.assert_allclose(met[[61, 62, 63], 1], middle)
    others = [point for point in range(68) if point not in (61, 62, 63, 65, 66, 67)]
    np.testing.assert_array_equal(met[others], crossed[others])
    np.testing.assert_array_equal(uncross_lips(opened(3)), opened(3))  # open lips are left as they are
