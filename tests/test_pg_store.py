"""The PostgreSQL store against a real server: the same promises as the folder store, a change
log that lets devices catch up without a full reload, passwords that never show, and a server
that goes away and comes back."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pytest
from vectors import unit_vectors

from faceapp.errors import (
    DuplicatePersonError,
    GalleryUnavailableError,
    SettingsError,
    UnknownPersonError,
)
from faceapp.gallery.gallery import Gallery, open_gallery
from faceapp.gallery.pg_store import SCHEMA_VERSION
from faceapp.gallery.reembed import reembed
from faceapp.gallery.sqlite_store import SQLiteStore

pytestmark = pytest.mark.postgres

MODEL = "m" * 64
MODEL2 = "n" * 64
DIM = 32
SEED = 11  # the rng fixture's (conftest.py)


unit = functools.partial(unit_vectors, dim=DIM)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def device(dsn, cache_dir, monkeypatch, index="auto"):
    """A second device: its own cache folder."""
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(cache_dir))
    return open_gallery(dsn, index=index)


def names(gallery, probes, model=MODEL):
    """The person each probe is (similarity > 0.99: the probes are the enrolled vectors themselves)."""
    return [h[0].name if h and h[0].similarity > 0.99 else None for h in gallery.search(probes, 1, model_id=model)]


def test_round_trip_like_a_folder(pg_dsn, cache, rng):
    e = unit(rng, 5)
    with open_gallery(pg_dsn) as g:
        s0 = g.store.state()
        assert g.add_templates("Alice", e[:2], model_id=MODEL, crops=[b"jpg1", None],
                               sources=["a.jpg", "camera"], qualities=[{"sharpness": 1.0}, None]).templates == 2
        g.add_templates("Bob", e[2:3], model_id=MODEL)
        s1 = g.store.state()
        assert s1.gallery_id == s0.gallery_id and s1.generation == s0.generation + 2 and s1.model_id == MODEL
        assert names(g, e[:3]) == ["Alice", "Alice", "Bob"]
        with pytest.raises(DuplicatePersonError):
            g.add_templates("alice", e[3:4], model_id=MODEL, must_be_new=True)
        with pytest.raises(UnknownPersonError):
            g.add_templates("Carol", e[3:4], model_id=MODEL, create=False)
        [a1, a2] = sorted(g.samples("ALICE"), key=lambda x: x.crop is None)
        assert (a1.crop, a1.source, a1.quality, a1.model_id) == (b"jpg1", "a.jpg", {"sharpness": 1.0}, MODEL)
        assert a2.crop is None
        assert [n for n, _, _ in g.all_crops()] == ["Alice"]
        g.rename("bob", "Robert")
        assert names(g, e[2:3]) == ["Robert"]
        with pytest.raises(DuplicatePersonError):
            g.rename("Robert", "alice")
        nid = g.add_negative("Alice", e[4], model_id=MODEL, crop=b"neg")
        assert nid > 0 and list(g.negative_similarities(e[4:5], model_id=MODEL)[0]) == [g.get_person("Alice").id]
        g.merge("Robert", "Alice")
        assert [p.name for p in g.list_persons()] == ["Alice"] and g.get_person("Alice").templates == 3
        assert [p.name for p in g.list_persons("LIC")] == ["Alice"]
        erased = g.remove("Alice")
        assert (erased.templates, erased.crops, erased.negatives) == (3, 2, 1)
        assert len(g) == 0 and names(g, e[:1]) == [None]
        assert g.check() == "ok"
        info = g.info()
        assert info["kind"] == "postgresql" and "@" in info["path"]


def test_removal_deletes_rows_and_logs_only_ids(pg_dsn, pg_server, cache, rng):
    import psycopg

    with open_gallery(pg_dsn) as g:
        g.add_templates("Alice", unit(rng, 2), model_id=MODEL, crops=[b"crop-bytes", b"crop-bytes"])
        g.add_negative("Alice", unit(rng, 1)[0], model_id=MODEL, crop=b"neg")
        g.remove("Alice")
    with psycopg.connect(pg_dsn) as con:
        for table in ("persons", "templates", "negatives"):
            assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
        cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'changes'").fetchall()]
        assert sorted(cols) == ["generation", "kind", "model_id", "seq", "template_id"]
        assert con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall() == [
            (v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_migrations_apply_in_order_and_a_newer_schema_is_refused(pg_dsn, cache):
    import psycopg

    from faceapp.errors import GalleryError

    open_gallery(pg_dsn).close()
    with psycopg.connect(pg_dsn, autocommit=True) as con:  # a database left at schema 1
        con.execute("DROP TABLE events")
        con.execute("DELETE FROM schema_migrations WHERE version >= 2")
    with open_gallery(pg_dsn) as g:
        g.store.add_events([], 30)  # the events table is back, with its snapshot column
        assert g.store.events() == []
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        assert con.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION
        con.execute("INSERT INTO schema_migrations (version) VALUES (99)")
    with pytest.raises(GalleryError, match="newer faceapp"):
        open_gallery(pg_dsn)


def test_concurrent_generation_and_names_are_serialised(pg_dsn, cache, rng):
    """Two stores (two devices) writing the same name: one wins, the other gets a clear error."""
    from faceapp.gallery.pg_store import PostgresStore

    a, b = PostgresStore(pg_dsn, listen=False), PostgresStore(pg_dsn, listen=False)
    e = unit(rng, 2)
    a.add_templates("Zoe", e[:1], model_id=MODEL, crops=[None], sources=[None], qualities=[None],
                    create=True, must_be_new=True)
    generation = a.state().generation
    with pytest.raises(DuplicatePersonError):
        b.add_templates("zoe", e[1:], model_id=MODEL, crops=[None], sources=[None], qualities=[None],
                        create=True, must_be_new=True)
    assert a.state().generation == b.state().generation == generation  # the refused write changed nothing
    a.close()
    b.close()


def test_other_device_catches_up_from_the_change_log(pg_dsn, tmp_path, monkeypatch, rng):
    """Device B takes in A's enrolment and removal without reading every id again."""
    e = unit(rng, 4)
    a = device(pg_dsn, tmp_path / "a", monkeypatch)
    a.add_templates("Alice", e[:1], model_id=MODEL)
    b = device(pg_dsn, tmp_path / "b", monkeypatch)
    assert names(b, e[:2]) == ["Alice", None]

    def no_full_reload(*_a, **_k):
        raise AssertionError("a full reload of the template ids")

    monkeypatch.setattr(b.store, "template_ids", no_full_reload)
    a.add_templates("Bob", e[1:2], model_id=MODEL)
    assert b.wait_for_change(5.0)
    assert names(b, e[:2]) == ["Alice", "Bob"]
    a.remove("Alice")
    assert b.wait_for_change(5.0)
    assert names(b, e[:2]) == [None, "Bob"]
    a.rename("Bob", "Robert")
    assert b.wait_for_change(5.0)
    assert names(b, e[:2]) == [None, "Robert"]
    a.add_templates("Carol", e[2:3], model_id=MODEL)
    a.merge("Carol", "Robert")
    assert b.wait_for_change(5.0)
    assert names(b, e[:3]) == [None, "Robert", "Robert"]
    # While nothing changes, a search asks the server nothing (as fast as a local gallery).
    monkeypatch.setattr(b.store.pg, "cursor", lambda: pytest.fail("a round trip to the server"))
    assert names(b, e[:3]) == [None, "Robert", "Robert"]
    a.close()
    b.close()


