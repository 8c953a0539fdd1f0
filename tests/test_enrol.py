"""Enrolment: the use case's rules (sources, one person, look-alikes, provenance) and guided
capture, without Qt and without models (stand-in embeddings)."""

import numpy as np
import pytest

from faceapp.errors import DuplicatePersonError
from faceapp.gallery.store import Person
from faceapp.gallery.store import Sample as StoredSample
from faceapp.recognise.enrol import Enrolment, LookalikeError, UnlikeSamplesError, review_samples
from faceapp.recognise.guide import EnrolmentGuide
from faceapp.recognise.match import Thresholds, aggregate, decide
from faceapp.recognise.quality import assess_sample, pose_label, sample_score
from faceapp.recognise.samples import EnrolSample, Provenance, Refusal, SampleSet, SourceKind
from faceapp.types import Detection, Face, Quality

GOOD = dict(face_size=80.0, sharpness=400.0, yaw=0.0, roll=0.0, brightness=120.0)
SAME_PERSON, MATCH = 0.36, 0.48
DIM = 128


def unit(v):
    return (v / np.linalg.norm(v)).astype(np.float32)


def identity(seed):
    """A person: a random direction (two people's are nearly orthogonal in 128 dimensions)."""
    return unit(np.random.default_rng(seed).normal(size=DIM))


def view(person, k):
    """Photo ``k`` of ``person``: the identity plus noise, similarity about 0.8 to it."""
    return unit(person + 0.5 * identity(1000 + 17 * k + int(1e3 * abs(person[0]))) )


def face(yaw=0.0, seed=0, person=None, **q):
    e = view(identity(99) if person is None else person, seed)
    det = Detection(box=(0, 0, 100, 100), keypoints=np.zeros((6, 2), np.float32), score=0.9)
    return Face(det, np.zeros((112, 112, 3), np.uint8), Quality(**{**GOOD, "yaw": yaw, **q}), e)


def sample(person, k, prov=None):
    return EnrolSample(view(person, k), prov or Provenance.photo(f"{k}.jpg"), Quality(**GOOD),
                       np.full((112, 112, 3), k, np.uint8))


class FakeGallery:
    """People with template embeddings; enough of a gallery for the use case."""

    def __init__(self):
        self.people: dict[str, list[tuple[np.ndarray, str | None, bytes | None]]] = {}

    def key(self, name):
        return next((n for n in self.people if n.casefold() == name.casefold()), None)

    def has_person(self, name):
        return self.key(name) is not None

    def samples(self, name):
        return [StoredSample(i, crop, None, src, 0.0, "m") for i, (_, src, crop) in enumerate(self.people[self.key(name)])]

    def add_templates(self, name, embeddings, *, model_id, crops=None, sources=None, qualities=None,
                      create=True, must_be_new=False):
        key = self.key(name)
        if key is not None and must_be_new:
            raise DuplicatePersonError(f"a person named {name!r} already exists")
        key = key or name
        self.people.setdefault(key, []).extend(zip(embeddings, sources, crops))
        return Person(list(self.people).index(key), key, len(self.people[key]), 0.0)

    def match(self, emb):
        hits = [(pid, n, float(t @ e)) for e in emb for pid, (n, ts) in enumerate(self.people.items()) for t, _, _ in ts]
        per = [[h for h in hits[i * self.size():(i + 1) * self.size()]] for i in range(len(emb))]
        return [decide(aggregate(h, 10), Thresholds(MATCH, 0.08, 0.0)) for h in per]

    def size(self):
        return sum(len(ts) for ts in self.people.values())


def enrolment(gallery):
    return Enrolment(gallery=gallery, match=gallery.match, model_id="m", same_person=SAME_PERSON,
                     match_threshold=MATCH, encode=lambda crop: bytes([int(crop[0, 0, 0])]))


A, B, C = identity(1), identity(2), identity(3)


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


LIVE = Provenance.live("Camera 0", 1)


@pytest.mark.parametrize("order", [(0, 20, -20), (0, -20, 20), (-20, 0, 20)])
def test_guide_accepts_the_missing_poses_in_any_order(order):
    g = EnrolmentGuide(SampleSet(SAME_PERSON), target=3)
    for i, yaw in enumerate(order):
        v = g.offer([face(yaw, seed=i)], LIVE)
        assert v.accepted, v.message
    assert g.done and g.progress == (3, 3)


