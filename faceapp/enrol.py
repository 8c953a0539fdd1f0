"""Guided enrolment: which live-camera faces are good samples, and what to tell the user.

Pure logic over :class:`~faceapp.types.Face` values, so the GUI holds no rules of its own.
A sample is taken only when exactly one face is present and it passes the quality gates;
the guide asks for a little pose variety (frontal, then slightly left and right).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .types import Face


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


# Pose targets, in order: (label, yaw range in degrees, instruction).
POSES = [
    ("frontal", (-10.0, 10.0), "look straight at the camera"),
    ("left", (-35.0, -8.0), "turn slightly left"),
    ("right", (8.0, 35.0), "turn slightly right"),
]


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

    def wanted_pose(self) -> tuple[str, tuple[float, float], str]:
        return POSES[len(self.samples) % len(POSES)]

    def discard(self, i: int) -> None:
        del self.samples[i]

    def check(self, face: Face) -> str | None:
        """The first quality problem of ``face`` as guidance, or ``None`` when it passes."""
        q, g = face.quality, self.gates
        if q.face_size < g.min_face_size:
            return "move closer"
        if q.brightness < g.min_brightness:
            return "too dark: add light in front of you"
        if q.brightness > g.max_brightness:
            return "too bright: avoid light behind or on the camera"
        if abs(q.roll) > g.max_abs_roll:
            return "keep your head upright"
        if abs(q.yaw) > g.max_abs_yaw:
            return "face the camera more"
        if q.sharpness < g.min_sharpness:
            return "hold still"
        return None

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
        label, (lo, hi), instruction = self.wanted_pose()
        if not lo <= face.quality.yaw <= hi:
            return Verdict(False, instruction, face)
        if face.embedding is not None and self.samples:
            sims = [float(np.dot(face.embedding, s.embedding)) for s in self.samples if s.embedding is not None]
            if sims and 1.0 - max(sims) < self.gates.min_change:
                return Verdict(False, "move a little", face)
        self.samples.append(face)
        nxt = "" if self.done else f"; next: {self.wanted_pose()[2]}"
        return Verdict(True, f"sample {len(self.samples)} of {self.target} taken ({label}){nxt}", face)
