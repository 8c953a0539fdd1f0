"""The unknown-faces inbox: faces the live view could not name, grouped by person.

Opt-in (``Settings.inbox``): the inbox holds biometric data, so it lives inside the
gallery folder (``inbox.sqlite3``), is created with file mode 0600, and keeps every face's
embedding and crop and every group's mean face encrypted (:mod:`faceapp.recognise.inbox_seal`:
a data key per group, wrapped by an inbox key kept off the gallery folder). Erasing a group
deletes its wrapped data key with its rows (crypto-shredding), SQLite's ``secure_delete``
zeroes the freed pages and the write-ahead log is truncated after every erase, so a
dismissed face is gone from the disk, not just from the list. Faces older than the retention
period are erased the same way.

Grouping is online clustering by embedding: a new face joins the group whose mean
embedding is most similar to it when that similarity clears ``join_threshold`` (the
caller passes the model's same-person threshold), else it starts a new group. Groups
follow the live view's tracks: the faces of one track join one group, a track that
bridges two groups merges them, and so does a group whose mean comes as close to another's
as a joining face must; a track the live view names takes its faces back out. Each group keeps
at most ``max_per_group`` samples, the best by :func:`faceapp.recognise.quality.sample_score`, and a
face nearly identical to the group's newest sample within ``min_interval`` seconds is not
stored again (a live view sees the same face many times a second).

No Qt: the GUI only lists groups and calls :meth:`UnknownInbox.enrol_group`,
:meth:`UnknownInbox.dismiss` and friends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.errors import GalleryError
from faceapp.gallery.keys import KeyStore
from faceapp.gallery.sqlite_store import open_private_db, truncate_wal
from faceapp.private import FILE_MODE, POSIX, make_private_dir
from faceapp.recognise.enrol import EnrolmentResult
from faceapp.recognise.inbox_seal import CENTROID, CROP, EMBEDDING, InboxSeal, erase_plain, transaction
from faceapp.recognise.quality import as_quality, assess_sample, sample_score
from faceapp.recognise.samples import EnrolSample, Provenance
from faceapp.recognise.track import TrackResult
from faceapp.types import Decision, FaceResult, Match

log = logging.getLogger(__name__)

INBOX_DB = "inbox.sqlite3"
DAY = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data_key BLOB NOT NULL,
    centroid BLOB NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    sightings INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    model_id TEXT NOT NULL,
    thumbnail BLOB,
    quality TEXT,
    score REAL NOT NULL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_group ON faces(group_id);
"""


@dataclass(frozen=True)
class InboxFace:
    """One stored sighting of an unknown face.

    Attributes:
        id: row id.
        group_id: the group it belongs to.
        embedding: ``(D,)`` float32 unit-length embedding.
        model_id: sha256 of the embedder that made it.
        thumbnail: JPEG of the aligned crop, or ``None``.
        quality: the quality measures, or ``None``.
        seen_at: Unix time.
    """

    id: int
    group_id: int
    embedding: np.ndarray
    model_id: str
    thumbnail: bytes | None
    quality: dict[str, float] | None
    seen_at: float


@dataclass(frozen=True)
class InboxGroup:
    """A cluster of unknown faces that look like one person.

    Attributes:
        id: group id.
        faces: stored samples.
        sightings: times the face was seen (stored or not).
        first_seen: Unix time.
        last_seen: Unix time.
        thumbnail: the best sample's JPEG crop, or ``None``.
    """

    id: int
    faces: int
    sightings: int
    first_seen: float
    last_seen: float
    thumbnail: bytes | None


