"""``faceapp-cli bench``: figures for the machine it runs on.

* Embedder: milliseconds per call at batch 1 and 5 on each installed runtime
  (onnxruntime CPU, OpenVINO, CUDA), side by side, with their largest output difference.
* Pipeline: per-stage and total milliseconds for a 640x480 frame with one face and with
  five faces (a real face shipped with the package, pasted onto a grey frame), matched
  against a gallery of 100 people, on each runtime.
* Cold start: process start to exit of ``faceapp-cli match`` on one frame.
* Gallery search: synthetic galleries of unit vectors shaped like face templates
  (identities with 5 templates each, same-identity cosine about 0.7), indexed with the
  gallery's own hnswlib parameters: build time, bytes per template, p50/p99 query time
  and recall@1 against exact search, for probes of enrolled identities and for strangers.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.gallery.vindex import HNSW_EF_CONSTRUCTION, HNSW_M, ef_for
from faceapp.vision.models import models_dir

log = logging.getLogger(__name__)

TEMPLATES_PER_ID = 5
NOISE = 0.06  # per-dimension noise; gives same-identity cosine ~0.68 in 128-d
QUERY_K = 10
TRACKED_FRAMES = 100  # frames of the tracked-video case: enough to include the periodic re-embeddings


BENCH_FACE = Path(__file__).resolve().parent.parent / "data" / "bench_face.jpg"


def bench_face(pipe: Any) -> np.ndarray:
    """The face pasted into the test frames: ``FACEAPP_BENCH_IMAGE``'s, else the packaged one."""
    from faceapp.vision.images import load_image

    env = os.environ.get("FACEAPP_BENCH_IMAGE")
    return face_square(pipe, Path(env)) if env else load_image(BENCH_FACE)


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
    """A square around the largest face of ``photo``, with some margin."""
    from faceapp.errors import NoFaceError
    from faceapp.vision.images import load_image

    img = load_image(photo)
    found = pipe.detector.detect(img)
    if not found:
        raise NoFaceError(f"no face found in {photo}; set FACEAPP_BENCH_IMAGE to a photo with one clear face")
    x0, y0, x1, y1 = found[0].box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.9 * max(x1 - x0, y1 - y0)
    h, w = img.shape[:2]
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    return img[b : int(min(h, cy + half)), a : int(min(w, cx + half))]


def runtime_embedders(pipe: Any) -> dict[str, Any]:
    """One embedder per installed runtime (``cpu``, ``openvino``, ``cuda``), the pipeline's own included.

    ``openvino-int8`` is the reduced-precision run, as in the app: each network's int8 graph
    where one ships, else its float graph in bf16 where the CPU has bf16 instructions.
    """
    from faceapp.errors import ModelError
    from faceapp.vision import runtime
    from faceapp.vision.embed import load_embedder

    avail = runtime.availability()
    file = pipe.embedder_file
    wanted = [("cpu", "fp32")] + ([("openvino", "fp32"), ("openvino", "int8")] if avail.openvino else []) + (
        [("cuda", "fp32")] if avail.cuda else [])
    own = pipe.embedder
    out: dict[str, Any] = {}
    for name, precision in wanted:
        key = runtime_key(name, precision)
        if key == runtime_key(own.provider, own.precision):
            out[key] = own
            continue
        try:
            out[key] = load_embedder(file, provider=name, precision=precision, threads=pipe.settings.threads)
        except ModelError as exc:
            log.warning("the %s runtime is unusable here: %s", key, exc)
    return out


def runtime_key(provider: str, precision: str) -> str:
    """How bench names a runtime and precision: ``"cpu"``, ``"openvino"``, ``"openvino-int8"``, ``"cuda"``."""
    return provider if precision == "fp32" else f"{provider}-{precision}"


