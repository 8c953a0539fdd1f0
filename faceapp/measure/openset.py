"""Open-set identification figures from embeddings: the one evaluation module.

Pure numpy, no models and no files. A *gallery* is ``(T, D)`` unit-length templates with a
person label each; *probes* are ``(Q, D)`` unit-length embeddings with a label each. A probe
whose label is not in the gallery is a *stranger*; the others are *enrolled* probes.

Each probe is scored against every person by the person's best template (exact search),
which gives its top-1 and top-2 person (:class:`TopScores`). From those, at a threshold and
a margin (the same rule as :func:`faceapp.recognise.match.decide`: a name only when the best person
clears the threshold and beats the runner-up by the margin), in the NIST 1:N terms:

* FPIR, false-positive identification rate: the share of strangers that get a name;
* FNIR, false-negative identification rate: the share of enrolled probes that do not get
  their own name (no name, or a wrong one);
* wrong-name rate: the share of enrolled probes named as someone else.

:func:`det_curve` sweeps the threshold, :func:`operating_point` picks the threshold and the
margin for a target FPIR (and a target share of look-alikes named), and :func:`bootstrap` gives confidence intervals by resampling
identities, not photos, since photos of one person are not independent.

The pair-level figures (genuine/impostor similarities, ROC AUC, FAR and TAR) used by
``faceapp-cli calibrate`` and by the training package's evaluation live here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceapp.recognise.match import clears_margin

# Probes scored per block: bounds the (block, templates) similarity matrix in memory.
_BLOCK = 512


# ---------------------------------------------------------------------- pairs


def pair_scores(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of all genuine and all impostor pairs (each unordered pair once).

    Args:
        emb: ``(N, D)`` unit-length embeddings.
        labels: ``(N,)`` identity labels.

    Returns:
        ``(genuine, impostor)`` float64 similarity arrays.
    """
    sims = emb @ emb.T
    iu = np.triu_indices(len(emb), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    s = sims[iu]
    return s[same].astype(np.float64), s[~same].astype(np.float64)


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN when a side is empty."""
    if len(genuine) == 0 or len(impostor) == 0:
        return float("nan")
    allv = np.concatenate([genuine, impostor])
    _, inverse, counts = np.unique(allv, return_inverse=True, return_counts=True)
    # Average rank of each distinct value: ties share the mean of the ranks they span.
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0
    r_gen = avg_rank[inverse[: len(genuine)]].sum()
    return float((r_gen - len(genuine) * (len(genuine) + 1) / 2) / (len(genuine) * len(impostor)))


def far_at(impostor: np.ndarray, t: float) -> float:
    """Share of impostor similarities at or above ``t``; NaN when there are none."""
    return float((impostor >= t).mean()) if len(impostor) else float("nan")


def tar_at(genuine: np.ndarray, t: float) -> float:
    """Share of genuine similarities at or above ``t``; NaN when there are none."""
    return float((genuine >= t).mean()) if len(genuine) else float("nan")


def empirical_threshold(impostor: np.ndarray, far: float) -> float:
    """Smallest threshold whose empirical rate of ``impostor`` at or above it is at most ``far``.

    Raises:
        ValueError: ``impostor`` is empty.
    """
    if len(impostor) == 0:
        raise ValueError("no impostor scores to set a threshold on")
    s = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    allowed = int(math.floor(far * len(s) + 1e-9))  # impostors allowed at or above t
    if allowed >= len(s):
        return float(s[-1])
    return float(np.nextafter(s[allowed], np.inf))


def fpir_from_far(far: float, comparisons: int) -> float:
    """Chance that a stranger passes at least one of ``comparisons`` independent comparisons.

    Computed as ``-expm1(n * log1p(-far))`` so that tiny FARs keep their precision.
    """
    if far >= 1.0:
        return 1.0
    return float(-math.expm1(comparisons * math.log1p(-far)))


def far_for_fpir(target_fpir: float, comparisons: int) -> float:
    """Per-comparison FAR that gives ``target_fpir`` over ``comparisons`` independent comparisons.

    Computed as ``-expm1(log1p(-fpir) / n)``: ``1 - (1 - fpir) ** (1 / n)`` loses most of its
    digits to cancellation when ``n`` is large.
    """
    if comparisons < 1:
        raise ValueError("comparisons must be >= 1")
    if target_fpir >= 1.0:
        return 1.0
    return float(-math.expm1(math.log1p(-target_fpir) / comparisons))


# ---------------------------------------------------------------------- open-set scores


@dataclass(frozen=True)
class TopScores:
    """Each probe's best and second-best gallery person.

    Attributes:
        top1: ``(Q,)`` similarity of the best person; ``-inf`` for an empty gallery.
        top1_label: ``(Q,)`` label of the best person (meaningless where ``top1`` is ``-inf``).
        top2: ``(Q,)`` similarity of the runner-up person; ``-inf`` with fewer than two people.
        probe_labels: ``(Q,)`` the probes' own labels.
        enrolled: ``(Q,)`` bool, the probe's label is in the gallery.
        own: ``(Q,)`` similarity of the probe's own person; ``nan`` for strangers.
    """

    top1: np.ndarray
    top1_label: np.ndarray
    top2: np.ndarray
    probe_labels: np.ndarray
    enrolled: np.ndarray
    own: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.top1)

    @property
    def gap(self) -> np.ndarray:
        """``(Q,)`` best minus runner-up similarity; ``inf`` where there is no runner-up."""
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(self.top2), self.top1 - self.top2, np.inf)

    def subset(self, index: np.ndarray) -> TopScores:
        """The scores of the probes at ``index`` (integer or bool), in that order."""
        return TopScores(self.top1[index], self.top1_label[index], self.top2[index], self.probe_labels[index],
                         self.enrolled[index], self.own[index])

    @staticmethod
    def concat(parts: Sequence[TopScores]) -> TopScores:
        """Probes of several score sets, one after the other."""
        return TopScores(*(np.concatenate([getattr(p, f) for p in parts])
                           for f in ("top1", "top1_label", "top2", "probe_labels", "enrolled", "own")))


def person_similarities(gallery: np.ndarray, gallery_labels: np.ndarray,
                        probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's similarity to each person, by the person's best template.

    Args:
        gallery: ``(T, D)`` unit-length templates.
        gallery_labels: ``(T,)`` person label per template.
        probes: ``(Q, D)`` unit-length embeddings.

    Returns:
        ``(Q, P)`` float32 similarities and the ``(P,)`` sorted person labels of its columns.
    """
    gallery_labels = np.asarray(gallery_labels)
    order = np.argsort(gallery_labels, kind="stable")
    people, starts = np.unique(gallery_labels[order], return_index=True)
    g = np.asarray(gallery, dtype=np.float32)[order]
    out = np.empty((len(probes), len(people)), dtype=np.float32)
    for s in range(0, len(probes), _BLOCK):
        sims = np.asarray(probes[s : s + _BLOCK], dtype=np.float32) @ g.T
        out[s : s + _BLOCK] = np.maximum.reduceat(sims, starts, axis=1) if len(people) else sims[:, :0]
    return out, people


def as_norm(person_sims: np.ndarray, probe_cohort: np.ndarray, person_cohort: np.ndarray, k: int = 50) -> np.ndarray:
    """Adaptive symmetric score normalisation (AS-norm) of a probe-by-person score matrix.

    Each score is standardised twice, by the mean and spread of the probe's ``k`` highest
    similarities to a cohort of faces nobody enrolled, and by the same for the person,
    and the two are averaged: a probe or a person that resembles many faces is discounted.

    Args:
        person_sims: ``(Q, P)`` raw similarities.
        probe_cohort: ``(Q, C)`` similarities of each probe to the cohort.
        person_cohort: ``(P, C)`` similarities of each person's template to the cohort.
        k: how many of the highest cohort similarities to use.
    """
    def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = np.sort(x, axis=1)[:, -k:]
        return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-6)

    mq, sq = stats(probe_cohort)
    mp, sp = stats(person_cohort)
    return 0.5 * ((person_sims - mq[:, None]) / sq[:, None] + (person_sims - mp[None]) / sp[None])


