"""Files that hold biometric data: owner-only permissions, and atomic, durable writes.

A gallery folder is created ``0700`` and every file in it ``0600`` on POSIX, whatever the
process umask. Opening a folder with looser permissions tightens them when this user owns
it, and warns otherwise. Windows has no POSIX modes; there these helpers only create.

Every file of faceapp that is replaced as a whole (settings, the runtime cache, a saved
index, evaluation caches) is written by :func:`write_atomically`: a reader sees the old
file or the new one, never a mix, also after a crash or power loss. A read-modify-write
that several processes may do at once holds :func:`update_lock` around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
POSIX = os.name == "posix"


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with the new folder itself ``0700``.

    Raises:
        OSError: the folder cannot be created.
    """
    path.mkdir(parents=True, exist_ok=True)
    if POSIX:
        st = path.stat()
        if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create an empty ``0600`` file if ``path`` does not exist (never truncates)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)


FULL_BELOW_BYTES = 1 << 20  # SQLite needs room for its -wal and -shm files even to read


def disk_is_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has (almost) no room left for this user.

    SQLite reports a full disk as a "disk I/O error" when its shared-memory file cannot
    grow, so an error is checked against the free space before it is called damage.
    """
    import shutil

    try:
        return shutil.disk_usage(path).free < FULL_BELOW_BYTES
    except OSError:
        return False


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where folders cannot be fsynced)."""
    if not POSIX:
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: Path, data: bytes | str | Callable[[Path], None], *, mode: int | None = FILE_MODE) -> None:
    """Replace ``path`` with new contents, atomically and durably.

    Writes a new temporary file beside ``path``, fsyncs it, renames it over ``path`` and
    fsyncs the folder. On any error the temporary file is removed and ``path`` is as it was.

    Args:
        path: the file to replace (its folder must exist).
        data: the bytes, the text (written as UTF-8), or a function that writes the file at
            the path it is given (a library's own save function).
        mode: the new file's permissions, whatever the umask (default ``0600``); ``None``:
            ``0666`` less the umask, as a plain ``open`` would.

    Raises:
        OSError: it could not be written.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        try:
            if POSIX and mode is not None:
                os.fchmod(fd, mode)
            if not callable(data):
                os.write(fd, data.encode("utf-8") if isinstance(data, str) else data)
        finally:
            os.close(fd)
        if callable(data):
            data(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def leftover_temporaries(path: Path) -> list[Path]:
    """Temporary files :func:`write_atomically` left beside ``path`` when its process died mid-write."""
    return sorted(path.parent.glob(f"{path.name}.*.tmp"))


@contextlib.contextmanager
def update_lock(path: Path, timeout: float = 10.0) -> Iterator[None]:
    """Hold ``<path>.lock`` (a file lock) while reading, changing and writing ``path`` back.

    Raises:
        TimeoutError: another process held it for ``timeout`` seconds.
        OSError: the lock file cannot be created.
    """
    import filelock

    lock = path.with_name(path.name + ".lock")
    create_private_file(lock)  # 0600 like what it guards, whatever the umask
    with filelock.FileLock(str(lock), timeout=timeout):
        yield


def _entries(root: Path) -> Iterator[Path]:
    yield root
    with contextlib.suppress(OSError):
        yield from (p for p in root.iterdir() if not p.is_symlink())


def loose_entries(root: Path) -> list[Path]:
    """The folder and files under ``root`` that group or others can access."""
    if not POSIX:
        return []
    loose = []
    for p in _entries(root):
        with contextlib.suppress(OSError):
            if stat.S_IMODE(p.stat().st_mode) & 0o077:
                loose.append(p)
    return loose


def tighten(root: Path) -> str | None:
    """Make ``root`` 0700 and its files 0600 where this user owns them.

    Returns:
        One line saying what was done or what could not be done; ``None`` when the
        permissions were already private.
    """
    loose = loose_entries(root)
    if not loose:
        return None
    fixed, foreign = 0, []
    for p in loose:
        try:
            if p.stat().st_uid != os.getuid():
                foreign.append(p)
                continue
            os.chmod(p, DIR_MODE if p.is_dir() else FILE_MODE)
            fixed += 1
        except OSError:
            foreign.append(p)
    if foreign:
        return (f"gallery {root} is readable by other users and is not yours to fix ({len(foreign)} entries); "
                f"ask its owner to run: chmod -R go-rwx {root}")
    return f"gallery {root} was readable by other users; made it private (folder 0700, {fixed - 1 if fixed else 0} file(s) 0600)"


def describe_modes(root: Path) -> dict[str, str]:
    """``{name: octal mode}`` for the folder (``"."``) and each file in it."""
    out = {}
    for p in _entries(root):
        with contextlib.suppress(OSError):
            out["." if p == root else p.name] = oct(stat.S_IMODE(p.stat().st_mode))
    return out


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
