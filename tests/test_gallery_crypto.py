"""Faces encrypted at rest: gallery keys, per-person data keys, crypto-shredding on removal,
and one clear message each for a missing key, a wrong key and a changed ciphertext."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from vectors import unit_vectors

from faceapp.cli import main
from faceapp.errors import KeyMissingError, WrongKeyError
from faceapp.gallery import crypto as seal
from faceapp.gallery.crypto import TamperedError
from faceapp.gallery.keys import KeyStore, export_key, import_key
from faceapp.gallery.sqlite_store import SQLiteStore

MODEL = "c" * 64
DIM = 72  # a size no other test stores, so a scan of the shared server finds only these
SEED = 23

unit = functools.partial(unit_vectors, dim=DIM)


def jpeg(rng) -> bytes:
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def png(rng) -> bytes:
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def unit_runs(data: bytes, dim: int) -> int:
    """How many runs of ``dim`` float32 numbers in ``data`` (at any byte alignment) form a unit-length vector
    of mostly non-zero numbers, as an embedding is (a lone 1.0 among zeros is not one)."""
    found = 0
    for shift in range(4):
        n = (len(data) - shift) // 4
        if n < dim:
            continue
        with np.errstate(all="ignore"):
            v = np.frombuffer(data, np.float32, n, shift).astype(np.float64)
            sq = np.where(np.isfinite(v) & (np.abs(v) <= 1.0), v * v, 1e6)
        c = np.concatenate([[0.0], np.cumsum(sq)])
        nz = np.concatenate([[0], np.cumsum(np.abs(v) > 1e-6)])
        win = c[dim:] - c[:-dim]
        found += int(np.count_nonzero((np.abs(win - 1.0) < 1e-3) & (nz[dim:] - nz[:-dim] >= dim // 2)))
    return found


def images(data: bytes) -> int:
    return data.count(b"JFIF\x00") + data.count(b"\x89PNG\r\n\x1a\n")


SECRET = "Quentinella Marchbanks"  # a name no other test stores
SOURCE = "quentinella-at-lake-wobegon-2019.jpg"  # a photo's file name no other test stores
QUALITY = {"sharpness": 271.828}  # a quality measure no other test stores
CLEAR = (SECRET, SOURCE, "271.828")


def scan(folder: Path, dim: int) -> tuple[int, int]:
    """(unit-length float runs, JPEG/PNG images and copies of :data:`CLEAR`) in every file under ``folder``."""
    runs = found = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            runs += unit_runs(data, dim)
            found += images(data) + sum(data.lower().count(s.lower().encode()) for s in CLEAR)
    return runs, found


def add(store, name, vectors, crops, sources=None, qualities=None):
    n = len(vectors)
    return store.add_templates(name, vectors, model_id=MODEL, crops=crops, sources=sources or [None] * n,
                               qualities=qualities or [None] * n, create=True, must_be_new=False)


def fields(store, name):
    """``{(source, quality)}`` of ``name``'s samples, as read back."""
    return {(s.source, json.dumps(s.quality)) for s in store.samples(name)}


def test_the_scan_finds_plain_faces(rng):
    """The scanner itself: it sees a stored vector and an image when they are there."""
    v = unit(rng, 1)[0]
    assert unit_runs(b"xy" + v.tobytes() + b"z", DIM) >= 1 and images(b"a" + jpeg(rng) + png(rng)) == 2
    assert unit_runs(np.random.default_rng(1).bytes(1 << 16), DIM) == 0


def test_folder_store_keeps_no_face_in_the_clear(tmp_path, rng):
    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    e = unit(rng, 4)
    add(store, "Ann", e[:2], [jpeg(rng), png(rng)], [SOURCE, None], [QUALITY, None])
    add(store, "Bob", e[2:3], [jpeg(rng)])
    store.add_negative("Ann", e[3], model_id=MODEL, crop=jpeg(rng))
    store.rename("Ann", SECRET)
    assert [p.name for p in store.list_persons("quentin")] == [SECRET]  # names are searched in memory
    assert store.get_person(SECRET.upper()).templates == 2
    assert fields(store, SECRET) == {(SOURCE, json.dumps(QUALITY)), (None, "null")}  # read back in the clear
    assert sorted(s.crop[:2] for s in store.samples(SECRET)) == [b"\x89P", b"\xff\xd8"]  # read back in the clear
    assert np.allclose(store.embeddings(store.template_ids(MODEL), DIM).sum(), e[:3].sum(), atol=1e-4)
    store.remove("Bob")
    store.close()
    assert scan(tmp_path / "g", DIM) == (0, 0)
    assert not list((tmp_path / "g").rglob("*.key"))  # the key is never in the gallery folder
    [kept] = (tmp_path / "keys").iterdir()  # no keyring here: a private file in the config folder
    assert (kept.stat().st_mode & 0o777, (tmp_path / "keys").stat().st_mode & 0o777) == (0o600, 0o700)


