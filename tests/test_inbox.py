"""The unknown-faces inbox: grouping, best samples, enrolment, and erasing for real."""

import os
import sqlite3
import stat

import numpy as np
import pytest
from vectors import normalise

from faceapp.errors import GalleryError, KeyMissingError, WrongKeyError
from faceapp.gallery.gallery import Gallery
from faceapp.gallery.keys import KeyStore
from faceapp.recognise.enrol import Enrolment, UnlikeSamplesError
from faceapp.recognise.inbox import DAY, INBOX_DB, UnknownInbox
from faceapp.recognise.match import Thresholds, aggregate, decide
from faceapp.recognise.samples import EnrolSample, Provenance

GOOD = dict(face_size=80.0, sharpness=400.0, yaw=0.0, roll=0.0, brightness=120.0)
MODEL = "m" * 64




def people(n=3, dim=128, seed=0):
    rng = np.random.default_rng(seed)
    return [normalise(rng.normal(size=dim)) for _ in range(n)]


def sighting(centre, rng, noise=0.35):
    """A new view of a person: close to their centre (cosine about 0.9), far from the others."""
    return normalise(centre + noise * normalise(rng.normal(size=centre.shape)))


@pytest.fixture
def inbox(tmp_path):
    with UnknownInbox(tmp_path / "gallery", min_interval=0.0) as box:
        yield box


def test_faces_are_grouped_by_person(inbox):
    rng = np.random.default_rng(1)
    centres = people(3)
    truth = {}
    for t in range(30):
        who = t % 3
        gid = inbox.add(sighting(centres[who], rng), model_id=MODEL, quality=GOOD, seen_at=1000.0 + t)
        truth.setdefault(who, set()).add(gid)
    assert all(len(g) == 1 for g in truth.values())  # each person one group
    assert len({next(iter(g)) for g in truth.values()}) == 3  # and different groups
    assert sorted(g.faces for g in inbox.groups()) == [10, 10, 10]


def test_low_quality_and_repeat_sightings_are_not_stored(tmp_path):
    box = UnknownInbox(tmp_path, min_interval=5.0)
    e = people(1)[0]
    assert box.add(e, model_id=MODEL, quality=dict(GOOD, face_size=9.0)) is None
    assert box.add(e, model_id=MODEL, quality=None) is None
    gid = box.add(e, model_id=MODEL, quality=GOOD, seen_at=100.0)
    assert box.add(e, model_id=MODEL, quality=GOOD, seen_at=101.0) == gid
    (g,) = box.groups()
    assert g.faces == 1 and g.sightings == 2
    box.close()


def test_a_group_keeps_its_best_samples(tmp_path):
    box = UnknownInbox(tmp_path, max_per_group=3, min_interval=0.0)
    rng = np.random.default_rng(2)
    c = people(1)[0]
    for i, size in enumerate([45, 120, 50, 110, 47, 100]):
        box.add(sighting(c, rng, 0.2), model_id=MODEL, quality=dict(GOOD, face_size=float(size)), seen_at=10.0 + i)
    sizes = [f.quality["face_size"] for f in box.faces(box.groups()[0].id)]
    assert sizes == [120.0, 110.0, 100.0]


def test_naming_a_group_enrols_its_best_samples_and_erases_it(inbox, tmp_path):
    rng = np.random.default_rng(3)
    c = people(1)[0]
    for i in range(8):
        inbox.add(sighting(c, rng, 0.2), model_id=MODEL, thumbnail=b"jpeg%d" % i,
                  quality=dict(GOOD, face_size=60.0 + i), seen_at=float(i))
    gid = inbox.groups()[0].id
    with Gallery(tmp_path / "gallery") as g:
        enrolment = gallery_enrolment(g)
        done = inbox.enrol_group(gid, lambda s: enrolment.enrol("Visitor", s), model_id=MODEL, best=5)
        assert done.person.templates == 5 and inbox.groups() == []
        assert sorted(s.source for s in g.samples("Visitor")) == [f"unknown-faces group {gid}, face {k}" for k in range(1, 6)]
        assert sorted(s.crop for s in g.samples("Visitor")) == [b"jpeg%d" % i for i in range(3, 8)]
        # a second group of the same person added to them
        gid2 = inbox.add(sighting(c, rng, 0.2), model_id=MODEL, quality=GOOD)
        assert inbox.enrol_group(gid2, lambda s: enrolment.enrol("visitor", s, add=True), model_id=MODEL).person.templates == 6
        with pytest.raises(GalleryError):
            inbox.faces(gid)
        # someone else's group is not added to them, and stays in the inbox
        gid3 = inbox.add(people(1, seed=9)[0], model_id=MODEL, quality=GOOD)
        with pytest.raises(UnlikeSamplesError, match="unlike visitor's enrolled samples"):
            inbox.enrol_group(gid3, lambda s: enrolment.enrol("visitor", s, add=True), model_id=MODEL)
        assert g.get_person("Visitor").templates == 6 and [x.id for x in inbox.groups()] == [gid3]
        assert inbox.enrol_group(gid3, lambda s: None, model_id=MODEL) is None  # the user chose not to
        assert [x.id for x in inbox.groups()] == [gid3]


