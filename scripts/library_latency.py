"""Keystroke latency of the people grid's search at 1,000 and 10,000 people.

    QT_QPA_PLATFORM=offscreen python scripts/library_latency.py --people 1000 10000

For each gallery size it enrols that many people (synthetic embeddings, each with a real
face crop as thumbnail, in a temporary gallery), opens the People view and types a query
one character at a time. Per keystroke it reports two times, in milliseconds:

* ``keystroke``: the text-changed handler (restarts the debounce timer);
* ``update``: the debounced work: filtering, the grid's relayout, and painting the
  visible cells, decoding the thumbnails that were not cached yet.

Cold = the first pass (thumbnails decoded as they come into view), warm = the same
query typed again. ``typing`` types the query again at 8 characters a second with the real
debounce and reports the longest stall of the GUI thread meanwhile (a 5 ms timer's largest
gap), which includes the grid's batched relayout.

``--baseline-commit C`` also times the gallery dialog of an earlier commit (read with
``git show C:faceapp/gui/dialogs.py``), which rebuilt its list and decoded every thumbnail
on each keystroke. ``--workdir`` keeps the generated galleries for the next run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUERY = "son 12"


def build(gallery_dir: Path, n: int) -> None:
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline
    from faceapp.vision.images import encode_crop

    with Pipeline(Settings(gallery=gallery_dir)) as pipe:
        if len(pipe.gallery) == n:
            return
        face = pipe.main_face(ROOT / "tests" / "data" / "obama.jpg")
        thumb = encode_crop(face.crop)
        rng = np.random.default_rng(0)
        emb = rng.normal(size=(n, face.embedding.shape[0])).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        # Straight into the store: the same rows as enrolment writes, without the gallery's look-alike
        # name check against every enrolled name (quadratic over a build of 10,000 distinct names).
        for i in range(len(pipe.gallery), n):
            pipe.gallery.store.add_templates(f"Person {i:05d}", emb[i : i + 1], model_id=pipe.model_id, crops=[thumb],
                                             sources=[None], qualities=[None], create=True, must_be_new=True)


def type_query(app: Any, dlg: Any, query: str) -> list[tuple[float, float]]:
    out = []
    dlg.search.setText("")
    dlg.apply_search()
    app.processEvents()
    for k in range(1, len(query) + 1):
        t0 = time.perf_counter()
        dlg.search.setText(query[:k])
        t1 = time.perf_counter()
        dlg.apply_search()
        dlg.grid.viewport().repaint()
        app.processEvents()
        t2 = time.perf_counter()
        out.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3))
    return out


def typing_stall(app: Any, dlg: Any, query: str, cps: float = 8.0) -> float:
    """Type ``query`` at ``cps`` characters a second through the real debounce; the longest
    gap of a 5 ms GUI timer meanwhile, in milliseconds."""
    from PySide6.QtCore import QTimer

    dlg.search.setText("")
    dlg.apply_search()
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    for k in range(1, len(query) + 1):
        dlg.search.setText(query[:k])
        end = time.perf_counter() + 1.0 / cps
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)
    end = time.perf_counter() + 0.6
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return max(gaps) * 1e3


def baseline(n: int, gdir: Path, commit: str) -> dict[str, Any]:
    """Per-keystroke time of an earlier commit's gallery dialog (full rebuild per keystroke)."""
    import subprocess
    import types

    from PySide6.QtWidgets import QApplication

    import faceapp.gui
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline

    source = subprocess.run(["git", "show", f"{commit}:faceapp/gui/dialogs.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    mod = types.ModuleType("faceapp.gui._baseline_dialogs")
    mod.__package__ = "faceapp.gui"
    exec(compile(source, f"{commit}:faceapp/gui/dialogs.py", "exec"), mod.__dict__)  # noqa: S102 - our own history
    app = QApplication.instance()
    times = []
    with Pipeline(Settings(gallery=gdir)) as pipe:
        dlg = mod.GalleryDialog(pipe)
        dlg.show()
        app.processEvents()
        for k in range(1, len(QUERY) + 1):
            t0 = time.perf_counter()
            dlg.search.setText(QUERY[:k])  # its reload() runs on every keystroke
            dlg.people.viewport().repaint()
            app.processEvents()
            times.append((time.perf_counter() - t0) * 1e3)
        dlg.close()
    _ = faceapp.gui
    return {"commit": commit, "keystroke_ms_median": round(float(np.median(times)), 1),
            "keystroke_ms_max": round(float(max(times)), 1), "per_keystroke_ms": [round(t, 1) for t in times]}


def measure(n: int, tmp: Path, baseline_commit: str | None = None) -> dict[str, Any]:
    from PySide6.QtWidgets import QApplication

    from faceapp.config import Settings
    from faceapp.gui.people import PeopleDialog
    from faceapp.pipeline import Pipeline

    app = QApplication.instance() or QApplication(sys.argv[:1])
    gdir = tmp / f"gallery-{n}"
    t0 = time.perf_counter()
    build(gdir, n)
    built = time.perf_counter() - t0
    with Pipeline(Settings(gallery=gdir)) as pipe:
        t0 = time.perf_counter()
        dlg = PeopleDialog(pipe)
        dlg.show()
        app.processEvents()
        open_ms = (time.perf_counter() - t0) * 1e3
        cold = type_query(app, dlg, QUERY)
        warm = type_query(app, dlg, QUERY)
        stall = typing_stall(app, dlg, QUERY)
        decoded = dlg.model.thumbnails_decoded
        dlg.close()

    def summary(rows: list[tuple[float, float]]) -> dict[str, float]:
        k = np.array([r[0] for r in rows])
        u = np.array([r[1] for r in rows])
        return {"keystroke_ms_max": round(float(k.max()), 2), "update_ms_median": round(float(np.median(u)), 2),
                "update_ms_max": round(float(u.max()), 2)}

    out = {"people": n, "gallery_build_s": round(built, 1), "open_ms": round(open_ms, 1), "query": QUERY,
           "cold": summary(cold), "warm": summary(warm), "typing_max_gui_stall_ms": round(stall, 1),
           "thumbnails_decoded": decoded, "per_keystroke_update_ms": [round(u, 1) for _, u in cold]}
    if baseline_commit:
        out["baseline"] = baseline(n, gdir, baseline_commit)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--baseline-commit", help="also time this commit's gallery dialog, e.g. a7937fb")
    ap.add_argument("--workdir", type=Path, help="keep (and reuse) the generated galleries here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = [measure(n, work, args.baseline_commit) for n in args.people]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
