"""``faceapp-train``: fine-tune, evaluate, export, and draw the margin demo.

    faceapp-train finetune PHOTOS --out RUN [--strangers DIR] [--config exp.toml] [--set key=value ...]
    faceapp-train train --config exp.toml [--set key=value ...] [--resume]
    faceapp-train eval MODEL... --data DIR|CSV [--split RUN] [--strangers DIR] [--out DIR]
    faceapp-train export RUN --out model.onnx [--force]
    faceapp-train demo --out demo.png

A MODEL for ``eval`` is an ONNX file the app can load, ``bundled`` (faceapp's own
embedder), or a run folder (its ``model.pt``). With ``--split RUN`` evaluation uses the
run's held-out test identities and test strangers, as written in ``RUN/split.json``.
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
    for key in ("data", "out", "epochs", "device", "strangers"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    cfg = load_config(args.config, overrides)
    summary = train(cfg, resume=args.resume, progress=not args.quiet)
    if "last" in summary:
        print(json.dumps(summary["last"], default=float))
    if summary.get("base") and summary.get("best"):
        print(verdict_line(summary["base"], summary["best"], cfg.target_fpir))
    return 0


def verdict_line(base: dict[str, Any], best: dict[str, Any], target_fpir: float) -> str:
    """One line: does the kept epoch beat the base model on validation?"""
    from .train import beats

    figures = (f"validation FNIR {best['val_fnir']:.4f} vs base {base['val_fnir']:.4f}, wrong names "
               f"{best['val_wrong_name']:.4f} vs {base['val_wrong_name']:.4f} at FPIR {target_fpir:g}")
    if beats(best, base):
        return f"epoch {best['epoch']} beats the base model: {figures}"
    return f"no epoch beats the base model ({figures}); export will refuse it"


def _model_embedder(spec: str, device: str):  # type: ignore[no-untyped-def]
    from faceapp.vision import models

    from .evaluate import onnx_embedder, torch_embedder
    from .train import load_run

    if spec == "bundled":
        return "bundled", onnx_embedder(models.resolve_embedder(None).path)
    path = Path(spec)
    if path.is_dir():
        _, backbone = load_run(path, device)
        return path.name, torch_embedder(backbone.to(device), device)
    return path.name, onnx_embedder(path)


def _eval_sets(data: Path, split: Path | None, strangers: Path | None):  # type: ignore[no-untyped-def]
    """Crops to evaluate on and stranger crops (or None): a run's test identities with ``split``."""
    from .data import from_aligned_folder, load_split
    from .train import load_config, load_data, load_strangers

    if split is None:
        crops = from_aligned_folder(data) if _looks_aligned(data) else load_data(load_config(None, {"data": str(data)}))
        st = load_strangers(load_config(None, {"data": str(data), "strangers": str(strangers)})) if strangers else None
        return crops, st
    cfg = load_config(split / "config.toml", {"data": str(data)})
    if strangers is not None:
        cfg.strangers = str(strangers)
    sp = load_split(split)
    if not sp.test:
        raise ValueError(f"{split} has no test identities (test_fraction was 0); evaluate without --split")
    st = load_strangers(cfg)
    return load_data(cfg).select(sp.test), st.select(sp.test_strangers) if st is not None and sp.test_strangers else None


