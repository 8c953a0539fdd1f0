"""Decisions over tracked faces: follow faces across video frames and decide per track.

Pure logic over :class:`~faceapp.types.Face` values; the embedder and the gallery decision
come in as functions and the frame count is the tracker's own, so the rules are testable
with scripted frames and no models (the pipeline wires them in
:meth:`faceapp.pipeline.Pipeline.track_frame`).

* **Following.** A face continues the track whose predicted box (its last box moved on
  at its recent speed) overlaps it (IoU at least ``iou_min``) and whose last crop it
  resembles most: pairs are taken best first by overlap plus ``appearance_weight`` times
  the appearance likeness, so two faces that cross keep their tracks. A face that
  continues no track is embedded and, if its embedding is close to a track lost in the
  last ``max_missed`` frames, resumes that track; otherwise it starts a new one.
* **Noticing a change of face.** On every frame each continuing face is compared with
  its track's last frame, at almost no cost: a small grey thumbnail of the aligned crop
  (:func:`appearance`), the box size, the keypoints within the box and the detector's
  score. A jump in any of them (or a slow drift of the thumbnail since the last
  embedding) gets the face embedded in this frame.
* **A track never outlives its person.** A new embedding is compared with the track's
  ``recent`` newest embeddings; when it is like none of them (similarity below
  ``switch_similarity``) the face is someone else and starts a new track at once (or
  resumes a lost track it is like), so a name never passes from one person to the next.
* **Fusing.** A track's embeddings are averaged with weights from their quality (face
  size, sharpness, head turn: :func:`quality_weight`); only embeddings that agree with the
  newest one are kept, so the fused identity never mixes two people.
* **Re-embedding.** A tracked face is embedded when its track is new, while its decision
  has not settled, when the face changed (above), when its quality beats the best
  quality embedded so far by ``quality_gain``, and every ``reembed_every`` frames. All
  faces of a frame that need it are embedded in one call.
* **Slow to name, instant to un-name.** Each embedding is an evaluation: the gallery
  decides on the track's fused embedding and on the face's own. A name is shown once
  ``stable_evaluations`` evaluations in a row agree on it; it is taken away at the first
  evaluation that does not support it (the face's own or the fused embedding has
  another person first, or is below the threshold for the person), and showing a name
  again needs the same agreement as the first time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceapp.types import Box, Decision, Face, Match, Quality

EmbedFn = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) RGB uint8 crops -> (N, D) unit-length
DecideFn = Callable[[np.ndarray], Sequence[Match]]  # (N, D) unit-length embeddings -> one Match each

APPEARANCE_SIDE = 8  # the appearance thumbnail is APPEARANCE_SIDE x APPEARANCE_SIDE grey pixels
# Extra similarity above the match threshold before a track first shows a name. Frames of one
# appearance are near copies of each other, so agreeing evaluations are not independent
# evidence: a stranger just over the threshold in one frame is over it in the next ones too.
NAME_MARGIN = 0.05


@dataclass(frozen=True)
class TrackerConfig:
    """How faces are followed and when a track's decision is shown.

    Attributes:
        iou_min: box overlap (intersection over union) for a face to continue a track.
        switch_similarity: a new embedding less similar than this to every one of its
            track's ``recent`` embeddings is someone else: it starts a new track. The
            pipeline uses the model's 1:1 verification threshold.
        recent: the track's newest embeddings a new one is compared with.
        resume_similarity: an unmatched face at least this similar to a recently lost
            track resumes it.
        max_missed: frames a track survives without a face.
        reembed_every: frames between re-embeddings of a settled, unchanged face.
        quality_gain: re-embed when a face's quality weight exceeds the best embedded so
            far by this factor.
        stable_evaluations: evaluations in a row that must agree before a track shows a
            decision (a name is taken away at once, see the module docstring).
        history: embeddings kept per track for fusion (the newest that agree).
        appearance_change: the face is embedded when its appearance thumbnail's
            correlation with the previous frame's falls below this.
        appearance_drift: ... or with the thumbnail at its last embedding falls below this.
        size_jump: ... or its box side grows or shrinks by more than this factor in a frame.
        keypoint_jump: ... or a keypoint moves within the box by more than this share of
            the box width in a frame.
        score_drop: ... or the detector's score falls by more than this in a frame.
        appearance_weight: weight of appearance likeness beside box overlap when faces
            are given to tracks.
        threshold: the gallery's match threshold (``None``: not known, no extra bar).
        name_margin: a name is first shown only when the track's fused embedding is at
            least ``threshold + name_margin`` similar to the person (below that the
            evaluation counts as uncertain: :func:`below_name_bar`); once shown, the
            threshold alone keeps it.
    """

    iou_min: float = 0.3
    switch_similarity: float = 0.35
    recent: int = 3
    resume_similarity: float = 0.5
    max_missed: int = 15
    reembed_every: int = 10
    quality_gain: float = 1.25
    stable_evaluations: int = 3
    history: int = 20
    appearance_change: float = 0.88
    appearance_drift: float = 0.7
    size_jump: float = 1.3
    keypoint_jump: float = 0.12
    score_drop: float = 0.4
    appearance_weight: float = 0.5
    threshold: float | None = None
    name_margin: float = NAME_MARGIN

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_min <= 1.0:
            raise ValueError("iou_min must be in (0, 1]")
        if self.reembed_every < 1 or self.stable_evaluations < 1 or self.history < 1 or self.max_missed < 0:
            raise ValueError("reembed_every, stable_evaluations and history must be >= 1, max_missed >= 0")
        if self.recent < 1:
            raise ValueError("recent must be >= 1")
        if self.quality_gain < 1.0 or self.size_jump < 1.0:
            raise ValueError("quality_gain and size_jump must be >= 1")
        if self.name_margin < 0:
            raise ValueError("name_margin must be >= 0")

    @property
    def name_from(self) -> float | None:
        """The similarity a name needs to be shown for the first time (``None``: the gallery's decision alone)."""
        return None if self.threshold is None else self.threshold + self.name_margin


@dataclass(frozen=True)
class TrackResult:
    """One face in one frame, with its track's decision.

    Attributes:
        track_id: stable id of the face's track (unique within a :class:`Tracker`).
        box: pixel ``(x0, y0, x1, y1)`` in this frame.
        face: the face (its ``embedding`` is set only when it was embedded this frame).
        match: the track's shown decision, or ``None`` while nothing is shown (no name
            and no "unknown": the decision has not settled, or a name was just taken away).
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


def appearance(crop: np.ndarray) -> np.ndarray:
    """A small appearance descriptor of an aligned face crop: its grey thumbnail, zero-mean and unit-length.

    The crop is reduced to ``APPEARANCE_SIDE`` x ``APPEARANCE_SIDE`` pixels by area
    averaging (a few microseconds), then to grey; a flat crop gives zeros.

    Args:
        crop: ``(S, S, 3)`` RGB uint8 aligned crop.
    """
    import cv2

    small = cv2.resize(crop, (APPEARANCE_SIDE, APPEARANCE_SIDE), interpolation=cv2.INTER_AREA)
    grey = small.astype(np.float32).mean(axis=2)
    v = (grey - grey.mean()).ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-3 else np.zeros_like(v)


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two :func:`appearance` descriptors in ``[-1, 1]``; two flat crops are alike."""
    if not a.any() and not b.any():
        return 1.0
    return float(a @ b)


def supports(m: Match, person: str) -> bool:
    """Does a decision support showing ``person``: are they first and at or above the threshold?

    A match of them does; so does "ambiguous" with them first (they clear the threshold,
    only the runner-up is close); anything else (another person first, uncertain,
    unknown) does not.
    """
    if m.decision not in (Decision.MATCH, Decision.AMBIGUOUS) or not m.candidates:
        return False
    return m.candidates[0].name == person


def below_name_bar(m: Match, name_from: float | None) -> Match:
    """``m`` as a video may first show it: a match under ``name_from`` becomes "uncertain".

    A name that is not shown yet needs its similarity to reach ``name_from`` (the match
    threshold plus :data:`NAME_MARGIN`); a name already shown needs only the gallery's
    support (:func:`supports`). Every other decision, and any match when ``name_from`` is
    ``None``, is returned as it is.
    """
    if m.decision is not Decision.MATCH or name_from is None or (m.similarity is not None and m.similarity >= name_from):
        return m
    return dataclasses.replace(m, decision=Decision.UNCERTAIN, person=None)


def _key(m: Match) -> tuple[Decision, str | None]:
    return m.decision, m.person


@dataclass
class _Track:
    id: int
    box: Box
    last_frame: int
    look: np.ndarray  # appearance in the last frame
    look_embedded: np.ndarray  # appearance at the last embedding
    keypoints: np.ndarray  # keypoints in the last frame, relative to the box (box widths)
    score: float
    frames: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre movement per frame
    embeddings: list[tuple[np.ndarray, float]] = field(default_factory=list)
    fused: np.ndarray | None = None
    last_embed_frame: int = -(10**9)
    best_weight: float = 0.0
    shown: Match | None = None
    latest: Match | None = None
    pending: tuple[Decision, str | None] | None = None
    agree: int = 0

    def predicted(self, frame: int) -> Box:
        """The box moved on at the track's speed to ``frame``."""
        dt = frame - self.last_frame
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        return self.box[0] + dx, self.box[1] + dy, self.box[2] + dx, self.box[3] + dy

    def agrees(self, emb: np.ndarray, recent: int, similarity: float) -> bool:
        """Is ``emb`` like at least one of the track's ``recent`` newest embeddings?"""
        if not self.embeddings:
            return True
        return max(float(emb @ e) for e, _ in self.embeddings[-recent:]) >= similarity

    def add(self, emb: np.ndarray, weight: float, frame: int, keep: int, similarity: float) -> None:
        """Fuse ``emb`` with the kept embeddings that agree with it."""
        kept = [(e, w) for e, w in self.embeddings if float(emb @ e) >= similarity]
        self.embeddings = (kept + [(emb, weight)])[-keep:]
        acc = np.sum([w * e for e, w in self.embeddings], axis=0)
        self.fused = (acc / max(float(np.linalg.norm(acc)), 1e-12)).astype(np.float32)
        self.last_embed_frame = frame
        self.best_weight = max(self.best_weight, weight)

    def evaluate(self, fused: Match, own: Match, needed: int, name_from: float | None = None) -> None:
        """One evaluation: the decisions on the fused embedding and on the face's own.

        A name is evidence only when both say it: a fused match that the face's own
        embedding does not support is no evaluation for anyone (agreement starts again).
        A name that is not shown yet also needs the fused match to reach ``name_from``;
        under it the evaluation counts as uncertain (:func:`below_name_bar`).
        """
        agreed = fused if fused.decision is not Decision.MATCH or supports(own, fused.person or "") else None
        self.latest = fused if agreed is not None else own
        shown = self.shown
        if shown is not None and shown.decision is Decision.MATCH and shown.person is not None:
            if supports(fused, shown.person) and supports(own, shown.person):
                if agreed is not None and _key(agreed) == _key(shown):
                    self.shown = agreed  # the name holds; refresh its figures
                self.pending, self.agree = None, 0
                return
            self.shown = shown = None  # not supported: the name goes at once
        if agreed is not None:
            agreed = below_name_bar(agreed, name_from)
        if shown is not None and agreed is not None and _key(agreed) == _key(shown):
            self.shown, self.pending, self.agree = agreed, None, 0
            return
        if agreed is None:
            self.pending, self.agree = None, 0
            return
        key = _key(agreed)
        self.agree = self.agree + 1 if key == self.pending else 1
        self.pending = key
        if self.agree >= needed:
            self.shown, self.pending, self.agree = agreed, None, 0

    @property
    def settled(self) -> bool:
        return self.shown is not None and self.pending is None


def _relative_keypoints(face: Face) -> np.ndarray:
    x0, y0, x1, _ = face.detection.box
    return (np.asarray(face.detection.keypoints, np.float32) - (x0, y0)) / max(x1 - x0, 1.0)


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

    def _new_track(self, face: Face, look: np.ndarray) -> _Track:
        t = _Track(id=self._next_id, box=face.detection.box, last_frame=self._frame, look=look, look_embedded=look,
                   keypoints=_relative_keypoints(face), score=face.detection.score)
        self._tracks[t.id] = t
        self._next_id += 1
        return t

    def _associate(self, faces: Sequence[Face], looks: Sequence[np.ndarray]) -> list[_Track | None]:
        cfg = self.config
        live = [t for t in self._tracks.values() if t.last_frame >= self._frame - 1 - cfg.max_missed]
        pairs = []
        for t in live:
            box = t.predicted(self._frame)
            for i, f in enumerate(faces):
                overlap = iou(f.detection.box, box)
                if overlap >= cfg.iou_min:
                    pairs.append((overlap + cfg.appearance_weight * likeness(looks[i], t.look), i, t.id))
        owner: list[_Track | None] = [None] * len(faces)
        taken: set[int] = set()
        for _, i, tid in sorted(pairs, reverse=True):
            if owner[i] is None and tid not in taken:
                owner[i] = self._tracks[tid]
                taken.add(tid)
        return owner

    def _changed(self, track: _Track, face: Face, look: np.ndarray) -> bool:
        """Has the face in ``track``'s place changed since its last frame (or drifted since its last embedding)?"""
        cfg = self.config
        if likeness(look, track.look) < cfg.appearance_change or likeness(look, track.look_embedded) < cfg.appearance_drift:
            return True
        old = math.sqrt(max((track.box[2] - track.box[0]) * (track.box[3] - track.box[1]), 1e-6))
        new = math.sqrt(max(face.detection.area, 1e-6))
        if max(new / old, old / new) > cfg.size_jump:
            return True
        points = _relative_keypoints(face)
        if points.shape == track.keypoints.shape and float(np.abs(points - track.keypoints).max(initial=0.0)) > cfg.keypoint_jump:
            return True
        return track.score - face.detection.score > cfg.score_drop

    def _wants_embedding(self, track: _Track | None, weight: float, face: Face, look: np.ndarray) -> bool:
        if track is None or track.fused is None or not track.settled or self._changed(track, face, look):
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
            decide: embeddings -> decisions, called at most once per frame (with each
                evaluated track's fused embedding, then each evaluated face's own).

        Returns:
            One :class:`TrackResult` per face, in the order of ``faces``.
        """
        self._frame += 1
        cfg = self.config
        looks = [appearance(f.crop) for f in faces]
        owner = self._associate(faces, looks)
        weights = [quality_weight(f.quality) for f in faces]
        todo = [i for i, f in enumerate(faces) if self._wants_embedding(owner[i], weights[i], f, looks[i])]
        out_faces = list(faces)
        if todo:
            emb = np.asarray(embed(np.stack([faces[i].crop for i in todo])), dtype=np.float32)
            self.embedded += len(todo)
            claimed = {t.id for t in owner if t is not None}
            evaluated: list[tuple[_Track, np.ndarray]] = []
            for row, i in enumerate(todo):
                e, track = emb[row], owner[i]
                out_faces[i] = dataclasses.replace(faces[i], embedding=e)
                if track is not None and not track.agrees(e, cfg.recent, cfg.switch_similarity):
                    track = None  # someone else in this place: never their predecessor's track
                if track is None:
                    track = self._resume(e, claimed) or self._new_track(faces[i], looks[i])
                    claimed.add(track.id)
                    owner[i] = track
                track.add(e, weights[i], self._frame, cfg.history, cfg.switch_similarity)
                track.look_embedded = looks[i]
                evaluated.append((track, e))
            fused = [t.fused for t, _ in evaluated if t.fused is not None]
            matches = decide(np.stack(fused + [e for _, e in evaluated]))
            n = len(evaluated)
            for k, (track, _) in enumerate(evaluated):
                track.evaluate(matches[k], matches[n + k], cfg.stable_evaluations, cfg.name_from)
        results = []
        embedded_now = set(todo)
        for i, f in enumerate(faces):
            track = owner[i]
            assert track is not None  # every face either continued a track or was embedded into one
            self._moved(track, f, looks[i])
            results.append(TrackResult(track.id, f.detection.box, out_faces[i], track.shown, track.latest,
                                       i in embedded_now, track.frames))
        gone = [tid for tid, t in self._tracks.items() if t.last_frame < self._frame - cfg.max_missed]
        for tid in gone:
            del self._tracks[tid]
        return results

    def _moved(self, track: _Track, face: Face, look: np.ndarray) -> None:
        """Record ``face`` as the track's newest frame."""
        b = face.detection.box
        if track.frames:
            dt = max(1, self._frame - track.last_frame)
            vx = ((b[0] + b[2]) - (track.box[0] + track.box[2])) / 2 / dt
            vy = ((b[1] + b[3]) - (track.box[1] + track.box[3])) / 2 / dt
            track.velocity = (0.5 * (track.velocity[0] + vx), 0.5 * (track.velocity[1] + vy))
        track.box, track.last_frame, track.look = b, self._frame, look
        track.keypoints, track.score = _relative_keypoints(face), face.detection.score
        track.frames += 1

    def _resume(self, emb: np.ndarray, claimed: set[int]) -> _Track | None:
        best, best_sim = None, self.config.resume_similarity
        for t in self._tracks.values():
            if t.id in claimed or t.fused is None or t.last_frame >= self._frame:
                continue
            sim = float(emb @ t.fused)
            if sim >= best_sim:
                best, best_sim = t, sim
        return best
