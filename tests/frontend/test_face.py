import logging
import os

import cv2
import numpy as np
import pytest

from atvg_tf.frontend.face import assets
from atvg_tf.frontend.face.alignment import (
    AlignmentConfig,
    align_face,
    clip_transforms,
    estimate_transform,
    invert_transform,
    transform_points,
)
from atvg_tf.frontend.face.landmarks import NoFaceError, create_landmark_detector
from atvg_tf.frontend.face.pca import LandmarkPCA
from atvg_tf.frontend.face.template import TEMPLATE_68
from atvg_tf.frontend.video import read_frames
from tests.helpers import grid_clip


def _photo(shared, name):
    return cv2.cvtColor(cv2.imread(os.path.join(shared, "atvgnet", "image", name)), cv2.COLOR_BGR2RGB)


def _inter_ocular(points):
    return np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))


@pytest.fixture(scope="module")
def clip_landmarks(shared_data):
    """Both backends on every frame of a GRID clip the mapping fit never saw."""
    frames = list(read_frames(grid_clip(shared_data, "bbal7s")))
    result = {}
    for backend in ("mediapipe", "dlib"):
        with create_landmark_detector(backend) as detector:
            result[backend] = list(detector.clip_landmarks(frames))
    return frames, result


def test_both_backends_find_68_landmarks_on_every_frame(clip_landmarks):
    frames, found = clip_landmarks
    assert len(frames) == 75
    for backend, per_frame in found.items():
        assert all(p is not None and p.shape == (68, 2) for p in per_frame), backend
        inside = np.stack(per_frame)
        assert (inside[..., 0] > 0).all() and (inside[..., 0] < 360).all() and (inside[..., 1] < 288).all()


def test_backends_agree_on_the_mouth(clip_landmarks):
    # The 478 -> 68 table was fitted with a mean mouth error of 0.018 inter-ocular distances
    # (about 1 px in the 128 px crop). On unseen frames we allow 0.05 on average (2.5 px in the
    # crop, below the ~5 px a lip opening moves) and 0.1 on the worst frame.
    _, found = clip_landmarks
    mediapipe, dlib = np.stack(found["mediapipe"]), np.stack(found["dlib"])
    scale = np.array([_inter_ocular(p) for p in dlib])[:, None]
    error = np.linalg.norm(mediapipe[:, 48:68] - dlib[:, 48:68], axis=2) / scale
    assert error.mean() < 0.05
    assert error.mean(axis=1).max() < 0.1
    # And they agree on how far the mouth opens (upper vs lower inner lip), frame by frame.
    opening = lambda p: p[:, 66, 1] - p[:, 62, 1]  # noqa: E731
    assert np.corrcoef(opening(mediapipe), opening(dlib))[0, 1] > 0.8


@pytest.mark.parametrize("backend", ["mediapipe", "dlib"])
def test_alignment_puts_the_eyes_on_the_template(shared_data, backend):
    config = AlignmentConfig()
    template = config.template()
    with create_landmark_detector(backend) as detector:
        for image in [_photo(shared_data, "Elektra.jpg"), next(read_frames(grid_clip(shared_data)))]:
            landmarks = detector.largest_face(image)
            aligned = align_face(image, landmarks, config)
            assert aligned.image.shape == (128, 128, 3) and aligned.image.dtype == np.uint8
            # The eye midpoint lands on the template's and the eye line is nearly level. The fit
            # balances the nose against the eyes, so a turned head (Elektra) keeps a tilt of a few
            # degrees and each eye centre stays within 5 px (10 % of the inter-ocular distance).
            eyes = [aligned.landmarks[eye].mean(0) for eye in (slice(36, 42), slice(42, 48))]
            template_eyes = [template[eye].mean(0) for eye in (slice(36, 42), slice(42, 48))]
            assert np.linalg.norm((eyes[0] + eyes[1]) / 2 - (template_eyes[0] + template_eyes[1]) / 2) < 3.0
            assert abs(np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1]))) < 5.0
            for eye, target in zip(eyes, template_eyes):
                assert np.linalg.norm(eye - target) < 5.0
            # The crop's own landmarks land where the transform says: detect again in the crop.
            again = detector.image_landmarks(aligned.image)
            assert again and np.abs(again[0][36:48] - aligned.landmarks[36:48]).mean() < 3.0
            # The inverse maps crop points back into the source image (paste-back).
            back = transform_points(aligned.landmarks, invert_transform(aligned.transform))
            np.testing.assert_allclose(back, landmarks, atol=1e-2)


def test_huge_images_align_like_small_ones(shared_data):
    image = _photo(shared_data, "Elektra.jpg")
    huge = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    with create_landmark_detector("mediapipe") as detector:
        small_crop = align_face(image, detector.largest_face(image)).image.astype(float)
        huge_crop = align_face(huge, detector.largest_face(huge)).image.astype(float)
    assert np.abs(small_crop - huge_crop).mean() < 12