def top_scores_from_matrix(person_sims: np.ndarray, people: np.ndarray, probe_labels: np.ndarray) -> TopScores:
    """Top-1/top-2 people from a ``(Q, P)`` probe-by-person score matrix (columns = ``people``).

    The matrix may hold raw similarities or normalised scores; the result is in its units.
    """
    probe_labels = np.asarray(probe_labels)
    q, p = person_sims.shape
    enrolled = np.isin(probe_labels, people)
    own = np.full(q, np.nan, dtype=np.float64)
    if p == 0:
        neg = np.full(q, -np.inf)
        return TopScores(neg, np.full(q, -1, dtype=np.int64), neg.copy(), probe_labels, enrolled, own)
    rows = np.arange(q)
    i1 = np.argmax(person_sims, axis=1)
    top1 = person_sims[rows, i1].astype(np.float64)
    if p >= 2:
        masked = person_sims.copy()
        masked[rows, i1] = -np.inf
        top2 = masked.max(axis=1).astype(np.float64)
    else:
        top2 = np.full(q, -np.inf)
    col = np.searchsorted(people, probe_labels[enrolled])
    own[enrolled] = person_sims[rows[enrolled], col]
    return TopScores(top1, people[i1], top2, probe_labels, enrolled, own)


def top_scores(gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray,
               probe_labels: np.ndarray) -> TopScores:
    """Top-1/top-2 people of every probe by exact search over all templates.

    Args:
        gallery: ``(T, D)`` unit-length templates.
        gallery_labels: ``(T,)`` person label per template (integers).
        probes: ``(Q, D)`` unit-length embeddings.
        probe_labels: ``(Q,)`` label per probe; a label not in ``gallery_labels`` is a stranger.
    """
    sims, people = person_similarities(gallery, gallery_labels, probes)
    return top_scores_from_matrix(sims, people, probe_labels)


