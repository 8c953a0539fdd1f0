"""Guided capture from the live view: when a frame gives an enrolment sample, and what to say.

Pure logic over :class:`~faceapp.types.Face` values, so the GUI holds no rules of its own. A
live sample is taken only when exactly one face is present and it passes the quality gates
(:mod:`faceapp.recognise.quality`); the guide asks for a little pose variety (frontal, then
slightly left and right, in any order), skips near-duplicates, and leaves the one-source and
one-person rules to the :class:`~faceapp.recognise.samples.SampleSet` it fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceapp.recognise.quality import POSES, QualityGates, pose_label, quality_problems
from faceapp.recognise.samples import EnrolSample, Provenance, RefusedSample, SampleSet
from faceapp.types import Face


@dataclass(frozen=True)
class Verdict:
    """What happened to one frame during guided capture.

    Attributes:
        accepted: a sample was taken.
        message: what to tell the user.
        face: the face the verdict is about, if any.
        refused: when the face passed the quality gates but the enrolment rules refused it.
    """

    accepted: bool
    message: str
    face: Face | None = None
    refused: RefusedSample | None = None


@dataclass
class EnrolmentGuide:
    """Collects ``target`` live samples from successive frames into a :class:`SampleSet`.

    Call :meth:`offer` with every frame's faces while the user has asked for live capture.
    A pose the person cannot give (a stiff neck, a fixed camera) can be skipped
    (:meth:`skip_pose`): it is no longer asked for, and :meth:`coverage` says it is missing.
    """

    samples: SampleSet
    target: int = 5
    gates: QualityGates = field(default_factory=QualityGates)
    skipped: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return len(self.samples) >= self.target

    @property
    def progress(self) -> tuple[int, int]:
        """``(samples taken, samples wanted)``."""
        return len(self.samples), self.target

    def _covered(self) -> set[str]:
        return {pose_label(s.quality.yaw) for s in self.samples if s.quality is not None}

    def missing_poses(self) -> list[tuple[str, tuple[float, float], str]]:
        """The poses (of the first ``target``) that no sample covers yet and that were not
        skipped, in :data:`POSES` order."""
        have = self._covered()
        return [p for p in POSES[: self.target] if p[0] not in have and p[0] not in self.skipped]

    def skip_pose(self) -> str | None:
        """Stop asking for the pose asked for now; returns its label (``None``: none was asked for)."""
        missing = self.missing_poses()
        if not missing:
            return None
        self.skipped.add(missing[0][0])
        return missing[0][0]

    def coverage(self) -> str:
        """Which poses the samples cover and which are missing (skipped ones said so)."""
        have = self._covered()
        poses = [p[0] for p in POSES[: self.target]]
        got = [p for p in poses if p in have]
        lacking = [p + (" (skipped)" if p in self.skipped else "") for p in poses if p not in have]
        return f"poses: {', '.join(got) or 'none yet'}" + (f"; missing: {', '.join(lacking)}" if lacking else "")

    def wanted_pose(self) -> tuple[str, tuple[float, float], str]:
        """The next pose to ask for; any of the missing ones is accepted."""
        missing = self.missing_poses()
        return missing[0] if missing else POSES[len(self.samples) % len(POSES)]

    def check(self, face: Face) -> str | None:
        """The first quality problem of ``face`` as guidance, or ``None`` when it passes."""
        problems = quality_problems(face.quality, self.gates)
        return problems[0][2] if problems else None

    def offer(self, faces: list[Face], provenance: Provenance) -> Verdict:
        """One frame's embedded faces; a sample is taken when exactly one good face is in view.

        Args:
            faces: the frame's faces, embedded.
            provenance: where this frame came from.
        """
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
            return Verdict(False, f"{missing[0][2]} (or skip this pose)", face)
        sample = EnrolSample.from_face(face, provenance)
        if len(self.samples):
            sims = np.stack([s.embedding for s in self.samples]) @ sample.embedding
            if 1.0 - float(np.max(sims)) < self.gates.min_change:
                return Verdict(False, "move a little", face)
        refused = self.samples.add(sample)
        if refused is not None:
            return Verdict(False, refused.message, face, refused)
        left = self.missing_poses()
        nxt = "" if self.done else f"; next: {left[0][2]}" if left else "; keep moving a little"
        return Verdict(True, f"sample {len(self.samples)} of {self.target} taken ({label}){nxt}", face)
