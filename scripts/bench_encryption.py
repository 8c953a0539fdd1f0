"""What encryption at rest costs: opening a folder gallery and matching, with and without it.

Builds two galleries of N templates (N / 10 people, ten templates each, 128-d unit vectors) per
size: one encrypted (the default) and one as written before encryption (the store's
``unlock`` turned into a no-op). Then, alternating the two so that a noisy machine hurts
both alike, it times opening the gallery and answering its first match (the index loaded:
an exact index built from the decrypted templates up to 20,000, a saved hnswlib index,
encrypted or not, above), and the median time of one match afterwards: on first sight of
the people it names (their keys and names are opened then) and on a second pass.

Usage: python scripts/bench_encryption.py [--sizes 10000 100000] [--repeats 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from faceapp.gallery.gallery import open_gallery
from faceapp.gallery.sql_store import SQLStore

MODEL = "e" * 64
DIM = 128
PER_PERSON = 10


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Stores opened inside are not encrypted (as before encryption existed)."""
    real = SQLStore.unlock
    SQLStore.unlock = lambda self, keys=None, progress=None: 0  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        SQLStore.unlock = real  # type: ignore[method-assign]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def build(folder: Path, vectors: np.ndarray) -> None:
    with open_gallery(folder) as g:
        n = PER_PERSON
        for start in range(0, len(vectors), n):
            g.store.add_templates(f"person {start // n}", vectors[start : start + n], model_id=MODEL, crops=[None] * n,
                                  sources=[None] * n, qualities=[None] * n, create=True, must_be_new=False)
        g.refresh()
        g.search(vectors[:1], 1, model_id=MODEL)  # builds and saves the index


def open_and_match(folder: Path, probe: np.ndarray) -> float:
    t = time.perf_counter()
    with open_gallery(folder) as g:
        g.search(probe, 1, model_id=MODEL)
        return time.perf_counter() - t


def match_time(folder: Path, probes: np.ndarray) -> tuple[float, float]:
    """Median seconds of one match: on first sight of the people matched, and once seen."""
    with open_gallery(folder) as g:
        g.search(probes[:1], 1, model_id=MODEL)
        medians = []
        for _ in range(2):
            times = []
            for p in probes:
                t = time.perf_counter()
                g.search(p[None], 2, model_id=MODEL)
                times.append(time.perf_counter() - t)
            medians.append(statistics.median(times))
        return medians[0], medians[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--work", type=Path, help="folder for the galleries (default: a temporary one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-encryption-"))
    rng = np.random.default_rng(0)
    print(f"{'templates':>10} {'open plain':>11} {'open sealed':>12} {'extra':>9} {'ratio':>6}   "
          "match plain/sealed (ratio): first sight | seen before")
    for size in args.sizes:
        vectors = unit(rng, size)
        probes = unit(rng, args.probes)
        sealed, bare = work / f"sealed-{size}", work / f"plain-{size}"
        if not sealed.exists():
            build(sealed, vectors)
        if not bare.exists():
            with plain():
                build(bare, vectors)
        opens: dict[str, list[float]] = {"plain": [], "sealed": []}
        for _ in range(args.repeats):
            with plain():
                opens["plain"].append(open_and_match(bare, probes[:1]))
            opens["sealed"].append(open_and_match(sealed, probes[:1]))
        with plain():
            m_plain = match_time(bare, probes)
        m_sealed = match_time(sealed, probes)
        o_plain, o_sealed = statistics.median(opens["plain"]), statistics.median(opens["sealed"])
        match = " | ".join(f"{a * 1e3:.3f}/{b * 1e3:.3f}ms ({b / a:.2f})" for a, b in zip(m_plain, m_sealed, strict=True))
        print(f"{size:>10} {o_plain * 1e3:>9.1f}ms {o_sealed * 1e3:>10.1f}ms {(o_sealed - o_plain) * 1e3:>7.1f}ms "
              f"{o_sealed / o_plain:>6.2f}   {match}")


if __name__ == "__main__":
    main()
