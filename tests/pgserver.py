"""A throwaway PostgreSQL server for tests: the installed binaries, run as ``postgres``.

PostgreSQL refuses to run as root, so when the tests run as root the server is started
with ``runuser -u postgres``, in a temporary folder owned by that user, on a free port of
127.0.0.1. Local connections as ``postgres`` are trusted; the role ``secretuser`` must
give its password (SCRAM), so tests can check where passwords come from and that they
never show in a message.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SECRET_USER = "secretuser"
SECRET_PASSWORD = "s3cr3t-Pa55-word"


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is not installed."""
    env = os.environ.get("FACEAPP_PG_BINDIR")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    which = shutil.which("pg_ctl")
    return Path(which).parent if which and shutil.which("initdb") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster in a temporary folder.

    Args:
        bindir: folder with the server binaries.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.as_root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="faceapp-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        self._counter = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "--no-sync", "-E", "UTF8")
        hba = (f"host all {SECRET_USER} 127.0.0.1/32 scram-sha-256\n"
               "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        conf = (f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")
        self._as_owner_write(self.data / "pg_hba.conf", hba)
        self._as_owner_append(self.data / "postgresql.conf", conf)
        self.start()
        self.sql("postgres", f"CREATE ROLE {SECRET_USER} LOGIN PASSWORD '{SECRET_PASSWORD}' CREATEDB")

    def _as_owner_write(self, path: Path, text: str) -> None:
        path.write_text(text)

    def _as_owner_append(self, path: Path, text: str) -> None:
        with open(path, "a") as f:
            f.write(text)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.user}@{self.host}:{self.port}/{dbname}"

    def sql(self, dbname: str, statement: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as con:
            cur = con.execute(statement)
            return str(cur.fetchall()) if cur.description else ""

    def new_database(self, prefix: str = "t") -> str:
        """A fresh empty database; returns its DSN."""
        self._counter += 1
        name = f"{prefix}{os.getpid()}_{self._counter}"
        self.sql("postgres", f"CREATE DATABASE {name}")
        self.sql(name, f"GRANT ALL ON SCHEMA public TO {SECRET_USER}")
        return self.dsn(name)

    def destroy(self) -> None:
        self.stop("immediate")
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)