def test_removed_persons_ciphertext_cannot_be_opened_after_removal(tmp_path, rng):
    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    add(store, "Ann", unit(rng, 1), [jpeg(rng)])
    pid = store.get_person("Ann").id
    tid, blob, crop = store._db.execute("SELECT id, embedding, crop FROM templates").fetchone()
    assert store.data_keys.open(pid, seal.TEMPLATE, tid, blob) is not None
    store.remove("Ann")
    store.close()
    again = SQLiteStore(tmp_path / "g", keys=keys)  # the gallery key is still there; the data key is not
    assert again.crypto is not None
    again.data_keys.open_keys([pid])
    with pytest.raises(KeyError):
        again.crypto.open(pid, seal.TEMPLATE, tid, bytes(blob))
    assert again._db.execute("SELECT COUNT(*) FROM persons WHERE data_key IS NOT NULL").fetchone()[0] == 0
    again.close()


def test_missing_key_wrong_key_and_tampering_each_say_so_and_change_nothing(tmp_path, rng, capsys):
    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    add(store, "Ann", unit(rng, 2), [jpeg(rng), None])
    gid = store.state().gallery_id
    store.close()
    before = (tmp_path / "g" / "gallery.sqlite3").read_bytes()

    with pytest.raises(KeyMissingError, match="does not have the key"):
        SQLiteStore(tmp_path / "g", keys=KeyStore(tmp_path / "empty"))
    other = KeyStore(tmp_path / "other")
    other.create(gid)
    with pytest.raises(WrongKeyError, match="not the gallery's key"):
        SQLiteStore(tmp_path / "g", keys=other)
    assert (tmp_path / "g" / "gallery.sqlite3").read_bytes() == before

    db = sqlite3.connect(tmp_path / "g" / "gallery.sqlite3")
    tid, blob = db.execute("SELECT id, embedding FROM templates ORDER BY id LIMIT 1").fetchone()
    db.execute("UPDATE templates SET embedding = ? WHERE id = ?", (bytes(blob[:-1]) + bytes([blob[-1] ^ 1]), tid))
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path / "g", keys=keys)
    with pytest.raises(TamperedError, match="authentication check"):
        store.embeddings(store.template_ids(MODEL), DIM)
    assert [d.row_id for d in store.damaged()] == [tid]
    store.close()


def test_key_export_import_with_a_passphrase(tmp_path, rng, monkeypatch):
    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    add(store, "Ann", unit(rng, 1), [None])
    gid = store.state().gallery_id
    store.close()
    export_key(keys, gid, "g", tmp_path / "k.key", "correct horse")
    assert b"key" in (tmp_path / "k.key").read_bytes() and (tmp_path / "k.key").stat().st_mode & 0o077 == 0
    other = KeyStore(tmp_path / "device2")
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        import_key(other, tmp_path / "k.key", "wrong")
    with pytest.raises(KeyMissingError):
        import_key(other, tmp_path / "k.key", None)
    assert not other.has(gid)
    assert import_key(other, tmp_path / "k.key", "correct horse")[0] == gid
    again = SQLiteStore(tmp_path / "g", keys=other)
    assert again.get_person("Ann").templates == 1
    again.close()
    guarded = KeyStore(tmp_path / "device3")  # kept behind the passphrase on this device too
    import_key(guarded, tmp_path / "k.key", "correct horse", keep_passphrase=True)
    monkeypatch.setenv("FACEAPP_KEY_PASSPHRASE", "wrong")
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        SQLiteStore(tmp_path / "g", keys=guarded)
    monkeypatch.setenv("FACEAPP_KEY_PASSPHRASE", "correct horse")
    SQLiteStore(tmp_path / "g", keys=guarded).close()


