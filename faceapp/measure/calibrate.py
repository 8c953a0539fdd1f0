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
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from faceapp.errors import FaceappError, ImageError
from faceapp.measure.openset import (
    Interval,
    OpenSetRates,
    OperatingPoint,
    TopScores,
    bootstrap,
    empirical_threshold,
    far_at,
    far_for_fpir,
    fpir_from_far,
    operating_point,
    pair_scores,
    rates,
    roc_auc,
    tar_at,
    top_scores,
)
from faceapp.vision.calibration import Calibration
from faceapp.vision.images import person_folders

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
    """``(image, identity)`` pairs from a folder-per-person tree (``DIR/<name>/*.jpg``)."""
    return [(f, f"{source}/{name}") for name, photos in person_folders(source) for f in photos]


@dataclass(frozen=True)
class LabelledPair:
    """One row of a labelled-pairs CSV: two photos and whether they show the same person."""

    a: Path
    b: Path
    same: bool


_YES = ("yes", "1", "true", "same")
_NO = ("no", "0", "false", "different")


def read_pairs_csv(path: Path) -> list[LabelledPair]:
    """The labelled pairs of a CSV with columns ``file_x,file_y,Decision`` (``Yes`` = same person).

    Only the listed pairs carry labels: two files that are never paired are not known to
    show different people, so no identities are inferred. File names are relative to the
    CSV's folder.

    Raises:
        ImageError: the file cannot be read, lacks a column, or has a decision that is not yes/no.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ImageError(f"{path} cannot be read as a CSV ({exc})") from exc
    out = []
    for n, row in enumerate(rows, 2):
        keys = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        if not {"file_x", "file_y", "decision"} <= keys.keys():
            raise ImageError(f"{path} needs the columns file_x,file_y,Decision (Decision: Yes for the same person)")
        d = keys["decision"].lower()
        if d not in _YES + _NO:
            raise ImageError(f"{path} line {n}: Decision must be Yes or No, not {keys['decision']!r}")
        out.append(LabelledPair(path.parent / keys["file_x"], path.parent / keys["file_y"], d in _YES))
    return out


def _embed_files(pipe: Any, files: Sequence[Path], progress: bool) -> tuple[dict[Path, np.ndarray], list[tuple[str, str]]]:
    from tqdm import tqdm

    found, failed = {}, []
    for path in tqdm(files, desc="embedding", unit="img", disable=not progress):
        try:
            found[path] = pipe.main_face(path).embedding
        except FaceappError as exc:
            failed.append((str(path), str(exc)))
    return found, failed


def embed_labelled(pipe: Any, sources: Sequence[Path], progress: bool = False) -> Labelled:
    """Embed the main face of every photo of folder-per-person trees; photos without one are listed, not fatal.

    Raises:
        FaceappError: fewer than two people have a usable photo.
    """
    items = [item for s in sources for item in labelled_files(Path(s))]
    found, failed = _embed_files(pipe, [p for p, _ in items], progress)
    ids: dict[str, int] = {}
    kept = [(p, ident) for p, ident in items if p in found]
    labels = [ids.setdefault(ident, len(ids)) for _, ident in kept]
    if len(ids) < 2:
        raise FaceappError("need usable photos of at least two people to measure anything")
    return Labelled(np.stack([found[p] for p, _ in kept]).astype(np.float32), np.asarray(labels),
                    [str(p) for p, _ in kept], failed)


def pairs_csv_scores(pipe: Any, path: Path, progress: bool = False) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Similarities of the genuine and the impostor pairs a CSV lists, and the photos without a usable face."""
    pairs = read_pairs_csv(path)
    found, failed = _embed_files(pipe, sorted({p for q in pairs for p in (q.a, q.b)}), progress)
    gen = [float(found[q.a] @ found[q.b]) for q in pairs if q.same and q.a in found and q.b in found]
    imp = [float(found[q.a] @ found[q.b]) for q in pairs if not q.same and q.a in found and q.b in found]
    return np.asarray(gen, np.float64), np.asarray(imp, np.float64), failed


def gaussian_threshold(impostor: np.ndarray, far: float) -> float:
    """Threshold at ``far`` under a normal fit of the impostor similarities.

    Uses the lower tail (``mu - sd * z(far)``), not ``z(1 - far)``: ``1 - far`` rounds
    away the digits of a small ``far``.
    """
    mu, sd = float(impostor.mean()), float(impostor.std(ddof=1))
    return mu - sd * NormalDist().inv_cdf(far)


