"""Sample quality: the gates a face must pass to be a good template, and its pose.

Tiny, blurred, badly lit or turned-away crops are what make a gallery give confident false
matches. :class:`QualityGates` holds the thresholds; guided capture
(:mod:`faceapp.recognise.guide`) takes a live sample only when it passes them,
:func:`assess_sample` applies the same gates to stored samples so that a library can flag the
low-quality ones, and :func:`low_quality` counts them over a batch (an import, photos added to a
person). Pure functions over :class:`~faceapp.types.Quality` values (or the dict the gallery and
the unknown-faces inbox store).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from faceapp.types import Quality


@dataclass(frozen=True)
class QualityGates:
    """Thresholds a sample must pass."""

    min_face_size: float = 40.0  # inter-ocular distance, pixels
    min_sharpness: float = 60.0  # variance of the Laplacian of the aligned crop
    max_abs_yaw: float = 35.0  # degrees
    max_abs_roll: float = 20.0
    min_brightness: float = 50.0
    max_brightness: float = 220.0
    min_change: float = 0.02  # 1 - cosine to every sample so far: skip near-duplicates


# Pose targets: (label, yaw range in degrees, instruction). Yaw is positive when the face
# turns towards the image's right, which on an unmirrored camera is the person's own left.
POSES = [
    ("frontal", (-10.0, 10.0), "look straight at the camera"),
    ("left", (8.0, 35.0), "turn your head slightly to your left"),
    ("right", (-35.0, -8.0), "turn your head slightly to your right"),
]


@dataclass(frozen=True)
class SampleAssessment:
    """Quality badges of one face sample and what is wrong with it.

    Attributes:
        badges: short descriptions for display: size, sharpness, pose.
        problems: why the sample is low quality (empty when it is fine).
        known: whether quality measures were available at all.
    """

    badges: tuple[str, ...]
    problems: tuple[str, ...]
    known: bool = True

    @property
    def low_quality(self) -> bool:
        return bool(self.problems)


def quality_problems(q: Quality, g: QualityGates) -> list[tuple[str, str, str]]:
    """Every gate ``q`` fails, most important first.

    Returns:
        ``(gate, problem, guidance)`` per failed gate: ``gate`` names the rule without this
        sample's measure (for counting samples by reason), ``problem`` says what is wrong with
        this sample, ``guidance`` tells the person in front of the camera what to do.
    """
    out = []
    if q.face_size < g.min_face_size:
        out.append((f"face under {g.min_face_size:.0f} px between the eyes",
                    f"small face ({q.face_size:.0f} px between the eyes, {g.min_face_size:.0f} needed)", "move closer"))
    if q.brightness < g.min_brightness:
        out.append(("too dark", "too dark", "too dark: add light in front of you"))
    if q.brightness > g.max_brightness:
        out.append(("too bright", "too bright", "too bright: avoid light behind or on the camera"))
    if abs(q.roll) > g.max_abs_roll:
        out.append((f"head tilted over {g.max_abs_roll:.0f}°", f"head tilted {abs(q.roll):.0f}°", "keep your head upright"))
    if abs(q.yaw) > g.max_abs_yaw:
        out.append((f"face turned over {g.max_abs_yaw:.0f}°", f"face turned {abs(q.yaw):.0f}°", "face the camera more"))
    if q.sharpness < g.min_sharpness:
        out.append(("blurred", "blurred", "hold still"))
    return out


def pose_label(yaw: float) -> str:
    """``"frontal"``, ``"left"`` or ``"right"`` (the person's own side), or ``"turned"``."""
    for label, (lo, hi), _ in POSES:
        if lo <= yaw <= hi:
            return label
    return "turned"


def as_quality(quality: Quality | Mapping[str, float] | None) -> Quality | None:
    """A :class:`Quality` from itself or from the dict the gallery and the inbox store.

    Returns:
        ``None`` when there is no quality or the dict lacks a measure.
    """
    if quality is None or isinstance(quality, Quality):
        return quality
    try:
        return Quality(**{f.name: float(quality[f.name]) for f in dataclasses.fields(Quality)})
    except (KeyError, TypeError, ValueError):
        return None


def assess_sample(quality: Quality | Mapping[str, float] | None, gates: QualityGates | None = None) -> SampleAssessment:
    """Badges and problems of a stored or live sample, by the enrolment quality gates.

    Args:
        quality: the sample's measures (a :class:`Quality` or the dict the gallery stores);
            ``None`` when the sample has none.
        gates: the thresholds (default :class:`QualityGates`).

    Returns:
        A :class:`SampleAssessment`; ``low_quality`` when any gate fails.
    """
    g = gates or QualityGates()
    q = as_quality(quality)
    if q is None:
        return SampleAssessment(badges=("quality not measured",), problems=(), known=False)
    sharp = "sharp" if q.sharpness >= g.min_sharpness else "blurred"
    badges = (f"{q.face_size:.0f} px", sharp, pose_label(q.yaw))
    return SampleAssessment(badges=badges, problems=tuple(p for _, p, _ in quality_problems(q, g)))


@dataclass(frozen=True)
class LowQuality:
    """How many samples of a batch (an import, photos added to a person) fail the quality
    gates, and why.

    Attributes:
        flagged: samples with at least one problem.
        total: samples looked at.
        reasons: ``(gate, samples failing it)``, most samples first (a sample may fail several).
    """

    flagged: int
    total: int
    reasons: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        if not self.flagged:
            return f"all {self.total} sample(s) pass the quality checks"
        why = ", ".join(f"{n} {gate}" for gate, n in self.reasons)
        return (f"{self.flagged} of {self.total} sample(s) flagged low quality ({why}); they may give confident "
                "wrong matches: review them in the People view (Select low-quality)")


def low_quality(qualities: Iterable[Quality | Mapping[str, float] | None], gates: QualityGates | None = None) -> LowQuality:
    """Count the samples of a batch that fail the quality gates, by gate.

    Args:
        qualities: each sample's measures (samples without any are counted, never flagged).
        gates: the thresholds (default :class:`QualityGates`).
    """
    g = gates or QualityGates()
    counts: Counter[str] = Counter()
    flagged = total = 0
    for quality in qualities:
        total += 1
        q = as_quality(quality)
        gates_failed = [gate for gate, _, _ in quality_problems(q, g)] if q is not None else []
        flagged += bool(gates_failed)
        counts.update(gates_failed)
    return LowQuality(flagged, total, tuple(counts.most_common()))


def sample_score(quality: Quality | Mapping[str, float] | None) -> float:
    """How good a sample is for a template, higher is better: passing the gates first, then
    a large, sharp, frontal face. Used to keep the best samples of an unknown-faces group."""
    q = as_quality(quality)
    if q is None:
        return -1e6
    return -1000.0 * len(assess_sample(q).problems) + min(q.face_size, 150.0) + min(q.sharpness, 500.0) / 10.0 - abs(q.yaw)
