"""Guided enrolment: which live-camera faces are good samples, and what to tell the user.

Pure logic over :class:`~faceapp.types.Face` values, so the GUI holds no rules of its own.
A sample is taken only when exactly one face is present and it passes the quality gates;
the guide asks for a little pose variety (frontal, then slightly left and right, in any
order). :func:`assess_sample` applies the same gates to stored samples, so that a
library can flag the low-quality ones (tiny, blurred or turned-away crops are what make a
gallery give confident false matches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from faceapp.types import Face, Quality


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


def _quality_problems(q: Quality, g: QualityGates) -> list[tuple[str, str]]:
    """Every failed gate as ``(problem, guidance)``, most important first."""
    out = []
    if q.face_size < g.min_face_size:
        out.append((f"small face ({q.face_size:.0f} px between the eyes, {g.min_face_size:.0f} needed)", "move closer"))
    if q.brightness < g.min_brightness:
        out.append(("too dark", "too dark: add light in front of you"))
    if q.brightness > g.max_brightness:
        out.append(("too bright", "too bright: avoid light behind or on the camera"))
    if abs(q.roll) > g.max_abs_roll:
        out.append((f"head tilted {abs(q.roll):.0f}°", "keep your head upright"))
    if abs(q.yaw) > g.max_abs_yaw:
        out.append((f"face turned {abs(q.yaw):.0f}°", "face the camera more"))
    if q.sharpness < g.min_sharpness:
        out.append(("blurred", "hold still"))
    return out


def pose_label(yaw: float) -> str:
    """``"frontal"``, ``"left"`` or ``"right"`` (the person's own side), or ``"turned"``."""
    for label, (lo, hi), _ in POSES:
        if lo <= yaw <= hi:
            return label
    return "turned"


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
    if quality is None:
        return SampleAssessment(badges=("quality not measured",), problems=(), known=False)
    if not isinstance(quality, Quality):
        try:
            quality = Quality(**{k: float(quality[k]) for k in ("face_size", "sharpness", "yaw", "roll", "brightness")})
        except (KeyError, TypeError, ValueError):
            return SampleAssessment(badges=("quality not measured",), problems=(), known=False)
    sharp = "sharp" if quality.sharpness >= g.min_sharpness else "blurred"
    badges = (f"{quality.face_size:.0f} px", sharp, pose_label(quality.yaw))
    return SampleAssessment(badges=badges, problems=tuple(p for p, _ in _quality_problems(quality, g)))


@dataclass(frozen=True)
class Verdict:
    """What happened to one frame during enrolment."""

    accepted: bool
    message: str
    face: Face | None = None


@dataclass
class EnrolmentGuide:
    """Collects ``target`` samples from successive frames.

    Call :meth:`offer` with every frame's faces; accepted faces are in :attr:`samples`.
    """

    target: int = 5
    gates: QualityGates = field(default_factory=QualityGates)
    samples: list[Face] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.samples) >= self.target

    @property
    def progress(self) -> tuple[int, int]:
        """``(samples taken, samples wanted)``."""
        return len(self.samples), self.target

    def missing_poses(self) -> list[tuple[str, tuple[float, float], str]]:
        """The poses (of the first ``target``) that no sample covers yet, in :data:`POSES` order."""
        have = {pose_label(f.quality.yaw) for f in self.samples}
        return [p for p in POSES[: self.target] if p[0] not in have]

    def wanted_pose(self) -> tuple[str, tuple[float, float], str]:
        """The next pose to ask for; any of the missing ones is accepted."""
        missing = self.missing_poses()
        return missing[0] if missing else POSES[len(self.samples) % len(POSES)]

    def discard(self, i: int) -> None:
        del self.samples[i]

    def check(self, face: Face) -> str | None:
        """The first quality problem of ``face`` as guidance, or ``None`` when it passes."""
        problems = _quality_problems(face.quality, self.gates)
        return problems[0][1] if problems else None

    def offer(self, faces: list[Face]) -> Verdict:
        if self.done:
            return Verdict(False, "all samples taken: save, or discard some to take more")
        if not faces:
            return Verdict(False, "no face in view")
        if len(faces) > 1:
            return Verdict(False, "only one person in view, please")
        face = faces[0]
        problem = self.check(face)
        if problem:
            return Verdict(False, problem, face)
        missing = self.missing_poses()
        label = pose_label(face.quality.yaw)
        if missing and label not in {m[0] for m in missing}:
            return Verdict(False, missing[0][2], face)
        if face.embedding is not None and self.samples:
            sims = [float(np.dot(face.embedding, s.embedding)) for s in self.samples if s.embedding is not None]
            if sims and 1.0 - max(sims) < self.gates.min_change:
                return Verdict(False, "move a little", face)
        self.samples.append(face)
        left = self.missing_poses()
        nxt = "" if self.done else f"; next: {left[0][2]}" if left else "; keep moving a little"
        return Verdict(True, f"sample {len(self.samples)} of {self.target} taken ({label}){nxt}", face)


def sample_score(quality: Quality | Mapping[str, float] | None) -> float:
    """How good a sample is for a template, higher is better: passing the gates first, then
    a large, sharp, frontal face. Used to keep the best samples of a group."""
    a = assess_sample(quality)
    if not a.known:
        return -1e6
    q = quality if isinstance(quality, Quality) else Quality(**{k: float(quality[k]) for k in  # type: ignore[index]
                                                                  ("face_size", "sharpness", "yaw", "roll", "brightness")})
    return -1000.0 * len(a.problems) + min(q.face_size, 150.0) + min(q.sharpness, 500.0) / 10.0 - abs(q.yaw)
