"""The gallery's promises: an index answers only for its store's exact state, removal erases
every byte, files are private, a new model re-embeds, and errors say what really happened."""

import functools
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from vectors import unit_vectors

from faceapp.errors import GalleryError, GalleryFullError, GalleryReadOnlyError
from faceapp.gallery.gallery import Gallery
from faceapp.gallery.reembed import reembed
from faceapp.gallery.store import normalise_name

MODEL = "m" * 64
DIM = 32
SEED = 7  # the rng fixture's (conftest.py)


unit = functools.partial(unit_vectors, dim=DIM)


def _copy_db(src, dst):
    """A consistent backup of the database, as a backup tool would take it."""
    dst.mkdir(exist_ok=True)
    con = sqlite3.connect(src / "gallery.sqlite3")
    out = sqlite3.connect(dst / "gallery.sqlite3")
    con.backup(out)
    out.close()
    con.close()


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_restored_older_database_never_names_the_wrong_person(tmp_path, rng, kind):
    e = unit(rng, 3)  # alice, bob, carol
    g = tmp_path / "g"
    with Gallery(g, index=kind) as gal:
        gal.add_templates("alice", e[:1], model_id=MODEL)
    _copy_db(g, tmp_path / "backup")
    with Gallery(g, index=kind) as gal:
        gal.add_templates("bob", e[1:2], model_id=MODEL)
    # Restore the older database and keep the newer index, then enrol someone new.
    for suffix in ("", "-wal", "-shm"):
        (g / f"gallery.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup" / "gallery.sqlite3", g / "gallery.sqlite3")
    with Gallery(g, index=kind) as gal:
        gal.add_templates("carol", e[2:3], model_id=MODEL)
    with Gallery(g, index=kind) as gal:
        hits = gal.search(e[1:2], 5, model_id=MODEL)[0]  # bob, who is not in the restored gallery
        assert all(h.similarity < 0.99 for h in hits)
        assert gal.search(e[2:3], 1, model_id=MODEL)[0][0].name == "carol"


def test_running_process_notices_a_restored_database(tmp_path, rng):
    e = unit(rng, 3)
    g = tmp_path / "g"
    with Gallery(g, index="hnsw") as gal:
        gal.add_templates("alice", e[:1], model_id=MODEL)
    _copy_db(g, tmp_path / "backup")
    live = Gallery(g, index="hnsw")
    live.add_templates("bob", e[1:2], model_id=MODEL)
    assert live.search(e[1:2], 1, model_id=MODEL)[0][0].name == "bob"
    live.store.close()
    for suffix in ("", "-wal", "-shm"):
        (g / f"gallery.sqlite3{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup" / "gallery.sqlite3", g / "gallery.sqlite3")
    from faceapp.gallery.sqlite_store import SQLiteStore

    live.store = SQLiteStore(g)
    live.add_templates("carol", e[2:3], model_id=MODEL)
    assert all(h.similarity < 0.99 for h in live.search(e[1:2], 5, model_id=MODEL)[0])
    live.close()


def test_deleted_database_beside_an_index_is_reported(tmp_path, rng):
    with Gallery(tmp_path, index="hnsw") as gal:
        gal.add_templates("alice", unit(rng, 1), model_id=MODEL)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"gallery.sqlite3{suffix}").unlink(missing_ok=True)
    with pytest.raises(GalleryError, match="missing"):
        Gallery(tmp_path, index="hnsw")
    assert not (tmp_path / "gallery.sqlite3").exists()  # nothing silently recreated


def test_zero_byte_database_is_reported(tmp_path, rng):
    with Gallery(tmp_path) as gal:
        gal.add_templates("alice", unit(rng, 1), model_id=MODEL)
    (tmp_path / "gallery.sqlite3").write_bytes(b"")
    with pytest.raises(GalleryError, match="0 bytes"):
        Gallery(tmp_path)
    assert (tmp_path / "gallery.sqlite3").stat().st_size == 0


@pytest.mark.parametrize("damage", ["bytes", "binding"])
def test_tampered_index_is_never_searched(tmp_path, rng, damage, caplog):
    e = unit(rng, 2)
    with Gallery(tmp_path, index="hnsw") as gal:
        gal.add_templates("alice", e[:1], model_id=MODEL)
        gal.add_templates("bob", e[1:], model_id=MODEL)
    side = tmp_path / "index.json"
    if damage == "bytes":
        data = bytearray((tmp_path / "index.hnsw").read_bytes())
        data[-8:] = b"\x01" * 8
        (tmp_path / "index.hnsw").write_bytes(bytes(data))
    else:
        import json

        doc = json.loads(side.read_text())
        doc["binding"]["generation"] += 5
        side.write_text(json.dumps(doc))
    with Gallery(tmp_path, index="hnsw") as gal:
        assert [h[0].name for h in gal.search(e, 1, model_id=MODEL)] == ["alice", "bob"]
    assert any("rebuilding it from the database" in r.message for r in caplog.records)
    why = "damaged or was modified" if damage == "bytes" else "another state of the gallery"
    assert any(why in r.message for r in caplog.records)


