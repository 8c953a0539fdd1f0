import functools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from vectors import unit_vectors

from faceapp.errors import DuplicatePersonError, GalleryError, GalleryLockedError, UnknownPersonError
from faceapp.gallery.gallery import Gallery

MODEL = "m" * 64
DIM = 16


unit = functools.partial(unit_vectors, dim=DIM)


def test_add_search_remove_reload_round_trip(tmp_path, rng):
    e = unit(rng, 3)
    with Gallery(tmp_path) as g:
        g.add_templates("Alice", e[:2], model_id=MODEL, crops=[b"jpg1", None], sources=["a.jpg", "b.jpg"])
        g.add_templates("Bob", e[2:], model_id=MODEL)
        hits = g.search(e[2:], 5, model_id=MODEL)[0]
        assert hits[0].name == "Bob" and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert {p.name: p.templates for p in g.list_persons()} == {"Alice": 2, "Bob": 1}
    with Gallery(tmp_path) as g:  # reload from disk
        assert g.search(e[:1], 1, model_id=MODEL)[0][0].name == "Alice"
        assert g.remove("alice").templates == 2  # names are case-insensitive
        hits = g.search(e[:1], 5, model_id=MODEL)[0]
        assert [h.name for h in hits] == ["Bob"]
        assert list(g.all_crops()) == []
    with Gallery(tmp_path) as g:
        assert [p.name for p in g.list_persons()] == ["Bob"]
        assert g.count_templates() == 1
        assert g.index_stats()["index_elements"] == 1


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_grows_past_initial_capacity(tmp_path, rng, kind):
    n = 1024 + 300
    e = unit(rng, n, dim=32)
    with Gallery(tmp_path, index=kind) as g:
        for start in range(0, n, 250):
            g.add_templates(f"p{start}", e[start : start + 250], model_id=MODEL)
        assert g.index_stats()["index_elements"] == n
        hits = g.search(e[-5:], 1, model_id=MODEL)
        assert all(h[0].similarity > 0.999 for h in hits)


def test_duplicate_and_unknown_names(tmp_path, rng):
    with Gallery(tmp_path) as g:
        g.add_templates("Alice", unit(rng, 1), model_id=MODEL)
        with pytest.raises(DuplicatePersonError):
            g.add_templates(" alice ", unit(rng, 1), model_id=MODEL, must_be_new=True)
        with pytest.raises(UnknownPersonError):
            g.remove("Nobody")
        with pytest.raises(UnknownPersonError):
            g.rename("Nobody", "X")
        with pytest.raises(GalleryError):
            g.add_templates("   ", unit(rng, 1), model_id=MODEL)
        with pytest.raises(GalleryError):
            g.add_templates("tab\there", unit(rng, 1), model_id=MODEL)
        assert g.count_templates() == 1


def test_rename_and_merge(tmp_path, rng):
    e = unit(rng, 3)
    with Gallery(tmp_path) as g:
        g.add_templates("A", e[:1], model_id=MODEL)
        g.add_templates("B", e[1:], model_id=MODEL)
        g.rename("A", "Ann")
        with pytest.raises(DuplicatePersonError):
            g.rename("Ann", "b")
        merged = g.merge("B", "Ann")
        assert merged.templates == 3
        assert [p.name for p in g.list_persons()] == ["Ann"]
        assert {h.name for h in g.search(e, 3, model_id=MODEL)[0]} == {"Ann"}


