"""Several devices on one PostgreSQL gallery, each a separate process with its own cache folder:
enrolment on one is recognised by the others, removals propagate, a server that stops and
restarts, and writers that write at once lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from faceapp.errors import GalleryUnavailableError
from faceapp.gallery.gallery import open_gallery

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from devices_bench import MODEL, Device, unit  # noqa: E402

PROPAGATION_S = 120.0  # a hang guard only: nothing here asserts a delay; scripts/devices_bench.py measures it


@pytest.fixture
def spawn():
    """Start probe devices; any still running at the end of the test (it failed) are killed."""
    started = []

    def start(*args, **kw):
        dev = Device(*args, **kw)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        if dev.proc.poll() is None:
            dev.proc.kill()
            dev.proc.wait(timeout=30)


@pytest.fixture
def own_server():
    """A server of our own, so stopping it touches no other test."""
    from pgserver import PgServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    server = PgServer(bindir)
    server.init()
    yield server
    server.destroy()


def test_enrol_on_one_device_recognised_and_removed_on_two_others(pg_dsn, tmp_path, monkeypatch, spawn):
    rng = np.random.default_rng(1)
    people = unit(rng, 2)
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "a"))
    a = open_gallery(pg_dsn)
    b = spawn(pg_dsn, people, tmp_path / "b")
    c = spawn(pg_dsn, people, tmp_path / "c")
    for dev in (b, c):
        dev.wait(lambda d: d.get("names") == [None, None], PROPAGATION_S)
    t0 = time.time()
    a.add_templates("Ada", people[:1], model_id=MODEL)
    for dev in (b, c):
        dev.names_after(t0, ["Ada", None], PROPAGATION_S)
    t0 = time.time()
    a.add_templates("Ben", people[1:], model_id=MODEL)
    a.remove("Ada")
    for dev in (b, c):
        dev.names_after(t0, [None, "Ben"], PROPAGATION_S)
        assert dev.stop() == 0
    # Each device's cache is its own folder, private, and holds no removed vector.
    for cache in (tmp_path / "b", tmp_path / "c"):
        folders = list((cache / "galleries").iterdir())
        assert len(folders) == 1
        for folder in (cache, cache / "galleries", folders[0]):
            assert (folder.stat().st_mode & 0o777) == 0o700, folder
    a.close()


def test_server_stop_and_restart(own_server, tmp_path, monkeypatch, spawn):
    rng = np.random.default_rng(2)
    people = unit(rng, 2)
    dsn = own_server.new_database()
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "a"))
    a = open_gallery(dsn)
    a.add_templates("Ada", people[:1], model_id=MODEL)
    b = spawn(dsn, people, tmp_path / "b")
    b.wait(lambda d: d.get("names") == ["Ada", None], PROPAGATION_S)

    own_server.stop()
    # Reads go on from the last synced index (in this process and in the running device) ...
    assert [h[0].name for h in a.search(people[:1], 1, model_id=MODEL)] == ["Ada"]
    # ... writes are refused with one line and nothing is written ...
    for write in (lambda: a.add_templates("Ben", people[1:], model_id=MODEL), lambda: a.remove("Ada"),
                  lambda: a.rename("Ada", "Ava")):
        with pytest.raises(GalleryUnavailableError) as err:
            write()
        assert "not reachable" in str(err.value) and "\n" not in str(err.value)
    # ... and a new device cannot start without the server.
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "c"))
    with pytest.raises(GalleryUnavailableError):
        open_gallery(dsn)
    time.sleep(1.0)
    assert b.proc.poll() is None and b.lines[-1]["names"] == ["Ada", None]

    own_server.start()
    for _attempt in range(400):  # the store reconnects with backoff; a count, not a clock, bounds the wait
        try:
            t0 = time.time()
            a.add_templates("Ben", people[1:], model_id=MODEL)
            break
        except GalleryUnavailableError:
            time.sleep(0.3)
    else:
        pytest.fail("never reconnected")
    b.names_after(t0, ["Ada", "Ben"], PROPAGATION_S)  # the device's listener reconnects and catches up
    assert b.stop() == 0
    a.close()


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from faceapp.gallery.gallery import open_gallery
    dsn, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng([ord(c) for c in tag])
    g = open_gallery(dsn)
    for i in range(n):
        v = rng.standard_normal((2, 128)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        g.add_templates(f"{tag}-{i}", v, model_id=MODEL_ID)
        g.add_templates("shared", v[:1], model_id=MODEL_ID, create=True)
        if i % 3 == 0:
            g.remove(f"{tag}-{i}")
    g.close()
""").replace("MODEL_ID", repr(MODEL))


def test_concurrent_writers_lose_nothing(pg_dsn, tmp_path):
    n = 12
    procs = []
    for tag in ("w1", "w2", "w3"):
        env = {**os.environ, "FACEAPP_CACHE_DIR": str(tmp_path / tag), "PYTHONPATH": str(ROOT)}
        procs.append(subprocess.Popen([sys.executable, "-c", WRITER, pg_dsn, tag, str(n)], env=env,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    os.environ["FACEAPP_CACHE_DIR"] = str(tmp_path / "check")
    with open_gallery(pg_dsn) as g:
        kept = [i for i in range(n) if i % 3]
        assert sorted(p.name for p in g.list_persons()) == sorted(
            ["shared"] + [f"{t}-{i}" for t in ("w1", "w2", "w3") for i in kept])
        assert g.get_person("shared").templates == 3 * n
        assert g.count_templates() == 3 * n + 3 * len(kept) * 2
        state = g.store.state()
        # Every write was one transaction with its own generation: 2 enrolments per round + the removals.
        assert state.generation == 3 * (2 * n + len(range(0, n, 3)))
        g.search(np.ones((1, 128), np.float32) / np.sqrt(128), 1, model_id=MODEL)
        assert sorted(g.slot.index.ids().tolist()) == sorted(g.store.template_ids(MODEL).tolist())
