"""Choosing a fused embedder's weights on labelled photos.

A fused vector is ``[sqrt(w_1) e_1, ..., sqrt(w_k) e_k]`` (unit vectors ``e_i`` of each
network, weights summing to 1), so its cosine is ``sum_i w_i cos_i``. Embeddings made by
one fused model therefore hold every network's own unit vector: :func:`reweight` recovers
them and weights them anew, without embedding a photo again. :func:`weight_sweep` scores
candidate weights the way users meet them: one enrolment photo per person, the threshold
at which ``target_fpir`` of the strangers get a name, and the share of other photos of
enrolled people then named correctly. Sweep on the ``tune`` half; report on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceapp.measure.evaluate import FaceSet, enrolment_split, select
from faceapp.measure.openset import rates, threshold_for_fpir, top_scores


def reweight(embeddings: np.ndarray, dims: Sequence[int], old: Sequence[float], new: Sequence[float]) -> np.ndarray:
    """Fused embeddings made with weights ``old`` as if made with weights ``new``.

    Args:
        embeddings: ``(N, sum(dims))`` fused unit vectors.
        dims: each network's embedding size, in order.
        old: the weights they were made with (summing to 1).
        new: the weights wanted (normalised here).

    Returns:
        ``(N, sum(dims))`` float32 unit vectors.
    """
    if len(dims) != len(old) or len(dims) != len(new) or sum(dims) != embeddings.shape[1]:
        raise ValueError("dims, old and new weights must match the networks of the embeddings")
    total = float(sum(new))
    edges = np.cumsum([0, *dims])
    parts = [embeddings[:, a:b] * np.sqrt(w / total) / np.sqrt(o) for a, b, o, w in zip(edges[:-1], edges[1:], old, new)]
    y = np.concatenate(parts, axis=1).astype(np.float32)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class WeightScore:
    """One candidate weighting and how it does.

    Attributes:
        weights: the networks' weights (summing to 1).
        threshold: the threshold at which ``target_fpir`` of the strangers get a name.
        correct: share of other photos of enrolled people named correctly there.
        wrong_name: share of them given another enrolled person's name.
    """

    weights: tuple[float, ...]
    threshold: float
    correct: float
    wrong_name: float


def weight_sweep(people: FaceSet, strangers: FaceSet, dims: Sequence[int], made_with: Sequence[float], *,
                 half: str = "tune", target_fpir: float = 0.01,
                 grid: Sequence[float] = tuple(np.round(np.arange(0.0, 1.0001, 0.05), 2))) -> list[WeightScore]:
    """Score two-network weightings ``(w, 1 - w)`` for ``w`` in ``grid`` on one half of the identities.

    Args:
        people: fused embeddings of people with several photos each.
        strangers: fused embeddings of people who are not enrolled.
        dims: the two networks' embedding sizes.
        made_with: the weights the embeddings were made with.
        half: ``"tune"``, ``"report"`` or ``"all"``.
        target_fpir: share of strangers allowed a name.
        grid: first network's candidate weights.

    Raises:
        ValueError: not two networks, or no strangers in the half.
    """
    if len(dims) != 2:
        raise ValueError("the sweep weighs two networks")
    p, s = select(people, half), select(strangers, half)
    first = enrolment_split(p.labels, 1)
    offset = int(p.labels.max()) + 1 if len(p.labels) else 0
    out = []
    for w in grid:
        new = (float(w), 1.0 - float(w))
        pe = reweight(p.embeddings, dims, made_with, new)
        se = reweight(s.embeddings, dims, made_with, new)
        probes = np.concatenate([pe[~first], se])
        labels = np.concatenate([p.labels[~first], s.labels + offset])
        scores = top_scores(pe[first], p.labels[first], probes, labels)
        t = threshold_for_fpir(scores, target_fpir)
        r = rates(scores, t)
        out.append(WeightScore(new, t, r.correct, r.wrong_name))
    return out


def best(scores: Sequence[WeightScore]) -> WeightScore:
    """The weighting naming the most enrolled probes correctly (ties: the most even weights)."""
    return max(scores, key=lambda x: (round(x.correct, 9), -abs(x.weights[0] - 0.5)))
