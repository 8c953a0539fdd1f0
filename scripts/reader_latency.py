"""Search latency of a reader while another process imports into the same gallery.

Process A enrols synthetic people for ``--seconds`` (one transaction per person, as
``faceapp-cli import`` does); this process searches the gallery in a loop meanwhile and
reports the latency distribution. Readers use SQLite's WAL snapshot and never take the
write lock, so they should not wait for the writer.

    python scripts/reader_latency.py --seconds 10 --templates 5000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from faceapp.gallery.gallery import Gallery

MODEL = "b" * 64
IMPORTER = textwrap.dedent("""
    import sys, time, numpy as np
    from faceapp.gallery.gallery import Gallery
    root, seconds = sys.argv[1], float(sys.argv[2])
    rng = np.random.default_rng(1)
    g = Gallery(root, lock_timeout=30)
    print("start", flush=True)
    end, i = time.time() + seconds, 0
    while time.time() < end:
        e = rng.standard_normal((5, 128)).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        g.add_templates(f"imported {i}", e, model_id=sys.argv[3], crops=[bytes(5000)] * 5)
        i += 1
    print(i, flush=True)
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the import runs")
    ap.add_argument("--templates", type=int, default=5000, help="templates in the gallery before the import")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "g"
        base = rng.standard_normal((args.templates, 128)).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        with Gallery(root) as g:
            for start in range(0, args.templates, 500):
                g.add_templates(f"p{start}", base[start : start + 500], model_id=MODEL)
        proc = subprocess.Popen([sys.executable, "-c", IMPORTER, str(root), str(args.seconds), MODEL],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()
        lat = []
        with Gallery(root) as g:
            while proc.poll() is None:
                t = time.perf_counter()
                g.search(base[len(lat) % len(base)][None], 24, model_id=MODEL)
                lat.append((time.perf_counter() - t) * 1e3)
                time.sleep(0.02)  # about a camera's frame rate
        people = int(proc.stdout.readline() or 0)
    ms = np.array(lat)
    doc = {"searches": len(ms), "people_imported": people, "p50_ms": round(float(np.median(ms)), 2),
           "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)}
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
