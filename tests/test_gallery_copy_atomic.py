"""`gallery copy` is all or nothing, into a folder and into a PostgreSQL database: a copy killed
part-way leaves nothing that opens as a gallery, and running it again works."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from vectors import unit_vectors

from faceapp.cli import main
from faceapp.errors import GalleryError
from faceapp.gallery.gallery import Gallery, open_gallery
from faceapp.gallery.opening import open_store

ROOT = Path(__file__).resolve().parents[1]
MODEL = "c" * 64
PEOPLE = 12

COPY_UNTIL_KILLED = textwrap.dedent("""
    import sys
    from faceapp.cli import main
    from faceapp.gallery import copy

    real = copy.copy_store

    def held_part_way(src, dst, progress=None):
        def report(done, total):
            print(done, flush=True)
            if done >= 5:
                sys.stdin.readline()  # part-way: wait here to be killed
        return real(src, dst, progress=report)

    copy.copy_store = held_part_way
    main(["gallery", "copy", sys.argv[1], sys.argv[2]])
""")


def _source(folder, rng):
    with Gallery(folder) as g:
        for i in range(PEOPLE):
            g.add_templates(f"p{i:02d}", unit_vectors(rng, 1, 8), model_id=MODEL, crops=[b"crop"])


def _kill_part_way(src, dst) -> None:
    """Run `gallery copy src dst` in a process of its own and kill it (SIGKILL) once 5 people are copied."""
    proc = subprocess.Popen([sys.executable, "-c", COPY_UNTIL_KILLED, str(src), str(dst)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                     "FACEAPP_CONFIG": os.environ["FACEAPP_CONFIG"]})  # where the keys are
    done = 0
    while done < 5:
        done = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def test_a_killed_copy_leaves_no_gallery_and_runs_again(tmp_path, rng, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _source(src, rng)
    _kill_part_way(src, dst)
    assert not dst.exists()  # nothing there opens as a (smaller) gallery
    assert main(["gallery", "copy", str(src), str(dst)]) == 0  # running it again works
    assert f"copied {PEOPLE} people" in capsys.readouterr().out
    with Gallery(dst) as g:
        assert len(g) == PEOPLE and g.check() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]  # no staging folder is left


def test_a_failed_copy_leaves_an_empty_destination_as_it_was(tmp_path, rng, monkeypatch, capsys):
    from faceapp.gallery import copy as copy_module

    src, dst = tmp_path / "src", tmp_path / "dst"
    _source(src, rng)
    dst.mkdir()
    real = copy_module.copy_store

    def broken(s, d, progress=None):
        real(s, d, progress=progress)
        raise copy_module.GalleryError("the copy does not match (as if a count differed)")

    monkeypatch.setattr(copy_module, "copy_store", broken)
    assert main(["gallery", "copy", str(src), str(dst)]) == 2
    assert list(dst.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]


@pytest.mark.postgres
def test_a_killed_copy_into_postgres_never_opens_and_runs_again(pg_dsn, tmp_path, rng, capsys):
    psycopg = pytest.importorskip("psycopg")
    src = tmp_path / "src"
    _source(src, rng)
    _kill_part_way(src, pg_dsn)
    with psycopg.connect(pg_dsn) as con:  # killed part-way, not before
        assert con.execute("SELECT COUNT(*) FROM persons").fetchone()[0] >= 5
    with pytest.raises(GalleryError, match="interrupted copy"):
        open_store(pg_dsn)
    assert main(["--gallery", pg_dsn, "list"]) == 2
    err = capsys.readouterr().err
    assert "interrupted copy" in err and "gallery copy" in err and len(err.strip().splitlines()) == 1
    assert main(["gallery", "copy", str(src), pg_dsn]) == 0  # running it again works
    assert f"copied {PEOPLE} people" in capsys.readouterr().out
    with open_gallery(pg_dsn) as g:
        assert len(g) == PEOPLE and g.check() == "ok"


@pytest.mark.postgres
def test_a_failed_copy_into_postgres_leaves_it_empty(pg_dsn, tmp_path, rng, monkeypatch, capsys):
    from faceapp.gallery import copy as copy_module

    src = tmp_path / "src"
    _source(src, rng)
    real = copy_module._copy_people

    def broken(s, d, models, progress):
        real(s, d, models, progress)
        raise copy_module.GalleryError("the copy does not match (as if a count differed)")

    monkeypatch.setattr(copy_module, "_copy_people", broken)
    assert main(["gallery", "copy", str(src), pg_dsn]) == 2
    store = open_store(pg_dsn)  # not marked: an empty gallery, as it was
    try:
        assert store.count_persons() == 0 and store.copy_mark() is None
    finally:
        store.close()


def _add(store, name, rng):
    store.add_templates(name, unit_vectors(rng, 1, 16), model_id="m" * 64, crops=[None], sources=[None],
                        qualities=[None], create=True, must_be_new=True)


def test_a_copys_mark_keeps_other_writers_out_and_only_its_own_token_finishes_or_erases(tmp_path):
    """A device that opened the gallery before a copy marked it cannot enrol into it meanwhile (the
    copy would erase that person if it failed); the mark is taken only on an empty, unmarked gallery,
    in one transaction; a copy that another has taken over finishes and erases nothing."""
    import numpy as np

    rng = np.random.default_rng(3)
    device = open_store(str(tmp_path / "g"))  # opened before the copy: not the copy's writer
    copying = open_store(str(tmp_path / "g"), copying=True)
    token = copying.mark_copy("src")
    with pytest.raises(GalleryError, match="being filled by a copy"):
        _add(device, "Dev", rng)
    with pytest.raises(GalleryError, match="already the destination of another copy"):
        copying.mark_copy("other")
    _add(copying, "Ann", rng)
    with pytest.raises(GalleryError, match="another copy has taken it over"):
        copying.finish_copy("0" * 16)
    with pytest.raises(GalleryError, match="another copy has taken it over"):
        copying.discard_copy("0" * 16)
    assert copying.count_persons() == 1 and copying.copy_mark() == "src"
    copying.finish_copy(token)
    assert copying.copy_mark() is None
    _add(device, "Dev", rng)  # the copy is finished: everyone writes again
    with pytest.raises(GalleryError, match="not empty"):
        copying.mark_copy("src")
    device.close()
    copying.close()
