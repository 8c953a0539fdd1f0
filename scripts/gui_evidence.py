"""Screenshots of the desktop app and its frame rate on a video source.

Run under a virtual display (Debian's xvfb):

    xvfb-run -s "-screen 0 1280x800x24" python scripts/gui_evidence.py --out docs

It makes a 640x480 video with one face (cut from tests/data/obama.jpg, drifting slowly),
enrols that face in a temporary gallery, starts the app on the video, and then:

* measures the GUI frame rate (results shown per second) and how responsive the UI stays
  (the longest delay of a 10 ms timer on the GUI thread) over ``--seconds``;
* saves screenshots of the main window, the enrolment dialog and the gallery manager.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_video(path: Path, seconds: float = 12.0, fps: int = 30) -> Path:
    import cv2

    from faceapp.bench import face_square
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline

    with Pipeline(Settings()) as pipe:
        face = face_square(pipe, ROOT / "tests" / "data" / "obama.jpg")
    face = cv2.resize(face, (220, 220), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for i in range(int(seconds * fps)):
        frame = np.full((480, 640, 3), 110, np.uint8)
        x = int(200 + 120 * np.sin(i / 40))
        y = int(130 + 40 * np.cos(i / 55))
        frame[y : y + 220, x : x + 220] = face
        writer.write(frame[:, :, ::-1])
    writer.release()
    return path


def pump(app, seconds: float) -> None:  # type: ignore[no-untyped-def]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from faceapp.config import Settings
    from faceapp.gui.app import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "one-face.avi")
        win = MainWindow(Settings(gallery=Path(tmp) / "gallery"), source=str(video),
                         settings_path=Path(tmp) / "settings.toml")
        pipe = win.pipeline
        pipe.enroll("Barack Obama", [pipe.main_face(ROOT / "tests" / "data" / "obama.jpg")])
        pipe.enroll("Joe Biden", [pipe.main_face(ROOT / "tests" / "data" / "biden.jpg")])
        win.refresh_gallery_size()
        win.show()
        pump(app, 3.0)  # warm up

        shown = 0
        original = win._on_frame

        def counting() -> None:
            nonlocal shown
            before = win.last
            original()
            shown += win.last is not before

        win.worker.frameReady.disconnect()
        win.worker.frameReady.connect(counting)
        gaps: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(10)
        t0 = time.perf_counter()
        pump(app, args.seconds)
        elapsed = time.perf_counter() - t0
        timer.stop()
        fig = {
            "gui_fps": shown / elapsed,
            "ui_timer_max_gap_ms": max(gaps) * 1e3,
            "ui_timer_p99_gap_ms": float(np.quantile(gaps, 0.99)) * 1e3,
            "seconds": elapsed,
            "latency_ms_last": win.last.latency_ms if win.last else None,
        }
        win.grab().save(str(args.out / "main-window.png"))
        dlg = win.open_enrolment()
        dlg.name.setText("New person")
        pump(app, 3.0)
        dlg.grab().save(str(args.out / "enrolment.png"))
        dlg.reject()
        gal = win.open_gallery()
        pump(app, 0.5)
        gal.grab().save(str(args.out / "gallery.png"))
        gal.reject()
        win.close()
    print(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
