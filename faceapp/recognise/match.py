"""Pure decisions: template similarities + thresholds -> :class:`~faceapp.types.Match`.

No I/O, no models: everything here is a function of its arguments.

The open-set rule: a probe is named only when its best person clears ``match`` *and* beats
the second-best person by at least ``margin`` (otherwise it is ``ambiguous``: "looks like A
or B"). Below ``match`` it is ``uncertain`` inside the band and ``unknown`` under it. Only a
``match`` carries a name; the other decisions list their candidates. People the user said
the face is not ("this is not X": negative samples) are dropped first when the probe is
nearer to one of their negatives than to their templates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from faceapp.types import Candidate, Decision, Match


@dataclass(frozen=True)
class Thresholds:
    """Open-set decision thresholds on cosine similarity.

    Attributes:
        match: similarity at or above which the best person can be named.
        uncertain_band: similarities in ``[match - band, match)`` are uncertain.
        margin: the best person must beat the second-best by at least this much
            (similarity difference) to be named; ``0`` turns the rule off.
    """

    match: float
    uncertain_band: float = 0.0
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.match <= 1.0:
            raise ValueError(f"threshold must be in [-1, 1], got {self.match}")
        if self.uncertain_band < 0:
            raise ValueError("uncertain_band must be >= 0")
        if not 0.0 <= self.margin <= 2.0:
            raise ValueError(f"margin must be in [0, 2], got {self.margin}")

    @property
    def uncertain_from(self) -> float:
        return self.match - self.uncertain_band


def aggregate(hits: Iterable[tuple[int, str, float]], k: int) -> list[Candidate]:
    """Template hits -> people, each scored by their best template, best first.

    Args:
        hits: ``(person_id, name, similarity)`` per gallery template.
        k: how many people to keep.
    """
    best: dict[int, Candidate] = {}
    for pid, name, sim in hits:
        cur = best.get(pid)
        if cur is None or sim > cur.similarity:
            best[pid] = Candidate(person_id=pid, name=name, similarity=float(sim))
    return sorted(best.values(), key=lambda c: (-c.similarity, c.name))[:k]


def person_gap(candidates: list[Candidate]) -> float | None:
    """Similarity of the best person minus the second-best's; ``None`` with fewer than two."""
    if len(candidates) < 2:
        return None
    return candidates[0].similarity - candidates[1].similarity


ScoreT = TypeVar("ScoreT", float, np.ndarray)


def clears_margin(gap: ScoreT, margin: float) -> ScoreT:
    """Does the best person beat the runner-up by ``margin``? Works on floats and arrays.

    Args:
        gap: best minus second-best person similarity; ``inf`` when there is no runner-up.
        margin: the required gap; ``0`` turns the rule off.
    """
    if margin <= 0:
        return np.ones_like(gap, dtype=bool) if isinstance(gap, np.ndarray) else True  # type: ignore[return-value]
    return gap >= margin  # type: ignore[return-value]


def drop_rejected(candidates: list[Candidate], negatives: Mapping[int, float] | None) -> list[Candidate]:
    """Candidates without the people the probe is nearer to as a "this is not them" sample.

    Args:
        candidates: ranked people, best first.
        negatives: ``person_id -> best similarity of the probe to that person's negative
            samples`` (only people with negatives).
    """
    if not negatives:
        return candidates
    return [c for c in candidates if not negatives.get(c.person_id, -math.inf) > c.similarity]


def decide(candidates: list[Candidate], thresholds: Thresholds,
           negatives: Mapping[int, float] | None = None) -> Match:
    """The open-set decision for one probe from its ranked candidates (best person first).

    Args:
        candidates: ranked people, best first (see :func:`aggregate`).
        thresholds: the decision thresholds.
        negatives: per person, the probe's best similarity to the faces marked "this is
            not them"; a person the probe is nearer to through a negative than through
            their templates is dropped before deciding (:func:`drop_rejected`).
    """
    candidates = drop_rejected(candidates, negatives)
    if not candidates:
        return Match(decision=Decision.UNKNOWN, person=None, similarity=None, candidates=())
    top = candidates[0]
    if top.similarity >= thresholds.match:
        gap = person_gap(candidates)
        clear = clears_margin(math.inf if gap is None else gap, thresholds.margin)
        decision = Decision.MATCH if clear else Decision.AMBIGUOUS
    elif thresholds.uncertain_band > 0 and top.similarity >= thresholds.uncertain_from:
        decision = Decision.UNCERTAIN
    else:
        decision = Decision.UNKNOWN
    person = top.name if decision is Decision.MATCH else None
    return Match(decision=decision, person=person, similarity=top.similarity, candidates=tuple(candidates))


def same_person(similarity: float, threshold: float) -> bool:
    """1:1 verification decision."""
    return similarity >= threshold
