import numpy as np
import pytest

from faceapp.recognise.track import Tracker, TrackerConfig, iou, quality_weight
from faceapp.types import Candidate, Decision, Detection, Face, Match, Quality

D = 8
NAMES = ["ann", "bob", "cy"]
GOOD = Quality(face_size=60, sharpness=200, yaw=0, roll=0, brightness=120)
BAD = Quality(face_size=12, sharpness=10, yaw=50, roll=0, brightness=120)


def face(who, x=100.0, y=100.0, q=GOOD, size=80.0, mix=(0, 0)):
    """A fake face whose crop says who it shows: pixel [0, 0] = (person, other person, % of the other)."""
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[0, 0] = (who, *mix)
    det = Detection(box=(x, y, x + size, y + size), keypoints=np.zeros((6, 2), np.float32), score=0.9)
    return Face(det, crop, q)


class Fakes:
    def __init__(self):
        self.calls = []

    def embed(self, crops):
        self.calls.append(len(crops))
        eye = np.eye(D, dtype=np.float32)
        px = crops[:, 0, 0].astype(int)
        e = eye[px[:, 0]] * (1 - px[:, 2:3] / 100) + eye[px[:, 1]] * (px[:, 2:3] / 100)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    @staticmethod
    def decide(emb):
        out = []
        for e in emb:
            i = int(np.argmax(e))
            c = Candidate(i, NAMES[i], float(e[i]))
            out.append(Match(Decision.MATCH, NAMES[i], float(e[i]), (c,)))
        return out


def shown(r):
    return None if r.match is None else r.match.person


def test_id_is_stable_while_faces_move_and_distinct_per_face():
    t, f = Tracker(), Fakes()
    ids = set()
    for k in range(30):
        res = t.update([face(0, x=100 + 3 * k), face(1, x=400 - 3 * k)], f.embed, f.decide)
        ids.add((res[0].track_id, res[1].track_id))
    assert len(ids) == 1
    a, b = ids.pop()
    assert a != b
    assert [shown(r) for r in res] == ["ann", "bob"]


def test_one_bad_frame_never_shows_a_wrong_name():
    t, f = Tracker(TrackerConfig(reembed_every=1)), Fakes()  # embed every frame: the hardest case
    seen = []
    for k in range(20):
        who = 1 if k in (0, 8) else 0  # bob's embedding on the first frame and once in the middle
        (r,) = t.update([face(who, x=100 + k)], f.embed, f.decide)
        seen.append(shown(r))
    assert "bob" not in seen
    assert seen[-1] == "ann"
    assert seen[:2] == [None, None]  # nothing shown before the decision has settled
    # After it is shown, the name never disappears or changes (no flicker).
    first = seen.index("ann")
    assert all(s == "ann" for s in seen[first:])


def test_low_quality_frames_barely_move_the_track():
    cfg = TrackerConfig(reembed_every=1, stable_evaluations=1)  # no stability rule: fusion alone
    t, f = Tracker(cfg), Fakes()
    t.update([face(0)], f.embed, f.decide)
    for _ in range(3):  # three poor frames that look more like bob (70 % bob, 30 % ann)
        (r,) = t.update([face(1, q=BAD, mix=(0, 30))], f.embed, f.decide)
        assert r.reembedded and r.latest.person == "ann"
    assert quality_weight(BAD) < 0.05 < quality_weight(GOOD) == 1.0


def test_a_lasting_change_is_shown_after_it_settles():
    t, f = Tracker(TrackerConfig(reembed_every=1, switch_similarity=-1.0, history=2)), Fakes()
    names = [shown(t.update([face(0 if k < 10 else 1)], f.embed, f.decide)[0]) for k in range(20)]
    assert names[5] == "ann" and names[-1] == "bob"
    switch = names.index("bob")
    assert switch > 10 and all(n == "bob" for n in names[switch:])


def test_reembed_policy_counts():
    t, f = Tracker(TrackerConfig(reembed_every=10, stable_evaluations=3)), Fakes()
    flags = [t.update([face(0, x=100 + k)], f.embed, f.decide)[0].reembedded for k in range(50)]
    # New track: frames 1-3 until the decision settles, then every 10th frame after the last.
    assert [i + 1 for i, x in enumerate(flags) if x] == [1, 2, 3, 13, 23, 33, 43]
    assert t.embedded == 7

    # A clearly better face is embedded at once.
    low = Quality(face_size=20, sharpness=200, yaw=0, roll=0, brightness=120)
    t2, f2 = Tracker(TrackerConfig(reembed_every=100)), Fakes()
    for _ in range(5):
        t2.update([face(0, q=low)], f2.embed, f2.decide)
    assert t2.embedded == 3
    (r,) = t2.update([face(0, q=GOOD)], f2.embed, f2.decide)
    assert r.reembedded and t2.embedded == 4
    (r,) = t2.update([face(0, q=GOOD)], f2.embed, f2.decide)
    assert not r.reembedded


def test_all_faces_of_a_frame_go_in_one_embedder_call():
    t, f = Tracker(), Fakes()
    t.update([face(0, x=0), face(1, x=200), face(2, x=400)], f.embed, f.decide)
    assert f.calls == [3]


def test_someone_else_in_the_box_starts_a_new_track():
    t, f = Tracker(TrackerConfig(reembed_every=1)), Fakes()
    first = [t.update([face(0)], f.embed, f.decide)[0].track_id for _ in range(4)]
    # Bob's first two frames in Ann's box are taken for bad frames: Ann's track goes on.
    doubt = [t.update([face(1)], f.embed, f.decide)[0] for _ in range(2)]
    assert [(r.track_id, shown(r), r.reembedded) for r in doubt] == [(first[0], "ann", True)] * 2
    (r,) = t.update([face(1)], f.embed, f.decide)  # the third in a row: someone else
    assert len(set(first)) == 1 and r.track_id != first[0] and r.match is None and r.latest.person == "bob"
    names = [shown(t.update([face(1)], f.embed, f.decide)[0]) for _ in range(2)]
    assert names == [None, "bob"]  # bob's track settles on its own three evaluations


def test_a_face_that_reappears_elsewhere_resumes_its_track():
    t, f = Tracker(), Fakes()
    for _ in range(4):
        (r,) = t.update([face(0, x=100)], f.embed, f.decide)
    tid = r.track_id
    for _ in range(3):
        assert t.update([], f.embed, f.decide) == []
    (r,) = t.update([face(0, x=600)], f.embed, f.decide)
    assert r.track_id == tid and shown(r) == "ann"
    # ... but not after it has been gone longer than max_missed frames.
    for _ in range(20):
        t.update([], f.embed, f.decide)
    (r,) = t.update([face(0, x=100)], f.embed, f.decide)
    assert r.track_id != tid


def test_iou_and_bad_config():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    with pytest.raises(ValueError):
        TrackerConfig(reembed_every=0)
    with pytest.raises(ValueError):
        TrackerConfig(quality_gain=0.5)