@dataclass(frozen=True)
class Suggestion:
    """The enrolled person a group looks most like.

    Attributes:
        name: their name.
        similarity: the similarity of the group's mean face to them.
    """

    name: str
    similarity: float


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class UnknownInbox:
    """Unknown faces of the live view, grouped, in ``<gallery>/inbox.sqlite3``.

    Args:
        folder: the gallery folder.
        retention_days: faces older than this are erased (on open and while adding).
        join_threshold: cosine similarity to a group's mean at which a face joins it.
        max_per_group: samples kept per group (the best ones).
        min_interval: seconds during which a near-identical face is not stored again.
        keys: where this device keeps the inbox key (default: the keyring or the user's config folder).

    Raises:
        GalleryError: the inbox cannot be created or opened.
        GalleryKeyError: this device does not hold the inbox's key, or holds another one.
    """

    def __init__(self, folder: Path, *, retention_days: float = 30.0, join_threshold: float = 0.48,
                 max_per_group: int = 12, min_interval: float = 1.0, keys: KeyStore | None = None) -> None:
        if retention_days <= 0:
            raise GalleryError("the inbox retention must be at least one day")
        self.path = Path(folder).expanduser() / INBOX_DB
        self.retention_days = float(retention_days)
        self.join_threshold = float(join_threshold)
        self.max_per_group = int(max_per_group)
        self.min_interval = float(min_interval)
        self._lock = threading.Lock()
        self._last_purge = 0.0
        self._track_groups: dict[int, int] = {}  # live track -> the group its faces joined
        self._track_faces: dict[int, list[int]] = {}  # live track -> the faces it added
        self._named_tracks: set[int] = set()  # tracks the live view named: never added again
        try:
            make_private_dir(self.path.parent)
            if POSIX and self.path.exists():
                os.chmod(self.path, FILE_MODE)  # an older inbox file made with looser permissions
            self._db = open_private_db(self.path, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise GalleryError(f"the unknown-faces inbox {self.path} cannot be opened ({exc}); "
                               "check the gallery folder's permissions") from exc
        try:
            erase_plain(self._db, self.path)
            self._db.executescript(_SCHEMA)
            self._seal = InboxSeal.of(self._db, self.path, keys if keys is not None else KeyStore())
        except sqlite3.Error as exc:
            self._db.close()
            raise GalleryError(f"the unknown-faces inbox {self.path} cannot be opened ({exc}); "
                               "check the gallery folder's permissions") from exc
        except BaseException:
            self._db.close()
            raise
        self.purge()

    # ------------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with transaction(self._db) as db:
                    yield db
            except sqlite3.Error as exc:
                raise GalleryError(f"the unknown-faces inbox cannot be written ({exc})") from exc

    def _erase_log(self) -> None:
        """Move everything into the database file and empty the write-ahead log, so deleted
        rows (zeroed by secure_delete) leave no copy in the log."""
        with self._lock:
            truncate_wal(self._db, "the unknown-faces inbox")

    def _face(self, db: sqlite3.Connection, row: tuple[Any, ...]) -> InboxFace:
        i, g, e, m, t, q, s = row
        return InboxFace(int(i), int(g), self._vector(db, int(g), EMBEDDING, int(i), e), m,
                         self._seal.open(db, int(g), CROP, int(i), t), json.loads(q) if q else None, float(s))

    def _vector(self, db: sqlite3.Connection, gid: int, kind: str, row_id: int, blob: bytes) -> np.ndarray:
        """A sealed ``(D,)`` float32 vector (a face's embedding, a group's mean), opened."""
        return np.frombuffer(self._seal.open(db, gid, kind, row_id, blob) or b"", np.float32).copy()

    def _set_centroid(self, db: sqlite3.Connection, gid: int, centroid: np.ndarray) -> None:
        db.execute("UPDATE groups SET centroid = ? WHERE id = ?",
                   (self._seal.seal(db, gid, CENTROID, gid, centroid.tobytes()), gid))

    def _delete_groups(self, db: sqlite3.Connection, where: str, args: tuple[Any, ...] = ()) -> list[int]:
        """Delete the groups ``where`` selects, and drop their data keys from memory; returns their ids."""
        gone = [int(g) for (g,) in db.execute(f"SELECT id FROM groups WHERE {where}", args).fetchall()]
        db.execute(f"DELETE FROM groups WHERE {where}", args)
        for gid in gone:
            self._seal.forget(gid)
        return gone

    # ------------------------------------------------------------------ adding

    def add(self, embedding: np.ndarray, *, model_id: str, thumbnail: bytes | None = None,
            quality: Mapping[str, float] | None = None, seen_at: float | None = None,
            track: int | None = None) -> int | None:
        """Record one sighting of an unknown face.

        Low-quality faces (by :func:`faceapp.recognise.quality.assess_sample`) are not kept: they make
        poor templates and poor groups. A face of a track joins the group its track's earlier
        faces joined; when it is also like another group, the two groups are one person and are
        merged. A track the live view has named (:meth:`forget_track`) adds nothing.

        Args:
            embedding: ``(D,)`` unit-length embedding.
            model_id: sha256 of the embedder.
            thumbnail: JPEG of the aligned crop.
            quality: the face's quality measures.
            seen_at: Unix time (default now).
            track: the live view's track of this face (see :meth:`new_source`), or ``None``.

        Returns:
            The group the face joined, or ``None`` when it was not kept.
        """
        if track is not None and track in self._named_tracks:
            return None
        if quality is None or assess_sample(quality).low_quality:
            return None
        now = time.time() if seen_at is None else float(seen_at)
        if now - self._last_purge > 3600.0:
            self.purge(now)
        emb = _unit(embedding)
        if not np.all(np.isfinite(emb)):
            return None
        score = sample_score(quality)
        with self._tx() as db:
            sims = self._similarities(db, emb)
            best_id, best_sim = max(sims.items(), key=lambda kv: kv[1], default=(None, -2.0))
            tracked = self._track_groups.get(track) if track is not None else None
            if tracked is not None and tracked not in sims:
                tracked = None  # dismissed or expired since
            if tracked is None and (best_id is None or best_sim < self.join_threshold):
                gid = int(db.execute("INSERT INTO groups (data_key, centroid, first_seen, last_seen, sightings) "
                                     "VALUES (X'', X'', ?, ?, 1)", (now, now)).lastrowid or 0)
                db.execute("UPDATE groups SET data_key = ? WHERE id = ?", (self._seal.new_group(gid), gid))
                self._set_centroid(db, gid, emb)
                self._remember(track, gid, self._insert(db, gid, emb, model_id, thumbnail, quality, score, now))
                return gid
            gid = tracked if tracked is not None else int(best_id)  # type: ignore[arg-type]
            db.execute("UPDATE groups SET last_seen = MAX(last_seen, ?), sightings = sightings + 1 WHERE id = ?", (now, gid))
            last = db.execute("SELECT id, embedding, seen_at FROM faces WHERE group_id = ? ORDER BY seen_at DESC LIMIT 1",
                              (gid,)).fetchone()
            if last is not None and now - float(last[2]) < self.min_interval \
                    and float(np.dot(self._vector(db, gid, EMBEDDING, int(last[0]), last[1]), emb)) > 0.9:
                self._remember(track, gid, None)
                return gid  # the same view of the same face again
            rows = db.execute("SELECT id, score FROM faces WHERE group_id = ? ORDER BY score ASC", (gid,)).fetchall()
            if len(rows) >= self.max_per_group:
                if score <= float(rows[0][1]):
                    self._remember(track, gid, None)
                    return self._join_close(db, gid)
                db.execute("DELETE FROM faces WHERE id = ?", (int(rows[0][0]),))
            self._remember(track, gid, self._insert(db, gid, emb, model_id, thumbnail, quality, score, now))
            self._update_centroid(db, gid)
            return self._join_close(db, gid)

    def _remember(self, track: int | None, gid: int, face_id: int | None) -> None:
        if track is None:
            return
        self._track_groups[track] = gid
        if face_id is not None:
            self._track_faces.setdefault(track, []).append(face_id)

    def _similarities(self, db: sqlite3.Connection, emb: np.ndarray, skip: int | None = None) -> dict[int, float]:
        """``{group id: similarity of its mean to emb}`` for the groups of the same dimension."""
        rows = [(int(g), int(g), c) for g, c in db.execute("SELECT id, centroid FROM groups").fetchall() if int(g) != skip]
        out = {}
        for (gid, _, _), opened in zip(rows, self._seal.open_all(db, CENTROID, rows), strict=True):
            c = np.frombuffer(opened, np.float32)
            if c.shape == emb.shape:
                out[gid] = float(np.dot(c, emb))
        return out

    def _update_centroid(self, db: sqlite3.Connection, gid: int) -> np.ndarray | None:
        """Recompute a group's mean from its stored faces; ``None`` when it has none (it is deleted)."""
        rows = [(gid, int(f), e) for f, e in db.execute("SELECT id, embedding FROM faces WHERE group_id = ?", (gid,))]
        embs = [np.frombuffer(e, np.float32) for e in self._seal.open_all(db, EMBEDDING, rows)]
        if not embs:
            self._delete_groups(db, "id = ?", (gid,))
            return None
        centroid = _unit(np.mean(np.stack(embs), axis=0))
        self._set_centroid(db, gid, centroid)
        return centroid

    def _join_close(self, db: sqlite3.Connection, gid: int) -> int:
        """Merge into group ``gid`` every group whose mean is as like its mean as a face that
        joins it (one person, one group); returns ``gid``."""
        while True:
            row = db.execute("SELECT centroid FROM groups WHERE id = ?", (gid,)).fetchone()
            if row is None:
                return gid
            sims = self._similarities(db, self._vector(db, gid, CENTROID, gid, row[0]), skip=gid)
            close = [g for g, sim in sims.items() if sim >= self.join_threshold]
            if not close:
                return gid
            for other in close:
                self._merge_into(db, gid, other)
            self._update_centroid(db, gid)

    def _merge_into(self, db: sqlite3.Connection, gid: int, other: int) -> None:
        """Move group ``other``'s faces (sealed again under ``gid``'s data key) and sightings into
        ``gid``, keeping the best ``max_per_group``."""
        a = db.execute("SELECT first_seen, last_seen, sightings FROM groups WHERE id = ?", (other,)).fetchone()
        seal = self._seal

        def moved(kind: str, face: int, blob: bytes | None) -> bytes | None:
            return seal.seal(db, gid, kind, face, seal.open(db, other, kind, face, blob))

        faces = db.execute("SELECT id, embedding, thumbnail FROM faces WHERE group_id = ?", (other,)).fetchall()
        db.executemany("UPDATE faces SET group_id = ?, embedding = ?, thumbnail = ? WHERE id = ?",
                       [(gid, moved(EMBEDDING, int(f), e), moved(CROP, int(f), t), int(f)) for f, e, t in faces])
        db.execute("UPDATE groups SET first_seen = MIN(first_seen, ?), last_seen = MAX(last_seen, ?), "
                   "sightings = sightings + ? WHERE id = ?", (a[0], a[1], a[2], gid))
        self._delete_groups(db, "id = ?", (other,))
        extra = db.execute("SELECT id FROM faces WHERE group_id = ? ORDER BY score DESC, id LIMIT -1 OFFSET ?",
                           (gid, self.max_per_group)).fetchall()
        db.executemany("DELETE FROM faces WHERE id = ?", extra)
        for track, g in self._track_groups.items():
            if g == other:
                self._track_groups[track] = gid

    def new_source(self) -> None:
        """The live view's tracks start again (a new source or a new tracker): forget their ids."""
        with self._lock:
            self._track_groups.clear()
            self._track_faces.clear()
            self._named_tracks.clear()

    def forget_track(self, track: int) -> int:
        """The live view named track ``track``: erase the faces it added, and add none of it again.

        Returns:
            How many stored faces were erased.
        """
        with self._lock:
            self._named_tracks.add(track)
            faces = self._track_faces.pop(track, [])
            self._track_groups.pop(track, None)
        if not faces:
            return 0
        with self._tx() as db:
            groups = {int(g) for (g,) in db.execute(
                f"SELECT DISTINCT group_id FROM faces WHERE id IN ({','.join('?' * len(faces))})", faces)}
            n = db.executemany("DELETE FROM faces WHERE id = ?", [(f,) for f in faces]).rowcount
            for gid in groups:
                self._update_centroid(db, gid)
        self._erase_log()
        return int(n)

    def _insert(self, db: sqlite3.Connection, gid: int, emb: np.ndarray, model_id: str, thumbnail: bytes | None,
                quality: Mapping[str, float] | None, score: float, now: float) -> int:
        face = int(db.execute(
            "INSERT INTO faces (group_id, embedding, model_id, quality, score, seen_at) VALUES (?, X'', ?, ?, ?, ?)",
            (gid, model_id, json.dumps(dict(quality)) if quality else None, score, now),
        ).lastrowid or 0)
        # Sealed once the row has its id: the id is part of each value's associated data.
        db.execute("UPDATE faces SET embedding = ?, thumbnail = ? WHERE id = ?",
                   (self._seal.seal(db, gid, EMBEDDING, face, emb.tobytes()),
                    self._seal.seal(db, gid, CROP, face, thumbnail), face))
        return face

    # ------------------------------------------------------------------ reading

    def groups(self) -> list[InboxGroup]:
        """Every group, the most recently seen first."""
        with self._lock:
            db = self._db
            rows = db.execute(
                "SELECT g.id, COUNT(f.id), g.sightings, g.first_seen, g.last_seen, "
                "(SELECT b.id FROM faces b WHERE b.group_id = g.id ORDER BY b.score DESC LIMIT 1) "
                "FROM groups g LEFT JOIN faces f ON f.group_id = g.id GROUP BY g.id ORDER BY g.last_seen DESC"
            ).fetchall()
            return [InboxGroup(int(i), int(n), int(s), float(a), float(b), self._best_crop(db, int(i), int(best)))
                    for i, n, s, a, b, best in rows if n]

    def _best_crop(self, db: sqlite3.Connection, gid: int, face: int) -> bytes | None:
        (blob,) = db.execute("SELECT thumbnail FROM faces WHERE id = ?", (face,)).fetchone()
        return self._seal.open(db, gid, CROP, face, blob)

    def faces(self, group_id: int) -> list[InboxFace]:
        """A group's samples, best first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, group_id, embedding, model_id, thumbnail, quality, seen_at FROM faces "
                "WHERE group_id = ? ORDER BY score DESC, id", (int(group_id),)).fetchall()
            if not rows:
                raise GalleryError(f"the inbox has no group {group_id}; it may have been dismissed or expired")
            return [self._face(self._db, r) for r in rows]

    def __len__(self) -> int:
        return len(self.groups())

    # ------------------------------------------------------------------ decisions

    def samples(self, group_id: int, *, model_id: str, best: int = 5) -> list[EnrolSample]:
        """A group's best samples made by ``model_id``, as enrolment samples (best first).

        Raises:
            GalleryError: the group is gone, or none of its faces was made by this model.
        """
        faces = [f for f in self.faces(group_id) if f.model_id == model_id][: max(1, best)]
        if not faces:
            raise GalleryError("this group's faces were made by another model; dismiss it")
        return [EnrolSample(f.embedding, Provenance.inbox(group_id, k + 1), as_quality(f.quality), f.thumbnail)
                for k, f in enumerate(faces)]

    def suggest(self, group_id: int, match: Callable[[np.ndarray], Sequence[Match]], *,
                model_id: str) -> Suggestion | None:
        """Who enrolled the group looks most like ("looks like X"), by its mean face.

        Args:
            group_id: the group.
            match: ``(N, D)`` embeddings -> a decision with candidates per row, against the
                gallery (the enrolment use case's ``match``).
            model_id: the embedder in use; faces made by another model are not used.

        Returns:
            The closest enrolled person with the similarity, or ``None`` when no one is close
            or no face of the group was made by this model.

        Raises:
            GalleryError: the group is gone.
        """
        embs = [f.embedding for f in self.faces(group_id) if f.model_id == model_id]
        if not embs:
            return None
        (m,) = match(_unit(np.mean(np.stack(embs), axis=0))[None])
        if not m.candidates:
            return None
        return Suggestion(m.candidates[0].name, float(m.candidates[0].similarity))

    def enrol_group(self, group_id: int, enrol: Callable[[list[EnrolSample]], EnrolmentResult | None], *,
                    model_id: str, best: int = 5) -> EnrolmentResult | None:
        """Enrol a group's best samples, then erase the group.

        Args:
            group_id: the group.
            enrol: stores the samples through the enrolment use case (for example
                ``lambda s: pipeline.enrolment().enrol("Ann", s)``); returns ``None`` when the
                user chose not to store them.
            model_id: the embedder in use; samples made by another model are not used.
            best: how many of the best samples to enrol.

        Returns:
            What was stored, or ``None`` (the group is then kept).

        Raises:
            GalleryError: no sample of this model in the group, or the gallery refused.
            EnrolmentError: the faces are not all one person, or they match someone else
                enrolled (see :meth:`~faceapp.recognise.enrol.Enrolment.enrol`); the group is kept.
        """
        done = enrol(self.samples(group_id, model_id=model_id, best=best))
        if done is not None:
            self.dismiss(group_id)
        return done

    def dismiss(self, group_id: int) -> None:
        """Erase a group and its faces for real: its data key is deleted with its rows
        (crypto-shredding), freed pages are zeroed and the log truncated."""
        with self._tx() as db:
            db.execute("DELETE FROM faces WHERE group_id = ?", (int(group_id),))
            self._delete_groups(db, "id = ?", (int(group_id),))
        self._erase_log()

    def purge(self, now: float | None = None) -> int:
        """Erase faces older than the retention period; returns how many."""
        now = time.time() if now is None else float(now)
        self._last_purge = now
        cutoff = now - self.retention_days * DAY
        with self._tx() as db:
            n = db.execute("DELETE FROM faces WHERE seen_at < ?", (cutoff,)).rowcount
            self._delete_groups(db, "id NOT IN (SELECT DISTINCT group_id FROM faces)")
        if n:
            self._erase_log()
        return int(n)

    def clear(self) -> None:
        """Erase everything in the inbox."""
        with self._tx() as db:
            db.execute("DELETE FROM faces")
            self._delete_groups(db, "1")
        self._erase_log()

    def close(self) -> None:
        self._erase_log()
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> UnknownInbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_unknowns(inbox: UnknownInbox, results: Sequence[FaceResult | TrackResult], *, model_id: str,
                 seen_at: float | None = None) -> list[int]:
    """Put the faces of one frame that the gallery could not name into the inbox.

    Only ``unknown`` faces with an embedding go in (a tracked face only once its track
    has settled on unknown, and on the frames it was embedded): an uncertain or ambiguous
    face is close to someone enrolled and is better corrected from the live view. A track
    the live view names (its shown or newest decision is a match) is taken out of the inbox
    with every face it added, and adds none again; the faces of one track join one group.

    Args:
        inbox: the inbox.
        results: one frame's faces with their matches.
        model_id: sha256 of the embedder that made the embeddings.
        seen_at: Unix time (default now).

    Returns:
        The groups the kept faces joined.
    """
    from faceapp.vision.images import encode_crop

    groups = []
    for fr in results:
        track = fr.track_id if isinstance(fr, TrackResult) else None
        decisions = [m for m in (fr.match, fr.latest if isinstance(fr, TrackResult) else None) if m is not None]
        if track is not None and any(m.decision is Decision.MATCH for m in decisions):
            inbox.forget_track(track)
            continue
        if fr.match is None or any(m.decision is not Decision.UNKNOWN for m in decisions) or fr.face.embedding is None:
            continue
        gid = inbox.add(fr.face.embedding, model_id=model_id, thumbnail=encode_crop(fr.face.crop),
                        quality=dataclasses.asdict(fr.face.quality), seen_at=seen_at, track=track)
        if gid is not None:
            groups.append(gid)
    return groups
