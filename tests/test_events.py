"""The event history, the same in a gallery folder (SQLite) and a PostgreSQL gallery: opt-in
recording, retention, erasure with the person, snapshots only when asked."""

from __future__ import annotations

import functools
import json
import time

import numpy as np
import pytest
from vectors import unit_vectors

from faceapp.cli import main
from faceapp.gallery.events import EventRecord
from faceapp.gallery.gallery import open_gallery

MODEL = "m" * 64
unit = functools.partial(unit_vectors, dim=32)


@pytest.fixture(params=["folder", pytest.param("postgres", marks=pytest.mark.postgres)])
def spec(request, tmp_path, monkeypatch) -> str:
    """A gallery address: a folder, or a fresh PostgreSQL database."""
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "cache"))
    if request.param == "postgres":
        return request.getfixturevalue("pg_dsn")
    return str(tmp_path / "gallery")


def kept(spec: str) -> list[tuple[int, bool]]:
    """``(track id, has a snapshot)`` of every stored event row, read straight from the database."""
    with open_gallery(spec) as g:
        rows = g.store.dialect.rows("SELECT track_id, snapshot IS NOT NULL FROM events ORDER BY track_id")
    return [(int(t), bool(s)) for t, s in rows]


def test_event_history_filters_retention_and_erasure(spec, rng, capsys):
    now = time.time()
    with open_gallery(spec) as g:
        g.add_templates("Ada", unit(rng, 1), model_id=MODEL)
        g.add_templates("Ben", unit(rng, 1), model_id=MODEL)
        generation = g.store.state().generation
        ev = [EventRecord(now - 100 * 86400, "Ada", "match", 0.7, 1, (1, 2, 3, 4), "camera 0", "door"),
              EventRecord(now - 2 * 86400, "ada", "match", 0.71, 2, (1, 2, 3, 4), "camera 0", "door"),
              EventRecord(now - 60, "Ben", "match", 0.8, 3, (5, 6, 7, 8), "camera 0", "door"),
              EventRecord(now - 30, None, "unknown", 0.2, 4, None, "camera 0", "door")]
        g.store.add_events(ev, retention_days=30)  # the 100-day-old event is not kept
        assert [e.track_id for e in g.store.events()] == [2, 3, 4]
        assert g.store.events()[0].person == "Ada" and g.store.events()[0].box == (1, 2, 3, 4)
        assert set(g.store.last_seen()) == {"Ada", "Ben"}
        assert g.store.state().generation == generation  # history, not gallery content
    assert main(["--gallery", spec, "events", "--person", "ada", "--json"]) == 0
    assert [d["track_id"] for d in json.loads(capsys.readouterr().out)] == [2]
    assert main(["--gallery", spec, "events", "--since", "1d", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("time,person,decision") and len(lines) == 3 and ",Ben,match," in lines[1]
    assert main(["--gallery", spec, "remove", "Ada"]) == 0
    with open_gallery(spec) as g:
        assert [e.person for e in g.store.events()] == ["Ben", None]


def test_event_snapshots_are_kept_only_when_asked_and_erased_like_templates(spec, rng, data_dir, capsys, tmp_path):
    from faceapp.vision.images import decode_crop, load_image
    from faceapp.watch import Event, EventRecorder

    crop = np.ascontiguousarray(load_image(data_dir / "obama.jpg")[:112, :112])

    def face(t, person, track):
        return Event("face", t, track, person, "match" if person else "unknown", 0.7, (1, 2, 3, 4), "cam", crop=crop)

    now = time.time()
    with open_gallery(spec) as g:
        g.add_templates("Ada", unit(rng, 1), model_id=MODEL)
        g.add_templates("Ben", unit(rng, 1), model_id=MODEL)
        EventRecorder(g.store, 30, "door")(face(now - 5, "Ada", 1))  # no snapshot unless asked
        keep = EventRecorder(g.store, 30, "door", snapshots=True)
        keep(face(now - 4, "Ada", 2))
        keep(face(now - 3, "Ben", 3))
        keep(Event("source_lost", now, source="cam", message="gone"))  # not a face event: not kept
        got = g.store.events(snapshots=True)
        assert [e.has_snapshot for e in got] == [False, True, True] and got[0].snapshot is None
        assert decode_crop(got[1].snapshot).shape == (112, 112, 3)
        assert all(e.snapshot is None for e in g.store.events())  # bytes are read only when asked
    assert kept(spec) == [(1, False), (2, True), (3, True)]
    assert main(["--gallery", spec, "events", "--json"]) == 0
    out = capsys.readouterr().out
    assert [d["snapshot"] for d in json.loads(out)] == [False, True, True] and "\\x" not in out
    assert main(["--gallery", spec, "events", "--export-snapshots", str(tmp_path / "snaps")]) == 0
    assert sorted(p.name.split("-")[-1] for p in (tmp_path / "snaps").iterdir()) == ["Ada.jpg", "Ben.jpg"]
    assert main(["--gallery", spec, "remove", "Ada"]) == 0  # her events and snapshots are deleted
    assert kept(spec) == [(3, True)]
    with open_gallery(spec) as g:  # retention deletes old events with their snapshots
        EventRecorder(g.store, 30, "door", snapshots=True)(face(now - 2 * 86400, "Ben", 4))
        assert [t for t, _ in kept(spec)] == [3, 4]
        EventRecorder(g.store, 1, "door")(face(now, None, 5))  # a 1-day retention drops the 2-day-old one
    assert kept(spec) == [(3, True), (5, False)]


def test_a_folder_erases_removed_events_from_its_files(tmp_path, rng, monkeypatch):
    """A removed person's event snapshots leave no byte in the database or its write-ahead log."""
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "gallery"
    marker = b"SNAPSHOT-OF-ADA-" * 64
    with open_gallery(folder) as g:
        g.add_templates("Ada", unit(rng, 1), model_id=MODEL)
        g.store.add_events([EventRecord(time.time(), "Ada", "match", 0.7, 1, None, "cam", "door", marker)], 30)
        g.remove("Ada")
    assert all(marker[:32] not in p.read_bytes() for p in folder.iterdir() if p.name.startswith("gallery.sqlite3"))


def test_a_folder_gallery_from_before_the_history_gets_one(tmp_path, rng, monkeypatch):
    """A gallery written before the event history: opened writable it gains the table; opened
    read-only it shows an empty history and refuses to record."""
    import os

    from faceapp.errors import FaceappError
    from faceapp.watch import EventRecorder

    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "gallery"
    with open_gallery(folder) as g:
        g.add_templates("Ada", unit(rng, 1), model_id=MODEL)
        g.store.dialect.db.execute("DROP TABLE events")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    with open_gallery(folder) as g:
        assert g.store.read_only and g.store.events() == [] and g.store.last_seen() == {}
        with pytest.raises(FaceappError, match="read-only"):
            EventRecorder(g.store, 30, "door")
    monkeypatch.setattr(os, "access", real_access)
    with open_gallery(folder) as g:
        g.store.add_events([EventRecord(time.time(), "Ada", "match", 0.7, 1, None, "cam", "door")], 30)
        assert [e.person for e in g.store.events()] == ["Ada"]


def test_watch_records_into_a_folder_gallery(tmp_path, data_dir, capsys, monkeypatch):
    """`watch --record` with a gallery folder keeps its events there, as with PostgreSQL."""
    import shutil

    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "cache"))
    gallery = str(tmp_path / "gallery")
    assert main(["--gallery", gallery, "enroll", "Obama", str(data_dir / "obama.jpg")]) == 0
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(data_dir / "obama2.jpg", frames / "1.jpg")
    shutil.copy(data_dir / "biden.jpg", frames / "2.jpg")
    capsys.readouterr()
    assert main(["--gallery", gallery, "watch", str(frames), "--record", "--device", "door"]) == 0
    seen = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["--gallery", gallery, "--json", "events"]) == 0
    kept = json.loads(capsys.readouterr().out)
    assert [(e["person"], e["decision"], e["device"]) for e in kept] == [
        (e["person"], e["decision"], "door") for e in seen if e["event"] == "face"]
    assert ("Obama", "match", "door") in [(e["person"], e["decision"], e["device"]) for e in kept]