def test_guide_asks_for_what_is_missing():
    g = EnrolmentGuide(SampleSet(SAME_PERSON), target=5)
    assert g.offer([face(0.0, seed=1)], LIVE).accepted
    v = g.offer([face(0.0, seed=2)], LIVE)  # frontal again: not wanted until left and right are in
    assert not v.accepted and "to your left" in v.message
    assert g.offer([face(20.0, seed=3)], LIVE).accepted
    assert "to your right" in g.offer([face(1.0, seed=4)], LIVE).message
    assert not g.offer([face(0.0, seed=5, face_size=10.0)], LIVE).accepted


def test_the_view_changing_person_during_capture_is_refused():
    """Celine Dion in view while "John McCain" is typed: her samples are taken, then his face is
    refused as unlike hers (and the other way round), with the reason."""
    g = EnrolmentGuide(SampleSet(SAME_PERSON), target=5)
    assert g.offer([face(0.0, seed=1, person=A)], Provenance.live("Camera 0", 1)).accepted
    v = g.offer([face(20.0, seed=2, person=B)], Provenance.live("Camera 0", 2))
    assert not v.accepted and v.refused.reason is Refusal.UNLIKE_OTHERS
    assert "live frame 2 (Camera 0) is unlike the other samples" in v.message
    assert len(g.samples) == 1


def test_samples_from_another_source_are_refused():
    s = SampleSet(SAME_PERSON)
    assert s.add(sample(A, 1, Provenance.live("Camera 0", 7))) is None
    refused = s.add(sample(A, 2, Provenance.photo("a.jpg")))  # the same person, but from photos
    assert refused.reason is Refusal.OTHER_SOURCE and len(s) == 1
    assert "photo a.jpg comes from photo files" in refused.message and "the live view (Camera 0)" in refused.message
    assert s.add(sample(A, 3, Provenance.live("clip.mp4", 1))).reason is Refusal.OTHER_SOURCE  # another live source
    s.discard(0)
    assert s.add(sample(A, 2, Provenance.photo("a.jpg"))) is None  # after discarding, photos are fine


def review(samples, gallery=None, name="New", add=False):
    gallery = gallery or FakeGallery()
    return review_samples(name, samples, gallery.match(np.stack([s.embedding for s in samples])),
                          exists=gallery.has_person(name), add=add, same_person=SAME_PERSON, match_threshold=MATCH)


def test_one_enrolment_takes_one_source():
    r = review([sample(A, 1, Provenance.live("Camera 0", 3)), sample(A, 2), sample(A, 4, Provenance.live("Camera 0", 9))])
    assert [s.provenance.label for s in r.accepted] == ["live frame 3 (Camera 0)", "live frame 9 (Camera 0)"]
    assert [(x.sample.provenance.label, x.reason) for x in r.refused] == [("photo 2.jpg", Refusal.OTHER_SOURCE)]


def test_samples_of_a_second_person_are_refused_the_majority_kept():
    samples = [sample(A, 1), sample(B, 2), sample(A, 3), sample(A, 4), sample(B, 5)]
    r = review(samples)
    assert [s.provenance.item for s in r.accepted] == ["1.jpg", "3.jpg", "4.jpg"]
    assert [(x.sample.provenance.item, x.reason) for x in r.refused] == [("2.jpg", Refusal.UNLIKE_OTHERS),
                                                                       ("5.jpg", Refusal.UNLIKE_OTHERS)]
    assert all(x.similarity < SAME_PERSON for x in r.refused)
    assert "photo 2.jpg is unlike the other samples" in r.refused[0].message


def test_two_people_half_and_half_refuses_all():
    r = review([sample(A, 1), sample(B, 2)])
    assert r.accepted == () and len(r.refused) == 2 and "2 different people" in r.refused[0].message