def gaussian_far(impostor: np.ndarray, t: float) -> float:
    """FAR at ``t`` under a normal fit of the impostor similarities.

    The upper tail is read as the lower tail of the mirrored score (``cdf(2 mu - t)``):
    ``1 - cdf(t)`` is 0 for every FAR below about 1e-16 and loses digits well before.
    """
    mu, sd = float(impostor.mean()), float(impostor.std(ddof=1))
    return NormalDist(mu, sd).cdf(2 * mu - t)


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
    folders = [s for s in sources if s.is_dir()]
    csvs = [s for s in sources if not s.is_dir()]
    for s in csvs:
        if s.suffix.lower() != ".csv" or not s.is_file():
            raise ImageError(f"{s} is neither a folder-per-person tree nor a pairs CSV")
    gens, imps, failed, n_images, n_people = [], [], [], 0, 0
    data = None
    if folders:
        data = embed_labelled(pipe, folders, progress=progress)
        g, i = pair_scores(data.embeddings, data.labels)
        gens.append(g)
        imps.append(i)
        failed += data.failed
        n_images += len(data.files)
        n_people += int(len(set(data.labels.tolist())))
    for s in csvs:
        g, i, f = pairs_csv_scores(pipe, s, progress=progress)
        gens.append(g)
        imps.append(i)
        failed += f
    gen, imp = np.concatenate(gens), np.concatenate(imps)
    if len(gen) == 0 or len(imp) == 0:
        raise FaceappError("need at least one pair of photos of the same person and one of different people "
                           "with a usable face; give more photos")
    comparisons = gallery_size * templates_per_person
    far = per_comparison_far(target_fpir, comparisons)
    t_emp = empirical_threshold(imp, far)
    t_gauss = gaussian_threshold(imp, far)
    resolved = len(imp) * far >= 3  # at least 3 impostors expected above the threshold
    t_rec = recommended_threshold(imp, far)
    rows = []
    for t in sorted({0.3, 0.363, 0.4, 0.45, 0.5, 0.55, 0.6, round(t_rec, 3)}):
        f_gauss = gaussian_far(imp, t)
        rows.append({
            "threshold": t, "far": far_at(imp, t), "tar": tar_at(gen, t),
            "far_gaussian": f_gauss, "fpir_at_gallery_size": fpir(f_gauss, comparisons),
        })
    loo = None if data is None else open_set_rates(data.embeddings, data.labels, t_rec)
    doc: dict[str, Any] = {
        "images": n_images,
        "identities": n_people,
        "failed_images": [{"image": f, "error": e} for f, e in failed],
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
        (f"{doc['images']} photos of {doc['identities']} people" if folders else "labelled pairs")
        + f" ({len(failed)} photo(s) without a usable face)",
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
        f"recommended threshold {t_rec:.3f}: TAR {doc['tar_at_recommended']:.3f} on genuine pairs"
        + ("" if loo is None else f"; leave-one-out DIR {loo['dir']:.3f}, FPIR {loo['fpir']:.3f} against "
           f"{int(loo['gallery_people_for_fpir'])} people"),
        "threshold  FAR(empirical)  FAR(Gaussian)  FPIR@gallery  TAR",
    ]
    lines += [
        f"{r['threshold']:9.3f}  {r['far']:14.2e}  {r['far_gaussian']:13.2e}  {r['fpir_at_gallery_size']:12.3f}  {r['tar']:.3f}"
        for r in rows
    ]
    return doc, lines


# ---------------------------------------------------------------------- open-set calibration


@dataclass(frozen=True)
class SizeCalibration:
    """Threshold and margin tuned for one gallery size, and the figures on held-out people.

    Attributes:
        gallery_size: people in the gallery (enrolled plus distractors).
        distractors: how many of them are distractors, and how many of those are blends.
        tuned: the operating point on the tuning half.
        threshold_ci: bootstrap-over-identities interval of the tuned threshold.
        fnir_ci: bootstrap-over-identities interval of the FNIR at the tuned point.
        held_out: figures at the tuned point on the other half's people and strangers.
        held_out_lookalikes: share of look-alike composites named on the other half.
    """

    gallery_size: int
    distractors: tuple[int, int]
    tuned: OperatingPoint
    threshold_ci: Interval
    fnir_ci: Interval
    held_out: OpenSetRates
    held_out_lookalikes: float | None


