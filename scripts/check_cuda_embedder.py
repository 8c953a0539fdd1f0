"""Check the embedder on CUDA against the CPU: equal embeddings (within 1e-4) and timings.

Needs ``onnxruntime-gpu`` (in place of ``onnxruntime``) and a GPU. Embeds the faces of the
committed test photos (and of ``../shared/faces/lfw`` when present, up to ``--faces``) with
``--provider cpu`` and ``--provider cuda``, prints the largest difference and the batch-1
and batch-5 medians of both, as JSON. Exits 1 when the difference exceeds 1e-4, 2 when
CUDA is not usable.

Usage::

    python scripts/check_cuda_embedder.py [--faces 200] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceapp.config import Settings  # noqa: E402
from faceapp.errors import FaceappError  # noqa: E402
from faceapp.pipeline import Pipeline  # noqa: E402
from faceapp.vision import models  # noqa: E402
from faceapp.vision.embed import Embedder  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    photos = sorted((ROOT / "tests" / "data").glob("*.jpg"))
    lfw = ROOT.parent / "shared" / "faces" / "lfw" / "people"
    if lfw.is_dir():
        photos += sorted(lfw.glob("*/*.jpg"))
    crops = []
    with Pipeline(Settings(provider="cpu")) as pipe:
        for p in photos:
            if len(crops) >= args.faces:
                break
            try:
                crops.append(pipe.main_face(p).crop)
            except FaceappError:
                continue
    x = np.stack(crops)
    bundled = models.resolve_embedder(None)
    variant = models.onnxruntime_variant(bundled)
    try:
        cuda = Embedder(bundled.path, "cuda", model_sha256=bundled.sha256, ort_model_path=variant)
    except FaceappError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    cpu = Embedder(bundled.path, "cpu", model_sha256=bundled.sha256, ort_model_path=variant)
    a = np.concatenate([cpu.embed(x[i : i + 32]) for i in range(0, len(x), 32)])
    b = np.concatenate([cuda.embed(x[i : i + 32]) for i in range(0, len(x), 32)])
    report: dict[str, object] = {"faces": len(x), "cuda": cuda.provider_note, "max_abs_diff": float(np.abs(a - b).max()),
                                 "min_cosine": float((a * b).sum(1).min())}
    for name, emb in (("cpu", cpu), ("cuda", cuda)):
        for n in (1, 5):
            for _ in range(5):
                emb.embed(x[:n])
            t = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                emb.embed(x[:n])
                t.append((time.perf_counter() - t0) * 1e3)
            report[f"{name}_batch_{n}_ms"] = float(np.median(t))
    print(json.dumps(report, indent=2))
    return 0 if report["max_abs_diff"] <= 1e-4 else 1  # type: ignore[operator]


if __name__ == "__main__":
    sys.exit(main())
