"""Files replaced as a whole are written atomically and durably, privately by default, and a
read-modify-write holds a lock that other processes respect."""

from __future__ import annotations

import os
import stat

import filelock
import pytest

from faceapp import private


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes and folder fsync")
def test_write_is_fsynced_renamed_then_the_folder_fsynced(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_text("old")
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))),
                                                  real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", None)), real_replace(a, b))[1])
    old_umask = os.umask(0)
    try:
        private.write_atomically(path, "new")
    finally:
        os.umask(old_umask)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert calls == [("fsync", False), ("replace", None), ("fsync", True)]
    assert private.leftover_temporaries(path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "index.hnsw"
    path.write_bytes(b"old")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        private.write_atomically(path, broken)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["index.hnsw"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_mode_none_follows_the_umask(tmp_path):
    old_umask = os.umask(0o022)
    try:
        private.write_atomically(tmp_path / "settings.toml", "x = 1\n", mode=None)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "settings.toml").stat().st_mode) == 0o644


def _held_by_someone_else(path):
    """Whether another holder (as another process would be) cannot take ``path``'s update lock now."""
    try:
        filelock.FileLock(str(path.with_name(path.name + ".lock"))).acquire(timeout=0).lock.release()
    except filelock.Timeout:
        return True
    return False


def test_settings_change_is_read_and_written_under_the_lock(tmp_path, monkeypatch):
    from faceapp import config

    path = tmp_path / "settings.toml"
    seen = []
    real = config.read_saved_checked
    monkeypatch.setattr(config, "read_saved_checked",
                        lambda p=None: (seen.append(_held_by_someone_else(path)), real(p))[1])
    config.save_changes({"top_k": 3}, path)
    assert seen == [True] and config.load_settings(path).top_k == 3
    assert not _held_by_someone_else(path)


def test_runtime_cache_is_read_and_written_under_the_lock(tmp_path, monkeypatch):
    from faceapp.vision import runtime

    cache = runtime.RuntimeCache(tmp_path / "runtimes.json")
    seen = []
    real = runtime.RuntimeCache._read
    monkeypatch.setattr(runtime.RuntimeCache, "_read",
                        lambda self: (seen.append(_held_by_someone_else(self.path)), real(self))[1])
    cache.put_metadata("m" * 64, {"k": "v"})
    assert seen == [True]
    assert cache.get_metadata("m" * 64) == {"k": "v"}