def test_restarted_device_loads_its_saved_index_and_applies_changes(pg_dsn, tmp_path, monkeypatch, rng):
    e = unit(rng, 3)
    a = device(pg_dsn, tmp_path / "a", monkeypatch)
    a.add_templates("Alice", e[:1], model_id=MODEL)
    b = device(pg_dsn, tmp_path / "b", monkeypatch, index="hnsw")
    assert names(b, e[:1]) == ["Alice"]
    assert b._keeper.wait_idle(60)  # the graph is built and saved in the background
    b.close()
    saved = list((tmp_path / "b" / "galleries").iterdir())[0]
    assert (saved / "index.hnsw").is_file()
    a.add_templates("Bob", e[1:2], model_id=MODEL)
    a.remove("Alice")
    from faceapp.gallery import index_cache

    wiped = []
    real_wipe = index_cache.vindex.wipe_index_files
    monkeypatch.setattr(index_cache.vindex, "wipe_index_files",
                        lambda root: (real_wipe(root), wiped.append((saved / "index.hnsw").exists()))[0])
    b = device(pg_dsn, tmp_path / "b", monkeypatch, index="hnsw")
    monkeypatch.setattr(b.store, "template_ids", lambda *_: pytest.fail("full reload"))
    assert names(b, e[:2]) == [None, "Bob"]
    assert b._keeper.wait_idle(60)
    # The saved file held Alice's vector: it was wiped (before the compacted index was saved).
    assert wiped and wiped[0] is False
    # The compacted index is saved again, without the removed vector.
    from faceapp.gallery.vindex import HnswIndex

    state = b.store.state()
    from faceapp.gallery.vindex import Binding

    loaded = HnswIndex.load_lineage(saved, Binding(state.gallery_id, state.generation, MODEL, DIM, ""),
                                    b.store.index_key())  # saved encrypted
    assert loaded is not None and loaded[1].generation == state.generation and len(loaded[0]) == 1
    a.close()
    b.close()