def bench_embedders(embedders: dict[str, Any], crops: np.ndarray, repeats: int) -> dict[str, Any]:
    """Median embed milliseconds per runtime at batch 1 and batch ``len(crops)``, runs interleaved."""
    times: dict[str, dict[int, list[float]]] = {k: {1: [], len(crops): []} for k in embedders}
    for emb in embedders.values():
        for _ in range(3):
            emb.embed(crops)
    for _ in range(repeats):
        for name, emb in embedders.items():
            for n in (1, len(crops)):
                t0 = time.perf_counter()
                emb.embed(crops[:n])
                times[name][n].append((time.perf_counter() - t0) * 1e3)
    ref = next(iter(embedders.values())).embed(crops)
    out = {}
    for name, emb in embedders.items():
        got = emb.embed(crops)
        out[name] = {"runtime": emb.runtime_name, "batch_1_ms": float(np.median(times[name][1])),
                     f"batch_{len(crops)}_ms": float(np.median(times[name][len(crops)])),
                     "max_abs_diff_to_cpu": float(np.abs(got - ref).max()),
                     "min_cosine_to_cpu": float((got * ref).sum(axis=1).min())}
    return out


def bench_pipeline(pipe: Any, repeats: int, seed: int, embedders: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per runtime, per-stage medians for a 640x480 frame with 1 and with 5 faces."""
    from faceapp.gallery.gallery import Gallery

    rng = np.random.default_rng(seed)
    face = bench_face(pipe)
    own = pipe.embedder
    own_key = runtime_key(own.provider, own.precision)
    embedders = embedders or {own_key: own}
    out: dict[str, Any] = {"provider": own.provider_note, "runtimes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        pipe._gallery = Gallery(Path(tmp))
        emb = rng.standard_normal((100, own.dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        for i in range(100):
            pipe._gallery.add_templates(f"person {i:03d}", emb[i : i + 1], model_id=pipe.model_id)
        try:
            for name, embedder in embedders.items():
                pipe._embedder = embedder
                out["runtimes"][name] = {"runtime": embedder.runtime_name}
                for n in (1, 5):
                    out["runtimes"][name][f"{n}_face"] = _time_frames(pipe, make_frame(face, n, seed=seed), repeats)
                out["runtimes"][name]["5_face_tracked"] = _time_tracked(pipe, make_frame(face, 5, seed=seed),
                                                                        max(TRACKED_FRAMES, repeats))
        finally:
            pipe._embedder = own
            pipe._gallery.close()
            pipe._gallery = None
    for n in (1, 5):  # the figures of the runtime the pipeline uses, where earlier reports had them
        out[f"{n}_face"] = out["runtimes"][own_key][f"{n}_face"]
    return out


def _time_frames(pipe: Any, frame: np.ndarray, repeats: int) -> dict[str, Any]:
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
    return {
        "faces_found": int(np.median(found)),
        "detect_ms": float(med[0]), "align_ms": float(med[1]), "embed_ms": float(med[2]),
        "search_ms": float(med[3]), "total_ms": float(med[4]),
        "total_p90_ms": float(np.quantile(arr[:, 4], 0.9)),
    }


def _time_tracked(pipe: Any, frame: np.ndarray, frames: int) -> dict[str, Any]:
    """Mean milliseconds per frame of the live view's path (``Pipeline.track_frame``) on a video.

    The video is ``frame`` drifting sideways a few pixels a frame, so that every face is
    followed by the tracker and embedded only when its track needs it.
    """
    video = [np.roll(frame, 3 * (i % 8), axis=1) for i in range(frames)]
    tracker = pipe.new_tracker()
    walls = []
    for image in video:
        t0 = time.perf_counter()
        pipe.track_frame(image, tracker)
        walls.append((time.perf_counter() - t0) * 1e3)
    return {"frames": frames, "mean_ms": float(np.mean(walls)), "p90_ms": float(np.quantile(walls, 0.9)),
            "embedded_per_frame": tracker.embedded / frames}


def bench_versus(pipes: dict[str, Any], face: np.ndarray, repeats: int, seed: int = 0) -> dict[str, Any]:
    """The same frames through several pipelines (models) in turn, frame by frame: medians and ratios.

    Interleaving puts a burst of load from another process on every model alike, so the
    ratios hold on a shared machine where the absolute figures do not. Each pipeline
    matches against its own empty gallery.

    Args:
        pipes: label -> pipeline, the first one the baseline the ratios are taken to.
        face: the face pasted into the frames.
        repeats: timed frames per case and pipeline.
        seed: frame layout seed.
    """
    frames = {n: make_frame(face, n, seed=seed) for n in (1, 5)}
    walls: dict[str, dict[int, list[float]]] = {k: {1: [], 5: []} for k in pipes}
    embeds: dict[str, dict[int, list[float]]] = {k: {1: [], 5: []} for k in pipes}
    crops = {}
    for k, pipe in pipes.items():
        found = [f.crop for f in pipe.analyze(frames[5], embed=False, still=False)[0]]
        crops[k] = np.stack((found * 5)[:5]) if found else np.zeros((5, *pipe.embedder.input_size, 3), np.uint8)
        for n in (1, 5):
            pipe.match_image(frames[n], still=False)  # warm-up
    for _ in range(repeats):
        for k, pipe in pipes.items():
            for n in (1, 5):
                t0 = time.perf_counter()
                pipe.match_image(frames[n], still=False)
                walls[k][n].append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                pipe.embedder.embed(crops[k][:n])
                embeds[k][n].append((time.perf_counter() - t0) * 1e3)
    base = next(iter(pipes))
    out: dict[str, Any] = {}
    for k, pipe in pipes.items():
        row = {"model": str(pipe.embedder_file.path.name), "runtime": pipe.embedder.runtime_name}
        for n in (1, 5):
            row[f"{n}_face_ms"] = float(np.median(walls[k][n]))
            row[f"embed_batch_{n}_ms"] = float(np.median(embeds[k][n]))
        out[k] = row
    for row in out.values():
        for key in ("1_face_ms", "5_face_ms", "embed_batch_1_ms", "embed_batch_5_ms"):
            row[f"{key}_ratio"] = row[key] / out[base][key]
    return out


def bench_cold_start(pipe: Any, runs: int) -> dict[str, Any]:
    """Seconds from process start to exit of ``faceapp-cli match`` on one frame, ``runs`` times.

    The runs use the same settings file and model as this process, and an empty gallery;
    the first run may include the runtime timing that ``auto`` caches.
    """
    import subprocess
    import sys

    from PIL import Image

    face = bench_face(pipe)
    s = pipe.settings
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "frame.jpg"
        Image.fromarray(make_frame(face, 1)).save(frame, quality=92)
        cmd = [sys.executable, "-m", "faceapp.cli", "--gallery", str(Path(tmp) / "gallery"), "--provider", s.provider,
               "--precision", s.precision, "--detector", s.detector]
        if s.model is not None:
            cmd += ["--model", str(s.model)]
        cmd += ["match", str(frame)]
        secs = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            secs.append(time.perf_counter() - t0)
    return {"command": "faceapp-cli match <one 640x480 frame>", "runs_s": [round(x, 3) for x in secs],
            "median_s": float(np.median(secs)), "min_s": float(min(secs))}


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
              skip_pipeline: bool = False, cold_starts: int = 3, progress: bool = True,
              versus: Any | None = None) -> tuple[dict[str, Any], list[str]]:
    """Run the benchmarks; returns a JSON-ready report and the lines to print (Markdown tables).

    ``versus`` is a second pipeline (another model, e.g. the previous default): both are
    then timed frame by frame in turn (:func:`bench_versus`) and compared as ratios.
    """
    import platform
    import sys

    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    doc: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine(),
                    "avx512f": _cpu_flag("avx512f"), "avx2": _cpu_flag("avx2")},
        "hnsw": {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "k": QUERY_K},
        "where": f"faceapp {Path(__file__).resolve().parent.parent}, models {models_dir()}",
    }
    isa = "AVX-512" if doc["machine"]["avx512f"] else "AVX2" if doc["machine"]["avx2"] else "no AVX2"
    lines = [f"machine: {os.cpu_count()} CPUs ({isa}), {platform.platform()}"]
    with pipe:
        dim = pipe.embedder.dim
        if not skip_pipeline:
            say("timing the embedder on each runtime ...")
            embedders = runtime_embedders(pipe)
            frame = make_frame(bench_face(pipe), 5, seed=seed)
            crops = np.stack([f.crop for f in pipe.analyze(frame, embed=False, still=False)[0]][:5])
            if len(crops) < 5:
                crops = np.concatenate([crops] * 5)[:5] if len(crops) else np.zeros((5, *pipe.embedder.input_size, 3), np.uint8)
            e = bench_embedders(embedders, crops, repeats)
            doc["embedder"] = e
            lines += ["", f"embedder alone, aligned faces, median of {repeats} (in use: {pipe.embedder.provider_note}):", "",
                      "| runtime | batch 1 | batch 5 | per face at batch 5 | max abs diff to onnxruntime CPU "
                      "| min cosine to onnxruntime CPU |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for r in e.values():
                lines.append(f"| {r['runtime']} | {r['batch_1_ms']:.1f} ms | {r['batch_5_ms']:.1f} ms | "
                             f"{r['batch_5_ms'] / 5:.1f} ms | {r['max_abs_diff_to_cpu']:.1e} | {r['min_cosine_to_cpu']:.4f} |")
            say("timing the pipeline ...")
            p = bench_pipeline(pipe, repeats, seed, embedders)
            doc["pipeline"] = p
            lines += ["", f"pipeline, 640x480 frame, 100-person gallery, median of {repeats} frames:", "",
                      "| runtime | faces (found) | detect | align | embed | search | total (p90) |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for r in p["runtimes"].values():
                for n in (1, 5):
                    t = r[f"{n}_face"]
                    lines.append(
                        f"| {r['runtime']} | {n} ({t['faces_found']}) | {t['detect_ms']:.1f} ms | {t['align_ms']:.1f} ms | "
                        f"{t['embed_ms']:.1f} ms | {t['search_ms']:.2f} ms | **{t['total_ms']:.1f} ms** "
                        f"({t['total_p90_ms']:.1f}) |"
                    )
            lines += ["", "live view, 5 tracked faces drifting across a 640x480 video (Pipeline.track_frame):", "",
                      "| runtime | frames | faces embedded per frame | mean per frame (p90) |", "| --- | --- | --- | --- |"]
            for r in p["runtimes"].values():
                t = r["5_face_tracked"]
                lines.append(f"| {r['runtime']} | {t['frames']} | {t['embedded_per_frame']:.2f} | "
                             f"**{t['mean_ms']:.1f} ms** ({t['p90_ms']:.1f}) |")
        if versus is not None:
            say("timing the two models in turn ...")
            with versus:
                v = bench_versus({"before": versus, "after": pipe}, bench_face(pipe), repeats, seed)
            doc["versus"] = v
            lines += ["", f"models in turn, frame by frame, 640x480 frame, empty gallery, median of {repeats} each:", "",
                      "| model | runtime | 1 face | 5 faces | embed batch 1 | embed batch 5 |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for r in v.values():
                lines.append(f"| {r['model']} | {r['runtime']} | {r['1_face_ms']:.1f} ms ({r['1_face_ms_ratio']:.2f}x) | "
                             f"{r['5_face_ms']:.1f} ms ({r['5_face_ms_ratio']:.2f}x) | {r['embed_batch_1_ms']:.1f} ms "
                             f"({r['embed_batch_1_ms_ratio']:.2f}x) | {r['embed_batch_5_ms']:.1f} ms "
                             f"({r['embed_batch_5_ms_ratio']:.2f}x) |")
        if cold_starts > 0:
            say("timing cold starts ...")
            c = bench_cold_start(pipe, cold_starts)
            doc["cold_start"] = c
            lines += ["", f"cold start, `{c['command']}`, process start to exit, {cold_starts} runs: "
                      f"median {c['median_s']:.2f} s, min {c['min_s']:.2f} s ({', '.join(f'{x:.2f}' for x in c['runs_s'])})"]
    doc["search"] = []
    if sizes:
        lines += ["", f"gallery search, {dim}-d templates, k={QUERY_K}, {queries} queries, single thread:", "",
                  "| templates | ef | build | bytes / template | enrolled p50 | p99 | recall@1 "
                  "| strangers p50 | p99 | recall@1 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n in sizes:
        say(f"building a {n}-template index ...")
        r = bench_search(n, queries, dim, seed)
        doc["search"].append(r)
        en, st = r["enrolled"], r["strangers"]
        lines.append(
            f"| {n:,} | {r['ef']} | {r['build_s']:.1f} s | {r['bytes_per_template']:.0f} | {en['p50_ms']:.3f} ms | "
            f"{en['p99_ms']:.3f} ms | {en['recall_at_1']:.4f} | {st['p50_ms']:.3f} ms | {st['p99_ms']:.3f} ms | "
            f"{st['recall_at_1']:.4f} |"
        )
    return doc, lines


def _cpu_flag(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return any(line.startswith("flags") and flag in line.split() for line in f)
    except OSError:
        return False