# ---------------------------------------------------------------------- rates


@dataclass(frozen=True)
class OpenSetRates:
    """Open-set figures at one threshold and margin.

    Attributes:
        threshold: the similarity the best person must reach.
        margin: the gap to the runner-up the best person must have (0 = off).
        fpir: share of strangers given a name (NaN without strangers).
        fnir: share of enrolled probes not given their own name (NaN without enrolled probes).
        wrong_name: share of enrolled probes given another person's name.
        correct: share of enrolled probes given their own name (``1 - fnir``).
        ambiguous: share of all probes that clear the threshold but not the margin.
        strangers: number of stranger probes.
        enrolled: number of enrolled probes.
    """

    threshold: float
    margin: float
    fpir: float
    fnir: float
    wrong_name: float
    correct: float
    ambiguous: float
    strangers: int
    enrolled: int


def named(scores: TopScores, threshold: float, margin: float = 0.0) -> np.ndarray:
    """``(Q,)`` bool: the probe gets its best person's name (as :func:`faceapp.recognise.match.decide`)."""
    return (scores.top1 >= threshold) & clears_margin(scores.gap, margin)


def _share(mask: np.ndarray, of: np.ndarray) -> float:
    n = int(of.sum())
    return float((mask & of).sum() / n) if n else float("nan")


def rates(scores: TopScores, threshold: float, margin: float = 0.0) -> OpenSetRates:
    """FPIR, FNIR and wrong-name rate at ``threshold`` and ``margin``."""
    is_named = named(scores, threshold, margin)
    right = scores.top1_label == scores.probe_labels
    enrolled, strangers = scores.enrolled, ~scores.enrolled
    correct = _share(is_named & right, enrolled)
    return OpenSetRates(
        threshold=float(threshold), margin=float(margin),
        fpir=_share(is_named, strangers),
        fnir=1.0 - correct if not math.isnan(correct) else float("nan"),
        wrong_name=_share(is_named & ~right, enrolled),
        correct=correct,
        ambiguous=float(((scores.top1 >= threshold) & ~is_named).mean()) if len(scores) else float("nan"),
        strangers=int(strangers.sum()), enrolled=int(enrolled.sum()),
    )


@dataclass(frozen=True)
class Misses:
    """Why enrolled probes did not get their own name, as shares of the enrolled probes.

    The four shares add up to the FNIR; they say which lever would help: a lower
    threshold (``below_threshold``), a smaller margin (``ambiguous``) or a better embedder
    or enrolment photo (``not_first``, ``wrong_name``).

    Attributes:
        below_threshold: their own person is the most similar but under the threshold.
        ambiguous: their own person is the most similar and reaches the threshold, but the
            runner-up is within the margin.
        not_first: another person is the most similar, and is not named.
        wrong_name: another person is the most similar, and is named.
    """

    below_threshold: float
    ambiguous: float
    not_first: float
    wrong_name: float


def misses(scores: TopScores, threshold: float, margin: float = 0.0) -> Misses:
    """The enrolled probes not named as themselves at ``threshold`` and ``margin``, by cause."""
    enrolled = scores.enrolled
    first = scores.top1_label == scores.probe_labels
    above = scores.top1 >= threshold
    is_named = named(scores, threshold, margin)
    return Misses(
        below_threshold=_share(first & ~above, enrolled),
        ambiguous=_share(first & above & ~is_named, enrolled),
        not_first=_share(~first & ~is_named, enrolled),
        wrong_name=_share(~first & is_named, enrolled),
    )


