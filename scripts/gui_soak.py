"""Soak test of the desktop app: the live view for minutes, watching for crashes, freezes,
a reference leak on ``None`` and memory growth from opening the library.

    xvfb-run -s "-screen 0 1280x800x24" python scripts/gui_soak.py --seconds 600

It plays a synthetic video with one enrolled face (as ``scripts/gui_evidence.py`` does),
switches to photo mode and back once a minute, opens People and Unknown faces (and closes
them) every two minutes, and reports as JSON: frames shown, frame
rate, the longest stall of the GUI thread, whether the worker is still running, the
reference count of ``None`` at the start and end (PySide6 6.12.0 lost one per Qt call
and aborted Python after a few minutes), and resident memory: its growth from the end of
the first People/Unknown faces round to the end must stay under 20 MB. Exit status 1 when a
check fails. ``QT_QPA_PLATFORM=offscreen`` works too (no display needed).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Python aborts when None's count reaches zero; a drift this large over the run is a leak.
NONE_DRIFT_LIMIT = 2000
# Opening People and Unknown faces again and again must not keep what they showed.
LIBRARY_GROWTH_LIMIT_MB = 20.0


def rss_mb() -> float:
    """Resident memory now (Linux), else the peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def open_library(app: Any, win: Any) -> None:
    """Open People and Unknown faces, let them paint, and close them again."""
    from gui_evidence import pump

    for dlg in (win.open_people(), win.open_inbox()):
        if dlg is not None:
            pump(app, 1.0)
            dlg.close()
    pump(app, 1.0)


def soak(seconds: float, photo_every: float = 60.0, library_every: float = 120.0) -> dict[str, Any]:
    """Run the app for ``seconds`` and return the measurements (see the module docstring)."""
    from gui_evidence import Meter, make_video, pump
    from PySide6.QtWidgets import QApplication

    from faceapp.config import Settings
    from faceapp.gui.app import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "one-face.avi")
        win = MainWindow(Settings(gallery=Path(tmp) / "gallery", inbox=True), source=str(video),
                         settings_path=Path(tmp) / "settings.toml")
        win.pipeline.enroll("Barack Obama", [win.pipeline.main_face(ROOT / "tests" / "data" / "obama.jpg")])
        win.refresh_gallery_size()
        win.show()
        pump(app, 3.0)
        meter = Meter(win)
        none_start = sys.getrefcount(None)
        none_min = none_start
        rss_start = rss_mb()
        errors: list[str] = []
        assert win.worker is not None
        win.worker.failed.connect(errors.append)
        photos = 0
        trips: list[tuple[float, float]] = []
        rss_per_minute: list[float] = []
        t0 = time.perf_counter()
        next_minute = t0 + 60.0
        next_photo = t0 + photo_every
        next_library = t0 + library_every
        library_rss: list[float] = []
        while (now := time.perf_counter()) - t0 < seconds:
            pump(app, min(1.0, seconds - (now - t0)))
            none_min = min(none_min, sys.getrefcount(None))
            if time.perf_counter() >= next_minute:
                rss_per_minute.append(round(rss_mb(), 1))
                next_minute += 60.0
            if time.perf_counter() >= next_photo:
                trip_start = time.perf_counter()
                win.photo_mode.match([ROOT / "tests" / "data" / "biden.jpg"])
                end = time.perf_counter() + 30
                while win.busy.isVisible() and time.perf_counter() < end:
                    pump(app, 0.1)
                photos += len(win.view.faces) == 1
                win.go_live()
                pump(app, 0.5)
                trips.append((trip_start, time.perf_counter()))
                next_photo = time.perf_counter() + photo_every
            if time.perf_counter() >= next_library:
                open_library(app, win)
                library_rss.append(round(rss_mb(), 1))
                next_library = time.perf_counter() + library_every
        elapsed = time.perf_counter() - t0
        meter.stop()
        gaps, shown = meter.gaps, meter.shown
        none_end = sys.getrefcount(None)
        worker_alive = win.worker is not None and win.worker.running
        frames = win.worker.frames_processed if win.worker else 0
        rss_end = rss_mb()
        win.close()
        app.processEvents()
    drift = none_start - none_min
    result = {
        "seconds": round(elapsed, 1),
        "frames_processed": frames,
        "frames_shown": shown,
        "gui_fps": round(shown / elapsed, 1),
        "photo_round_trips": photos,
        "ui_timer_max_gap_ms": round(max(gaps) * 1e3, 1) if gaps else None,
        "ui_timer_p99_gap_ms": round(sorted(gaps)[int(0.99 * (len(gaps) - 1))] * 1e3, 1) if gaps else None,
        "ui_timer_gaps_over_100ms": len(meter.stalls),
        "ui_stalls_over_100ms_during_photo_trips": sum(any(a <= t - g and t <= b + 0.01 for a, b in trips)
                                                        or any(a <= t <= b for a, b in trips) for t, g in meter.stalls),
        "none_refcount_start": none_start,
        "none_refcount_min": none_min,
        "none_refcount_end": none_end,
        "none_refcount_lost": drift,
        "worker_running_at_end": worker_alive,
        "worker_errors": errors,
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_per_minute": rss_per_minute,
        "rss_mb_end": round(rss_end, 1),
        "library_rounds": len(library_rss),
        "rss_mb_after_each_library_round": library_rss,
        "rss_mb_growth_since_first_library_round": round(rss_end - library_rss[0], 1) if library_rss else None,
    }
    growth = result["rss_mb_growth_since_first_library_round"]
    result["checks"] = {
        "worker_running": worker_alive,
        "no_worker_errors": not errors,
        "none_refcount_kept": drift < NONE_DRIFT_LIMIT,
        "frames_shown": shown > 0,
        # Meaningful over minutes (the 10-minute run), not over a few seconds of short form.
        "library_memory_flat": growth is None or growth <= LIBRARY_GROWTH_LIMIT_MB,
    }
    result["ok"] = all(result["checks"].values())
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="how long to run the live view (default 10 minutes)")
    ap.add_argument("--photo-every", type=float, default=60.0, help="seconds between photo-mode round trips")
    ap.add_argument("--library-every", type=float, default=120.0,
                    help="seconds between opening People and Unknown faces")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    result = soak(args.seconds, args.photo_every, args.library_every)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
