"""``faceapp-train``: fine-tune, evaluate, export, and draw the margin demo.

    faceapp-train train --config exp.toml [--set key=value ...] [--resume]
    faceapp-train eval MODEL... --data DIR|CSV [--split RUN] [--out DIR]
    faceapp-train export RUN --out model.onnx
    faceapp-train demo --out demo.png

A MODEL for ``eval`` is an ONNX file the app can load, ``bundled`` (faceapp's own
embedder), or a run folder (its ``model.pt``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

log = logging.getLogger("training")


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"faceapp-train: --set needs key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from .train import load_config, train

    overrides = _parse_set(args.set)
    for key in ("data", "out", "epochs", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    cfg = load_config(args.config, overrides)
    summary = train(cfg, resume=args.resume, progress=not args.quiet)
    if "last" in summary:
        print(json.dumps(summary["last"], default=float))
    return 0


def _model_embedder(spec: str, device: str):  # type: ignore[no-untyped-def]
    from faceapp import models

    from .evaluate import onnx_embedder, torch_embedder
    from .train import load_run

    if spec == "bundled":
        return "bundled", onnx_embedder(models.resolve_embedder(None).path)
    path = Path(spec)
    if path.is_dir():
        _, backbone = load_run(path, device)
        return path.name, torch_embedder(backbone.to(device), device)
    return path.name, onnx_embedder(path)


def _eval_crops(data: Path, split: Path | None):  # type: ignore[no-untyped-def]
    from .data import from_aligned_folder, from_photo_folder

    crops = from_aligned_folder(data) if (split is None and _looks_aligned(data)) else from_photo_folder(data)
    if split is not None:
        names = json.loads((split / "split.json").read_text())["val"]
        keep = [crops.names.index(n) for n in names if n in crops.names]
        crops = crops.subset(keep)
    return crops


def _looks_aligned(root: Path) -> bool:
    from faceapp.images import load_image

    first = next((f for d in sorted(root.iterdir()) if d.is_dir() for f in sorted(d.iterdir())), None)
    return first is not None and load_image(first).shape[:2] == (112, 112)


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_crops, evaluate_pairs_csv, format_table, plot_reports, write_report

    reports: dict[str, dict[str, Any]] = {}
    data = Path(args.data)
    crops = None if data.suffix.lower() == ".csv" else _eval_crops(data, args.split)
    for spec in args.models:
        name, embed = _model_embedder(spec, args.device)
        if crops is None:
            reports[name] = evaluate_pairs_csv(embed, data, args.target_far)
        else:
            reports[name] = evaluate_crops(embed, crops.crops, crops.labels, args.target_far)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_report(reports, out / "report.json")
    plot_reports(reports, out / "report.png")
    if crops is not None:
        print(f"{len(crops)} images of {crops.num_classes} people")
    print("\n".join(format_table(reports)))
    print(f"report: {out / 'report.json'}, plots: {out / 'report.png'}")
    return 0


def calibrated_thresholds(embed, crops) -> tuple[Any, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Thresholds measured on held-out identities, the same way as `faceapp-cli calibrate`."""
    from faceapp.calibrate import pair_scores, per_comparison_far, recommended_threshold
    from faceapp.contract import RecommendedThresholds

    emb = embed(crops.crops)
    gen, imp = pair_scores(emb, crops.labels)
    match = recommended_threshold(imp, per_comparison_far(0.01, 100 * 5))
    verify = recommended_threshold(imp, 1e-3)
    thr = RecommendedThresholds(match=round(match, 3), uncertain_band=0.08, verify=round(verify, 3))
    return thr, {"genuine_pairs": len(gen), "impostor_pairs": len(imp), "match_rule": "FPIR 1% at 100 people x 5",
                 "verify_rule": "FAR 1e-3", "max(empirical, gaussian)": True}


def cmd_export(args: argparse.Namespace) -> int:
    from .data import split_by_identity
    from .evaluate import torch_embedder
    from .export import export_onnx, provenance_record
    from .train import base_model_hash, load_config, load_data, load_run

    run = Path(args.run)
    cfg = load_config(run / "config.toml")
    base_sha = base_model_hash(cfg)
    _, backbone = load_run(run)
    data = load_data(cfg)
    train_set, val_set = split_by_identity(data, cfg.val_fraction, cfg.seed)
    thr, how = calibrated_thresholds(torch_embedder(backbone), val_set)
    sample = val_set.crops[: min(16, len(val_set))]
    prov = provenance_record(
        base_model=Path(cfg.pretrained) if cfg.pretrained not in ("", "bundled") else None,
        base_sha256=base_sha,
        data_summary={"train": train_set.summary(), "val": val_set.summary(), "source": cfg.data},
        settings=cfg.to_dict(),
        validation={"thresholds": how},
    )
    path = export_onnx(backbone, Path(args.out), sample=np.asarray(sample), thresholds=thr, provenance=prov,
                       embedding_size=cfg.embedding_size)
    print(f"wrote {path}: thresholds match {thr.match}, verify {thr.verify} (from {how['impostor_pairs']} impostor pairs)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import plot_demo, run_demo

    r = run_demo(steps=args.steps, seed=args.seed)
    path = plot_demo(r, Path(args.out))
    print(f"softmax: mean intra-class angle {r.softmax_angle:.1f} deg, accuracy {r.softmax_accuracy:.3f}")
    print(f"arcface: mean intra-class angle {r.arcface_angle:.1f} deg, accuracy {r.arcface_accuracy:.3f}")
    print(f"figure: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="faceapp-train", description="Fine-tune, evaluate and export face embedders.")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("train", help="fine-tune or train an embedder")
    s.add_argument("--config", type=Path, help="experiment TOML (fields of training.train.TrainConfig)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    s.add_argument("--data")
    s.add_argument("--out")
    s.add_argument("--epochs", type=int)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"])
    s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="verification and identification figures for one or more models")
    s.add_argument("models", nargs="+", metavar="MODEL", help="ONNX file, run folder, or 'bundled'")
    s.add_argument("--data", required=True, help="folder-per-identity tree, or a pairs CSV")
    s.add_argument("--split", type=Path, help="a run folder: evaluate only its held-out identities")
    s.add_argument("--target-far", type=float, default=1e-3)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", default="eval")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("export", help="export a run's model to ONNX for the app")
    s.add_argument("run", metavar="RUN")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("demo", help="softmax vs ArcFace 3-D embeddings of digits, on spheres")
    s.add_argument("--out", default="margin-demo.png")
    s.add_argument("--steps", type=int, default=600)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="faceapp-train: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"faceapp-train: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from faceapp.errors import FaceappError

        if isinstance(exc, FaceappError):
            print(f"faceapp-train: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
