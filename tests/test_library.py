"""Face-library operations (moving samples, how alike two people are) and the recent recognitions."""

import numpy as np
import pytest
from vectors import normalise

from faceapp.errors import FaceappError, UnknownPersonError
from faceapp.gallery.gallery import Gallery
from faceapp.recognise.library import mean_face, move_samples, person_similarity
from faceapp.recognise.recent import RecentRecognitions
from faceapp.recognise.track import TrackResult
from faceapp.types import Candidate, Decision, Detection, Face, FaceResult, Match, Quality

MODEL = "m" * 64
GOOD = dict(face_size=80.0, sharpness=400.0, yaw=0.0, roll=0.0, brightness=120.0)


@pytest.fixture
def gallery(tmp_path):
    with Gallery(tmp_path / "gallery") as g:
        yield g


def test_moving_a_sample_keeps_it_exactly_and_erases_it_from_the_first_person(gallery):
    rng = np.random.default_rng(0)
    emb = normalise(rng.normal(size=(3, 64)))
    gallery.add_templates("Ann", emb[:2], model_id=MODEL, crops=[b"ann", b"bob-by-mistake"],
                          sources=["photo a.jpg", "photo b.jpg"], qualities=[GOOD, dict(GOOD, yaw=12.0)])
    gallery.add_templates("Bob", emb[2:], model_id=MODEL)
    (wrong,) = [s for s in gallery.samples("Ann") if s.crop == b"bob-by-mistake"]
    assert move_samples(gallery, "Ann", [wrong.template_id], "bob").templates == 2
    assert [s.crop for s in gallery.samples("Ann")] == [b"ann"]
    (moved,) = [s for s in gallery.samples("Bob") if s.crop == b"bob-by-mistake"]
    assert (moved.source, moved.quality, moved.model_id) == (wrong.source, wrong.quality, MODEL)
    stored = gallery.store.embeddings(np.array([moved.template_id]), 64)[0]
    assert np.array_equal(stored, emb[1])
    hits = gallery.search(emb[1:2], 1, model_id=MODEL)[0]
    assert (hits[0].name, hits[0].template_id) == ("Bob", moved.template_id)  # the index follows


def test_moving_refuses_what_would_lose_or_mix_up_samples(gallery):
    emb = normalise(np.random.default_rng(1).normal(size=(3, 64)))
    gallery.add_templates("Ann", emb[:2], model_id=MODEL)
    gallery.add_templates("Bob", emb[2:], model_id=MODEL)
    ann = [s.template_id for s in gallery.samples("Ann")]
    bob = [s.template_id for s in gallery.samples("Bob")]
    with pytest.raises(FaceappError, match="every sample of Ann; merge"):
        move_samples(gallery, "Ann", ann, "Bob")
    with pytest.raises(FaceappError, match="no longer Ann's"):
        move_samples(gallery, "Ann", bob, "Bob")
    with pytest.raises(FaceappError, match="already belong"):
        move_samples(gallery, "Ann", ann[:1], "ann")
    with pytest.raises(UnknownPersonError):
        move_samples(gallery, "Ann", ann[:1], "Cid")
    assert [p.templates for p in gallery.list_persons()] == [2, 1]


def test_person_similarity_is_that_of_their_mean_faces(gallery):
    rng = np.random.default_rng(2)
    a, b = normalise(rng.normal(size=(2, 64)))
    ann = normalise(np.stack([a + 0.3 * normalise(rng.normal(size=64)) for _ in range(3)]))
    gallery.add_templates("Ann", ann, model_id=MODEL)
    gallery.add_templates("Bob", b[None], model_id=MODEL)
    mean = normalise(ann.mean(axis=0))
    assert np.allclose(mean_face(gallery, "Ann", MODEL), mean, atol=1e-6)
    assert person_similarity(gallery, "Ann", "Bob", MODEL) == pytest.approx(float(mean @ b), abs=1e-6)
    assert person_similarity(gallery, "Ann", "Bob", "other") is None


def _seen(tid, decision, person=None, sim=0.7):
    det = Detection((0.0, 0.0, 50.0, 50.0), np.zeros((6, 2), np.float32), 0.9)
    face = Face(det, np.zeros((112, 112, 3), np.uint8), Quality(**GOOD), None)
    cands = (Candidate(1, person or "Ann", sim),)
    m = None if decision is None else Match(Decision[decision], person, sim, cands)
    return TrackResult(tid, det.box, face, m, m, False, 3)


def test_recent_recognitions_keep_one_entry_per_settled_decision():
    recent = RecentRecognitions(size=3)
    recent.note([_seen(1, None)], now=1.0)  # not settled yet
    for t in range(5):
        recent.note([_seen(1, "MATCH", "Ann")], now=2.0 + t)  # the same answer, frame after frame
    assert [(e.person, e.time) for e in recent.entries()] == [("Ann", 2.0)]
    recent.note([_seen(1, "UNCERTAIN")], now=10.0)  # the track's answer changes
    recent.note([_seen(2, "MATCH", "Bob")], now=11.0)
    assert [(e.track, e.decision.name) for e in recent.entries()] == [(2, "MATCH"), (1, "UNCERTAIN"), (1, "MATCH")]
    recent.note([_seen(3, "UNKNOWN")], now=12.0)
    assert len(recent) == 3 and recent.entries()[-1].decision is Decision.UNCERTAIN  # the oldest went
    recent.remove(recent.entries()[0].id)
    assert [e.track for e in recent.entries()] == [2, 1]
    plain = FaceResult(_seen(4, "MATCH", "Ann").face, Match(Decision.MATCH, "Ann", 0.9))
    assert recent.note([plain]) == []  # a frame embedded for enrolment is not a live decision
    recent.new_source()
    assert len(recent.note([_seen(2, "MATCH", "Bob")], now=20.0)) == 1  # track 2 of a new tracker
