"""Similarity statistics on labelled photos, and a threshold for 1:N open-set use.

In open-set identification a stranger is compared with every template in the gallery,
so the chance that *some* template passes the threshold (the false-positive
identification rate, FPIR) grows with the gallery's size. With a per-comparison false
accept rate ``FAR(t)`` and ``n`` independent comparisons,
``FPIR(t) ~= 1 - (1 - FAR(t)) ** n``. This module estimates ``FAR(t)`` from impostor
pairs (photos of different people) two ways, the empirical tail and a Gaussian fit of
the impostor similarities, and recommends the stricter of the two thresholds.

Labelled photos come as folder-per-person trees (``DIR/<name>/*.jpg``) or as a CSV of
labelled pairs (``file_x,file_y,Decision`` with ``Yes`` for same person); in a CSV,
identities are the groups of files linked by ``Yes`` pairs.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from .errors import FaceappError, ImageError
from .images import person_folders
from .openset import (
    empirical_threshold,
    far_at,
    far_for_fpir,
    fpir_from_far,
    pair_scores,
    roc_auc,
    tar_at,
)

# Kept under their earlier names for callers of this module (the training package).
per_comparison_far = far_for_fpir
fpir = fpir_from_far
__all__ = ["calibrate", "embed_labelled", "empirical_threshold", "far_at", "fpir", "gaussian_threshold",
           "labelled_files", "open_set_rates", "pair_scores", "per_comparison_far", "recommended_threshold",
           "roc_auc", "tar_at"]


@dataclass(frozen=True)
class Labelled:
    """Embedded photos with identity labels."""

    embeddings: np.ndarray  # (N, D) unit-length
    labels: np.ndarray  # (N,) int identity ids
    files: list[str]
    failed: list[tuple[str, str]]  # (file, reason)


def labelled_files(source: Path) -> list[tuple[Path, str]]:
    """``(image, identity)`` pairs from a folder-per-person tree or a labelled-pairs CSV."""
    if source.is_dir():
        return [(f, f"{source}/{name}") for name, photos in person_folders(source) for f in photos]
    if source.suffix.lower() == ".csv" and source.is_file():
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        with source.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                a, b = row["file_x"], row["file_y"]
                find(a), find(b)
                if str(row.get("Decision", row.get("decision", ""))).strip().lower() in ("yes", "1", "true", "same"):
                    parent[find(a)] = find(b)
        return [(source.parent / Path(name).name, f"{source}#{find(name)}") for name in sorted(parent)]
    raise ImageError(f"{source} is neither a folder-per-person tree nor a pairs CSV")


def embed_labelled(pipe: Any, sources: Sequence[Path], progress: bool = False) -> Labelled:
    """Embed the main face of every labelled photo; photos without one are listed, not fatal."""
    from tqdm import tqdm

    items = [item for s in sources for item in labelled_files(Path(s))]
    ids: dict[str, int] = {}
    embs, labels, files, failed = [], [], [], []
    for path, ident in tqdm(items, desc="embedding", unit="img", disable=not progress):
        try:
            face = pipe.main_face(path)
        except FaceappError as exc:
            failed.append((str(path), str(exc)))
            continue
        embs.append(face.embedding)
        labels.append(ids.setdefault(ident, len(ids)))
        files.append(str(path))
    if len(set(labels)) < 2:
        raise FaceappError("need photos of at least two people to measure anything")
    return Labelled(np.stack(embs).astype(np.float32), np.asarray(labels), files, failed)


def gaussian_threshold(impostor: np.ndarray, far: float) -> float:
    """Threshold at ``far`` under a normal fit of the impostor similarities."""
    mu, sd = float(impostor.mean()), float(impostor.std(ddof=1))
    return mu + sd * NormalDist().inv_cdf(1.0 - far)


def recommended_threshold(impostor: np.ndarray, far: float) -> float:
    """The stricter of the empirical and the Gaussian-fit thresholds at ``far``.

    The empirical tail cannot resolve a FAR below about 1 / (number of impostor pairs);
    the normal fit can, but may under-state a heavy tail: taking the larger guards
    against both.
    """
    return max(empirical_threshold(impostor, far), gaussian_threshold(impostor, far))


def open_set_rates(emb: np.ndarray, labels: np.ndarray, t: float) -> dict[str, float]:
    """Leave-one-out identification on the labelled set itself.

    Each photo is a probe against all other photos as the gallery: it is a hit when its
    best match is above ``t`` and of the right person (``dir``, detection and
    identification rate); each identity's photos are also probed against a gallery
    without that identity, where any match above ``t`` is a false alarm (``fpir``).
    """
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    hits = trials = alarms = strangers = 0
    for i in range(len(emb)):
        same = labels == labels[i]
        same[i] = False
        if same.any():
            trials += 1
            j = int(np.argmax(sims[i]))
            hits += int(sims[i, j] >= t and labels[j] == labels[i])
        others = labels != labels[i]
        strangers += 1
        alarms += int(sims[i, others].max() >= t)
    return {
        "dir": hits / trials if trials else float("nan"),
        "fpir": alarms / strangers,
        "probes": float(trials),
        "gallery_people_for_fpir": float(len(set(labels.tolist())) - 1),
    }


def calibrate(pipe: Any, source: Path | Sequence[Path], *, gallery_size: int = 100, templates_per_person: int = 1,
              target_fpir: float = 0.01, progress: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Measure similarities on labelled photos and recommend a 1:N threshold.

    Returns:
        A JSON-ready report and the lines to print.
    """
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    data = embed_labelled(pipe, sources, progress=progress)
    gen, imp = pair_scores(data.embeddings, data.labels)
    comparisons = gallery_size * templates_per_person
    far = per_comparison_far(target_fpir, comparisons)
    t_emp = empirical_threshold(imp, far)
    t_gauss = gaussian_threshold(imp, far)
    resolved = len(imp) * far >= 3  # at least 3 impostors expected above the threshold
    t_rec = recommended_threshold(imp, far)
    rows = []
    for t in sorted({0.3, 0.363, 0.4, 0.45, 0.5, 0.55, 0.6, round(t_rec, 3)}):
        f = far_at(imp, t)
        rows.append({
            "threshold": t, "far": f, "tar": tar_at(gen, t),
            "far_gaussian": 1.0 - NormalDist(float(imp.mean()), float(imp.std(ddof=1))).cdf(t),
            "fpir_at_gallery_size": fpir(1.0 - NormalDist(float(imp.mean()), float(imp.std(ddof=1))).cdf(t), comparisons),
        })
    loo: dict[str, float] = open_set_rates(data.embeddings, data.labels, t_rec)
    doc: dict[str, Any] = {
        "images": len(data.files),
        "identities": int(len(set(data.labels.tolist()))),
        "failed_images": [{"image": f, "error": e} for f, e in data.failed],
        "genuine_pairs": len(gen),
        "impostor_pairs": len(imp),
        "roc_auc": roc_auc(gen, imp),
        "genuine": {"mean": float(gen.mean()), "min": float(gen.min()), "p05": float(np.quantile(gen, 0.05))},
        "impostor": {"mean": float(imp.mean()), "std": float(imp.std(ddof=1)), "max": float(imp.max()),
                     "p99": float(np.quantile(imp, 0.99))},
        "gallery_size": gallery_size,
        "templates_per_person": templates_per_person,
        "target_fpir": target_fpir,
        "per_comparison_far": far,
        "threshold_empirical": t_emp,
        "threshold_gaussian": t_gauss,
        "empirical_resolved": bool(resolved),
        "recommended_threshold": t_rec,
        "tar_at_recommended": tar_at(gen, t_rec),
        "leave_one_out_at_recommended": loo,
        "table": rows,
    }
    lines = [
        f"{doc['images']} photos of {doc['identities']} people ({len(data.failed)} without a usable face)",
        f"{len(gen)} genuine pairs: mean similarity {gen.mean():.3f}, 5th percentile {doc['genuine']['p05']:.3f}, "
        f"min {gen.min():.3f}",
        f"{len(imp)} impostor pairs: mean {imp.mean():.3f}, std {doc['impostor']['std']:.3f}, "
        f"99th percentile {doc['impostor']['p99']:.3f}, max {imp.max():.3f}",
        f"ROC AUC {doc['roc_auc']:.4f}",
        f"target: FPIR {target_fpir:g} with {gallery_size} people x {templates_per_person} template(s) "
        f"-> per-comparison FAR {far:.2e}",
        f"threshold at that FAR: empirical {t_emp:.3f}"
        + ("" if resolved else f" (too few impostor pairs to resolve FAR {far:.1e}: a lower bound)")
        + f", Gaussian fit {t_gauss:.3f}",
        f"recommended threshold {t_rec:.3f}: TAR {doc['tar_at_recommended']:.3f} on genuine pairs; "
        f"leave-one-out DIR {loo['dir']:.3f}, FPIR {loo['fpir']:.3f} against {int(loo['gallery_people_for_fpir'])} people",
        "threshold  FAR(empirical)  FAR(Gaussian)  FPIR@gallery  TAR",
    ]
    lines += [
        f"{r['threshold']:9.3f}  {r['far']:14.2e}  {r['far_gaussian']:13.2e}  {r['fpir_at_gallery_size']:12.3f}  {r['tar']:.3f}"
        for r in rows
    ]
    return doc, lines