@pytest.mark.parametrize("canvas_shape, corner", [((1200, 1600), (300, 800)), ((3000, 4000), (2000, 3000)), ((1200, 1600), (976, 1376))])
def test_a_face_small_in_a_large_photo_is_found(shared_data, canvas_shape, corner):
    # A half-body photo: the face is a seventh of the image's width or less, which MediaPipe's
    # detector misses on the whole image; the tile search finds it and measures it as on its own.
    photo = _photo(shared_data, "EzraMiller_00075.jpg")
    canvas = np.full((*canvas_shape, 3), (120, 130, 140), np.uint8)
    (y, x), side = corner, photo.shape[0]
    canvas[y : y + side, x : x + side] = photo
    with create_landmark_detector("mediapipe") as detector:
        assert detector.image_landmarks(canvas) == []
        alone = detector.largest_face(photo)
        found = detector.largest_face(canvas)
    assert np.abs(found - np.float32([x, y]) - alone).mean() < 1.0


def test_a_large_photo_without_a_face_is_refused():
    # A smooth random texture: one of the search's tiles takes a patch of it for a face; the crop
    # around that patch does not, so the photo has no face.
    texture = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    texture = cv2.resize(texture, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    with create_landmark_detector("mediapipe") as detector:
        with pytest.raises(NoFaceError, match="no face"):
            detector.largest_face(texture)


def test_a_face_small_in_a_wide_shot_is_followed(clip_landmarks):
    # A GRID clip (360 x 288) inside 1920 x 1080 frames, moving: the face is about 5 % of the frame's
    # width, which MediaPipe's detector misses; it is found once and followed in a region around it.
    frames, found = clip_landmarks
    corners = [(300 + int(60 * np.sin(i / 8)), 700 + 4 * i) for i in range(30)]
    wide = []
    for frame, (y, x) in zip(frames[:30], corners):
        canvas = np.full((1080, 1920, 3), 90, np.uint8)
        canvas[y : y + frame.shape[0], x : x + frame.shape[1]] = frame
        wide.append(canvas)
    with create_landmark_detector("mediapipe") as detector:
        assert detector.image_landmarks(wide[0]) == []
        followed = list(detector.clip_landmarks(wide))
    assert all(face is not None for face in followed)
    errors = [np.abs(face - np.float32([x, y]) - alone).mean() for face, (y, x), alone in zip(followed, corners, found["mediapipe"])]
    assert np.mean(errors) < 1.0


def test_faceless_footage_is_searched_ever_more_rarely(monkeypatch):
    with create_landmark_detector("mediapipe") as detector:
        searches = []
        monkeypatch.setattr(detector, "photo_meshes", lambda frame: searches.append(frame) or [])
        blank = np.full((240, 320, 3), 128, np.uint8)
        assert all(face is None for face in detector.clip_landmarks([blank] * 400))
    assert len(searches) == 4  # frames 0, 50, 150 and 350 (not every 25th: 16)


@pytest.mark.parametrize("backend", ["mediapipe", "dlib"])
def test_a_photo_that_cuts_off_the_mouth_is_refused(shared_data, backend):
    photo = _photo(shared_data, "Elektra.jpg")
    with create_landmark_detector(backend) as detector:
        mouth_top = detector.largest_face(photo)[48:68, 1].min()
        with pytest.raises(NoFaceError, match="mouth is cut off"):
            detector.largest_face(np.ascontiguousarray(photo[: int(mouth_top) - 2]))


def test_a_tiny_face_gets_a_warning(shared_data, caplog):
    photo = _photo(shared_data, "Elektra.jpg")
    with create_landmark_detector("mediapipe") as detector:
        with caplog.at_level(logging.WARNING):
            detector.largest_face(photo)
            assert "coarse" not in caplog.text
            detector.largest_face(cv2.resize(photo, (56, 56), interpolation=cv2.INTER_AREA))
    assert "px wide, so its mouth will look coarse" in caplog.text


def test_clip_transforms_are_smoothed_over_time(clip_landmarks):
    _, found = clip_landmarks
    landmarks = np.stack(found["mediapipe"])
    raw = np.stack([estimate_transform(p) for p in landmarks])
    smooth = clip_transforms(landmarks, AlignmentConfig(smoothing_sigma=2.0))
    jitter = lambda m: np.abs(np.diff(m[:, :, 2], axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.6 * jitter(raw)
    assert np.abs(smooth - raw)[:, :, 2].mean() < 1.0  # it follows the face, it does not freeze


def test_several_faces_take_the_largest_with_a_warning(shared_data, caplog):
    small = cv2.resize(_photo(shared_data, "EzraMiller_00075.jpg"), (180, 180))
    big = _photo(shared_data, "Elektra.jpg")
    canvas = np.full((max(big.shape[0], 180), big.shape[1] + 200, 3), 255, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big
    canvas[:180, big.shape[1] + 10 : big.shape[1] + 190] = small
    for backend in ("mediapipe", "dlib"):
        with create_landmark_detector(backend) as detector:
            faces = detector.image_landmarks(canvas)
            assert len(faces) == 2, backend
            with caplog.at_level(logging.WARNING):
                chosen = detector.largest_face(canvas)
            assert chosen[:, 0].max() < big.shape[1]  # the big face on the left
            assert "2 faces found" in caplog.text
            second = detector.largest_face(canvas, face_index=1, warn=False)
            assert second[:, 0].min() > big.shape[1]
            with pytest.raises(NoFaceError, match="face index below 2"):
                detector.largest_face(canvas, face_index=2)


@pytest.mark.parametrize("backend", ["mediapipe", "dlib"])
def test_no_face_is_a_clear_error(backend):
    blank = np.full((240, 320, 3), 128, np.uint8)
    with create_landmark_detector(backend) as detector:
        with pytest.raises(NoFaceError, match="no face"):
            detector.largest_face(blank)


def test_face_model_lookup_order_and_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(assets.FACE_LANDMARKER_ENV, raising=False)
    with pytest.raises(assets.ModelFileError, match="check the path"):
        assets.find_face_landmarker_model(tmp_path / "nope.task")
    own = tmp_path / "mine.task"
    own.write_bytes(b"x")
    monkeypatch.setenv(assets.FACE_LANDMARKER_ENV, str(own))
    assert assets.find_face_landmarker_model() == str(own)
    monkeypatch.delenv(assets.FACE_LANDMARKER_ENV)
    cached = tmp_path / "cache" / "atvg_tf" / assets.FACE_LANDMARKER_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert assets.find_face_landmarker_model() == str(cached)
    cached.unlink()
    monkeypatch.setattr(assets, "_package_file", lambda *parts: None)
    with pytest.raises(assets.ModelUnavailableError) as error:
        assets.find_face_landmarker_model(allow_download=False)
    message = str(error.value)
    assert assets.FACE_LANDMARKER_URL in message and "--face-model" in message and assets.FACE_LANDMARKER_ENV in message


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="mediapipe, dlib"):
        create_landmark_detector("openface")


def test_pca_fit_encode_decode_save_load(tmp_path):
    rng = np.random.default_rng(0)
    # Landmarks that vary along three directions around the template.
    directions = rng.standard_normal((3, 68, 2))
    landmarks = TEMPLATE_68 + np.einsum("nk,kpc->npc", rng.standard_normal((500, 3)) * [3, 2, 1], directions)
    pca = LandmarkPCA.fit(landmarks, num_components=6)
    assert pca.components.shape == (136, 6)
    np.testing.assert_allclose(pca.components.T @ pca.components, np.eye(6), atol=1e-5)
    np.testing.assert_allclose(pca.decode(pca.encode(landmarks)), landmarks, atol=1e-3)
    assert pca.explained_variance[3:].max() < 1e-8
    pca.save(tmp_path / "basis.npz")
    loaded = LandmarkPCA.load(tmp_path / "basis.npz")
    np.testing.assert_array_equal(loaded.encode(landmarks), pca.encode(landmarks))
    assert loaded.fingerprint() == pca.fingerprint()


def test_official_basis_loads_and_encodes_its_mean_shape_to_zero(shared_data):
    basics = os.path.join(shared_data, "atvgnet", "basics")
    pca = LandmarkPCA.load(os.path.join(basics, "U_lrw1.npy"))
    assert pca.num_components == 6 and pca.scale == 5.0 and pca.space == "procrustes"
    mean_shape = pca.decode(np.zeros(6))  # placed on the crop template
    np.testing.assert_allclose(pca.encode(mean_shape), np.zeros(6), atol=1e-3)
    # A real face encodes to codes of the size the release's models see.
    codes = pca.encode(TEMPLATE_68)
    assert np.abs(codes).max() < 1.0


@pytest.mark.parametrize("backend", ["mediapipe", "dlib"])
def test_clips_follow_the_largest_face_and_count_frames_with_several(shared_data, backend):
    stranger = cv2.resize(_photo(shared_data, "EzraMiller_00075.jpg"), (150, 150))
    frames = []
    for frame in list(read_frames(grid_clip(shared_data)))[:12]:
        canvas = np.zeros((288, 530, 3), np.uint8)
        canvas[:, :360] = frame
        canvas[:150, 370:520] = stranger  # a smaller second face beside the speaker
        frames.append(canvas)
    with create_landmark_detector(backend) as detector:
        followed = list(detector.clip_landmarks(frames))
        assert all(points is not None and points[:, 0].max() < 360 for points in followed)
        assert detector.frames_with_several_faces >= 10
