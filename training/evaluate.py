"""Verification and open-set identification figures for any embedder.

An embedder here is a function ``(N, 112, 112, 3) uint8 RGB crops -> (N, D) unit
vectors``: a torch backbone (:func:`torch_embedder`) or any ONNX file the app can load
(:func:`onnx_embedder`), so the base model and a fine-tuned one are measured the same way
on the same crops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceapp.measure.openset import empirical_threshold, far_at, pair_scores, roc_auc, tar_at

log = logging.getLogger(__name__)

EmbedFn = Callable[[np.ndarray], np.ndarray]
FARS = (1e-2, 1e-3)


def torch_embedder(model: torch.nn.Module, device: str = "cpu", batch: int = 64) -> EmbedFn:
    def run(crops: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(crops), batch):
                x = torch.from_numpy(np.ascontiguousarray(crops[s : s + batch])).permute(0, 3, 1, 2).float().to(device)
                out.append(torch.nn.functional.normalize(model(x), dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    return run


def onnx_embedder(path: Path, provider: str = "cpu", batch: int = 64) -> EmbedFn:
    from faceapp.vision.embed import Embedder

    emb = Embedder(Path(path), provider=provider)

    def run(crops: np.ndarray) -> np.ndarray:
        return np.concatenate([emb.embed(crops[s : s + batch]) for s in range(0, len(crops), batch)])

    return run


def threshold_accuracies(scores: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Verification accuracy at each threshold (``score >= t`` means "same person").

    Sorting once and counting with binary search makes this O((N + T) log N) rather
    than the O(N * T) of scoring every threshold on every pair.

    Args:
        scores: ``(N,)`` similarities.
        same: ``(N,)`` bool, True for a genuine pair.
        thresholds: ``(T,)`` candidate thresholds.

    Returns:
        ``(T,)`` float64 share of pairs decided correctly.
    """
    gen = np.sort(scores[same])
    imp = np.sort(scores[~same])
    gen_accepted = len(gen) - np.searchsorted(gen, thresholds, side="left")
    imp_rejected = np.searchsorted(imp, thresholds, side="left")
    return (gen_accepted + imp_rejected) / max(1, len(scores))


def kfold_accuracy(genuine: np.ndarray, impostor: np.ndarray, folds: int = 10, seed: int = 0) -> dict[str, float]:
    """Verification accuracy with the threshold chosen on k-1 folds and scored on the rest.

    Args:
        genuine: similarities of same-person pairs.
        impostor: similarities of different-person pairs.
        folds: number of folds (at most one per pair, at least two).
        seed: shuffles the pairs into folds.

    Returns:
        ``accuracy`` (mean over folds), ``accuracy_std`` and the mean chosen ``threshold``.
    """
    scores = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    order = np.random.default_rng(seed).permutation(len(scores))
    parts = np.array_split(order, max(2, min(folds, len(scores))))
    accs, thrs = [], []
    u = np.unique(scores)
    candidates = np.concatenate([[u[0] - 1e-6], (u[1:] + u[:-1]) / 2, [u[-1] + 1e-6]])  # midpoints
    for k in range(len(parts)):
        test = parts[k]
        train = np.concatenate([parts[j] for j in range(len(parts)) if j != k])
        acc_train = threshold_accuracies(scores[train], same[train], candidates)
        best = candidates[acc_train == acc_train.max()]
        t = float((best.min() + best.max()) / 2)  # the middle of the best range, not its edge
        thrs.append(t)
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
    return {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "threshold": float(np.mean(thrs))}


def pair_metrics(genuine: np.ndarray, impostor: np.ndarray, target_far: float = 1e-3) -> dict[str, Any]:
    out: dict[str, Any] = {
        "genuine_pairs": len(genuine), "impostor_pairs": len(impostor),
        "roc_auc": roc_auc(genuine, impostor), **kfold_accuracy(genuine, impostor),
    }
    for far in FARS:
        key = f"tar_at_far_{far:g}"
        if len(impostor) * far >= 1:
            t = empirical_threshold(impostor, far)
            out[key] = tar_at(genuine, t)
        else:
            out[key] = None
            out[key + "_note"] = f"{len(impostor)} impostor pairs cannot resolve FAR {far:g} (need {int(1 / far)})"
    if len(impostor) * target_far >= 1:
        out["threshold_at_target_far"] = empirical_threshold(impostor, target_far)
    else:
        out["threshold_at_target_far"] = empirical_threshold(impostor, 1.0 / len(impostor))
        out["threshold_note"] = f"too few impostor pairs for FAR {target_far:g}: threshold at FAR {1 / len(impostor):.1e}"
    out["target_far"] = target_far
    out["far_at_threshold"] = far_at(impostor, out["threshold_at_target_far"])
    return out