def gallery_enrolment(g):
    """The enrolment use case over a gallery, with the app's decision rule and stand-in thresholds."""
    def match(emb):
        return [decide(aggregate(((h.person_id, h.name, h.similarity) for h in hits), 10), Thresholds(0.48, 0.08, 0.08))
                for hits in g.search(emb, 80, model_id=MODEL)]

    def encode(crop):
        raise AssertionError("the inbox keeps encoded crops: stored as they are")

    return Enrolment(g, match, MODEL, same_person=0.36, match_threshold=0.48, encode=encode)


def test_dismiss_erases_the_bytes_from_disk(tmp_path):
    folder = tmp_path / "gallery"
    box = UnknownInbox(folder, min_interval=0.0)
    secret = people(1, seed=5)[0]
    marker = b"UNIQUE-THUMBNAIL-MARKER-" * 20
    gid = box.add(secret, model_id=MODEL, thumbnail=marker, quality=GOOD)
    other = box.add(people(1, seed=6)[0], model_id=MODEL, thumbnail=b"other", quality=GOOD)
    files = [folder / INBOX_DB, folder / (INBOX_DB + "-wal")]
    sealed = [bytes(b) for row in box._db.execute(
        "SELECT f.embedding, f.thumbnail, g.data_key, g.centroid FROM faces f JOIN groups g ON g.id = f.group_id "
        "WHERE g.id = ?", (gid,)) for b in row]

    def on_disk():
        return b"".join(p.read_bytes() for p in files if p.exists())

    data = on_disk()
    assert marker not in data and secret.tobytes() not in data  # sealed: never in the clear
    assert all(b in data for b in sealed) and box.faces(gid)[0].thumbnail == marker
    box.dismiss(gid)
    data = on_disk()
    assert not any(b in data for b in sealed)  # the sealed values and the group's data key are gone
    assert [g.id for g in box.groups()] == [other] and box.faces(other)[0].thumbnail == b"other"
    box.close()


def test_a_missing_or_wrong_key_says_so_in_one_line_and_changes_nothing(tmp_path):
    keys = KeyStore(tmp_path / "keys")
    with UnknownInbox(tmp_path / "g", keys=keys) as box:
        gid = box.add(people(1)[0], model_id=MODEL, thumbnail=b"jpeg", quality=GOOD)
    [kept] = (tmp_path / "keys").iterdir()  # kept beside gallery keys, never in the gallery folder
    assert not list((tmp_path / "g").glob("*.key"))
    with pytest.raises(KeyMissingError, match="does not hold the key of the unknown-faces inbox") as missing:
        UnknownInbox(tmp_path / "g", keys=KeyStore(tmp_path / "other keys"))
    inbox_id = kept.stem
    wrong = KeyStore(tmp_path / "wrong keys")
    wrong.save(inbox_id, bytes(32))
    with pytest.raises(WrongKeyError, match="is not the one its faces were encrypted with") as mismatch:
        UnknownInbox(tmp_path / "g", keys=wrong)
    for exc in (missing.value, mismatch.value):
        assert "\n" not in str(exc) and "delete that file" in str(exc)
    with UnknownInbox(tmp_path / "g", keys=keys) as box:
        assert [f.thumbnail for f in box.faces(gid)] == [b"jpeg"]


