"""Files that hold biometric data: owner-only permissions and durable renames.

A gallery folder is created ``0700`` and every file in it ``0600`` on POSIX, whatever the
process umask. Opening a folder with looser permissions tightens them when this user owns
it, and warns otherwise. Windows has no POSIX modes; there these helpers only create.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Iterator
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


def open_private(path: Path, mode: str = "wb"):  # type: ignore[no-untyped-def]
    """``open(path, mode)`` for writing, creating the file ``0600`` whatever the umask."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if "w" in mode else os.O_APPEND)
    fd = os.open(path, flags, FILE_MODE)
    if POSIX:
        os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode)


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


def replace_durably(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it over ``final`` and fsync the folder."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


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
