"""Decisions over tracked faces: follow faces across video frames and decide per track.

Pure logic over :class:`~faceapp.types.Face` values; the embedder and the gallery decision
come in as functions, so the rules are testable without models (the pipeline wires them in
:meth:`faceapp.pipeline.Pipeline.track_frame`).

* **Following.** A face continues the track whose last box overlaps it most (IoU at least
  ``iou_min``). A face that continues no track is embedded and, if its embedding is close
  to a track lost in the last ``max_missed`` frames, resumes that track; otherwise it
  starts a new one. An embedding that disagrees with its track's (similarity below
  ``switch_similarity``) is held back, not fused: one such frame is a bad frame, but
  ``stable_evaluations`` of them in a row are someone else who stepped into the box, and
  they start a new track.
* **Fusing.** A track's embeddings are averaged with weights from their quality (face
  size, sharpness, head turn: :func:`quality_weight`), so a small, blurred or turned frame
  barely moves the track's identity.
* **Re-embedding.** A tracked face is embedded when its track is new, while its decision
  has not settled, when its quality beats the best quality embedded so far by
  ``quality_gain``, and every ``reembed_every`` frames; not every frame. All faces of a
  frame that need it are embedded in one call.
* **Showing.** A track shows a decision only once ``stable_evaluations`` evaluations in a
  row agree on it (same decision, same person), and keeps showing it until another
  decision has agreed as many times: one bad frame never shows a wrong name, and names
  do not flicker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceapp.types import Box, Decision, Face, Match, Quality

EmbedFn = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) RGB uint8 crops -> (N, D) unit-length
DecideFn = Callable[[np.ndarray], Sequence[Match]]  # (N, D) unit-length embeddings -> one Match each


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are followed and when a track's decision is shown.

    Attributes:
        iou_min: box overlap (intersection over union) for a face to continue a track.
        switch_similarity: a continuing face whose embedding is less similar than this to
            its track's fused embedding starts a new track.
        resume_similarity: an unmatched face at least this similar to a recently lost
            track resumes it.
        max_missed: frames a track survives without a face.
        reembed_every: frames between re-embeddings of a settled track.
        quality_gain: re-embed when a face's quality weight exceeds the best embedded so
            far by this factor.
        stable_evaluations: evaluations in a row that must agree before a track shows (or
            changes) its decision.
        history: embeddings kept per track for fusion (the newest).
    """

    iou_min: float = 0.3
    switch_similarity: float = 0.2
    resume_similarity: float = 0.5
    max_missed: int = 15
    reembed_every: int = 10
    quality_gain: float = 1.25
    stable_evaluations: int = 3
    history: int = 20

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_min <= 1.0:
            raise ValueError("iou_min must be in (0, 1]")
        if self.reembed_every < 1 or self.stable_evaluations < 1 or self.history < 1 or self.max_missed < 0:
            raise ValueError("reembed_every, stable_evaluations and history must be >= 1, max_missed >= 0")
        if self.quality_gain < 1.0:
            raise ValueError("quality_gain must be >= 1")


@dataclass(frozen=True)
class TrackResult:
    """One face in one frame, with its track's decision.

    Attributes:
        track_id: stable id of the face's track (unique within a :class:`Tracker`).
        box: pixel ``(x0, y0, x1, y1)`` in this frame.
        face: the face (its ``embedding`` is set only when it was embedded this frame).
        match: the track's shown decision, or ``None`` while it has not settled (show no
            name and no "unknown" yet).
        latest: the decision of the track's newest evaluation (for a details view).
        reembedded: the face was embedded in this frame.
        track_frames: frames the track has been seen in.
    """

    track_id: int
    box: Box
    face: Face
    match: Match | None
    latest: Match | None
    reembedded: bool
    track_frames: int


def quality_weight(q: Quality) -> float:
    """How much a face's embedding counts in its track, in ``(0, 1]``.

    The product of a size term (inter-ocular distance over 40 px), a sharpness term
    (Laplacian variance over 60) and a pose term (cosine of the head turn, squared), each
    capped at 1 and floored at 0.05; 40 px and 60 are the enrolment quality gates.
    """
    size = min(1.0, max(0.05, q.face_size / 40.0))
    sharp = min(1.0, max(0.05, q.sharpness / 60.0))
    pose = max(0.05, math.cos(math.radians(min(abs(q.yaw), 90.0))) ** 2)
    return size * sharp * pose


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two pixel boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _key(m: Match) -> tuple[Decision, str | None]:
    return m.decision, m.person


@dataclass
class _Track:
    id: int
    box: Box
    last_frame: int
    frames: int = 0
    embeddings: list[tuple[np.ndarray, float]] = field(default_factory=list)
    fused: np.ndarray | None = None
    last_embed_frame: int = -(10**9)
    best_weight: float = 0.0
    shown: Match | None = None
    latest: Match | None = None
    pending: tuple[Decision, str | None] | None = None
    agree: int = 0
    doubts: list[tuple[np.ndarray, float]] = field(default_factory=list)  # disagreeing embeddings in a row

    def add(self, emb: np.ndarray, weight: float, frame: int, keep: int) -> None:
        self.embeddings = (self.embeddings + [(emb, weight)])[-keep:]
        acc = np.sum([w * e for e, w in self.embeddings], axis=0)
        self.fused = (acc / max(float(np.linalg.norm(acc)), 1e-12)).astype(np.float32)
        self.last_embed_frame = frame
        self.best_weight = max(self.best_weight, weight)

    def evaluate(self, m: Match, needed: int) -> None:
        self.latest = m
        key = _key(m)
        if self.shown is not None and key == _key(self.shown):
            self.shown, self.pending, self.agree = m, None, 0  # the shown decision holds; refresh its figures
            return
        self.agree = self.agree + 1 if key == self.pending else 1
        self.pending = key
        if self.agree >= needed:
            self.shown, self.pending, self.agree = m, None, 0

    @property
    def settled(self) -> bool:
        return self.shown is not None and self.pending is None and not self.doubts


