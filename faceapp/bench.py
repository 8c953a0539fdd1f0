"""``faceapp-cli bench``: figures for the machine it runs on.

* Pipeline: per-stage and total milliseconds for a 640x480 frame with one face and with
  five faces (the faces are cut from a real photo and pasted onto a grey frame), matched
  against a gallery of 100 people.
* Gallery search: synthetic galleries of unit vectors shaped like face templates
  (identities with 5 templates each, same-identity cosine about 0.7), indexed with the
  gallery's own hnswlib parameters: build time, bytes per template, p50/p99 query time
  and recall@1 against exact search, for probes of enrolled identities and for strangers.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .vindex import HNSW_EF_CONSTRUCTION, HNSW_M, ef_for

TEMPLATES_PER_ID = 5
NOISE = 0.06  # per-dimension noise; gives same-identity cosine ~0.68 in 128-d
QUERY_K = 10


def _sample_photo() -> Path:
    env = os.environ.get("FACEAPP_BENCH_IMAGE")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1] / "tests" / "data" / "obama.jpg"
    if here.exists():
        return here
    raise FileNotFoundError("set FACEAPP_BENCH_IMAGE to a photo with one face for the pipeline benchmark")


def make_frame(face: np.ndarray, n: int, size: tuple[int, int] = (640, 480), seed: int = 0) -> np.ndarray:
    """A grey ``size`` RGB frame with ``n`` copies of ``face`` laid out in a grid."""
    import cv2

    w, h = size
    frame = np.full((h, w, 3), 120, np.uint8)
    cols = 1 if n == 1 else 3
    rows = (n + cols - 1) // cols
    side = int(min(w / cols, h / rows) * (0.6 if n == 1 else 0.8))
    tile = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    cw, ch = w // cols, h // rows
    for i in range(n):
        r, c = divmod(i, cols)
        x = c * cw + (cw - side) // 2
        y = r * ch + (ch - side) // 2
        frame[y : y + side, x : x + side] = tile
    return frame


def face_square(pipe: Any, photo: Path) -> np.ndarray:
    from .images import load_image

    img = load_image(photo)
    det = pipe.detector.detect(img)[0]
    x0, y0, x1, y1 = det.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.9 * max(x1 - x0, y1 - y0)
    h, w = img.shape[:2]
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    return img[b : int(min(h, cy + half)), a : int(min(w, cx + half))]


def bench_pipeline(pipe: Any, repeats: int, seed: int) -> dict[str, Any]:
    from .gallery import Gallery

    rng = np.random.default_rng(seed)
    face = face_square(pipe, _sample_photo())
    out: dict[str, Any] = {"provider": pipe.embedder.provider_note}
    with tempfile.TemporaryDirectory() as tmp:
        pipe._gallery = Gallery(Path(tmp))
        emb = rng.standard_normal((100, pipe.embedder.dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        for i in range(100):
            pipe._gallery.add_templates(f"person {i:03d}", emb[i : i + 1], model_id=pipe.model_id)
        for n in (1, 5):
            frame = make_frame(face, n, seed=seed)
            for _ in range(3):
                pipe.match_image(frame, still=False)  # warm-up
            rows, found = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                res = pipe.match_image(frame, still=False)
                wall = (time.perf_counter() - t0) * 1e3
                t = res.times
                rows.append((t.detect, t.align, t.embed, t.search, wall))
                found.append(len(res.faces))
            arr = np.array(rows)
            med = np.median(arr, axis=0)
            out[f"{n}_face"] = {
                "faces_found": int(np.median(found)),
                "detect_ms": float(med[0]), "align_ms": float(med[1]), "embed_ms": float(med[2]),
                "search_ms": float(med[3]), "total_ms": float(med[4]),
                "total_p90_ms": float(np.quantile(arr[:, 4], 0.9)),
            }
        pipe._gallery.close()
        pipe._gallery = None
    return out


def synthetic_templates(n: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit templates in identities of ``TEMPLATES_PER_ID``; also returns the centres."""
    ids = max(1, n // TEMPLATES_PER_ID)
    centres = rng.standard_normal((ids, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owner = np.arange(n) % ids
    x = centres[owner] + NOISE * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, centres


def _exact_top1(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    best = np.empty(len(queries), np.int64)
    for s in range(0, len(queries), 256):
        best[s : s + 256] = np.argmax(queries[s : s + 256] @ data.T, axis=1)
    return best


def bench_search(n: int, queries: int, dim: int, seed: int) -> dict[str, Any]:
    import hnswlib

    rng = np.random.default_rng(seed)
    data, centres = synthetic_templates(n, dim, rng)
    probe_ids = rng.integers(0, len(centres), queries)
    genuine = centres[probe_ids] + NOISE * rng.standard_normal((queries, dim)).astype(np.float32)
    genuine /= np.linalg.norm(genuine, axis=1, keepdims=True)
    strangers = rng.standard_normal((queries, dim)).astype(np.float32)
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)

    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M, allow_replace_deleted=True)
    t0 = time.perf_counter()
    index.add_items(data, np.arange(n, dtype=np.uint64))
    build_s = time.perf_counter() - t0
    index.set_ef(ef_for(n, QUERY_K))
    index.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.hnsw"
        index.save_index(str(path))
        file_bytes = path.stat().st_size

    result: dict[str, Any] = {"templates": n, "ef": ef_for(n, QUERY_K), "build_s": build_s,
                              "bytes_per_template": file_bytes / n}
    for label, q in (("enrolled", genuine), ("strangers", strangers)):
        times = np.empty(len(q))
        got = np.empty(len(q), np.int64)
        for i in range(len(q)):
            t = time.perf_counter()
            lab, _ = index.knn_query(q[i : i + 1], k=QUERY_K)
            times[i] = (time.perf_counter() - t) * 1e3
            got[i] = lab[0, 0]
        truth = _exact_top1(data, q)
        result[label] = {
            "p50_ms": float(np.median(times)),
            "p99_ms": float(np.quantile(times, 0.99)),
            "recall_at_1": float((got == truth).mean()),
        }
    return result


def run_bench(pipe: Any, *, sizes: list[int], queries: int, repeats: int, seed: int,
              skip_pipeline: bool = False, progress: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Run the benchmarks; returns a JSON-ready report and the lines to print."""
    import platform

    doc: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine()},
        "hnsw": {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "k": QUERY_K},
    }
    lines = [f"machine: {os.cpu_count()} CPUs, {platform.platform()}"]
    with pipe:
        dim = pipe.embedder.dim
        if not skip_pipeline:
            p = bench_pipeline(pipe, repeats, seed)
            doc["pipeline"] = p
            lines.append(f"pipeline, 640x480 frame, embedder on {p['provider']} (median of {repeats}):")
            for n in (1, 5):
                r = p[f"{n}_face"]
                lines.append(
                    f"  {n} face(s) (found {r['faces_found']}): detect {r['detect_ms']:.1f} ms, "
                    f"align {r['align_ms']:.1f} ms, embed {r['embed_ms']:.1f} ms, search {r['search_ms']:.2f} ms, "
                    f"total {r['total_ms']:.1f} ms (p90 {r['total_p90_ms']:.1f} ms)"
                )
    doc["search"] = []
    lines.append(f"gallery search, {dim}-d templates, k={QUERY_K}, {queries} queries, single thread:")
    for n in sizes:
        if progress:
            print(f"building a {n}-template index ...", flush=True)
        r = bench_search(n, queries, dim, seed)
        doc["search"].append(r)
        lines.append(
            f"  {n:>9,} templates (ef {r['ef']}): build {r['build_s']:.1f} s, {r['bytes_per_template']:.0f} bytes/template; "
            f"enrolled probes p50 {r['enrolled']['p50_ms']:.3f} ms p99 {r['enrolled']['p99_ms']:.3f} ms "
            f"recall@1 {r['enrolled']['recall_at_1']:.4f}; strangers p50 {r['strangers']['p50_ms']:.3f} ms "
            f"p99 {r['strangers']['p99_ms']:.3f} ms recall@1 {r['strangers']['recall_at_1']:.4f}"
        )
    return doc, lines
