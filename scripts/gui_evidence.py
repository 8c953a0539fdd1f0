"""Screenshots of the desktop app and its frame rate on a video source.

Run under a virtual display (Debian's xvfb):

    xvfb-run -s "-screen 0 1280x800x24" python scripts/gui_evidence.py --out docs

It makes a 640x480 video with one face (cut from tests/data/obama.jpg, drifting slowly),
enrols that face in a temporary gallery, starts the app on the video, and then:

* measures the GUI frame rate (results shown per second) and how responsive the UI stays
  (the longest delay of a 10 ms timer on the GUI thread) over ``--seconds``;
* saves screenshots of the main window, the enrolment dialog, the people grid, one
  person's samples (with a deliberately small, blurred sample that is flagged), the
  unknown-faces inbox (collected by the live view from a folder of unenrolled faces) and
  photo mode.

With ``../shared/faces/face_recognition_knn`` present, its people fill the grid and its
two-person photo is used for photo mode; otherwise only ``tests/data`` is used.
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


KNN = ROOT.parent / "shared" / "faces" / "face_recognition_knn"  # replaced by --shared
DATA = ROOT / "tests" / "data"


def make_video(path: Path, seconds: float = 12.0, fps: int = 30) -> Path:
    import cv2

    from faceapp.config import Settings
    from faceapp.measure.bench import face_square
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


class Meter:
    """Counts the results the window shows and the stalls of its GUI thread (a 10 ms timer's
    gaps) from now until :meth:`stop`."""

    def __init__(self, win) -> None:  # type: ignore[no-untyped-def]
        from PySide6.QtCore import QTimer

        self.shown = 0
        self.gaps: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (when, gap) for gaps over 100 ms
        self._win = win
        self._original = win._on_frame
        win.worker.frameReady.disconnect()
        win.worker.frameReady.connect(self._counting)
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.timeout.connect(self._tick)
        self._timer.start(10)

    def _counting(self) -> None:
        before = self._win.last
        self._original()
        self.shown += self._win.last is not before

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        if now - self._last > 0.1:
            self.stalls.append((now, now - self._last))
        self._last = now

    def stop(self) -> None:
        self._timer.stop()


def low_quality_copy(src: Path, dst: Path) -> Path:
    """``src`` shrunk to a quarter and blurred: the kind of sample the library flags."""
    from PIL import Image, ImageFilter

    img = Image.open(src).convert("RGB")
    small = img.resize((img.width // 4, img.height // 4)).filter(ImageFilter.GaussianBlur(1.2))
    small.save(dst)
    return dst


def fill_gallery(pipe, tmp: Path) -> None:  # type: ignore[no-untyped-def]
    obama = [DATA / "obama.jpg", DATA / "obama2.jpg", DATA / "obama_partial_face.jpg"]
    faces = [pipe.main_face(p) for p in obama]
    faces.append(pipe.main_face(low_quality_copy(DATA / "obama.jpg", tmp / "small.jpg")))
    pipe.enroll("Barack Obama", faces)
    pipe.enroll("Joe Biden", [pipe.main_face(DATA / "biden.jpg")])
    if (KNN / "train").is_dir():
        for person in ("alex_lacamoire", "kit_harington", "rose_leslie"):
            photos = sorted((KNN / "train" / person).glob("*.jp*g"))[:3]
            good = []
            for ph in photos:
                try:
                    good.append(pipe.main_face(ph))
                except Exception:  # noqa: BLE001 - a screenshot helper: skip a photo it cannot use
                    continue
            if good:
                pipe.enroll(person.replace("_", " ").title(), good)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "faces", help="the shared photo folder")
    args = ap.parse_args()
    global KNN
    KNN = args.shared / "face_recognition_knn"
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    from faceapp.config import Settings
    from faceapp.gui.app import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "one-face.avi")
        win = MainWindow(Settings(gallery=Path(tmp) / "gallery", inbox_retention_days=14), source=str(video),
                         settings_path=Path(tmp) / "settings.toml")
        pipe = win.pipeline
        fill_gallery(pipe, Path(tmp))
        win.refresh_gallery_size()
        win.show()
        pump(app, 3.0)  # warm up

        meter = Meter(win)
        t0 = time.perf_counter()
        pump(app, args.seconds)
        elapsed = time.perf_counter() - t0
        meter.stop()
        gaps, shown = meter.gaps, meter.shown
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
        dlg.capture.click()
        pump(app, 3.0)
        dlg.grab().save(str(args.out / "enrolment.png"))
        dlg.reject()
        people = win.open_people()
        pump(app, 0.8)
        people.grab().save(str(args.out / "people.png"))
        samples = people.open_person("Barack Obama")
        pump(app, 0.5)
        samples.grab().save(str(args.out / "samples.png"))
        samples.reject()
        people.reject()
        # photo mode: a photo with two people, matched in the background
        photo = KNN / "test" / "obama_and_biden.jpg"
        win.photo_mode.match([photo if photo.is_file() else DATA / "biden.jpg"])
        end = time.perf_counter() + 60
        while win.busy.isVisible() and time.perf_counter() < end:
            pump(app, 0.1)
        pump(app, 0.3)
        win.grab().save(str(args.out / "photo-mode.png"))
        win.go_live()
        # the unknown-faces inbox, filled by the live view from faces nobody enrolled
        unknown = Path(tmp) / "unknown"
        unknown.mkdir()
        sources = sorted((KNN / "test").glob("*.jpg")) if (KNN / "test").is_dir() else []
        for k, src in enumerate([*sources, DATA / "t1.jpg"]):
            if "obama" not in src.name:
                (unknown / f"{k:02d}{src.suffix}").write_bytes(src.read_bytes())
        win.apply_settings({"inbox": True})
        win.use_source(str(unknown))
        pump(app, 12.0)
        inbox = win.open_inbox()
        pump(app, 0.5)
        if inbox is not None:
            inbox.grab().save(str(args.out / "inbox.png"))
            fig["inbox_groups"] = len(inbox.group_ids())
            inbox.reject()
        win.close()
    print(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
