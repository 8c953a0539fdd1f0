"""Try an int8 SFace embedder and say whether it may ship.

Statically quantises the bundled fp32 embedder with onnxruntime (QDQ, per-channel
weights, activations calibrated on aligned faces of people that are not used for the
evaluation), then compares it with fp32 on LFW (``../shared/faces/lfw``):

* cosine between the int8 and the fp32 embedding of every face (must stay >= 0.99);
* open-set identification, first photo of each person enrolled, the others as probes,
  strangers as impostors, at the model's match threshold: rank-1-and-accepted rate and
  the share of strangers accepted (neither may get worse);
* batch-1 and batch-5 milliseconds on onnxruntime and OpenVINO, runs interleaved.

Usage::

    python scripts/int8_embedder.py [--lfw ../shared/faces/lfw] [--people 200] [--out /tmp/sface_int8.onnx]

Needs the development install (``onnx``, onnxruntime's quantisation tools).
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


def crops_of(pipe: Pipeline, photos: list[Path]) -> tuple[np.ndarray, list[Path]]:
    out, kept = [], []
    for p in photos:
        try:
            out.append(pipe.main_face(p).crop)
            kept.append(p)
        except FaceappError:
            continue
    return np.stack(out), kept


def quantise(fp32: Path, calib: np.ndarray, out: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = calib.astype(np.float32).transpose(0, 3, 1, 2)  # the SFace contract: RGB 0..255, NCHW

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(x[i : i + 1] for i in range(len(x)))

        def get_next(self):  # type: ignore[no-untyped-def]
            nxt = next(self.it, None)
            return None if nxt is None else {"data": nxt}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    pre.unlink()


def embed_with(path: Path, crops: np.ndarray, runtime: str = "cpu") -> np.ndarray:
    from faceapp.vision.embed import Embedder

    emb = Embedder(path, runtime)
    return np.concatenate([emb.embed(crops[i : i + 32]) for i in range(0, len(crops), 32)])


def open_set(e: np.ndarray, owners: list[str], strangers: np.ndarray, threshold: float) -> dict[str, float]:
    """First photo of each person enrolled; rank-1-and-accepted for the rest, strangers accepted."""
    first: dict[str, int] = {}
    for i, o in enumerate(owners):
        first.setdefault(o, i)
    names = list(first)
    gallery = e[[first[n] for n in names]]
    probes = [i for i in range(len(owners)) if first[owners[i]] != i]
    sims = e[probes] @ gallery.T
    best = sims.argmax(axis=1)
    hit = np.array([names[b] == owners[p] for b, p in zip(best, probes)]) & (sims.max(axis=1) >= threshold)
    s = strangers @ gallery.T
    return {"rank1_accepted": float(hit.mean()), "strangers_accepted": float((s.max(axis=1) >= threshold).mean()),
            "probes": len(probes), "strangers": len(strangers), "gallery": len(names)}


def timings(paths: dict[str, Path], crops: np.ndarray, repeats: int = 20) -> dict[str, dict[str, float]]:
    from faceapp.vision.embed import Embedder

    embs = {}
    for label, path in paths.items():
        for rt in ("cpu", "openvino"):
            try:
                embs[f"{label} {rt}"] = Embedder(path, rt)
            except FaceappError as exc:
                print(f"{label} on {rt}: {exc}", file=sys.stderr)
    t: dict[str, dict[int, list[float]]] = {k: {1: [], 5: []} for k in embs}
    for e in embs.values():
        e.embed(crops[:5])
    for _ in range(repeats):
        for k, e in embs.items():
            for n in (1, 5):
                t0 = time.perf_counter()
                e.embed(crops[:n])
                t[k][n].append((time.perf_counter() - t0) * 1e3)
    return {k: {"batch_1_ms": float(np.median(v[1])), "batch_5_ms": float(np.median(v[5]))} for k, v in t.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "faces" / "lfw")
    ap.add_argument("--people", type=int, default=200, help="people evaluated (the next 60 calibrate)")
    ap.add_argument("--strangers", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sface_int8.onnx"))
    args = ap.parse_args()
    if not args.lfw.is_dir():
        print(f"{args.lfw} is not present; nothing to measure", file=sys.stderr)
        return 2
    people = sorted(d for d in (args.lfw / "people").iterdir() if d.is_dir())
    fp32 = models.bundled_path("embedder")
    with Pipeline(Settings(provider="cpu")) as pipe:
        calib, _ = crops_of(pipe, [p for d in people[args.people : args.people + 60] for p in sorted(d.glob("*.jpg"))])
        crops, kept = crops_of(pipe, [p for d in people[: args.people] for p in sorted(d.glob("*.jpg"))])
        strangers, _ = crops_of(pipe, sorted((args.lfw / "strangers").glob("*.jpg"))[: args.strangers])
        threshold = pipe.thresholds().match
    print(f"{len(calib)} calibration faces, {len(crops)} evaluation faces, {len(strangers)} strangers", file=sys.stderr)
    quantise(fp32, calib, args.out)
    owners = [p.parent.name for p in kept]
    report: dict[str, object] = {"threshold": threshold, "calibration_faces": len(calib)}
    ref, ref_s = embed_with(fp32, crops), embed_with(fp32, strangers)
    q, q_s = embed_with(args.out, crops), embed_with(args.out, strangers)
    cos = np.concatenate([(ref * q).sum(1), (ref_s * q_s).sum(1)])
    report["cosine_int8_vs_fp32"] = {"min": float(cos.min()), "p1": float(np.quantile(cos, 0.01)),
                                     "mean": float(cos.mean()), "share_below_0.99": float((cos < 0.99).mean())}
    report["fp32"] = open_set(ref, owners, ref_s, threshold)
    report["int8"] = open_set(q, owners, q_s, threshold)
    report["timings"] = timings({"fp32": fp32, "int8": args.out}, crops)
    ok = (cos.min() >= 0.99 and report["int8"]["rank1_accepted"] >= report["fp32"]["rank1_accepted"]  # type: ignore[index]
          and report["int8"]["strangers_accepted"] <= report["fp32"]["strangers_accepted"])  # type: ignore[index]
    report["ships"] = bool(ok)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
