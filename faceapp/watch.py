"""Headless device mode: watch a camera, stream, video or image folder and report who is seen.

:func:`watch` reads frames, follows faces across frames through :class:`LiveView` (the same
per-frame path as the GUI's live view: :mod:`faceapp.recognise.track`) and reports an
:class:`Event` whenever a track's shown decision first settles or changes: one event per
person arriving, not one per frame. A track's name is taken away as soon as the face no
longer supports it; it is reported again only when it settles again, so an event never
names a face that is not that person. An image folder is a set of unrelated stills, so
each of its faces is decided on its own and reported once. Video files play at their own
frame rate and folders at a chosen rate, unless ``fast`` (batch work, not real time). A
source that stops delivering frames is reported and reopened with backoff until it is
back or the run is stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.backoff import Backoff
from faceapp.errors import FaceappError
from faceapp.recognise.track import Tracker, TrackResult
from faceapp.types import Decision, Match
from faceapp.vision.capture import (
    CameraError,
    CameraLost,
    FrameSource,
    ImageFolderSource,
    VideoFileSource,
    open_source,
)

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
DEFAULT_RETENTION_DAYS = 30.0


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
        crop: the face's ``(112, 112, 3)`` RGB aligned crop (face events; never in
            :meth:`as_dict`), kept as a snapshot only when asked.
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
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (box rounded to 0.1 px, similarity to 4 digits)."""
        return {
            "event": self.kind, "time": round(self.time, 3), "track_id": self.track_id, "person": self.person,
            "decision": self.decision,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "box": None if self.box is None else [round(float(v), 1) for v in self.box],
            "source": self.source, **({"message": self.message} if self.message else {}),
        }


def _face_event(now: float, track_id: int, m: Match, box: Any, source: str, crop: np.ndarray | None) -> Event:
    return Event("face", now, track_id, m.person if m.decision is Decision.MATCH else None, m.decision.value,
                 m.similarity, tuple(float(v) for v in box), source, crop=crop)  # type: ignore[arg-type]


class TrackEvents:
    """When a followed face produces an event: when its track's shown decision first settles or changes.

    A track whose name was taken away (nothing shown) is forgotten, so that its name is
    reported again only once it has settled again. One per tracker (camera, video or
    stream); :meth:`reset` with the tracker.
    """

    def __init__(self) -> None:
        self._shown: dict[int, tuple[str, str | None]] = {}

    def reset(self) -> None:
        self._shown.clear()

    def update(self, results: Sequence[Any], now: float, source: str) -> list[Event]:
        """The events of one frame's :class:`~faceapp.recognise.track.TrackResult`\\s (other results are skipped).

        Args:
            results: the frame's results from :meth:`~faceapp.pipeline.Pipeline.track_frame`.
            now: Unix time of the frame.
            source: the source's name.
        """
        events = []
        for r in results:
            if not isinstance(r, TrackResult):
                continue
            if r.match is None:
                self._shown.pop(r.track_id, None)
                continue
            key = (r.match.decision.value, r.match.person)
            if self._shown.get(r.track_id) != key:
                self._shown[r.track_id] = key
                events.append(_face_event(now, r.track_id, r.match, r.box, source, r.face.crop))
        return events