def _looks_aligned(root: Path) -> bool:
    from faceapp.vision.images import load_image

    first = next((f for d in sorted(root.iterdir()) if d.is_dir() for f in sorted(d.iterdir())), None)
    return first is not None and load_image(first).shape[:2] == (112, 112)


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_crops, evaluate_pairs_csv, format_table, plot_reports, write_report

    reports: dict[str, dict[str, Any]] = {}
    data = Path(args.data)
    crops, strangers = (None, None) if data.suffix.lower() == ".csv" else _eval_sets(data, args.split, args.strangers)
    for spec in args.models:
        name, embed = _model_embedder(spec, args.device)
        if crops is None:
            reports[name] = evaluate_pairs_csv(embed, data, args.target_far)
        else:
            reports[name] = evaluate_crops(embed, crops.crops, crops.labels, args.target_far,
                                           strangers=strangers.crops if strangers is not None else None,
                                           target_fpir=args.target_fpir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_report(reports, out / "report.json")
    plot_reports(reports, out / "report.png")
    if crops is not None:
        extra = f" and {len(strangers)} strangers" if strangers is not None else ""
        print(f"{len(crops)} images of {crops.num_classes} people{extra}")
    print("\n".join(format_table(reports)))
    print(f"report: {out / 'report.json'}, plots: {out / 'report.png'}")
    return 0


def calibrated_thresholds(embed, crops) -> tuple[Any, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Thresholds measured on held-out identities, the same way as `faceapp-cli calibrate`."""
    from faceapp.measure.calibrate import pair_scores, per_comparison_far, recommended_threshold
    from faceapp.vision.contract import RecommendedThresholds

    emb = embed(crops.crops)
    gen, imp = pair_scores(emb, crops.labels)
    match = recommended_threshold(imp, per_comparison_far(0.01, 100 * 5))
    verify = recommended_threshold(imp, 1e-3)
    thr = RecommendedThresholds(match=round(match, 3), uncertain_band=0.08, verify=round(verify, 3))
    return thr, {"genuine_pairs": len(gen), "impostor_pairs": len(imp), "match_rule": "FPIR 1% at 100 people x 5",
                 "verify_rule": "FAR 1e-3", "max(empirical, gaussian)": True}


def cmd_export(args: argparse.Namespace) -> int:
    from .data import load_split
    from .evaluate import torch_embedder
    from .export import export_onnx, provenance_record
    from .train import base_model_hash, beats, load_config, load_data, load_run, read_best

    run = Path(args.run)
    cfg = load_config(run / "config.toml")
    best = read_best(run)
    if best["base"] and not beats(best["best"], best["base"]):
        line = verdict_line(best["base"], best["best"], best["target_fpir"])
        if not args.force:
            raise ValueError(f"not exported: {line.replace('; export will refuse it', '')}; "
                             "train differently, or pass --force to export it anyway")
        log.warning("exporting anyway (--force): %s", line)
    split = load_split(run)  # never re-split: test identities stay out of everything here
    base_sha = base_model_hash(cfg)
    _, backbone = load_run(run)
    data = load_data(cfg)
    val_set = data.select(split.val)
    thr, how = calibrated_thresholds(torch_embedder(backbone), val_set)
    sample = val_set.crops[: min(16, len(val_set))]
    prov = provenance_record(
        base_model=Path(cfg.pretrained) if cfg.pretrained not in ("", "bundled") else None,
        base_sha256=base_sha,
        data_summary={"train": data.select(split.train).summary(), "val": val_set.summary(),
                      "test_identities": len(split.test), "source": cfg.data},
        settings=cfg.to_dict(),
        validation={"thresholds": how, "open_set": best},
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

    for name, helptext in (("finetune", "fine-tune the app's embedder on a folder-per-person tree of photos"),
                           ("train", "fine-tune or train an embedder from an experiment file")):
        s = sub.add_parser(name, help=helptext)
        if name == "finetune":
            s.add_argument("data", metavar="PHOTOS", help="folder-per-person tree: PHOTOS/<name>/*.jpg")
        else:
            s.add_argument("--data")
        s.add_argument("--config", type=Path, help="experiment TOML (fields of training.train.TrainConfig)")
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
        s.add_argument("--strangers", help="folder of photos of people in no person folder (validation and test)")
        s.add_argument("--out", required=name == "finetune", help="run folder")
        s.add_argument("--epochs", type=int)
        s.add_argument("--device", choices=["auto", "cpu", "cuda"])
        s.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
        s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="verification and identification figures for one or more models")
    s.add_argument("models", nargs="+", metavar="MODEL", help="ONNX file, run folder, or 'bundled'")
    s.add_argument("--data", required=True, help="folder-per-identity tree, or a pairs CSV")
    s.add_argument("--split", type=Path, help="a run folder: evaluate only its held-out test identities")
    s.add_argument("--strangers", type=Path, help="folder of photos of people in none of the identities")
    s.add_argument("--target-far", type=float, default=1e-3)
    s.add_argument("--target-fpir", type=float, default=0.01)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", default="eval")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("export", help="export a run's model to ONNX for the app")
    s.add_argument("run", metavar="RUN")
    s.add_argument("--out", required=True)
    s.add_argument("--force", action="store_true", help="export even if it does not beat the base model")
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