def test_refuses_templates_from_another_model(tmp_path, rng):
    with Gallery(tmp_path) as g:
        g.add_templates("A", unit(rng, 1), model_id=MODEL)
        with pytest.raises(GalleryError, match="another embedder"):
            g.add_templates("B", unit(rng, 1), model_id="x" * 64)
        with pytest.raises(GalleryError, match="another embedder"):
            g.search(unit(rng, 1), 1, model_id="x" * 64)


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "sidecar"])
def test_missing_or_damaged_index_is_rebuilt(tmp_path, rng, damage):
    e = unit(rng, 20)
    with Gallery(tmp_path, index="hnsw") as g:
        for i in range(4):
            g.add_templates(f"p{i}", e[i * 5 : (i + 1) * 5], model_id=MODEL)
    index = tmp_path / "index.hnsw"
    if damage == "delete":
        index.unlink()
    elif damage == "truncate":
        index.write_bytes(index.read_bytes()[:100])
    elif damage == "garbage":
        index.write_bytes(os.urandom(index.stat().st_size))
    else:
        (tmp_path / "index.json").write_text("{not json")
    with Gallery(tmp_path, index="hnsw") as g:
        hits = g.search(e, 1, model_id=MODEL)
        assert [h[0].name for h in hits] == [f"p{i // 5}" for i in range(20)]
        g.add_templates("p4", unit(rng, 1), model_id=MODEL)
    assert index.stat().st_size > 1000  # saved again by the next write


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_stale_index_catches_up_with_other_writers(tmp_path, rng, kind):
    e = unit(rng, 3)
    a = Gallery(tmp_path, index=kind)
    b = Gallery(tmp_path, index=kind)
    a.add_templates("A", e[:1], model_id=MODEL)
    assert b.search(e[:1], 1, model_id=MODEL)[0][0].name == "A"
    b.add_templates("B", e[1:2], model_id=MODEL)
    a.remove("A")
    assert [h.name for h in b.search(e[:2], 3, model_id=MODEL)[1]] == ["B"]
    assert [h.name for h in a.search(e[:1], 3, model_id=MODEL)[0]] == ["B"]
    a.close()
    b.close()


def test_damaged_database_is_reported_not_overwritten(tmp_path):
    db = tmp_path / "gallery.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    with pytest.raises(GalleryError, match="damaged"):
        Gallery(tmp_path)
    assert db.read_bytes() == before


def test_unwritable_folder(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file"
        target.write_text("x")
        with pytest.raises(GalleryError, match="cannot create"):
            Gallery(target / "sub")
    else:
        tmp_path.chmod(0o500)
        with pytest.raises(GalleryError):
            Gallery(tmp_path / "g")


def test_write_lock_timeout(tmp_path, rng):
    import filelock

    with Gallery(tmp_path, lock_timeout=0.2) as g:
        other = filelock.FileLock(str(tmp_path / "write.lock"))
        script = textwrap.dedent(f"""
            import filelock, time, sys
            lock = filelock.FileLock({str(tmp_path / 'write.lock')!r})
            lock.acquire()
            print('locked', flush=True)
            sys.stdin.readline()  # held until the test is done
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "locked"
            with pytest.raises(GalleryLockedError, match="locked by another faceapp process"):
                g.add_templates("A", unit(rng, 1), model_id=MODEL)
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
        del other
        g.add_templates("A", unit(rng, 1), model_id=MODEL)
        assert len(g) == 1


WRITER = """
import sys, numpy as np
from faceapp.gallery.gallery import Gallery
root, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(abs(hash(tag)) % 1000)
g = Gallery(root, lock_timeout=30)
for i in range(n):
    e = rng.standard_normal((2, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    g.add_templates(f"{tag}{i}", e, model_id="m" * 64)
    print(i, flush=True)
"""


def test_two_processes_write_at_once(tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag, "25"], stdout=subprocess.DEVNULL)
        for tag in ("a", "b")
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with Gallery(tmp_path) as g:
        assert len(g) == 50 and g.count_templates() == 100
        assert g.check() == "ok"
        assert g.index_stats()["index_elements"] == 100


def test_kill_during_enrolment_loses_nothing_committed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "k", "100000"],
                            stdout=subprocess.PIPE, text=True)
    committed = -1
    deadline = time.time() + 60
    while committed < 30 and time.time() < deadline:
        committed = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert committed >= 30
    with Gallery(tmp_path) as g:
        assert g.check() == "ok"
        names = {p.name for p in g.list_persons()}
        assert {f"k{i}" for i in range(committed + 1)} <= names
        assert all(p.templates == 2 for p in g.list_persons())  # no half-written person
        assert g.index_stats()["index_elements"] == g.count_templates()
    conn = sqlite3.connect(tmp_path / "gallery.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