def test_an_old_plain_gallery_is_encrypted_on_opening(tmp_path, rng):
    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    store.crypto = None  # as written by a faceapp without encryption
    e = unit(rng, 3)
    add(store, SECRET, e[:2], [jpeg(rng), None], [SOURCE, None], [QUALITY, None])
    add(store, "Bob", e[2:], [png(rng)])
    assert store.encryption()["people_not_encrypted"] == 2
    store.close()
    seen = []
    store = SQLiteStore(tmp_path / "g", keys=keys, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)] and store.encryption()["encrypted"]
    assert fields(store, SECRET) == {(SOURCE, json.dumps(QUALITY)), (None, "null")}
    assert np.allclose(np.sort(store.embeddings(store.template_ids(MODEL), DIM).sum(1)), np.sort(e.sum(1)), atol=1e-5)
    assert store.samples("Bob")[0].crop.startswith(b"\x89PNG")
    store.close()
    assert scan(tmp_path / "g", DIM) == (0, 0)


def test_merge_reseals_under_the_target_and_rekey_keeps_data(tmp_path, rng):
    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    e = unit(rng, 2)
    add(store, "Ann", e[:1], [jpeg(rng)], ["ann.jpg"])
    add(store, "Bob", e[1:], [jpeg(rng)], ["bob.jpg"], [QUALITY])
    store.merge("Bob", "Ann")
    assert len(store.samples("Ann")) == 2 and all(s.crop.startswith(b"\xff\xd8") for s in store.samples("Ann"))
    assert fields(store, "Ann") == {("ann.jpg", "null"), ("bob.jpg", json.dumps(QUALITY))}  # sealed again by Ann's key
    from faceapp.gallery.events import EventRecord

    shot = jpeg(rng)  # an unknown face's snapshot is sealed with the gallery key itself
    store.add_events([EventRecord(2.0, None, "unknown", 0.1, 2, (0, 0, 1, 1), "cam", "door", shot)], 1e9)
    old = store.crypto.check_value
    store.rekey(keys)
    assert store.crypto.check_value != old
    store.close()
    store = SQLiteStore(tmp_path / "g", keys=keys)
    assert [ev.snapshot for ev in store.events(snapshots=True)] == [shot]  # sealed again under the new key
    assert np.allclose(np.sort(store.embeddings(store.template_ids(MODEL), DIM).sum(1)), np.sort(e.sum(1)), atol=1e-5)
    assert store.get_person("ANN").templates == 2  # found by the keyed hash made with the new key
    assert fields(store, "Ann") == {("ann.jpg", "null"), ("bob.jpg", json.dumps(QUALITY))}
    store.close()


def test_sources_and_qualities_kept_in_the_clear_are_sealed_on_opening(tmp_path, rng):
    """A gallery encrypted before sources and qualities were sealed (schema 4) has them sealed, person by person."""
    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    add(store, SECRET, unit(rng, 2), [None, None], [SOURCE, "other.jpg"], [QUALITY, None])
    add(store, "Bob", unit(rng, 1), [None])
    store.close()
    db = sqlite3.connect(tmp_path / "g" / "gallery.sqlite3")
    db.execute("PRAGMA secure_delete = ON")
    db.execute("UPDATE templates SET source = ?, quality = ? WHERE quality IS NOT NULL", (SOURCE, json.dumps(QUALITY)))
    db.execute("UPDATE templates SET source = 'other.jpg' WHERE source IS NOT NULL AND quality IS NULL")
    db.execute("ALTER TABLE persons DROP COLUMN seal_level")  # as schema 4 wrote it
    db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    assert scan(tmp_path / "g", DIM)[1] >= 2  # the scan sees them in the clear
    seen = []
    store = SQLiteStore(tmp_path / "g", keys=keys, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)] and store.encryption()["encrypted"]
    assert fields(store, SECRET) == {(SOURCE, json.dumps(QUALITY)), ("other.jpg", "null")}
    store.close()
    assert scan(tmp_path / "g", DIM) == (0, 0)


def test_cli_key_commands_and_removal_message(tmp_path, rng, capsys, data_dir):
    g = str(tmp_path / "g")
    assert main(["--gallery", g, "enroll", "Obama", str(data_dir / "obama.jpg")]) == 0
    assert main(["--gallery", g, "gallery", "key", "export", str(tmp_path / "k.key")]) == 0
    assert main(["--gallery", g, "remove", "Obama"]) == 0
    out = capsys.readouterr().out
    assert "destroyed their data key" in out and "this gallery's key" in out
    assert main(["--gallery", g, "gallery", "rekey"]) == 0
    capsys.readouterr()
    assert main(["--gallery", g, "gallery", "key", "import", str(tmp_path / "k.key")]) == 2
    assert "already holds another key" in capsys.readouterr().err
    assert main(["--gallery", g, "--json", "list"]) == 0
    capsys.readouterr()
    keys = Path(os.environ["FACEAPP_CONFIG"]).parent / "keys"
    keys.rename(tmp_path / "keys-elsewhere")
    try:
        assert main(["--gallery", g, "list"]) == 2
        err = capsys.readouterr().err
        assert "does not have the key" in err and "damaged" not in err and len(err.strip().splitlines()) == 1
    finally:
        (tmp_path / "keys-elsewhere").rename(keys)


