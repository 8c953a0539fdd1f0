"""Headless device mode: watch a camera, stream, video or image folder and report who is seen.

:func:`watch` reads frames, follows faces across frames (:mod:`faceapp.track`) and reports
an :class:`Event` whenever a track's shown decision first settles or changes: one event per
person arriving, not one per frame. An image folder is a set of unrelated stills, so each
of its faces is decided on its own and reported once. A source that stops delivering
frames is reported and reopened with backoff until it is back or the run is stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .capture import CameraError, CameraLost, FrameSource, ImageFolderSource, VideoFileSource, open_source
from .types import Decision, Match

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Event:
    """Something ``watch`` reports.

    Attributes:
        kind: ``"face"`` (a track's decision settled or changed), ``"source_lost"`` or
            ``"source_back"``.
        time: Unix time of the frame.
        track_id: the face's track (``None`` for source events).
        person: the matched person's name, or ``None``.
        decision: ``"match"``, ``"ambiguous"``, ``"uncertain"`` or ``"unknown"`` (``None``
            for source events).
        similarity: the best person's cosine similarity, or ``None``.
        box: pixel ``(x0, y0, x1, y1)`` of the face, or ``None``.
        source: the source's name.
        message: for source events, what happened.
    """

    kind: str
    time: float
    track_id: int | None = None
    person: str | None = None
    decision: str | None = None
    similarity: float | None = None
    box: tuple[float, float, float, float] | None = None
    source: str = ""
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (box rounded to 0.1 px, similarity to 4 digits)."""
        return {
            "event": self.kind, "time": round(self.time, 3), "track_id": self.track_id, "person": self.person,
            "decision": self.decision,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "box": None if self.box is None else [round(float(v), 1) for v in self.box],
            "source": self.source, **({"message": self.message} if self.message else {}),
        }


def _face_event(now: float, track_id: int, m: Match, box: Any, source: str) -> Event:
    return Event("face", now, track_id, m.person if m.decision is Decision.MATCH else None, m.decision.value,
                 m.similarity, tuple(float(v) for v in box), source)  # type: ignore[arg-type]


def _reopen(source: FrameSource, stop: threading.Event, emit: Callable[[Event], None]) -> bool:
    """Reopen a lost source with backoff; ``False`` when stopped first."""
    attempt = 0
    while not stop.is_set():
        delay = RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]
        if stop.wait(delay):
            return False
        try:
            source.reopen()
        except CameraError as exc:
            attempt += 1
            log.warning("%s; retrying in %.0f s", exc, RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)])
            continue
        emit(Event("source_back", time.time(), source=source.name, message=f"{source.name} is back"))
        return True
    return False


def watch(pipeline: Any, spec: str | Path | int, emit: Callable[[Event], None], stop: threading.Event, *,
          max_frames: int | None = None) -> int:
    """Report the people seen in a source until it ends or ``stop`` is set.

    Args:
        pipeline: a :class:`~faceapp.pipeline.Pipeline` (models and gallery).
        spec: camera index, stream URL, video file or image folder.
        emit: called with each :class:`Event`.
        stop: set it (e.g. from a SIGTERM handler) to stop after the current frame.
        max_frames: stop after this many frames (``None``: run until the end or ``stop``).

    Returns:
        Frames processed.

    Raises:
        CameraError: the source cannot be opened at the start.
    """
    from .track import Tracker

    settings = pipeline.settings
    source = open_source(spec, settings.camera_width, settings.camera_height, loop=False)
    live = not isinstance(source, ImageFolderSource)
    tracker = Tracker()
    shown: dict[int, tuple[str, str | None]] = {}
    frames = 0
    next_id = 1
    try:
        while not stop.is_set() and (max_frames is None or frames < max_frames):
            try:
                frame = source.read()
            except CameraLost as exc:
                if isinstance(source, (VideoFileSource, ImageFolderSource)):
                    log.info("%s", exc)  # a file or folder has ended
                    break
                emit(Event("source_lost", time.time(), source=source.name, message=str(exc)))
                log.warning("%s", exc)
                if not _reopen(source, stop, emit):
                    break
                tracker.reset()
                shown.clear()
                continue
            now = time.time()
            frames += 1
            if not live:  # unrelated stills: every face decided and reported on its own
                for fr in pipeline.match_image(frame).faces:
                    emit(_face_event(now, next_id, fr.match, fr.face.detection.box, source.name))
                    next_id += 1
                continue
            for r in pipeline.track_frame(frame, tracker):
                if r.match is None:
                    continue
                key = (r.match.decision.value, r.match.person)
                if shown.get(r.track_id) != key:
                    shown[r.track_id] = key
                    emit(_face_event(now, r.track_id, r.match, r.box, source.name))
    finally:
        source.close()
    return frames