def evaluate_crops(embed: EmbedFn, crops: np.ndarray, labels: np.ndarray, target_far: float = 1e-3,
                   strangers: np.ndarray | None = None, target_fpir: float = 0.01) -> dict[str, Any]:
    """Figures on a labelled set: all pairs, plus open-set identification at a target FPIR.

    Args:
        embed: the embedder.
        crops: ``(N, 112, 112, 3)`` aligned RGB uint8 crops.
        labels: ``(N,)`` identity labels.
        target_far: pair false-accept rate for the pair-level threshold.
        strangers: ``(S, 112, 112, 3)`` crops of people in no label, added as stranger probes.
        target_fpir: the FPIR at which FNIR and the wrong-name rate are reported.
    """
    emb = embed(crops)
    gen, imp = pair_scores(emb, labels)
    report = pair_metrics(gen, imp, target_far)
    stranger_emb = embed(strangers) if strangers is not None and len(strangers) else None
    report["open_set"] = open_set_figures(emb, labels, stranger_emb, target_fpir)
    report["_scores"] = (gen, imp)
    return report


def open_set_protocol(labels: np.ndarray, seed: int = 0,
                      enrol_share: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gallery and probes for open-set identification within one labelled set.

    A share of the identities with at least two photos are enrolled with their first photo
    (the way a user enrols one photo and meets the person again on another day); their other
    photos are enrolled probes. Every photo of the remaining identities is a stranger probe.

    Args:
        labels: ``(N,)`` identity label per photo.
        seed: which identities are enrolled.
        enrol_share: share of the identities with two or more photos that are enrolled.

    Returns:
        ``(gallery_index, probe_index, probe_labels)``: stranger probes get labels below 0,
        one per identity, so they match no gallery label.
    """
    from faceapp.measure.evaluate import enrolment_split

    labels = np.asarray(labels)
    ids, counts = np.unique(labels, return_counts=True)
    multi = ids[counts >= 2]
    n_enrol = min(len(multi), max(1, int(round(enrol_share * len(multi)))))
    enrolled_ids = np.random.default_rng(seed).permutation(multi)[:n_enrol]
    of_enrolled = np.isin(labels, enrolled_ids)
    in_gallery = enrolment_split(labels, 1) & of_enrolled
    probes = np.flatnonzero(~in_gallery)
    probe_labels = np.where(of_enrolled[probes], labels[probes], -1 - labels[probes])
    return np.flatnonzero(in_gallery), probes, probe_labels.astype(np.int64)


def open_set_figures(emb: np.ndarray, labels: np.ndarray, stranger_emb: np.ndarray | None = None,
                     target_fpir: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """FNIR and wrong-name rate at a target FPIR, the way the app decides (faceapp.measure.openset).

    Without ``stranger_emb`` half of the identities are enrolled and the other half are the
    strangers; with it, every identity with two or more photos is enrolled (more enrolled
    probes, so finer FNIR) and ``stranger_emb`` supplies the strangers.

    Args:
        emb: ``(N, D)`` unit embeddings of a labelled set (split by :func:`open_set_protocol`).
        labels: ``(N,)`` identity labels.
        stranger_emb: ``(S, D)`` extra stranger probes (people in no label), or None.
        target_fpir: share of strangers allowed a name; the threshold is set to meet it.
        seed: which identities are enrolled.

    Returns:
        ``fnir_at_fpir`` (enrolled probes not given their own name), ``wrong_name_at_fpir``,
        the ``threshold`` and measured ``fpir``, probe counts, and ``resolved`` (enough
        strangers to measure the target rather than bound it).
    """
    from faceapp.measure import openset

    extra = stranger_emb is not None and len(stranger_emb) > 0
    g, p, plab = open_set_protocol(labels, seed, enrol_share=1.0 if extra else 0.5)
    probes = emb[p]
    if stranger_emb is not None and extra:
        probes = np.concatenate([probes, stranger_emb])
        plab = np.concatenate([plab, -1 - int(np.max(labels)) - 1 - np.arange(len(stranger_emb))])
    scores = openset.top_scores(emb[g], labels[g], probes, plab)
    op = openset.operating_point(scores, target_fpir)
    r = op.rates
    return {"target_fpir": target_fpir, "fnir_at_fpir": r.fnir, "wrong_name_at_fpir": r.wrong_name,
            "threshold": r.threshold, "fpir": r.fpir, "enrolled_probes": r.enrolled, "stranger_probes": r.strangers,
            "gallery_people": len(g), "resolved": op.resolved}


def evaluate_pairs_csv(embed: EmbedFn, csv_path: Path, target_far: float = 1e-3) -> dict[str, Any]:
    """Figures on the labelled pairs of a CSV (``file_x,file_y,Decision``), read by the app's own parser."""
    from faceapp.config import Settings
    from faceapp.errors import FaceappError
    from faceapp.measure.calibrate import read_pairs_csv
    from faceapp.pipeline import Pipeline

    pairs = read_pairs_csv(Path(csv_path))
    files = sorted({p.a for p in pairs} | {p.b for p in pairs})
    crops, failed = {}, []
    with Pipeline(Settings()) as pipe:
        for f in files:
            try:
                crops[f] = pipe.main_face(f).crop
            except FaceappError as exc:
                failed.append((f.name, str(exc)))
    names = sorted(crops)
    emb = dict(zip(names, embed(np.stack([crops[n] for n in names])))) if names else {}
    gen, imp = [], []
    for pair in pairs:
        if pair.a in emb and pair.b in emb:
            (gen if pair.same else imp).append(float(emb[pair.a] @ emb[pair.b]))
    report = pair_metrics(np.array(gen), np.array(imp), target_far)
    report["failed_images"] = failed
    report["_scores"] = (np.array(gen), np.array(imp))
    return report


def plot_reports(reports: dict[str, dict[str, Any]], path: Path) -> Path:
    """ROC curves and same/different similarity histograms, one column per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(reports), figsize=(5 * len(reports), 8), squeeze=False)
    for col, (name, rep) in enumerate(reports.items()):
        gen, imp = rep["_scores"]
        ts = np.unique(np.concatenate([gen, imp]))[::-1]
        fars = [far_at(imp, t) for t in ts]
        tars = [tar_at(gen, t) for t in ts]
        ax = axes[0, col]
        ax.plot(np.maximum(fars, 1e-5), tars)
        ax.set_xscale("log")
        ax.set_xlabel("false accept rate")
        ax.set_ylabel("true accept rate")
        ax.set_title(f"{name}: ROC (AUC {rep['roc_auc']:.4f})")
        ax.grid(True, alpha=0.3)
        ax = axes[1, col]
        bins = np.linspace(-0.3, 1.0, 60)
        ax.hist(imp, bins=bins, alpha=0.6, density=True, label=f"different ({len(imp)})")
        ax.hist(gen, bins=bins, alpha=0.6, density=True, label=f"same ({len(gen)})")
        ax.axvline(rep["threshold_at_target_far"], color="k", ls="--", lw=1, label="threshold")
        ax.set_xlabel("cosine similarity")
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(reports: dict[str, dict[str, Any]], path: Path) -> Path:
    clean = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in reports.items()}
    Path(path).write_text(json.dumps(clean, indent=2, default=float))
    return Path(path)


def format_table(reports: dict[str, dict[str, Any]]) -> list[str]:
    names = list(reports)
    rows = [("ROC AUC", "roc_auc", "{:.4f}"), ("accuracy (10-fold)", "accuracy", "{:.4f}"),
            ("TAR @ FAR 1e-2", "tar_at_far_0.01", "{:.4f}"), ("TAR @ FAR 1e-3", "tar_at_far_0.001", "{:.4f}"),
            ("threshold @ target FAR", "threshold_at_target_far", "{:.3f}")]
    open_rows = [("FNIR @ FPIR target", "fnir_at_fpir", "{:.4f}"), ("wrong names @ FPIR", "wrong_name_at_fpir", "{:.4f}")]
    lines = ["metric".ljust(24) + "".join(n[:18].rjust(20) for n in names)]
    for label, key, fmt in rows:
        vals = [reports[n].get(key) for n in names]
        lines.append(label.ljust(24) + "".join(("n/a" if v is None else fmt.format(v)).rjust(20) for v in vals))
    for label, key, fmt in open_rows:
        vals = [reports[n].get("open_set", {}).get(key) for n in names]
        lines.append(label.ljust(24) + "".join(("n/a" if v is None else fmt.format(v)).rjust(20) for v in vals))
    for n in names:
        if "open_set" in reports[n]:
            o = reports[n]["open_set"]
            lines.append(f"{n}: open-set FNIR {o['fnir_at_fpir']:.4f} and wrong names {o['wrong_name_at_fpir']:.4f} "
                         f"at FPIR {o['fpir']:.4f} (target {o['target_fpir']:g}, threshold {o['threshold']:.3f}; "
                         f"{o['enrolled_probes']} enrolled probes of {o['gallery_people']} people, "
                         f"{o['stranger_probes']} strangers)")
        for k, v in reports[n].items():
            if k.endswith("_note"):
                lines.append(f"{n}: {v}")
    return lines