@pytest.mark.postgres
def test_an_old_plain_postgres_gallery_is_encrypted_on_opening(pg_dsn, tmp_path, rng, monkeypatch):
    from faceapp.gallery.pg_store import PostgresStore
    from faceapp.gallery.sql_store import SQLStore

    keys = KeyStore(tmp_path / "keys")
    e = unit(rng, 3, dim=40)  # plain rows stay in the server's files until vacuumed: of a size no scan looks for
    with monkeypatch.context() as m:
        m.setattr(SQLStore, "unlock", lambda self, keys=None, progress=None: 0)  # as written before encryption
        old = PostgresStore(pg_dsn, listen=False, keys=keys)
        add(old, "Ann", e[:2], [b"crop of Ann", None], ["ann.jpg", None], [{"sharpness": 1.5}, None])
        add(old, "Bob", e[2:], [b"crop of Bob"])
        assert old.encryption()["people_not_encrypted"] == 2
        old.close()
    seen = []
    store = PostgresStore(pg_dsn, listen=False, keys=keys, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)] and store.encryption()["encrypted"]
    assert [p.name for p in store.list_persons()] == ["Ann", "Bob"]
    assert np.allclose(np.sort(store.embeddings(store.template_ids(MODEL), 40).sum(1)), np.sort(e.sum(1)), atol=1e-5)
    assert store.samples("Bob")[0].crop == b"crop of Bob"
    assert fields(store, "Ann") == {("ann.jpg", '{"sharpness": 1.5}'), (None, "null")}
    import psycopg

    with psycopg.connect(pg_dsn) as con:  # sealed on the server
        assert con.execute("SELECT COUNT(*) FROM templates WHERE source = 'ann.jpg' OR quality LIKE '%sharp%'"
                           ).fetchone()[0] == 0
    store.close()



@pytest.mark.postgres
def test_postgres_sources_and_qualities_kept_in_the_clear_are_sealed_on_opening(pg_dsn, tmp_path, rng):
    import psycopg

    from faceapp.gallery.pg_store import PostgresStore

    keys = KeyStore(tmp_path / "keys")
    store = PostgresStore(pg_dsn, listen=False, keys=keys)
    add(store, "Ann", unit(rng, 1, dim=40), [None], ["ann.jpg"], [{"sharpness": 1.5}])
    store.close()
    with psycopg.connect(pg_dsn) as con:  # as written before sources and qualities were sealed
        con.execute("UPDATE templates SET source = 'ann.jpg', quality = '{\"sharpness\": 1.5}'")
        con.execute("UPDATE persons SET seal_level = NULL")
    seen = []
    store = PostgresStore(pg_dsn, listen=False, keys=keys, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 1)] and fields(store, "Ann") == {("ann.jpg", '{"sharpness": 1.5}')}
    with psycopg.connect(pg_dsn) as con:
        assert con.execute("SELECT COUNT(*) FROM templates WHERE source = 'ann.jpg' OR quality LIKE '%sharp%'"
                           ).fetchone()[0] == 0
    store.close()


GOOD = dict(face_size=80.0, sharpness=400.0, yaw=0.0, roll=0.0, brightness=120.0)


def test_folder_gallery_with_its_saved_index_and_inbox_keeps_no_face_in_the_clear(tmp_path, rng):
    from faceapp.gallery.gallery import open_gallery
    from faceapp.recognise.inbox import UnknownInbox

    e = unit(rng, 3)
    with open_gallery(tmp_path / "g", index="hnsw") as g:
        g.add_templates("Ann", e[:2], model_id=MODEL, crops=[jpeg(rng), png(rng)])
        g.add_templates("Bob", e[2:], model_id=MODEL, crops=[jpeg(rng)])
        g.add_negative("Ann", e[2], model_id=MODEL, crop=jpeg(rng))
    assert (tmp_path / "g" / "index.hnsw").is_file()
    with open_gallery(tmp_path / "g", index="hnsw") as g:  # opens its encrypted saved index
        assert g.search(e[:1], 1, model_id=MODEL)[0][0].name == "Ann"
        g.remove("Bob")
        assert g.search(e[2:], 1, model_id=MODEL)[0][0].name == "Ann"
    unknown = unit(rng, 4)  # unknown faces of the live view, kept in the gallery folder's inbox
    crops = [jpeg(rng) for _ in unknown]
    with UnknownInbox(tmp_path / "g", min_interval=0.0) as box:
        gids = [box.add(v, model_id=MODEL, thumbnail=c, quality=GOOD, seen_at=1e9 + i)
                for i, (v, c) in enumerate(zip(unknown, crops, strict=True))]
        assert None not in gids and sorted(f.thumbnail for g in box.groups() for f in box.faces(g.id)) == sorted(crops)
        assert np.allclose(box.faces(gids[0])[0].embedding, unknown[0], atol=1e-6)  # read back in the clear
    assert (tmp_path / "g" / "inbox.sqlite3").is_file()
    assert scan(tmp_path / "g", DIM) == (0, 0)


