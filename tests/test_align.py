import numpy as np
import pytest

from faceapp.vision.align import align_face, face_quality, similarity_transform, template_points4
from faceapp.vision.contract import ARCFACE_TEMPLATE_112


def _apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


def test_template_aligns_to_itself():
    t4 = template_points4(ARCFACE_TEMPLATE_112)
    m = similarity_transform(t4, t4)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


@pytest.mark.parametrize("angle,scale,shift", [(0.0, 1.0, (0, 0)), (0.4, 2.5, (100, -30)), (-1.2, 0.3, (7, 9))])
def test_similarity_recovers_a_known_transform(angle, scale, shift):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (4, 2))
    c, s = np.cos(angle), np.sin(angle)
    m_true = np.array([[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]])
    dst = _apply(m_true, src)
    np.testing.assert_allclose(similarity_transform(src, dst), m_true, atol=1e-9)


def test_similarity_never_reflects():
    src = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    dst = src * [-1, 1]  # a mirror image: the best similarity is not a reflection
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) >= 0


def test_degenerate_points_raise():
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((4, 2)), np.ones((4, 2)))


def _keypoints_from_template(scale=3.0, offset=(200.0, 100.0)):
    t = np.asarray(ARCFACE_TEMPLATE_112, float)
    mouth = (t[3] + t[4]) / 2
    ears = np.array([[t[0, 0] - 30, t[0, 1] + 10], [t[1, 0] + 30, t[1, 1] + 10]])
    kps = np.vstack([t[:3], mouth, ears]) * scale + offset
    return kps.astype(np.float32)


def test_align_maps_keypoints_onto_template():
    kps = _keypoints_from_template()
    img = np.zeros((600, 800, 3), np.uint8)
    for x, y in kps[:4]:  # mark each keypoint with a bright dot
        img[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2] = 255
    crop = align_face(img, kps, ARCFACE_TEMPLATE_112)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    for x, y in template_points4(ARCFACE_TEMPLATE_112):
        assert crop[int(round(y)), int(round(x))].max() > 50


def test_quality_frontal_and_turned():
    kps = _keypoints_from_template()
    crop = np.full((112, 112, 3), 128, np.uint8)
    q = face_quality(kps, crop)
    assert abs(q.yaw) < 1 and abs(q.roll) < 1
    assert q.face_size == pytest.approx(np.hypot(*(kps[1] - kps[0])))
    assert q.brightness == pytest.approx(128, abs=1)
    assert q.sharpness == pytest.approx(0.0)
    turned = kps.copy()
    turned[2, 0] += 40  # nose towards the image's right ear
    assert face_quality(turned, crop).yaw > 10
    tilted = kps.copy()
    tilted[1, 1] += 30
    assert face_quality(tilted, crop).roll > 10
