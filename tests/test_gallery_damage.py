"""Honest errors about the gallery's files: a full disk is called a full disk by every command
(reads included), and a gallery folder whose database is gone is damage, never a new gallery."""

import gc
import os
import shutil
import sqlite3
import subprocess
import uuid

import pytest
from vectors import unit_vectors

from faceapp.cli import main
from faceapp.errors import GalleryError, GalleryFullError
from faceapp.gallery.gallery import Gallery

MODEL = "m" * 64


@pytest.fixture
def small_disk(tmp_path):
    """A 600 kB file system of our own (tmpfs; needs root, else the test is skipped)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    gc.collect()  # connections of galleries that failed to open
    if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder):
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # no space left: the disk is full
        pass
    finally:
        os.close(fd)


def test_a_full_disk_is_called_a_full_disk_by_every_command(small_disk, data_dir, capsys):
    gallery = small_disk / "g"
    assert main(["--gallery", str(gallery), "enroll", "Obama", str(data_dir / "obama.jpg")]) == 0
    _fill(small_disk)
    capsys.readouterr()
    for command in (["list"], ["info"], ["match", str(data_dir / "obama.jpg")],
                    ["enroll", "Biden", str(data_dir / "biden.jpg")], ["remove", "Obama"]):
        code = main(["--gallery", str(gallery), *command])
        err = capsys.readouterr().err
        assert code == 2 and "full" in err and "damaged" not in err and "backup" not in err, (command, err)
    (small_disk / "filler").unlink()
    with Gallery(gallery) as g:  # nothing was lost
        assert g.check() == "ok" and [p.name for p in g.list_persons()] == ["Obama"]


def test_an_io_error_on_a_full_disk_is_not_called_damage(tmp_path, rng, monkeypatch):
    with Gallery(tmp_path) as g:
        g.add_templates("a", unit_vectors(rng, 1, 8), model_id=MODEL)

    def no_room(*_a, **_k):
        raise sqlite3.OperationalError("disk I/O error")  # what SQLite says when its -shm cannot grow

    monkeypatch.setattr(sqlite3, "connect", no_room)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(1 << 30, 1 << 30, 0))
    with pytest.raises(GalleryFullError, match="full"):
        Gallery(tmp_path)


def test_a_gallery_folder_without_its_database_is_damage(tmp_path, rng, capsys):
    with Gallery(tmp_path) as g:
        g.add_templates("a", unit_vectors(rng, 1, 8), model_id=MODEL)
    for name in ("gallery.sqlite3", "gallery.sqlite3-wal", "gallery.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(GalleryError, match="missing"):
        Gallery(tmp_path)
    assert not (tmp_path / "gallery.sqlite3").exists()  # nothing was created in its place
    assert main(["--gallery", str(tmp_path), "list"]) == 2
    assert "missing" in capsys.readouterr().err
    fresh = tmp_path / "new"
    with Gallery(fresh) as g:  # an empty or new folder is a new gallery
        assert len(g) == 0
