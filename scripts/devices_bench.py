#!/usr/bin/env python3
"""Several devices, one PostgreSQL gallery: how fast changes reach a running device, how long a
new device's first sync takes, and whether search on a device is as fast as on a folder.

    python scripts/devices_bench.py bench [--dsn DSN] [--templates 100000] [--index auto]
    python scripts/devices_bench.py probe --dsn DSN --probes P.npy --model M

``bench`` starts a throwaway PostgreSQL server (tests/pgserver.py) unless ``--dsn`` is given.
``probe`` is one running device: it prints a JSON line ``{"t": unix time, "names": [...]}``
whenever the names its probe vectors match change (similarity > 0.99), and stops on SIGTERM.
Both use ``FACEAPP_CACHE_DIR`` as the device's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = "b" * 64
DIM = 128


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def probe(dsn: str, probes: np.ndarray, model: str, index: str = "auto") -> None:
    from faceapp.gallery.gallery import open_gallery

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open_gallery(dsn, index=index) as g:
        last = None
        print(json.dumps({"t": time.time(), "ready": True}), flush=True)
        while not stop.is_set():
            hits = g.search(probes, 1, model_id=model)
            names = [h[0].name if h and h[0].similarity > 0.99 else None for h in hits]
            if names != last:
                print(json.dumps({"t": time.time(), "names": names}), flush=True)
                last = names
            g.wait_for_change(0.5)


class Device:
    """A probe running in its own process with its own cache folder."""

    def __init__(self, dsn: str, probes: np.ndarray, cache: Path, model: str = MODEL, index: str = "auto") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="probe-"))
        np.save(self.dir / "p.npy", probes)
        path = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        env = {**os.environ, "FACEAPP_CACHE_DIR": str(cache), "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "probe", "--dsn", dsn, "--probes", str(self.dir / "p.npy"),
             "--model", model, "--index", index], stdout=subprocess.PIPE, text=True, env=env)
        self.lines: list[dict] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda d: d.get("ready"), 120)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(json.loads(line))
                self._cond.notify_all()

    def wait(self, pred, timeout: float) -> dict:  # type: ignore[no-untyped-def]
        """The first line (from now on or already seen) for which ``pred`` holds."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for d in self.lines:
                    if pred(d):
                        return d
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching line in {timeout} s; saw {self.lines[-3:]}")
                self._cond.wait(left)

    def names_after(self, t0: float, want: list, timeout: float = 10.0) -> float:
        """Seconds from ``t0`` until this device printed ``want``."""
        d = self.wait(lambda d: d.get("names") == want and d["t"] >= t0, timeout)
        return float(d["t"] - t0)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def _is(g, probe: np.ndarray, name: str) -> bool:  # type: ignore[no-untyped-def]
    hits = g.search(probe[None], 1, model_id=MODEL)[0]
    return bool(hits) and hits[0].name == name and hits[0].similarity > 0.99