@dataclass(frozen=True)
class DetCurve:
    """FPIR, FNIR and wrong-name rate across thresholds at one margin (NIST 1:N DET style).

    Attributes:
        thresholds: ``(K,)`` ascending thresholds.
        fpir: ``(K,)`` share of strangers named at each threshold.
        fnir: ``(K,)`` share of enrolled probes not named as themselves.
        wrong_name: ``(K,)`` share of enrolled probes named as someone else.
        margin: the margin used throughout.
        lookalikes: ``(K,)`` share of look-alike probes named (``None`` without them).
    """

    thresholds: np.ndarray
    fpir: np.ndarray
    fnir: np.ndarray
    wrong_name: np.ndarray
    margin: float
    lookalikes: np.ndarray | None = None

    def rows(self) -> list[dict[str, float]]:
        """One JSON-ready dict per threshold (with ``lookalikes`` when the curve has them)."""
        out = [{"threshold": float(t), "fpir": float(a), "fnir": float(b), "wrong_name": float(c)}
               for t, a, b, c in zip(self.thresholds, self.fpir, self.fnir, self.wrong_name)]
        if self.lookalikes is not None:
            for row, share in zip(out, self.lookalikes):
                row["lookalikes"] = float(share)
        return out


def det_curve(scores: TopScores, thresholds: np.ndarray | None = None, margin: float = 0.0,
              lookalikes: TopScores | None = None) -> DetCurve:
    """FPIR/FNIR/wrong-name rate at each threshold.

    Args:
        scores: the probes' top scores.
        thresholds: thresholds to evaluate; by default every distinct top-1 score (the
            full curve) plus the ends.
        margin: the runner-up margin applied at every threshold.
        lookalikes: top scores of look-alike probes (none enrolled): their share named
            at each threshold is the curve's ``lookalikes``.
    """
    finite = scores.top1[np.isfinite(scores.top1)]
    if thresholds is None:
        thresholds = np.unique(np.concatenate([finite, [-1.0, 1.0 + 1e-6]]))
    thresholds = np.sort(np.asarray(thresholds, dtype=np.float64))
    ok = clears_margin(scores.gap, margin)
    right = scores.top1_label == scores.probe_labels
    enrolled = scores.enrolled
    n_enr, n_str = int(enrolled.sum()), int((~enrolled).sum())

    def named_at_or_above(values: np.ndarray) -> np.ndarray:
        # How many of ``values`` are >= each threshold.
        v = np.sort(values)
        return len(v) - np.searchsorted(v, thresholds, side="left")

    with np.errstate(invalid="ignore", divide="ignore"):
        fpir = named_at_or_above(scores.top1[ok & ~enrolled]) / n_str if n_str else np.full(len(thresholds), np.nan)
        good = named_at_or_above(scores.top1[ok & enrolled & right])
        bad = named_at_or_above(scores.top1[ok & enrolled & ~right])
        fnir = 1.0 - good / n_enr if n_enr else np.full(len(thresholds), np.nan)
        wrong = bad / n_enr if n_enr else np.full(len(thresholds), np.nan)
    look = None
    if lookalikes is not None and len(lookalikes):
        look = named_at_or_above(lookalikes.top1[clears_margin(lookalikes.gap, margin)]) / len(lookalikes)
    return DetCurve(thresholds, np.asarray(fpir, float), np.asarray(fnir, float), np.asarray(wrong, float), float(margin),
                    None if look is None else np.asarray(look, float))