def test_a_value_moved_to_another_row_fails_its_check(tmp_path):
    with UnknownInbox(tmp_path, min_interval=0.0) as box:
        a, b = people(2, seed=8)
        ga = box.add(a, model_id=MODEL, thumbnail=b"a1", quality=GOOD, seen_at=1.0)
        assert box.add(a, model_id=MODEL, thumbnail=b"a2", quality=GOOD, seen_at=2.0) == ga
        gb = box.add(b, model_id=MODEL, thumbnail=b"b", quality=GOOD, seen_at=3.0)
        (f1, t1), (f2, _), (fb, _) = box._db.execute("SELECT id, thumbnail FROM faces ORDER BY id").fetchall()
        box._db.execute("UPDATE faces SET thumbnail = ? WHERE id = ?", (t1, f2))  # the same group's key, another row
        with pytest.raises(GalleryError, match=f"group {ga}.*failed its authentication check"):
            box.faces(ga)
        box._db.execute("UPDATE faces SET thumbnail = ? WHERE id = ?", (t1, fb))  # another group's
        with pytest.raises(GalleryError, match=f"group {gb}.*failed its authentication check"):
            box.faces(gb)


def test_an_inbox_kept_in_the_clear_by_an_earlier_version_is_erased_on_opening(tmp_path, caplog):
    plain = sqlite3.connect(tmp_path / INBOX_DB)
    plain.executescript("""
        CREATE TABLE groups (id INTEGER PRIMARY KEY AUTOINCREMENT, centroid BLOB NOT NULL, first_seen REAL NOT NULL,
                             last_seen REAL NOT NULL, sightings INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE faces (id INTEGER PRIMARY KEY AUTOINCREMENT, group_id INTEGER NOT NULL REFERENCES groups(id)
                            ON DELETE CASCADE, embedding BLOB NOT NULL, model_id TEXT NOT NULL, thumbnail BLOB,
                            quality TEXT, score REAL NOT NULL, seen_at REAL NOT NULL);""")
    face = people(1, seed=4)[0]
    marker = b"PLAIN-CROP-MARKER-" * 20
    plain.execute("INSERT INTO groups VALUES (1, ?, 1.0, 1.0, 1)", (face.tobytes(),))
    plain.execute("INSERT INTO faces VALUES (1, 1, ?, ?, ?, NULL, 1.0, 1.0)", (face.tobytes(), MODEL, marker))
    plain.commit()
    plain.close()
    with caplog.at_level("WARNING"), UnknownInbox(tmp_path, min_interval=0.0) as box:
        assert box.groups() == []
        assert box.add(face, model_id=MODEL, thumbnail=b"new", quality=GOOD) is not None
    assert [r.getMessage() for r in caplog.records if "unencrypted" in r.getMessage()] == [
        f"the unknown-faces inbox {tmp_path / INBOX_DB} was kept unencrypted by an earlier version: its 1 face(s) "
        "were erased, and faces are collected again, encrypted, as they are seen"]
    data = b"".join(p.read_bytes() for p in tmp_path.glob(INBOX_DB + "*"))
    assert marker not in data and face.tobytes() not in data


def test_the_inbox_file_is_private(tmp_path):
    UnknownInbox(tmp_path).close()
    mode = stat.S_IMODE(os.stat(tmp_path / INBOX_DB).st_mode)
    assert mode == 0o600


def test_retention_erases_old_faces(tmp_path):
    box = UnknownInbox(tmp_path, retention_days=2, min_interval=0.0)
    a, b = people(2, seed=7)
    now = 10 * DAY
    box.add(a, model_id=MODEL, quality=GOOD, seen_at=now - 3 * DAY)
    box.add(b, model_id=MODEL, quality=GOOD, seen_at=now - 1 * DAY)
    assert box.purge(now) == 1
    assert len(box.groups()) == 1
    with pytest.raises(GalleryError):
        UnknownInbox(tmp_path, retention_days=0)


def _track(tid, emb, decision, person=None, latest=None, quality=GOOD):
    """A tracked live face with its track's shown decision (and newest evaluation)."""
    from faceapp.recognise.track import TrackResult
    from faceapp.types import Candidate, Detection, Face, Match, Quality
    from faceapp.types import Decision as D

    m = Match(D[decision], person, 0.3 if person is None else 0.8,
              () if person is None else (Candidate(1, person, 0.8),))
    lat = m if latest is None else Match(D[latest], person, 0.8, m.candidates)
    det = Detection((10.0, 10.0, 90.0, 90.0), np.zeros((6, 2), np.float32), 0.99)
    face = Face(det, np.zeros((112, 112, 3), np.uint8), Quality(**quality), emb)
    return TrackResult(tid, det.box, face, m, lat, True, 5)


