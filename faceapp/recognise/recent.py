"""The live view's recent recognitions: the last decisions, for the user to confirm or correct.

One entry per decision a track settles on (and again when it changes to another answer),
not one per frame. Entries live in memory only, at most ``size`` of them, and are gone when
the app closes; confirming one ("yes, X": a new sample, only by the user's choice) or
correcting one ("not X": a negative sample) goes through the enrolment use case and the
gallery, and takes the entry off the list.

No Qt: the GUI lists :meth:`RecentRecognitions.entries` and calls :meth:`RecentRecognitions.remove`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count

from faceapp.recognise.track import TrackResult
from faceapp.types import Decision, Face, FaceResult


@dataclass(frozen=True)
class Recognition:
    """One decision of the live view.

    Attributes:
        id: unique within the list.
        time: Unix time of the decision.
        face: the face as seen (its aligned crop; its embedding when it was embedded then).
        decision: the decision shown.
        person: the name shown (a match), else ``None``.
        similarity: the best person's similarity, or ``None`` for an empty gallery.
        candidate: the best enrolled person, named or not (who the face came closest to).
        source: the live view's source name.
        track: the face's track, or ``None``.
    """

    id: int
    time: float
    face: Face = field(repr=False)
    decision: Decision
    person: str | None
    similarity: float | None
    candidate: str | None
    source: str
    track: int | None


class RecentRecognitions:
    """The last ``size`` decisions of the live view, newest first; safe to feed from the worker thread.

    Args:
        size: how many decisions are kept.
    """

    TRACKS_REMEMBERED = 1000

    def __init__(self, size: int = 50) -> None:
        if size < 1:
            raise ValueError("keep at least one recent recognition")
        self._entries: deque[Recognition] = deque(maxlen=size)
        self._shown: OrderedDict[int, tuple[Decision, str | None]] = OrderedDict()
        self._ids = count(1)
        self._lock = threading.Lock()

    def note(self, results: Sequence[FaceResult | TrackResult], *, source: str = "",
             now: float | None = None) -> list[Recognition]:
        """Take one frame's faces; a tracked face adds an entry when its track settles on a
        decision or changes it, an untracked face (a frame embedded for enrolment) adds none.

        Args:
            results: the frame's faces with their decisions.
            source: the live view's source name.
            now: Unix time (default now).

        Returns:
            The entries added.
        """
        t = time.time() if now is None else float(now)
        added = []
        with self._lock:
            for fr in results:
                m = fr.match
                if not isinstance(fr, TrackResult) or m is None:
                    continue
                key = (m.decision, m.person)
                if self._shown.get(fr.track_id) == key:
                    continue
                self._shown[fr.track_id] = key
                self._shown.move_to_end(fr.track_id)
                if len(self._shown) > self.TRACKS_REMEMBERED:
                    self._shown.popitem(last=False)
                best = m.candidates[0].name if m.candidates else None
                entry = Recognition(next(self._ids), t, fr.face, m.decision, m.person, m.similarity, best, source,
                                    fr.track_id)
                self._entries.appendleft(entry)
                added.append(entry)
        return added

    def entries(self) -> list[Recognition]:
        """The kept decisions, newest first."""
        with self._lock:
            return list(self._entries)

    def remove(self, entry_id: int) -> None:
        """Take an entry off the list (it was confirmed or corrected)."""
        with self._lock:
            kept = [e for e in self._entries if e.id != entry_id]
            self._entries.clear()
            self._entries.extend(kept)

    def new_source(self) -> None:
        """The live view's tracks start again: their ids are forgotten (the entries stay)."""
        with self._lock:
            self._shown.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