def test_a_match_of_someone_enrolled_needs_an_explicit_choice():
    """The reported bug: samples of Celine Dion saved as John McCain after answering No."""
    g = FakeGallery()
    e = enrolment(g)
    e.enrol("Celine Dion", [sample(A, 1)])
    celine = [sample(A, k) for k in (2, 3, 4)]
    r = e.review("John McCain", celine)
    assert r.needs_choice and [lk.name for lk in r.lookalikes] == ["Celine Dion"]
    assert r.lookalikes[0].samples == (0, 1, 2) and r.lookalikes[0].face == bytes([1])  # her face, to show
    with pytest.raises(LookalikeError, match="match 'Celine Dion'") as err:
        e.enrol("John McCain", celine)
    assert err.value.review.lookalikes[0].name == "Celine Dion"
    assert not g.has_person("John McCain")
    # the choices: add them to her, or say explicitly that John McCain is someone else
    assert e.enrol("Celine Dion", celine, add=True).person.templates == 4
    assert e.enrol("John McCain", celine, despite_match=True).person.name == "John McCain"


def test_adding_to_someone_checks_the_samples_against_them():
    g = FakeGallery()
    e = enrolment(g)
    e.enrol("Ann", [sample(A, 1)])
    e.enrol("Bob", [sample(B, 1)])
    with pytest.raises(UnlikeSamplesError, match="unlike Ann's enrolled samples"):
        e.enrol("Ann", [sample(C, 2)], add=True)  # someone unknown
    with pytest.raises(UnlikeSamplesError, match="unlike Ann's enrolled samples"):
        e.enrol("Ann", [sample(B, 2)], add=True)  # Bob, added to Ann
    between = EnrolSample(unit(view(A, 2) + 1.3 * view(B, 2)), Provenance.photo("x.jpg"))
    with pytest.raises(LookalikeError, match="match 'Bob'"):
        e.enrol("Ann", [between], add=True)  # like Ann, but more like Bob
    assert e.enrol("Ann", [sample(A, 2)], add=True).review.lookalikes == ()
    assert [len(v) for v in g.people.values()] == [2, 1]
    with pytest.raises(DuplicatePersonError, match="--add"):
        e.enrol("ann", [sample(A, 3)])


def test_nothing_is_stored_when_a_sample_is_refused_unless_asked():
    g = FakeGallery()
    e = enrolment(g)
    mixed = [sample(A, 1), sample(A, 2), sample(B, 3)]
    with pytest.raises(UnlikeSamplesError, match="photo 3.jpg is unlike"):
        e.enrol("Ann", mixed)
    assert g.people == {}
    done = e.enrol("Ann", mixed, drop_refused=True)
    assert done.person.templates == 2 and [x.sample.provenance.item for x in done.review.refused] == ["3.jpg"]


def test_provenance_is_kept_with_each_template():
    g = FakeGallery()
    e = enrolment(g)
    live = [sample(A, k, Provenance.live("Camera 0", 10 * k)) for k in (1, 2)]
    done = e.enrol("Ann", live)
    assert [s.provenance.kind for s in done.added] == [SourceKind.LIVE] * 2
    assert [s.source for s in g.samples("Ann")] == ["live frame 10 (Camera 0)", "live frame 20 (Camera 0)"]
    assert [s.crop for s in g.samples("Ann")] == [bytes([1]), bytes([2])]
    e.enrol("Ann", [EnrolSample(view(A, 5), Provenance.inbox(3, 1), None, b"jpeg")], add=True)
    assert g.samples("Ann")[-1].source == "unknown-faces group 3, face 1" and g.samples("Ann")[-1].crop == b"jpeg"


def test_guide_can_skip_a_pose_and_says_what_is_missing():
    """Someone who cannot turn right: the guide stops asking once the pose is skipped, takes
    other poses instead, and says the right one is missing."""
    g = EnrolmentGuide(SampleSet(SAME_PERSON), target=3)
    assert g.offer([face(0.0, seed=1)], LIVE).accepted
    assert g.offer([face(20.0, seed=2)], LIVE).accepted
    for seed in range(3, 8):  # without a skip, every other pose is refused with the same request
        v = g.offer([face(1.0, seed=seed)], LIVE)
        assert not v.accepted and "to your right" in v.message and "skip" in v.message
    assert g.skip_pose() == "right" and g.missing_poses() == []
    assert g.offer([face(1.0, seed=9)], LIVE).accepted and g.done
    assert g.coverage() == "poses: frontal, left; missing: right (skipped)"
    assert g.skip_pose() is None  # nothing left to skip