def threshold_for_fpir(scores: TopScores, target_fpir: float, margin: float = 0.0) -> float:
    """The smallest threshold at which at most ``target_fpir`` of the strangers get a name.

    Raises:
        ValueError: there are no stranger probes to measure FPIR on.
    """
    strangers = ~scores.enrolled
    if not strangers.any():
        raise ValueError("no stranger probes: FPIR cannot be measured")
    eligible = scores.top1[strangers & clears_margin(scores.gap, margin)]
    eligible = np.sort(eligible[np.isfinite(eligible)])[::-1]
    allowed = int(math.floor(target_fpir * int(strangers.sum()) + 1e-9))
    if allowed >= len(eligible):
        return -1.0  # the margin alone keeps enough strangers unnamed
    return float(np.nextafter(eligible[allowed], np.inf))


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold and margin chosen for a target FPIR, and the figures there.

    Attributes:
        target_fpir: the share of strangers allowed a name.
        rates: the measured figures at the chosen threshold and margin.
        lookalike_target: the share of look-alikes allowed a name (``None``: margin not tuned).
        lookalikes_named: the measured share of look-alikes named (``None`` without look-alikes).
        resolved: at least 3 strangers are expected above the threshold at the target, so
            the tail is measured rather than bounded by the number of strangers.
    """

    target_fpir: float
    rates: OpenSetRates
    lookalike_target: float | None = None
    lookalikes_named: float | None = None
    resolved: bool = True

    @property
    def threshold(self) -> float:
        return self.rates.threshold

    @property
    def margin(self) -> float:
        return self.rates.margin


def operating_point(scores: TopScores, target_fpir: float, *, lookalikes: TopScores | None = None,
                    lookalike_target: float = 0.1, margins: Sequence[float] = (),
                    min_threshold: float = -1.0) -> OperatingPoint:
    """The threshold and margin with the lowest FNIR that keep strangers and look-alikes out.

    For each candidate margin, the threshold is the smallest at which at most
    ``target_fpir`` of the strangers in ``scores`` and at most ``lookalike_target`` of the
    ``lookalikes`` get a name, and at least ``min_threshold``; the margin whose point has
    the lowest FNIR wins (ties: the smaller margin). A margin names nobody whose runner-up
    is close, so it can let the threshold come down; ``min_threshold`` is what the
    threshold must hold on its own, where no runner-up helps (a gallery of one person).

    Args:
        scores: top scores of the tuning probes (enrolled and strangers).
        target_fpir: the share of strangers allowed a name.
        lookalikes: top scores of look-alike probes (none of them enrolled).
        lookalike_target: the share of look-alikes allowed a name.
        margins: candidate margins besides 0.
        min_threshold: the lowest threshold allowed.
    """
    best: tuple[OpenSetRates, float | None] | None = None
    for m in sorted({0.0, *(float(x) for x in margins)}):
        t = max(threshold_for_fpir(scores, target_fpir, m), min_threshold)
        if lookalikes is not None and len(lookalikes):
            t = max(t, threshold_for_fpir(lookalikes, lookalike_target, m))
        r = rates(scores, t, m)
        if best is None or r.fnir < best[0].fnir - 1e-12:
            best = (r, None if lookalikes is None or not len(lookalikes) else rates(lookalikes, t, m).fpir)
    assert best is not None
    n_str = int((~scores.enrolled).sum())
    return OperatingPoint(target_fpir=float(target_fpir), rates=best[0],
                          lookalike_target=None if lookalikes is None else float(lookalike_target),
                          lookalikes_named=best[1], resolved=n_str * target_fpir >= 3)


# ---------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Interval:
    """A figure with its bootstrap confidence interval.

    Attributes:
        estimate: the figure on the full set.
        low: lower bound of the interval.
        high: upper bound of the interval.
        level: the interval's coverage, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    level: float


def identity_groups(labels: np.ndarray) -> list[np.ndarray]:
    """Probe indices grouped by label, one array per identity."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    _, starts = np.unique(labels[order], return_index=True)
    return np.split(order, starts[1:]) if len(labels) else []


def bootstrap(scores: TopScores, statistic: Callable[[TopScores], Sequence[float]], *,
              n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> list[Interval]:
    """Percentile confidence intervals by resampling identities with replacement.

    Enrolled identities and strangers are resampled separately, so every resample keeps
    the original number of each.

    Args:
        scores: the probes' top scores.
        statistic: figures computed from a set of scores (e.g. FPIR and FNIR).
        n_boot: number of resamples.
        level: coverage of the intervals.
        seed: random seed.

    Returns:
        One :class:`Interval` per figure ``statistic`` returns.
    """
    rng = np.random.default_rng(seed)
    groups = identity_groups(scores.probe_labels)
    enr = [g for g in groups if scores.enrolled[g[0]]]
    strg = [g for g in groups if not scores.enrolled[g[0]]]
    estimate = [float(v) for v in statistic(scores)]
    draws = np.empty((n_boot, len(estimate)))
    for b in range(n_boot):
        pick = [enr[i] for i in rng.integers(0, len(enr), len(enr))] if enr else []
        pick += [strg[i] for i in rng.integers(0, len(strg), len(strg))] if strg else []
        idx = np.concatenate(pick) if pick else np.zeros(0, dtype=np.int64)
        draws[b] = [float(v) for v in statistic(scores.subset(idx))]
    a = (1.0 - level) / 2.0
    lo = np.nanquantile(draws, a, axis=0)
    hi = np.nanquantile(draws, 1.0 - a, axis=0)
    return [Interval(e, float(x), float(y), level) for e, x, y in zip(estimate, lo, hi)]
