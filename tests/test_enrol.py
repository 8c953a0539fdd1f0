"""Enrolment rules and sample quality, without Qt."""

import numpy as np
import pytest

from faceapp.recognise.enrol import EnrolmentGuide, assess_sample, pose_label, sample_score
from faceapp.types import Detection, Face, Quality

GOOD = dict(face_size=80.0, sharpness=400.0, yaw=0.0, roll=0.0, brightness=120.0)


def face(yaw=0.0, seed=0, **q):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=128).astype(np.float32)
    det = Detection(box=(0, 0, 100, 100), keypoints=np.zeros((6, 2), np.float32), score=0.9)
    return Face(det, np.zeros((112, 112, 3), np.uint8), Quality(**{**GOOD, "yaw": yaw, **q}), e / np.linalg.norm(e))


def test_frigate_sized_blurred_crops_are_flagged():
    # a 22x28 px crop has about 9 px between the eyes
    a = assess_sample(dict(GOOD, face_size=9.0, sharpness=12.0))
    assert a.low_quality
    assert any("small face" in p for p in a.problems) and "blurred" in a.problems
    assert a.badges[1] == "blurred"


def test_good_sample_has_badges_and_no_problems():
    a = assess_sample(GOOD)
    assert not a.low_quality and a.badges == ("80 px", "sharp", "frontal")
    assert assess_sample(dict(GOOD, yaw=50.0)).problems == ("face turned 50°",)


def test_missing_quality_is_unknown_not_low():
    for q in (None, {"face_size": 3}):
        a = assess_sample(q)
        assert not a.known and not a.low_quality


def test_score_prefers_good_samples():
    assert sample_score(GOOD) > sample_score(dict(GOOD, face_size=50.0)) > sample_score(dict(GOOD, sharpness=5.0))


def test_pose_labels_are_the_persons_own_side():
    # yaw > 0: the face turns towards the image's right = the person's own left
    assert pose_label(20.0) == "left" and pose_label(-20.0) == "right" and pose_label(0.0) == "frontal"


@pytest.mark.parametrize("order", [(0, 20, -20), (0, -20, 20), (-20, 0, 20)])
def test_guide_accepts_the_missing_poses_in_any_order(order):
    g = EnrolmentGuide(target=3)
    for i, yaw in enumerate(order):
        v = g.offer([face(yaw, seed=i)])
        assert v.accepted, v.message
    assert g.done and g.progress == (3, 3)


def test_guide_asks_for_what_is_missing():
    g = EnrolmentGuide(target=5)
    assert g.offer([face(0.0, seed=1)]).accepted
    v = g.offer([face(0.0, seed=2)])  # frontal again: not wanted until left and right are in
    assert not v.accepted and "to your left" in v.message
    assert g.offer([face(20.0, seed=3)]).accepted
    assert "to your right" in g.offer([face(1.0, seed=4)]).message
    assert not g.offer([face(0.0, seed=5, face_size=10.0)]).accepted