class Tracker:
    """Follows faces across the frames of one video or camera and decides per track.

    Args:
        config: tracking and stability settings.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._frame = 0
        self.embedded = 0  # faces embedded so far, over all frames

    @property
    def frame(self) -> int:
        """Frames seen so far."""
        return self._frame

    def reset(self) -> None:
        """Forget every track (e.g. when the video source changes)."""
        self._tracks.clear()
        self._frame = 0

    def _new_track(self, box: Box) -> _Track:
        t = _Track(id=self._next_id, box=box, last_frame=self._frame)
        self._tracks[t.id] = t
        self._next_id += 1
        return t

    def _associate(self, faces: Sequence[Face]) -> list[_Track | None]:
        live = [t for t in self._tracks.values() if t.last_frame >= self._frame - 1 - self.config.max_missed]
        pairs = sorted(((iou(f.detection.box, t.box), i, t.id) for i, f in enumerate(faces) for t in live),
                       reverse=True)
        owner: list[_Track | None] = [None] * len(faces)
        taken: set[int] = set()
        for overlap, i, tid in pairs:
            if overlap < self.config.iou_min:
                break
            if owner[i] is None and tid not in taken:
                owner[i] = self._tracks[tid]
                taken.add(tid)
        return owner

    def _wants_embedding(self, track: _Track | None, weight: float) -> bool:
        if track is None or track.fused is None or not track.settled:
            return True
        if weight > track.best_weight * self.config.quality_gain:
            return True
        return self._frame - track.last_embed_frame >= self.config.reembed_every

    def update(self, faces: Sequence[Face], embed: EmbedFn, decide: DecideFn) -> list[TrackResult]:
        """Advance one frame.

        Args:
            faces: this frame's faces (aligned, with quality; embeddings are not needed).
            embed: crops -> embeddings, called at most once per frame with every face that
                needs embedding.
            decide: fused embeddings -> decisions, called at most once per frame.

        Returns:
            One :class:`TrackResult` per face, in the order of ``faces``.
        """
        self._frame += 1
        cfg = self.config
        owner = self._associate(faces)
        weights = [quality_weight(f.quality) for f in faces]
        todo = [i for i, f in enumerate(faces) if self._wants_embedding(owner[i], weights[i])]
        out_faces = list(faces)
        evaluated: list[_Track] = []
        if todo:
            emb = np.asarray(embed(np.stack([faces[i].crop for i in todo])), dtype=np.float32)
            self.embedded += len(todo)
            claimed = {t.id for t in owner if t is not None}
            for row, i in enumerate(todo):
                e, track = emb[row], owner[i]
                out_faces[i] = Face(faces[i].detection, faces[i].crop, faces[i].quality, e)
                held: list[tuple[np.ndarray, float]] = []
                if track is not None and track.fused is not None and float(e @ track.fused) < cfg.switch_similarity:
                    track.doubts.append((e, weights[i]))
                    track.last_embed_frame = self._frame
                    if len(track.doubts) < cfg.stable_evaluations:
                        continue  # a bad frame, until proven otherwise
                    held, track.doubts = track.doubts[:-1], []
                    track = None  # someone else stepped into this box
                elif track is not None:
                    track.doubts = []
                if track is None:
                    track = self._resume(e, claimed) or self._new_track(faces[i].detection.box)
                    claimed.add(track.id)
                    owner[i] = track
                for old_e, old_w in held:
                    track.add(old_e, old_w, self._frame, cfg.history)
                track.add(e, weights[i], self._frame, cfg.history)
                evaluated.append(track)
            if evaluated:
                matches = decide(np.stack([t.fused for t in evaluated if t.fused is not None]))
                for track, m in zip(evaluated, matches):
                    track.evaluate(m, cfg.stable_evaluations)
        results = []
        embedded_now = set(todo)
        for i, f in enumerate(faces):
            track = owner[i]
            assert track is not None  # every face either continued a track or was embedded into one
            track.box, track.last_frame = f.detection.box, self._frame
            track.frames += 1
            results.append(TrackResult(track.id, f.detection.box, out_faces[i], track.shown, track.latest,
                                       i in embedded_now, track.frames))
        gone = [tid for tid, t in self._tracks.items() if t.last_frame < self._frame - cfg.max_missed]
        for tid in gone:
            del self._tracks[tid]
        return results

    def _resume(self, emb: np.ndarray, claimed: set[int]) -> _Track | None:
        best, best_sim = None, self.config.resume_similarity
        for t in self._tracks.values():
            if t.id in claimed or t.fused is None or t.last_frame >= self._frame:
                continue
            sim = float(emb @ t.fused)
            if sim >= best_sim:
                best, best_sim = t, sim
        return best
