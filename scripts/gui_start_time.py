"""Time from starting the desktop app to its main window being on screen.

    QT_QPA_PLATFORM=offscreen python scripts/gui_start_time.py --runs 5

Each run starts a fresh Python process that imports the GUI, builds the main window as
``faceapp`` does (image-folder source: ``tests/data``), shows it, and reports once the
event loop has drawn it; the parent measures from process start to that report. Settings
and gallery go to a temporary folder. Prints every run and the median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from faceapp.config import load_settings
from faceapp.gui.app import MainWindow
app = QApplication(sys.argv[:1])
win = MainWindow(load_settings(), source=sys.argv[1])
win.show()
def shown():
    print("shown", win.isVisible(), flush=True)
    win.close()
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tree", type=Path, default=ROOT, help="source tree whose faceapp to run (default: this one)")
    args = ap.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, FACEAPP_CONFIG=str(Path(tmp) / "settings.toml"), FACEAPP_DATA_DIR=str(Path(tmp) / "data"),
                   PYTHONPATH=os.pathsep.join([str(args.tree), os.environ.get("PYTHONPATH", "")]))
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        for i in range(args.runs + 1):
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT / "tests" / "data")], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            elapsed = time.perf_counter() - t0
            proc.wait(timeout=60)
            if not line.startswith("shown True"):
                raise SystemExit(f"the window was not shown (got {line!r})")
            if i:  # the first run fills the disk cache and compiles .pyc files
                times.append(elapsed)
                print(f"run {i}: {elapsed:.2f} s")
    print(f"median {statistics.median(times):.2f} s over {len(times)} runs")


if __name__ == "__main__":
    main()