def _all_bytes(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_remove_leaves_no_byte_of_the_person_in_any_file(tmp_path, rng, kind):
    e = unit(rng, 40)
    crops = [os.urandom(3000) for _ in range(4)]
    with Gallery(tmp_path, index=kind) as gal:
        gal.add_templates("victim", e[:4], model_id=MODEL, crops=crops)
        for i in range(4, 40, 4):
            gal.add_templates(f"p{i}", e[i : i + 4], model_id=MODEL, crops=[os.urandom(3000)] * 4)
        neg_crop = os.urandom(2000)
        gal.add_negative("victim", e[10], model_id=MODEL, crop=neg_crop)
        gal.search(e[:1], 3, model_id=MODEL)
        erased = gal.remove("victim")
        assert (erased.templates, erased.crops, erased.negatives, erased.log_cleared) == (4, 5, 1, True)
        secrets_ = [e[i].tobytes() for i in range(4)] + crops + [neg_crop]
        files = _all_bytes(tmp_path)
        for secret in secrets_:
            for start in range(0, len(secret) - 32, 32):  # any 32-byte fragment
                chunk = secret[start : start + 32]
                assert not any(chunk in data for data in files.values()), "removed data is still on disk"
        assert gal.search(e[:1], 1, model_id=MODEL)[0][0].name != "victim"


def test_removing_one_sample_erases_it(tmp_path, rng):
    e = unit(rng, 3)
    with Gallery(tmp_path) as gal:
        gal.add_templates("alice", e, model_id=MODEL, crops=[b"A" * 900, b"B" * 900, b"C" * 900])
        sample = next(s for s in gal.samples("alice") if s.crop[:1] == b"B")
        erased = gal.remove_template(sample.template_id)
        assert (erased.templates, erased.crops) == (1, 1)
        assert sorted(s.crop[:1] for s in gal.samples("alice")) == [b"A", b"C"]
        assert not any(e[1].tobytes()[:64] in d or b"B" * 100 in d for d in _all_bytes(tmp_path).values())


def test_files_are_private_whatever_the_umask(tmp_path, rng):
    old = os.umask(0o022)
    try:
        root = tmp_path / "g"
        with Gallery(root, index="hnsw") as gal:
            gal.add_templates("alice", unit(rng, 2), model_id=MODEL, crops=[b"x", b"y"])
            gal.remove("alice")
            gal.add_templates("bob", unit(rng, 2), model_id=MODEL)
            gal.search(unit(rng, 1), 1, model_id=MODEL)
            assert stat.S_IMODE(root.stat().st_mode) == 0o700
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in root.iterdir()}
            assert "index.hnsw" in modes and "gallery.sqlite3-wal" in modes
            assert set(modes.values()) == {0o600}, modes
    finally:
        os.umask(old)


def test_loose_permissions_are_tightened_and_reported(tmp_path, rng, caplog):
    with Gallery(tmp_path) as gal:
        gal.add_templates("alice", unit(rng, 1), model_id=MODEL)
    tmp_path.chmod(0o755)
    (tmp_path / "gallery.sqlite3").chmod(0o644)
    with Gallery(tmp_path) as gal:
        assert gal.info()["private"] is True
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "gallery.sqlite3").stat().st_mode) == 0o600
    assert any("made it private" in r.message for r in caplog.records)


def _fake_model(seed):
    w = np.random.default_rng(seed).standard_normal((DIM, 12 * 12 * 3)).astype(np.float32)

    def embed(crops):
        x = crops[:, ::10, ::10, :].reshape(len(crops), -1).astype(np.float32) - 127.5
        v = x @ w.T
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return embed


def _decode(b):
    return np.frombuffer(b, np.uint8).reshape(112, 112, 3)


def test_reembed_with_a_second_model_answers_the_same_names(tmp_path):
    rng = np.random.default_rng(3)
    def faces_of_one_person():
        base = rng.integers(40, 215, (1, 112, 112, 3))
        return np.clip(base + rng.integers(-30, 30, (3, 112, 112, 3)), 0, 255).astype(np.uint8)

    people = {f"person{i}": faces_of_one_person() for i in range(6)}
    old, new = _fake_model(1), _fake_model(2)
    with Gallery(tmp_path) as gal:
        for name, faces in people.items():
            gal.add_templates(name, old(faces[:2]), model_id="old" * 21 + "o",
                              crops=[f.tobytes() for f in faces[:2]])
        gal.add_templates("nocrop", old(rng.integers(0, 255, (1, 112, 112, 3), dtype=np.uint8)), model_id="old" * 21 + "o")
        with pytest.raises(GalleryError, match="reembed"):
            gal.search(new(people["person0"][2:]), 1, model_id="new" * 21 + "n")
        # An interrupted run keeps the old model answering, then resumes.
        assert reembed(gal, "new" * 21 + "n", new, _decode, batch=5, stop_after=1) is None
        assert gal.search(old(people["person1"][2:]), 1, model_id="old" * 21 + "o")[0][0].name == "person1"
        report = reembed(gal, "new" * 21 + "n", new, _decode, batch=5)
        assert report is not None and (report.resumed, report.embedded) == (5, 7)
        assert report.without_crop == ("nocrop",)
        for name, faces in people.items():
            assert gal.search(new(faces[2:]), 1, model_id="new" * 21 + "n")[0][0].name == name
        assert gal.info()["model_ids"] == {"new" * 21 + "n": 12}
        assert gal.has_person("nocrop") and gal.get_person("nocrop").templates == 0