def bench(dsn: str, templates: int, index: str, rounds: int, folder: bool = True) -> dict:
    from faceapp.gallery.gallery import Gallery, open_gallery

    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="devices-bench-"))
    os.environ["FACEAPP_CACHE_DIR"] = str(work / "cache-a")
    out: dict = {"templates": templates, "index": index}
    people = unit(rng, rounds)
    with open_gallery(dsn, index=index) as a:
        b = Device(dsn, people, work / "cache-b", index=index)
        enrol, removal = [], []
        for i in range(rounds):
            t0 = time.time()
            a.add_templates(f"person {i}", people[i:i + 1], model_id=MODEL)
            want = [f"person {j}" if j == i else None for j in range(rounds)]
            enrol.append(b.names_after(t0, want))
            t0 = time.time()
            a.remove(f"person {i}")
            removal.append(b.names_after(t0, [None] * rounds))
        b.stop()
        out["enrolment_seen_s"] = {"median": float(np.median(enrol)), "max": float(np.max(enrol))}
        out["removal_seen_s"] = {"median": float(np.median(removal)), "max": float(np.max(removal))}
        print(f"enrolment on A seen by running B: median {np.median(enrol):.3f} s, max {np.max(enrol):.3f} s "
              f"({rounds} rounds)", flush=True)
        print(f"removal on A gone from running B: median {np.median(removal):.3f} s, max {np.max(removal):.3f} s",
              flush=True)

        t0 = time.perf_counter()
        vectors = unit(rng, templates)
        per_person = 1000
        for p in range(0, templates, per_person):  # straight into the store: device A keeps no index of them
            n = len(vectors[p:p + per_person])
            a.store.add_templates(f"bulk {p // per_person}", vectors[p:p + per_person], model_id=MODEL,
                                  crops=[None] * n, sources=[None] * n, qualities=[None] * n, create=True,
                                  must_be_new=True)
        print(f"filled the gallery with {templates} templates in {time.perf_counter() - t0:.1f} s", flush=True)

    os.environ["FACEAPP_CACHE_DIR"] = str(work / "cache-c")
    queries = unit(rng, 200)
    t0 = time.perf_counter()
    c = open_gallery(dsn, index=index)
    c.search(queries[:1], 1, model_id=MODEL)
    first = time.perf_counter() - t0
    out["first_sync_s"] = first
    print(f"first sync of {templates} templates on a new device (index {c.index_stats()['index_kind']}): {first:.2f} s",
          flush=True)

    if c._keeper is not None:
        c._keeper.wait_idle()
        print(f"device C's hnswlib graph built in the background, ready {time.perf_counter() - t0:.1f} s after it "
              f"opened (index now {c.index_stats()['index_kind']})", flush=True)

    # Propagation with the large gallery: enrol and remove on A, seen by C (its graph built).
    os.environ["FACEAPP_CACHE_DIR"] = str(work / "cache-a")
    with open_gallery(dsn, index=index) as a:
        seen, gone = [], []
        for i in range(rounds):
            t0 = time.perf_counter()
            a.store.add_templates(f"late {i}", people[i:i + 1], model_id=MODEL, crops=[None], sources=[None],
                                  qualities=[None], create=True, must_be_new=True)
            t1 = time.perf_counter()
            while not _is(c, people[i], f"late {i}"):
                c.wait_for_change(0.05)
            seen.append(time.perf_counter() - t0)
            t2 = time.perf_counter()
            a.store.remove(f"late {i}")
            t3 = time.perf_counter()
            while _is(c, people[i], f"late {i}"):
                c.wait_for_change(0.05)
            gone.append(time.perf_counter() - t2)
            print(f"  round {i}: enrol committed in {t1 - t0:.3f} s, seen {seen[-1]:.3f} s; "
                  f"removal committed in {t3 - t2:.3f} s, gone {gone[-1]:.3f} s", flush=True)
    out["large_enrolment_seen_s"] = float(np.max(seen))
    out["large_removal_seen_s"] = float(np.max(gone))
    print(f"with {templates} templates: enrolment seen by C in max {np.max(seen):.3f} s, removal in max "
          f"{np.max(gone):.3f} s ({rounds} rounds)", flush=True)
    if not folder:
        c.close()
        return out
    # The same templates in a folder gallery, to compare search times.
    local = Gallery(work / "folder", index=index)
    for p in range(0, templates, 1000):
        n = len(vectors[p:p + 1000])
        local.store.add_templates(f"bulk {p // 1000}", vectors[p:p + 1000], model_id=MODEL, crops=[None] * n,
                                  sources=[None] * n, qualities=[None] * n, create=True, must_be_new=True)
    t0 = time.perf_counter()
    local.search(queries[:1], 1, model_id=MODEL)
    print(f"folder gallery index of {templates} templates built in {time.perf_counter() - t0:.1f} s", flush=True)
    runs: dict[str, list[float]] = {"device": [], "folder": []}
    for _ in range(5):  # interleaved, so both see the same machine load
        for name, g in (("device", c), ("folder", local)):
            g.search(queries[:5], 1, model_id=MODEL)
            t0 = time.perf_counter()
            for q in queries:
                g.search(q[None], 1, model_id=MODEL)
            runs[name].append((time.perf_counter() - t0) * 1e3 / len(queries))
    for name, ms in runs.items():
        out[f"search_ms_{name}"] = float(np.median(ms))
        print(f"search, one probe, {name}: median of 5 runs {np.median(ms):.3f} ms "
              f"(runs {', '.join(f'{m:.3f}' for m in ms)})", flush=True)
    print(f"search time device / folder: {out['search_ms_device'] / out['search_ms_folder']:.2f}", flush=True)

    c.close()
    local.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("bench")
    s.add_argument("--dsn", help="gallery database (default: start a throwaway server)")
    s.add_argument("--templates", type=int, default=100_000)
    s.add_argument("--index", default="auto", choices=["auto", "exact", "hnsw"])
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--no-folder", action="store_true", help="skip the search comparison with a folder gallery")
    s = sub.add_parser("probe")
    s.add_argument("--dsn", required=True)
    s.add_argument("--probes", required=True)
    s.add_argument("--model", default=MODEL)
    s.add_argument("--index", default="auto")
    args = p.parse_args()
    if args.cmd == "probe":
        probe(args.dsn, np.load(args.probes), args.model, args.index)
        return 0
    server = None
    dsn = args.dsn
    if dsn is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from pgserver import PgServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("PostgreSQL is not installed; pass --dsn", file=sys.stderr)
            return 2
        server = PgServer(bindir)
        server.init()
        dsn = server.new_database("bench")
    try:
        doc = bench(dsn, args.templates, args.index, args.rounds, folder=not args.no_folder)
        print(json.dumps(doc))
    finally:
        if server is not None:
            server.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