def _scenario(people: Any, strangers: Any, size: int, rng: np.random.Generator, embed: Any,
              blends: np.ndarray | None, composites: int) -> tuple[TopScores, TopScores | None, np.ndarray, tuple[int, int]]:
    """Top scores for a gallery of ``size`` people built from one half of the data.

    Enrolled: ``min(size, people)`` people, their first photo each; their other photos are
    probes. The rest of the gallery: strangers' photos from one half of the strangers, then
    ``blends`` (embeddings of blended stranger crops). Strangers: the other half of the
    strangers, plus the people not enrolled.

    Returns:
        The probes' top scores, the look-alike composites' top scores, the similarities of
        every stranger probe to every enrolled template, and (distractors, of them blends).
    """
    from faceapp.measure.evaluate import blend, composite_groups, enrolment_split

    ids = np.unique(people.labels)
    chosen = rng.choice(ids, min(size, len(ids)), replace=False)
    first = enrolment_split(people.labels, 1)
    enrolled = np.isin(people.labels, chosen)
    g_emb, g_lab = people.embeddings[enrolled & first], people.labels[enrolled & first]
    pool = np.array([i % 2 == 0 for i in range(len(strangers.labels))])  # distractor pool / stranger probes
    need = size - len(chosen)
    real = np.flatnonzero(pool)[:need]
    offset = int(people.labels.max()) + 1
    extra = [strangers.embeddings[real]]
    n_blend = max(0, need - len(real))
    if n_blend:
        if blends is None or len(blends) < n_blend:
            raise FaceappError(f"a gallery of {size} people needs {n_blend} blended distractors")
        extra.append(blends[:n_blend])
    d_emb = np.concatenate(extra) if extra else np.zeros((0, g_emb.shape[1]), np.float32)
    d_lab = np.arange(len(d_emb)) + offset + len(strangers.labels) + 1_000_000
    gallery = np.concatenate([g_emb, d_emb])
    glabels = np.concatenate([g_lab, d_lab])
    probe_mask = ~(enrolled & first)
    s_idx = np.flatnonzero(~pool)
    probes = np.concatenate([people.embeddings[probe_mask], strangers.embeddings[s_idx]])
    plabels = np.concatenate([people.labels[probe_mask], strangers.labels[s_idx] + offset])
    scores = top_scores(gallery, glabels, probes, plabels)
    # Where no runner-up can help (a gallery of one), the threshold alone must hold the target FPIR.
    impostor = (probes[~np.isin(plabels, g_lab)] @ g_emb.T).ravel()
    look = None
    if composites and embed is not None:
        groups = composite_groups(people.labels, enrolled, composites, rng, prefer=~first)
        if groups:
            cemb = np.asarray(embed(blend(people.crops, groups)), np.float32)
            look = top_scores(gallery, glabels, cemb, np.arange(len(cemb)) + 10_000_000)
    return scores, look, impostor, (len(d_emb), n_blend)


def distractor_blends(strangers: Any, n: int, embed: Any, rng: np.random.Generator, *,
                      cache_dir: Path | None = None, progress: bool = False) -> np.ndarray:
    """Embeddings of ``n`` distractor faces, each the blend of two strangers' aligned crops.

    Only the strangers in the distractor pool (every other photo) are blended, so no
    stranger probe is part of a distractor. With ``cache_dir``, the embeddings are kept
    there, keyed by the strangers' embeddings and the blend list.
    """
    import hashlib

    from tqdm import tqdm

    from faceapp.measure.evaluate import blend

    pool = np.flatnonzero(np.arange(len(strangers.labels)) % 2 == 0)
    if n <= 0 or len(pool) < 2:
        return np.zeros((0, strangers.embeddings.shape[1]), np.float32)
    pairs = np.array([rng.choice(pool, 2, replace=False) for _ in range(n)])
    cache = None
    if cache_dir is not None:
        key = hashlib.sha256(strangers.embeddings.tobytes() + pairs.tobytes()).hexdigest()[:24]
        cache = Path(cache_dir) / f"blends-{key}.npy"
        if cache.is_file():
            return np.load(cache)
    out = [np.asarray(embed(blend(strangers.crops, pairs[s : s + 256].tolist())), np.float32)
           for s in tqdm(range(0, n, 256), desc="distractors", unit="x256", disable=not progress)]
    emb = np.concatenate(out)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, emb)
    return emb