class LiveView:
    """The live view's work on one frame, shared by :func:`watch` and the GUI: follow and decide
    the frame's faces (:meth:`~faceapp.pipeline.Pipeline.track_frame`) and turn what changed into
    events (:class:`TrackEvents`).

    One per camera, video or stream; :meth:`reset` when the source changes. The tracker is
    made on the first frame, so creating a live view loads no model.

    Args:
        pipeline: a :class:`~faceapp.pipeline.Pipeline`.
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self._tracker: Tracker | None = None
        self._events = TrackEvents()

    def reset(self) -> None:
        """Forget every track (a new source, or frames that were not tracked)."""
        if self._tracker is not None:
            self._tracker.reset()
        self._events.reset()

    def step(self, frame: np.ndarray, now: float, source: str) -> tuple[list[TrackResult], list[Event]]:
        """One frame's tracked faces and the events they produce.

        Args:
            frame: RGB uint8 ``(H, W, 3)``.
            now: Unix time of the frame.
            source: the source's name.
        """
        if self._tracker is None:
            self._tracker = self.pipeline.new_tracker()
        results = self.pipeline.track_frame(frame, self._tracker)
        return results, self._events.update(results, now, source)


class EventRecorder:
    """Keeps face events in a gallery's event history (``watch --record`` and the GUI's ``record_events``).

    Events wait in memory (the newest 10,000) while the database server is away and are
    written with the next event once it is back.

    Args:
        store: the gallery's store (a folder or a PostgreSQL database); a read-only one
            cannot keep events.
        retention_days: events older than this are deleted.
        device: this device's name (default: the host name).
        snapshots: keep each event's aligned face crop (JPEG) with it; biometric data,
            erased with the person like templates.

    Raises:
        FaceappError: the gallery keeps no events or is read-only, or ``retention_days`` is not positive.
    """

    def __init__(self, store: Any, retention_days: float = DEFAULT_RETENTION_DAYS, device: str | None = None,
                 snapshots: bool = False) -> None:
        import socket

        require_event_store(store)
        if getattr(store, "read_only", False):
            raise FaceappError(f"gallery {store.location} is read-only, so no event can be kept in it; "
                               "fix its permissions or record into another gallery")
        if retention_days <= 0:
            raise FaceappError(f"events must be kept for more than 0 days, not {retention_days}")
        self.store = store
        self.retention_days = retention_days
        self.device = device or socket.gethostname()
        self.snapshots = snapshots
        self._waiting: list[Any] = []

    def __call__(self, e: Event) -> None:
        """Keep one event (source events are not kept)."""
        from faceapp.errors import GalleryUnavailableError
        from faceapp.gallery.events import EventRecord
        from faceapp.vision.images import encode_crop

        if e.kind != "face":
            return
        snap = encode_crop(e.crop) if self.snapshots and e.crop is not None else None
        self._waiting.append(EventRecord(e.time, e.person, e.decision or "", e.similarity, e.track_id, e.box,
                                         e.source, self.device, snap or None))
        try:
            self.store.add_events(self._waiting, self.retention_days)
            self._waiting.clear()
        except GalleryUnavailableError:
            del self._waiting[:-10_000]  # keep the newest while the server is away


def keeps_events(store: Any) -> bool:
    """Whether a gallery store keeps an event history (folders and PostgreSQL galleries do)."""
    return hasattr(store, "add_events")


def require_event_store(store: Any) -> Any:
    """``store`` when it keeps an event history.

    Raises:
        FaceappError: it does not.
    """
    if not keeps_events(store):
        raise FaceappError("this gallery keeps no event history; use a gallery folder or a PostgreSQL gallery "
                           "(see 'Event history' in the README)")
    return store


def _reopen(source: FrameSource, stop: threading.Event, emit: Callable[[Event], None]) -> bool:
    """Reopen a lost source with backoff; ``False`` when stopped first."""
    backoff = Backoff(RECONNECT_BACKOFF_S)
    while not stop.is_set():
        if stop.wait(backoff.delay):
            return False
        try:
            source.reopen()
        except CameraError as exc:
            log.warning("%s; retrying in %.0f s", exc, backoff.failed())
            continue
        emit(Event("source_back", time.time(), source=source.name, message=f"{source.name} is back"))
        return True
    return False


def watch(pipeline: Any, spec: str | Path | int, emit: Callable[[Event], None], stop: threading.Event, *,
          max_frames: int | None = None, fast: bool = False, folder_fps: float | None = None) -> int:
    """Report the people seen in a source until it ends or ``stop`` is set.

    Args:
        pipeline: a :class:`~faceapp.pipeline.Pipeline` (models and gallery).
        spec: camera index, stream URL, video file or image folder.
        emit: called with each :class:`Event`.
        stop: set it (e.g. from a SIGTERM handler) to stop after the current frame.
        max_frames: stop after this many frames (``None``: run until the end or ``stop``).
        fast: read video files and folders as fast as frames are processed (batch work;
            not real time: a video's events then come faster than it plays).
        folder_fps: images a second from an image folder (unless ``fast``); ``None``: the
            ``folder_fps`` setting.

    Returns:
        Frames processed.

    Raises:
        CameraError: the source cannot be opened at the start.
    """
    settings = pipeline.settings
    source = open_source(spec, settings.camera_width, settings.camera_height, loop=False, realtime=not fast,
                         folder_fps=folder_fps or settings.folder_fps)
    if fast and isinstance(source, (VideoFileSource, ImageFolderSource)):
        log.warning("%s: every frame is read as fast as it is processed (fast mode); this is not real time", source.name)
    live = not isinstance(source, ImageFolderSource)
    view = LiveView(pipeline)
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
                view.reset()
                continue
            now = time.time()
            frames += 1
            if not live:  # unrelated stills: every face decided and reported on its own
                for fr in pipeline.match_image(frame).faces:
                    emit(_face_event(now, next_id, fr.match, fr.face.detection.box, source.name, fr.face.crop))
                    next_id += 1
                continue
            for event in view.step(frame, now, source.name)[1]:
                emit(event)
    finally:
        source.close()
    return frames