def test_full_disk_is_called_a_full_disk(tmp_path, rng):
    with Gallery(tmp_path) as gal:
        gal.add_templates("alice", unit(rng, 1), model_id=MODEL)
        pages = gal.store._db.execute("PRAGMA page_count").fetchone()[0]
        gal.store._db.execute(f"PRAGMA max_page_count = {pages}")  # as if the disk had no more room
        with pytest.raises(GalleryFullError, match="full"):
            gal.add_templates("bob", unit(rng, 200), model_id=MODEL, crops=[os.urandom(4000)] * 200)
        assert [p.name for p in gal.list_persons()] == ["alice"]


def test_read_only_gallery_can_be_listed_and_matched(tmp_path, rng, monkeypatch):
    e = unit(rng, 2)
    with Gallery(tmp_path) as gal:
        gal.add_templates("alice", e[:1], model_id=MODEL)
        gal.add_templates("bob", e[1:], model_id=MODEL)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    with Gallery(tmp_path) as gal:
        assert gal.store.read_only
        assert [p.name for p in gal.list_persons()] == ["alice", "bob"]
        assert gal.search(e[1:], 1, model_id=MODEL)[0][0].name == "bob"
        with pytest.raises(GalleryReadOnlyError, match="read-only"):
            gal.remove("alice")


@pytest.mark.parametrize("name", ["Ali\u200bce", "\u202eecilA", "Al\u2066ice", "Bo\u2028b"])
def test_invisible_or_direction_changing_names_are_refused(name):
    with pytest.raises(GalleryError, match="invisible or direction-changing"):
        normalise_name(name)
    assert normalise_name("Zoë Ångström") == "Zoë Ångström"


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE persons (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                      created_at REAL NOT NULL);
CREATE TABLE templates (id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE, embedding BLOB NOT NULL,
    created_at REAL NOT NULL, source TEXT, quality TEXT, thumbnail BLOB);
CREATE INDEX templates_person ON templates(person_id);
INSERT INTO meta VALUES ('schema_version', '1'), ('generation', '3'), ('model_sha256', '{model}'), ('dim', '{dim}');
INSERT INTO persons VALUES (1, 'alice', 0);
"""


def test_gallery_of_the_previous_version_opens_and_migrates(tmp_path, rng):
    e = unit(rng, 1)
    con = sqlite3.connect(tmp_path / "gallery.sqlite3")
    con.executescript(V1_SCHEMA.format(model=MODEL, dim=DIM))
    con.execute("INSERT INTO templates (person_id, embedding, created_at, thumbnail) VALUES (1, ?, 0, ?)",
                (e[0].tobytes(), b"crop"))
    con.commit()
    con.close()
    with Gallery(tmp_path) as gal:
        assert gal.search(e, 1, model_id=MODEL)[0][0].name == "alice"
        sample = gal.samples("alice")[0]
        assert sample.crop == b"crop" and sample.model_id == MODEL
        info = gal.info()
        assert len(info["gallery_id"]) == 32 and info["model_ids"] == {MODEL: 1}


HOLD_WRITE = textwrap.dedent("""
    import sys, numpy as np
    from faceapp.gallery.gallery import Gallery
    g = Gallery(sys.argv[1])
    store = g.store
    with store._transaction() as db:          # a long import's open write transaction
        print("writing", flush=True)
        sys.stdin.readline()                  # held until the test has read
""")


def test_readers_do_not_wait_for_a_long_write(tmp_path, rng):
    e = unit(rng, 2)
    with Gallery(tmp_path) as gal:
        gal.add_templates("alice", e[:1], model_id=MODEL)
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITE, str(tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    read = threading.Event()
    seen: list = []

    def reader():
        with Gallery(tmp_path) as gal:
            for _ in range(20):
                seen.append((gal.search(e[:1], 1, model_id=MODEL)[0][0].name,
                             [p.name for p in gal.list_persons()]))
        read.set()

    try:
        assert proc.stdout.readline().strip() == "writing"
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        # The writer holds its transaction until told to stop, so a reader that waited for
        # it would never finish; the timeout only keeps a broken build from hanging CI.
        assert read.wait(timeout=120), "a reader waited for the writer"
        assert proc.poll() is None  # the writer still held its transaction throughout
        assert seen == [("alice", ["alice"])] * 20
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