def calibrate_open_set(people: Any, strangers: Any, *, embed: Any, target_fpir: float = 0.01,
                       lookalike_target: float = 0.1, gallery_sizes: Sequence[int] = (10, 100, 1000, 10000),
                       margins: Sequence[float] = tuple(np.round(np.arange(0.0, 0.205, 0.01), 3)),
                       composites: int = 200, n_boot: int = 200, seed: int = 0, cache_dir: Path | None = None,
                       progress: bool = False) -> list[SizeCalibration]:
    """Tune threshold and margin per gallery size on one half of the identities; report on the other.

    Args:
        people: :class:`~faceapp.measure.evaluate.FaceSet` of people with several photos each (all halves).
        strangers: :class:`~faceapp.measure.evaluate.FaceSet` of other people (all halves).
        embed: crops -> embeddings, for the blended distractors and the look-alike composites.
        target_fpir: share of strangers allowed a name.
        lookalike_target: share of look-alike composites allowed a name.
        gallery_sizes: people in the simulated galleries.
        margins: candidate margins.
        composites: look-alike composites per gallery size.
        n_boot: bootstrap resamples for the intervals.
        seed: random seed.
        cache_dir: where to keep the distractors' embeddings between runs.
        progress: show progress bars on stderr.

    Raises:
        FaceappError: a half has no people or no strangers.
    """
    from faceapp.measure.evaluate import select

    halves = {h: (select(people, h), select(strangers, h)) for h in ("tune", "report")}
    for h, (p, s) in halves.items():
        if len(np.unique(p.labels)) < 2 or len(s) < 2:
            raise FaceappError(f"the {h} half has too few people or strangers; give more identities")
    out = []
    biggest = max(gallery_sizes)
    blends = {h: distractor_blends(s, biggest - len(np.unique(p.labels)) - (len(s) + 1) // 2, embed,
                                   np.random.default_rng(seed + i), cache_dir=cache_dir, progress=progress)
              for i, (h, (p, s)) in enumerate(halves.items())}
    for size in sorted(gallery_sizes):
        rng = np.random.default_rng(seed + size)
        scores, look, impostor, extra = _scenario(*halves["tune"], size, rng, embed, blends["tune"], composites)
        floor = empirical_threshold(impostor, target_fpir)

        def tune(x: TopScores, look: TopScores | None = look, floor: float = floor) -> OperatingPoint:
            return operating_point(x, target_fpir, lookalikes=look, lookalike_target=lookalike_target,
                                   margins=margins, min_threshold=floor)

        op = tune(scores)
        boot_rng = np.random.default_rng(seed)

        def retune(x: TopScores, look: TopScores | None = look, rng: np.random.Generator = boot_rng) -> list[float]:
            # The look-alikes are resampled too (each composite is an identity of its own).
            lk = None if look is None else look.subset(rng.integers(0, len(look), len(look)))
            o = tune(x, lk)
            return [o.threshold, o.rates.fnir]

        t_ci, f_ci = bootstrap(scores, retune, n_boot=n_boot, seed=seed)
        r_scores, r_look, _, _ = _scenario(*halves["report"], size, np.random.default_rng(seed + size + 1), embed,
                                           blends["report"], composites)
        held = rates(r_scores, op.threshold, op.margin)
        held_look = None if r_look is None else rates(r_look, op.threshold, op.margin).fpir
        out.append(SizeCalibration(size, extra, op, t_ci, f_ci, held, held_look))
    return out


def calibration_lines(rows: Sequence[SizeCalibration]) -> list[str]:
    """The calibration table as text."""
    def pct(x: float | None) -> str:
        return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}%"

    lines = ["gallery  distractors(blends)  threshold [95% CI]     margin  | tuning: FPIR  FNIR [95% CI]        "
             "look-alikes | held out: FPIR  FNIR   wrong  look-alikes"]
    for r in rows:
        t = r.tuned
        lines.append(
            f"{r.gallery_size:7d}  {r.distractors[0]:6d} ({r.distractors[1]:5d})  "
            f"{t.threshold:.3f} [{r.threshold_ci.low:.3f}-{r.threshold_ci.high:.3f}]  {t.margin:.2f}    | "
            f"{pct(t.rates.fpir):>6}  {pct(t.rates.fnir):>5} [{pct(r.fnir_ci.low)}-{pct(r.fnir_ci.high)}]  "
            f"{pct(t.lookalikes_named):>8}    | {pct(r.held_out.fpir):>6}  {pct(r.held_out.fnir):>5}  "
            f"{pct(r.held_out.wrong_name):>5}  {pct(r.held_out_lookalikes):>8}"
        )
    return lines


def calibration_from_rows(rows: Sequence[SizeCalibration], *, name: str, measured: str,
                          default_gallery_size: int = 1000, uncertain_band: float = 0.08) -> Calibration:
    """The calibration file entry for a model: the tuned threshold and margin per gallery size.

    The default is the point for ``default_gallery_size`` people (else the largest size
    calibrated); the 1:1 ``verify`` threshold is the threshold tuned for the smallest gallery,
    where a probe meets the fewest people.
    """
    from faceapp.vision.calibration import SizePoint

    if not rows:
        raise FaceappError("nothing was calibrated; give photos of people and strangers")
    sizes = {r.gallery_size: SizePoint(round(r.tuned.threshold, 4), round(r.tuned.margin, 4)) for r in rows}
    default = default_gallery_size if default_gallery_size in sizes else max(sizes)
    smallest = min(rows, key=lambda r: r.gallery_size)
    return Calibration(verify=round(smallest.tuned.threshold, 4), uncertain_band=uncertain_band,
                       gallery_sizes=sizes, default_gallery_size=default, name=name, measured=measured)
