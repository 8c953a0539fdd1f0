"""Nothing leaves the machine: the CLI and the GUI run under ``strace`` without network I/O.

``enroll``, ``match`` and a short offscreen GUI run (an image-folder source, stopped after
20 seconds) are traced with ``strace -f``; any ``connect``/``sendto``/``sendmsg``/
``sendmmsg`` to an ``AF_INET`` or ``AF_INET6`` address fails the test, and so does a
name lookup (a DNS query is exactly such a connect or send, to port 53). The CLI must
also start no other program (MediaPipe used to run ``ldconfig``, ``gcc`` and ``ld``),
write nothing to stderr and no file outside its settings and gallery (onnxruntime's
telemetry keeps a device id in ``~/.cache``). Skipped, with the reason, where strace is missing or may not
trace (no ptrace permission).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# An inet/inet6 destination, or systemd-resolved's local socket (a name lookup by another road).
NET_CALL = re.compile(r'\b(connect|sendto|sendmsg|sendmmsg)\(.*(sa_family=AF_INET6?\b|sun_path="/run/systemd/resolve/)')


def _strace_usable() -> str | None:
    exe = shutil.which("strace")
    if exe is None:
        return "strace is not installed"
    probe = subprocess.run([exe, "-f", "-qq", "-o", os.devnull, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here ({probe.stderr.strip()[:100]})"
    return None


pytestmark = pytest.mark.skipif(_strace_usable() is not None, reason=str(_strace_usable()))


@pytest.fixture
def env(tmp_path):
    """Settings and gallery in ``tmp_path``; an empty home folder, to see what else is written."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ORT_", "XDG_"))}
    home = tmp_path / "home"
    home.mkdir()
    e.update(HOME=str(home), FACEAPP_CONFIG=str(tmp_path / "settings.toml"), FACEAPP_DATA_DIR=str(tmp_path / "data"),
             QT_QPA_PLATFORM="offscreen", PYTHONPATH=os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")]))
    return e


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def traced(cmd: list[str], env: dict[str, str], log: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``cmd`` under strace, network and exec calls of every thread and child to ``log``."""
    strace = ["strace", "-f", "-qq", "-e", "signal=none", "-s", "64",
              "-e", "trace=connect,sendto,sendmsg,sendmmsg,execve", "-o", str(log)]
    return subprocess.run(strace + cmd, env=env, capture_output=True, text=True, timeout=timeout)


def network_calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if NET_CALL.search(line)]


def programs_started(log: Path) -> list[str]:
    """Paths of the programs executed (successful ``execve`` calls), in order."""
    return [m.group(1) for m in re.finditer(r'execve\("([^"]+)".*= 0$', log.read_text(), re.MULTILINE)]


def test_network_call_pattern_catches_dns_and_tcp():
    # The lines strace wrote for MediaPipe's DNS query and TLS connection.
    dns = '77 connect(14, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.53")}, 16) = 0'
    tls = '77 connect(9, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0)}, 28) = -1 EINPROGRESS'
    resolved = '77 connect(5, {sa_family=AF_UNIX, sun_path="/run/systemd/resolve/io.systemd.Resolve"}, 110) = 0'
    unix = '77 connect(3, {sa_family=AF_UNIX, sun_path="/run/dbus/system_bus_socket"}, 110) = 0'
    assert NET_CALL.search(dns) and NET_CALL.search(tls) and NET_CALL.search(resolved)
    assert not NET_CALL.search(unix)


def test_cli_enroll_and_match_open_no_network_connection(env, tmp_path, data_dir):
    py = sys.executable
    for name, args in [("enroll", ["enroll", "Obama", str(data_dir / "obama.jpg")]),
                       ("match", ["match", str(data_dir / "obama2.jpg")])]:
        log = tmp_path / f"{name}.strace"
        run = traced([py, "-m", "faceapp.cli", *args], env, log)
        assert run.returncode == 0, run.stderr
        assert network_calls(log) == [], f"faceapp-cli {name} used the network"
        assert len(programs_started(log)) == 1, f"faceapp-cli {name} started other programs: {programs_started(log)}"
        assert run.stderr == "", f"faceapp-cli {name} wrote to stderr: {run.stderr!r}"
    assert "Obama" in run.stdout
    # onnxruntime's telemetry, when not disabled, keeps a device id and a queue in ~/.cache.
    assert files_under(Path(env["HOME"])) == [], "faceapp-cli wrote files outside its settings and gallery"


def test_gui_opens_no_network_connection(env, tmp_path, data_dir):
    pytest.importorskip("PySide6", reason="the GUI extra is not installed")
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "t1.jpg"):
        shutil.copy(data_dir / name, frames / name)
    log = tmp_path / "gui.strace"
    # The GUI runs until it is stopped: give it time to load the models, match frames and
    # reach the point where a telemetry uploader would send (about 9 s after the first model loads).
    run = traced(["timeout", "-s", "TERM", "20", sys.executable, "-m", "faceapp.gui.start", "--source", str(frames)],
                 env, log)
    assert run.returncode == 124, f"the GUI exited early (rc={run.returncode}): {run.stderr[-2000:]}"
    assert network_calls(log) == [], "the GUI used the network"
    assert not [f for f in files_under(Path(env["HOME"])) if "Microsoft" in f], "onnxruntime telemetry is on"