def drifting(start, end, n):
    """``n`` views of one person turning slowly: each close to the last, the ends far apart."""
    return [normalise((1 - t) * start + t * end) for t in np.linspace(0.0, 1.0, n)]


def test_one_tracked_stranger_is_one_group(inbox):
    """A stranger who turns in front of the camera looks unlike their first views; the faces of
    one track stay one group (grouping by similarity alone splits them)."""
    from faceapp.recognise.inbox import add_unknowns

    rng = np.random.default_rng(4)
    a, b = people(2, seed=4)
    front, side = a, normalise(a + 2.5 * normalise(b - (b @ a) * a))  # cosine 0.37
    assert float(front @ side) < inbox.join_threshold
    views = [sighting(front, rng, 0.1) for _ in range(6)] + [sighting(side, rng, 0.1) for _ in range(6)]
    for k, v in enumerate(views):
        add_unknowns(inbox, [_track(7, v, "UNKNOWN")], model_id=MODEL, seen_at=100.0 + k)
    assert len(inbox.groups()) == 1


def test_groups_that_come_close_merge(inbox):
    """Two groups begun from different views of one person become one once a view bridges them."""
    a, b = people(2, seed=5)
    left, mid, right = drifting(a, b, 3)
    g1 = inbox.add(left, model_id=MODEL, quality=GOOD, seen_at=1.0)
    g2 = inbox.add(right, model_id=MODEL, quality=GOOD, seen_at=2.0)
    assert g1 != g2
    for k in range(4):
        inbox.add(normalise(mid + 0.05 * (left if k % 2 else right)), model_id=MODEL, quality=GOOD, seen_at=3.0 + k)
    (g,) = inbox.groups()
    assert g.faces == 6 and g.sightings == 6


def test_a_track_the_live_view_names_leaves_the_inbox(inbox):
    """An enrolled person first seen turned away is unknown for a moment, then named: their faces
    leave the inbox, and later unknown frames of the same track do not come back."""
    from faceapp.recognise.inbox import add_unknowns

    rng = np.random.default_rng(6)
    ann, stranger = people(2, seed=6)
    for k in range(3):
        add_unknowns(inbox, [_track(1, sighting(ann, rng, 0.1), "UNKNOWN"),
                             _track(2, sighting(stranger, rng, 0.1), "UNKNOWN")], model_id=MODEL, seen_at=10.0 + k)
    assert len(inbox.groups()) == 2
    add_unknowns(inbox, [_track(1, sighting(ann, rng, 0.1), "UNKNOWN", "Ann", latest="MATCH")],
                 model_id=MODEL, seen_at=20.0)
    add_unknowns(inbox, [_track(1, sighting(ann, rng, 0.1), "UNKNOWN")], model_id=MODEL, seen_at=21.0)
    (g,) = inbox.groups()
    assert float(inbox.faces(g.id)[0].embedding @ stranger) > 0.9
    inbox.new_source()  # a new tracker numbers its tracks again
    assert add_unknowns(inbox, [_track(1, sighting(ann, rng, 0.1), "UNKNOWN")], model_id=MODEL, seen_at=30.0)


def test_a_group_suggests_the_closest_enrolled_person(inbox, tmp_path):
    rng = np.random.default_rng(8)
    ann, bob = people(2, seed=8)
    with Gallery(tmp_path / "gallery") as g:
        enrolment = gallery_enrolment(g)
        enrolment.enrol("Ann", [EnrolSample(sighting(ann, rng, 0.2), Provenance.photo("a.jpg"))])
        enrolment.enrol("Bob", [EnrolSample(bob, Provenance.photo("b.jpg"))])
        gid = inbox.add(sighting(ann, rng, 0.3), model_id=MODEL, quality=GOOD)
        hint = inbox.suggest(gid, enrolment.match, model_id=MODEL)
        assert hint.name == "Ann" and hint.similarity == pytest.approx(
            float(enrolment.match(np.stack([inbox.faces(gid)[0].embedding]))[0].candidates[0].similarity), abs=1e-5)
        assert inbox.suggest(gid, enrolment.match, model_id="other") is None