@pytest.mark.postgres
def test_postgres_server_and_device_cache_keep_no_face_in_the_clear(own_pg_server, tmp_path, rng, monkeypatch):
    from faceapp.gallery.events import EventRecord
    from faceapp.gallery.gallery import open_gallery

    pg_server = own_pg_server  # a server of its own: the session's holds plain galleries other tests made
    pg_dsn = pg_server.new_database()

    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "cache"))
    e = unit(rng, 3)
    with open_gallery(pg_dsn, index="hnsw") as g:
        g.add_templates(SECRET, e[:2], model_id=MODEL, crops=[jpeg(rng), png(rng)], sources=[SOURCE, None],
                        qualities=[QUALITY, None])
        g.add_templates("Bob", e[2:], model_id=MODEL, crops=[jpeg(rng)])
        g.add_negative("Bob", e[0], model_id=MODEL, crop=jpeg(rng))
        assert {s.source for s in g.samples(SECRET)} == {SOURCE, None}
        shot = jpeg(rng)
        g.store.add_events([EventRecord(1.0, "Bob", "match", 0.9, 1, (0, 0, 1, 1), "cam", "door", shot),
                            EventRecord(2.0, None, "unknown", 0.1, 2, (0, 0, 1, 1), "cam", "door", shot)], 1e9)
        assert [ev.snapshot for ev in g.store.events(snapshots=True)] == [shot, shot]
        assert g.search(e[2:], 1, model_id=MODEL)[0][0].name == "Bob"
        assert g._keeper.wait_idle(60)
        g.remove("Bob")
        assert [ev.person for ev in g.store.events()] == [None]
        assert g.search(e[:1], 1, model_id=MODEL)[0][0].name == SECRET
        assert g._keeper.wait_idle(60)  # the index without Bob is saved in the device cache again
    assert list((tmp_path / "cache").rglob("index.hnsw"))
    pg_server.sql("postgres", "CHECKPOINT")
    assert scan(pg_server.data, DIM) == (0, 0)
    assert scan(tmp_path / "cache", DIM) == (0, 0)


def test_a_damaged_sealed_text_is_one_tampered_line_and_only_vectors_are_sent_to_check(tmp_path, rng):
    """A source that is not even base64 any more fails like any other damage (no traceback), and
    the fix offered for a damaged value is `check` only where `check` can make it again."""
    from faceapp.errors import Fix

    keys = KeyStore(tmp_path / "keys")
    store = SQLiteStore(tmp_path / "g", keys=keys)
    add(store, "Ann", unit(rng, 1), [None], ["ann.jpg"])
    store.close()
    db = sqlite3.connect(tmp_path / "g" / "gallery.sqlite3")
    with db:
        db.execute("UPDATE templates SET source = '%%% not base64 %%%'")
    db.close()
    store = SQLiteStore(tmp_path / "g", keys=keys)
    with pytest.raises(TamperedError) as err:
        store.samples("Ann")
    assert err.value.fix is None and "template source" in str(err.value) and "\n" not in str(err.value)
    store.close()
    crypto = seal.GalleryCrypto(b"k" * 32, "g1", "g")
    crypto.new_data_key(7)
    fixes = {}
    for kind in (seal.TEMPLATE, seal.NEGATIVE, seal.TEMPLATE_CROP, seal.NAME, seal.SNAPSHOT):
        with pytest.raises(TamperedError) as err:
            crypto.open(7, kind, 1, b"x" * 40)
        fixes[kind] = err.value.fix
    assert fixes == {seal.TEMPLATE: Fix.CHECK_TEMPLATES, seal.NEGATIVE: Fix.CHECK_TEMPLATES,
                     seal.TEMPLATE_CROP: None, seal.NAME: None, seal.SNAPSHOT: None}
