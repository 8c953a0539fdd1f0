"""One SQL store over two dialects: the same calls give the same answers in a folder (SQLite)
and in PostgreSQL, and the PostgreSQL dialect's rewriting of placeholders leaves literals alone."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from vectors import unit_vectors

from faceapp.errors import DuplicatePersonError, GalleryMismatchError, UnknownPersonError
from faceapp.gallery.sqlite_store import SQLiteStore

MODEL, MODEL2 = "a" * 64, "b" * 64
DIM = 8
SEED = 5

unit = functools.partial(unit_vectors, dim=DIM)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "g")
    else:
        from faceapp.gallery.pg_store import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_dsn"), listen=False)
    yield s
    s.close()


def add(store, name, vectors, model=MODEL, crops=None, **kw):
    n = len(vectors)
    return store.add_templates(name, vectors, model_id=model, crops=crops or [None] * n, sources=["s"] * n,
                               qualities=[{"q": 1.0}] * n, create=kw.get("create", True),
                               must_be_new=kw.get("must_be_new", False))


def test_both_dialects_answer_alike(store, rng):
    e = unit(rng, 6)
    s0 = store.state()
    assert (s0.generation, s0.model_id, s0.dim) == (0, None, None) and len(s0.gallery_id) == 32
    add(store, "Zoë", e[:2], crops=[b"z1", None])
    add(store, "adam", e[2:3], crops=[b"a1"])
    add(store, "Bea", e[3:4])
    assert [p.name for p in store.list_persons()] == ["adam", "Bea", "Zoë"]  # by name, case-insensitively
    assert [p.name for p in store.list_persons("DA")] == ["adam"]
    assert [p.name for p in store.list_persons("%")] == []  # a search text is text, not a pattern
    assert store.get_person("ADAM").templates == 1 and store.count_persons() == 3 and store.count_templates() == 4
    assert store.model_counts() == {MODEL: 4}
    with pytest.raises(DuplicatePersonError):
        add(store, "BEA", e[4:5], must_be_new=True)
    with pytest.raises(UnknownPersonError):
        add(store, "Cy", e[4:5], create=False)
    with pytest.raises(GalleryMismatchError):
        add(store, "Bea", unit(rng, 1, dim=4))
    state = store.state()
    assert (state.generation, state.model_id, state.dim) == (3, MODEL, DIM)  # refused writes bump nothing
    ids = store.template_ids(MODEL)
    assert len(ids) == 4 and list(ids) == sorted(ids)
    assert np.allclose(store.embeddings(ids, DIM), np.concatenate(
        [store.embeddings(np.array([t]), DIM) for t in ids]))
    owners = store.owners(ids.tolist())
    assert sorted(n for _, n in owners.values()) == sorted(["adam", "Bea", "Zoë", "Zoë"])
    assert sorted((n, c) for n, _, c in store.crops()) == sorted([("Zoë", b"z1"), ("adam", b"a1")])
    store.rename("bea", "Beatrix")
    store.add_negative("Beatrix", e[5], model_id=MODEL, crop=b"n")
    pids, vecs = store.negatives(MODEL)
    assert list(pids) == [store.get_person("Beatrix").id] and np.allclose(vecs[0], e[5])
    store.merge("Beatrix", "adam")
    assert store.get_person("adam").templates == 2 and len(store.negative_samples(MODEL)) == 1
    erased = store.remove("Adam")
    assert (erased.templates, erased.crops, erased.negatives) == (2, 2, 1)
    erased = store.remove_template(int(store.samples("zoë")[0].template_id))
    assert erased.templates == 1
    assert store.check() == "ok" and store.state().generation == 8


def test_reembedding_alike(store, rng):
    e = unit(rng, 3)
    add(store, "Ann", e[:2], crops=[b"a", None])
    store.add_negative("Ann", e[2], model_id=MODEL, crop=b"n")
    status = store.reembed_status(MODEL2)
    assert (status.done, status.pending, status.without_crop) == (0, 1, ("Ann",))
    work = store.reembed_work(MODEL2, 10)
    assert sorted(w.kind for w in work) == ["negative", "template"] and all(w.crop in (b"a", b"n") for w in work)
    new = unit(rng, 2, dim=4)
    store.add_reembedded(MODEL2, list(zip(work, new)))
    assert store.reembed_work(MODEL2, 10) == [] and store.reembed_status(MODEL2).done == 1
    assert store.model_counts() == {MODEL: 2, MODEL2: 1}
    erased = store.finish_reembed(MODEL2)
    assert (erased.templates, erased.crops, erased.negatives) == (2, 1, 1)
    state = store.state()
    assert (state.model_id, state.dim) == (MODEL2, 4) and store.model_counts() == {MODEL2: 1}
    [kept] = store.samples("Ann")  # the new row's source and quality are its own (sealed for it)
    assert (kept.source, kept.quality, kept.crop) == ("s", {"q": 1.0}, b"a")


def test_placeholders_are_rewritten_outside_literals():
    pytest.importorskip("psycopg")
    from faceapp.gallery.pg_dialect import _pg

    assert _pg("SELECT COALESCE(model_id, '?'), x % 4 FROM t WHERE a = ? AND b LIKE '%?%'") == \
        "SELECT COALESCE(model_id, '?'), x %% 4 FROM t WHERE a = %s AND b LIKE '%%?%%'"


def test_an_old_sqlite_is_refused_with_one_line(tmp_path, monkeypatch):
    import sqlite3

    from faceapp.errors import GalleryError

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    with pytest.raises(GalleryError, match="needs SQLite 3.35 or newer") as err:
        SQLiteStore(tmp_path / "g")
    assert "\n" not in str(err.value) and not (tmp_path / "g").exists()