def test_first_sync_answers_at_once_and_builds_the_graph_in_the_background(pg_dsn, tmp_path, monkeypatch, rng):
    import threading

    from faceapp.gallery import index_cache

    e = unit(rng, 50)
    a = device(pg_dsn, tmp_path / "a", monkeypatch, index="exact")
    for i in range(0, 50, 10):
        a.store.add_templates(f"p{i}", e[i:i + 10], model_id=MODEL, crops=[None] * 10, sources=[None] * 10,
                              qualities=[None] * 10, create=True, must_be_new=True)
    gate, entered = threading.Event(), threading.Event()
    real_add = index_cache.HnswIndex.add

    def slow_add(self, ids, vectors, threads=-1):  # the background build waits until we let it go
        entered.set()
        gate.wait(30)
        return real_add(self, ids, vectors, threads)

    monkeypatch.setattr(index_cache.HnswIndex, "add", slow_add)
    b = device(pg_dsn, tmp_path / "b", monkeypatch, index="hnsw")
    assert names(b, e[:1]) == ["p0"] and b.index_stats()["index_kind"] == "exact"
    assert entered.wait(30)
    a.remove("p0")  # a removal while the graph is being built from a snapshot that holds p0
    b.wait_for_change(5.0)
    gate.set()
    assert b._keeper.wait_idle(60)
    assert b.index_stats()["index_kind"] == "hnsw" and names(b, np.concatenate([e[:1], e[10:11]])) == [None, "p10"]
    assert len(b.slot.index) == 40
    a.close()
    b.close()


def test_reembed_on_postgres(pg_dsn, cache, rng):
    e = unit(rng, 2)
    with open_gallery(pg_dsn) as g:
        g.add_templates("Alice", e[:1], model_id=MODEL, crops=[b"a"])
        g.add_templates("Bob", e[1:], model_id=MODEL, crops=[None])
        new = unit(rng, 1, dim=16)
        report = reembed(g, MODEL2, lambda crops: np.repeat(new, len(crops), 0), lambda b: np.zeros((4, 4, 3), np.uint8))
        assert report.without_crop == ("Bob",) and report.embedded == 1
        assert g.store.state().model_id == MODEL2 and g.store.state().dim == 16
        assert names(g, new, MODEL2) == ["Alice"]


def test_password_in_the_address_is_refused_without_showing_it(pg_server, cache):
    dsn = f"postgresql://{pg_server.user}:hunter2secret@127.0.0.1:{pg_server.port}/postgres"
    with pytest.raises(SettingsError) as err:
        open_gallery(dsn)
    assert "hunter2secret" not in str(err.value) and "pgpass" in str(err.value)
    with pytest.raises(SettingsError) as err:
        open_gallery(f"host=127.0.0.1 port={pg_server.port} password=hunter2secret dbname=postgres")
    assert "hunter2secret" not in str(err.value)


def test_password_comes_from_libpq_places_and_never_shows(pg_server, pg_dsn, cache, tmp_path, monkeypatch, caplog):
    from pgserver import SECRET_PASSWORD, SECRET_USER

    dbname = pg_dsn.rsplit("/", 1)[1]
    dsn = pg_server.dsn(dbname, user=SECRET_USER)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GalleryUnavailableError) as err:
        open_gallery(dsn)
    assert "password" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("PGPASSWORD", "wrong-" + SECRET_PASSWORD)
    with pytest.raises(GalleryUnavailableError) as err:
        open_gallery(dsn)
    assert SECRET_PASSWORD not in str(err.value)
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg_server.port}:*:{SECRET_USER}:{SECRET_PASSWORD}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with open_gallery(dsn) as g:
        assert len(g) == 0 and g.info()["path"] == f"postgresql://{SECRET_USER}@127.0.0.1:{pg_server.port}/{dbname}"
    assert SECRET_PASSWORD not in caplog.text


def test_redact_never_shows_a_password():
    from faceapp.gallery.pg_store import redact

    assert redact("postgresql://u:pw@h:5432/db?sslmode=require") == "postgresql://u@h:5432/db"
    assert redact("host=h user=u password=pw dbname=db") == "postgresql://u@h/db"
    assert "pw" not in redact("postgresql://u:pw@h/db") and "pw" not in redact("not a dsn password=pw ===")


def test_sqlite_store_keeps_no_change_log(tmp_path):
    store = SQLiteStore(tmp_path / "g")
    assert store.changes_since(0, MODEL) is None
    store.close()


def test_folder_gallery_still_opens_by_path(tmp_path, rng):
    with open_gallery(str(tmp_path / "g")) as g:
        assert isinstance(g, Gallery) and isinstance(g.store, SQLiteStore)


def test_settings_and_pipeline_take_a_database_address(pg_dsn, cache, tmp_path, monkeypatch):
    from faceapp.config import Settings, gallery_arg, load_settings
    from faceapp.gallery.pg_store import PostgresStore
    from faceapp.pipeline import Pipeline

    toml = tmp_path / "settings.toml"
    toml.write_text(f'gallery = "{pg_dsn}"\n')
    settings = load_settings(toml)
    assert settings.gallery_spec() == pg_dsn
    assert gallery_arg("host=db dbname=faceapp") == "host=db dbname=faceapp"
    assert gallery_arg("some/folder") == Path("some/folder")
    assert Settings(gallery=tmp_path / "f").gallery_spec() == tmp_path / "f"
    with Pipeline(settings) as pipe:
        assert isinstance(pipe.gallery.store, PostgresStore)


def test_info_describes_the_server_and_the_device_index(pg_dsn, cache, capsys):
    from faceapp.cli import main

    assert main(["--gallery", pg_dsn, "info"]) == 0
    out = capsys.readouterr().out
    assert "server: PostgreSQL 15" in out and "no TLS" in out and str(cache / "galleries") in out
