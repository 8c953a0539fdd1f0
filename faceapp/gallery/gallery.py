"""The gallery: a store (the source of truth) bound to a vector index (a cache for search).

:class:`Gallery` is what the pipeline, the CLI and the GUI use. It keeps the index in step
with the store: the index is rebuilt or brought up to date whenever the store's gallery id,
generation or model differs from what the index was built from, and a saved index that
does not match the store exactly is never searched. Removals erase: the store wipes the
rows, and the index drops the vectors before it is saved again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.errors import Fix, GalleryError, GalleryMismatchError
from faceapp.gallery import integrity, vindex
from faceapp.gallery.index_cache import IndexKeeper
from faceapp.gallery.sqlite_store import SQLiteStore
from faceapp.gallery.store import (
    Erased,
    Person,
    Sample,
    Store,
    StoreState,
    lookalike_of,
    normalise_name,
)
from faceapp.gallery.vindex import Binding, HnswIndex, IndexSlot, VectorIndex

__all__ = ["Gallery", "open_gallery", "Person", "Sample", "Erased", "TemplateHit", "normalise_name"]

log = logging.getLogger(__name__)

INDEX_LOCK_WAIT_S = 10.0  # a writer waits this long for another process saving the index


@dataclass(frozen=True)
class TemplateHit:
    """One gallery template close to a probe."""

    template_id: int
    person_id: int
    name: str
    similarity: float


class Gallery:
    """A persistent face gallery.

    Args:
        root: the gallery folder; created (``0700``) when missing.
        lock_timeout: seconds a writer waits for another process's write to finish.
        index: ``"auto"`` (exact up to :data:`faceapp.gallery.vindex.EXACT_MAX_TEMPLATES`
            templates, hnswlib above), ``"exact"`` or ``"hnsw"``.
        store: an already opened store to use instead of a folder; ``root`` is then the
            folder for its saved index.
        index_is_cache: ``root`` is this device's private cache for the index of a shared
            store: the index is saved there after every change it takes in (removed
            vectors erased at once), under a lock shared by this device's processes.

    Raises:
        GalleryError: the gallery cannot be opened (see :class:`~faceapp.gallery.sqlite_store.SQLiteStore`).
    """

    def __init__(self, root: Path | None = None, *, lock_timeout: float = 10.0, index: str = "auto",
                 store: Store | None = None, index_is_cache: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> None:
        if store is None:
            if root is None:
                raise ValueError("a gallery needs a folder or a store")
            store = SQLiteStore(Path(root), lock_timeout=lock_timeout, progress=progress)
        vindex.choose_kind(0, index)  # validates the setting
        self.store = store
        self.root = Path(root).expanduser() if root is not None else None
        self.index_setting = index
        self.index_is_cache = index_is_cache
        self.slot = IndexSlot(file_key=store.index_key())
        self._keeper: IndexKeeper | None = IndexKeeper(self.slot, self.root, index) \
            if index_is_cache and self.root else None
        self._state: StoreState | None = None
        self._negatives: tuple[int, str, np.ndarray, np.ndarray] | None = None
        self._no_saved_index = False  # the last catch-up found no saved index it could use
        self._damaged_logged: frozenset[int] = frozenset()

    # ------------------------------------------------------------------ the store, passed through

    def list_persons(self, search: str | None = None) -> list[Person]:
        """People in the gallery, by name; ``search`` filters by a case-insensitive substring."""
        return self.store.list_persons(search)

    def get_person(self, name: str) -> Person:
        """Raises :class:`~faceapp.errors.UnknownPersonError` when ``name`` is not enrolled."""
        return self.store.get_person(name)

    def has_person(self, name: str) -> bool:
        from faceapp.errors import UnknownPersonError

        try:
            self.get_person(name)
        except UnknownPersonError:
            return False
        return True

    def count_templates(self) -> int:
        return self.store.count_templates()

    def __len__(self) -> int:
        return self.store.count_persons()

    def samples(self, name: str) -> list[Sample]:
        """Each stored template of a person with its crop, quality, source and time."""
        return self.store.samples(name)


    def all_crops(self) -> Iterator[tuple[str, int, bytes]]:
        """``(name, template_id, encoded aligned crop)`` for every stored face crop."""
        return self.store.crops()

    # ------------------------------------------------------------------ writes

    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      crops: Sequence[bytes | None] | None = None,
                      sources: Sequence[str | None] | None = None,
                      qualities: Sequence[dict[str, float] | None] | None = None,
                      create: bool = True, must_be_new: bool = False) -> Person:
        """Add templates to a person in one transaction: all rows are stored or none.

        Args:
            name: the person's name.
            embeddings: ``(N, D)`` float32 unit-length embeddings.
            model_id: sha256 of the embedder that made them.
            crops: per template, the encoded aligned face crop it was made from (kept
                so that a new model can re-embed it), or ``None``.
            sources: per template, where it came from (file name, "camera").
            qualities: per template, quality measures.
            create: create the person when missing.
            must_be_new: refuse when the person exists.

        Raises:
            DuplicatePersonError: ``must_be_new`` and the name exists.
            UnknownPersonError: not ``create`` and the name is missing.
            GalleryMismatchError: the gallery holds another model's templates.
        """
        emb = integrity.check_embeddings(embeddings, "templates")
        n = len(emb)
        crops = list(crops) if crops is not None else [None] * n
        srcs = list(sources) if sources is not None else [None] * n
        quals = list(qualities) if qualities is not None else [None] * n
        if not len(crops) == len(srcs) == len(quals) == n:
            raise ValueError("crops, sources and qualities must match the embeddings")
        if create and not self.has_person(name):
            self._refuse_lookalike(name)
        person = self.store.add_templates(name, emb, model_id=model_id, crops=crops, sources=srcs, qualities=quals,
                                          create=create, must_be_new=must_be_new)
        self.refresh()
        return person

    def rename(self, old: str, new: str) -> Person:
        """Rename a person. Raises when ``old`` is unknown or ``new`` is taken by, or looks like, someone else."""
        if not self.has_person(new):  # a name the store already knows is its own rule's business
            self._refuse_lookalike(new, besides=self.get_person(old).name)
        person = self.store.rename(old, new)
        self.refresh()
        return person

    def _refuse_lookalike(self, name: str, besides: str | None = None) -> None:
        """Refuse a new name that could be mistaken for an enrolled person's (UTS #39 skeletons)."""
        other = lookalike_of(name, [p.name for p in self.list_persons() if p.name != besides])
        if other is not None:
            raise GalleryError(
                f"the name {normalise_name(name)!r} looks like {other!r}, who is already enrolled; "
                f"use {other!r} to add photos to them, or choose a name that reads differently"
            )

    def merge(self, source: str, target: str) -> Person:
        """Move every template of ``source`` to ``target`` and remove ``source``."""
        person = self.store.merge(source, target)
        self.refresh()
        return person

    def remove(self, name: str) -> Erased:
        """Erase a person: templates, crops, negative samples and index entries, from every file."""
        erased = self.store.remove(name)
        self.refresh(erased=True)
        return erased

    def remove_template(self, template_id: int) -> Erased:
        """Erase one sample (template and crop) from every file."""
        erased = self.store.remove_template(template_id)
        self.refresh(erased=True)
        return erased

    def add_negative(self, name: str, embedding: np.ndarray, *, model_id: str, crop: bytes | None = None) -> int:
        """Keep a face as "this is not ``name``"; returns the negative sample's id."""
        emb = integrity.check_embeddings(np.asarray(embedding).reshape(-1), "a negative sample")[0]
        nid = self.store.add_negative(name, emb, model_id=model_id, crop=crop)
        self.refresh()
        return nid

    def refresh(self, erased: bool = False) -> None:
        """After a write: bring the index up to date and save it compacted, so no removed vector stays on disk.

        Args:
            erased: rows were removed; the saved index is rewritten even by a reader.
        """
        with self.slot.lock:
            self._sync()
            self._persist(force=erased)

    # ------------------------------------------------------------------ index binding

    def _sync(self) -> None:
        """Make the in-memory index answer for exactly the store's current state."""
        with self.slot.lock:
            state = self.store.state()
            self._state = state
            b = self.slot.binding
            if self.slot.index is not None and b is not None and (b.gallery_id, b.generation, b.model_id, b.history) == (
                    state.gallery_id, state.generation, state.model_id, state.history):
                return
            if state.model_id is None or state.dim is None:
                self.slot.index, self.slot.binding = None, None
                return
            if self._catch_up(state):
                return
            ids = self.store.template_ids(state.model_id)
            kind = vindex.choose_kind(len(ids), self.index_setting)
            binding = Binding(state.gallery_id, state.generation, state.model_id, state.dim, vindex.ids_digest(ids),
                              state.history)
            index = self.slot.index
            same_lineage = (index is not None and b is not None and index.kind == kind and b.gallery_id == state.gallery_id
                            and b.model_id == state.model_id and b.dim == state.dim and b.generation < state.generation)
            if not same_lineage:
                root = self._index_root()
                index = (HnswIndex.load(root, binding, self.slot.file_key)
                         if kind == "hnsw" and root is not None and not self._no_saved_index else None)
                if index is None:  # a device cache answers at once from an exact index; its keeper builds the graph
                    index = vindex.new_index("exact" if self._keeper is not None else kind, state.dim, len(ids) + 1)
            assert index is not None
            have = index.ids()
            changed = self._apply(index, np.setdiff1d(ids, have, assume_unique=True),
                                  np.setdiff1d(have, ids, assume_unique=True), state.dim)
            self.slot.index, self.slot.binding = index, binding
            if (index.kind == "hnsw" or self._keeper is not None) and changed:
                self._persist(force=self.index_is_cache, only_if_unlocked=True)

    def _catch_up(self, state: StoreState) -> bool:
        """Bring the index (in memory, else the saved one) to ``state`` from the store's change log.

        Returns ``False`` when that cannot be done (no log that far back, another lineage,
        the index kind would change): the caller then compares every id.
        """
        assert state.model_id is not None and state.dim is not None
        index, b = self.slot.index, self.slot.binding
        root = self._index_root()
        self._no_saved_index = False
        if (index is None or b is None) and root is not None:
            probe = Binding(state.gallery_id, state.generation, state.model_id, state.dim, "")
            found = HnswIndex.load_lineage(root, probe, self.slot.file_key)
            if found is not None:
                index, b = found
            else:  # what an exact load would accept is part of what a lineage load accepts
                self._no_saved_index = True
        if index is None or b is None or (b.gallery_id, b.model_id, b.dim) != (state.gallery_id, state.model_id, state.dim):
            return False
        changes = self.store.changes_since(b.generation, state.model_id, b.history)
        if changes is None or (changes.state.gallery_id, changes.state.model_id, changes.state.dim) != (
                state.gallery_id, state.model_id, state.dim):
            return False
        have = index.ids()
        added = np.setdiff1d(changes.added, have)
        removed = np.intersect1d(changes.removed, have)
        wanted = vindex.choose_kind(len(have) + len(added) - len(removed), self.index_setting)
        if wanted != index.kind and not (self._keeper is not None and index.kind == "exact"):
            return False
        changed = self._apply(index, added, removed, state.dim)
        self.slot.index, self._state = index, changes.state
        self.slot.binding = Binding(state.gallery_id, changes.state.generation, state.model_id, state.dim,
                                    vindex.ids_digest(index.ids()), changes.state.history)
        if changed:
            self._persist(force=self.index_is_cache, only_if_unlocked=True)
        return True

    def _apply(self, index: VectorIndex, added: np.ndarray, removed: np.ndarray, dim: int) -> bool:
        """Take ``removed`` template ids out of ``index`` and put ``added`` in with their stored
        embeddings; whether anything changed."""
        if len(removed):
            index.remove(removed)
        if len(added):
            vectors, ok = self.store.checked_embeddings(added, dim)
            if not ok.all():  # never searched; `faceapp-cli check` lists and rebuilds them
                bad = frozenset(added[~ok].tolist())
                if bad != self._damaged_logged:
                    log.warning("%s", GalleryError(f"gallery {self.store.location}: {len(bad)} damaged template(s) "
                                                   "left out of search", Fix.CHECK_TEMPLATES))
                    self._damaged_logged = bad
            added, vectors = added[ok], vectors[ok]
            if len(added):
                index.add(added, vectors)
        return bool(len(added) or len(removed))

    def damaged_templates(self) -> list[integrity.Damaged]:
        """Stored templates and negative samples that are not what was written (a flipped bit,
        an edited database), by person; they are never searched."""
        return self.store.damaged()

    def repair(self, damaged: integrity.Damaged, vector: np.ndarray) -> None:
        """Store ``vector``, embedded again from the damaged row's own face crop, in its place."""
        emb = integrity.check_embeddings(vector, "a re-embedded template", self.store.state().dim)
        self.store.repair(damaged.kind, damaged.row_id, emb[0])
        self.refresh()

    def wait_for_change(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for another device's write, then take it in.

        For running devices (the GUI, ``faceapp-cli watch``) of a shared gallery, whose
        store announces writes; a folder gallery just sleeps and checks.

        Returns:
            ``True`` when the gallery's state changed.
        """
        before = self._state.generation if self._state is not None else None
        waiter = getattr(self.store, "wait_for_change", None)
        if waiter is not None:
            waiter(timeout)
        else:
            threading.Event().wait(timeout)
        with self.slot.lock:
            self._sync()
            return self._state is not None and self._state.generation != before

    def _index_root(self) -> Path | None:
        return self.root if self.root is not None and not self.store.read_only else None

    def _persist(self, force: bool, only_if_unlocked: bool = False) -> None:
        """Save an hnswlib index (compacted first); remove index files an exact index left behind."""
        root = self._index_root()
        if root is None:
            return
        index, binding = self.slot.index, self.slot.binding
        if self._keeper is not None:  # a device cache: erase now, build and save in the background
            if isinstance(index, HnswIndex) and index.has_deleted:
                self._keeper.wipe()
            if index is not None and vindex.choose_kind(len(index), self.index_setting) == "hnsw":
                self._keeper.schedule()
                return
        if not isinstance(index, HnswIndex) or binding is None:
            if any((root / n).exists() for n in vindex.INDEX_FILES):
                vindex.wipe_index_files(root)
            return
        if index.has_deleted:
            index = index.compacted()
            self.slot.index = index
        # A reader saves too (so the next command need not rebuild), unless another process is saving.
        wait = 0.0 if only_if_unlocked and not force else INDEX_LOCK_WAIT_S
        try:
            with vindex.index_lock(root, wait) as held:
                if held:
                    index.save(root, binding, self.slot.file_key)
        except OSError as exc:
            log.warning("could not save the gallery index (%s); it will be rebuilt next time", exc)
            vindex.wipe_index_files(root)

    def search(self, embeddings: np.ndarray, k: int, *, model_id: str) -> list[list[TemplateHit]]:
        """Nearest templates for each probe.

        Args:
            embeddings: ``(N, D)`` float32 unit-length probes.
            k: templates to return per probe (fewer when the gallery is smaller).
            model_id: sha256 of the embedder that made the probes.

        Returns:
            Per probe, hits best first.

        Raises:
            GalleryMismatchError: the gallery's templates were made by another embedder.
        """
        probes = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        if probes.ndim == 1:
            probes = probes[None]
        if len(probes) == 0:
            return []
        with self.slot.lock:
            self._sync()
            index, state = self.slot.index, self._state
            if index is None or state is None or len(index) == 0:
                return [[] for _ in probes]
            if state.model_id != model_id:
                raise GalleryMismatchError(
                    f"gallery {self.store.location} holds templates made by another embedder "
                    f"(sha256 {str(state.model_id)[:12]}...)", Fix.REEMBED
                )
            if index.dim != probes.shape[1]:
                raise GalleryMismatchError(
                    f"gallery {self.store.location} holds {index.dim}-d templates, the model gives {probes.shape[1]}-d"
                )
            labels, sims = index.search(probes, k)
        owners = self.store.owners(np.unique(labels).tolist())
        out: list[list[TemplateHit]] = []
        for row_l, row_s in zip(labels, sims):
            hits = []
            for tid, sim in zip(row_l, row_s):
                owner = owners.get(int(tid))
                if owner is not None:  # removed by another process since the sync
                    hits.append(TemplateHit(int(tid), owner[0], owner[1], float(sim)))
            out.append(hits)
        return out

    def negative_similarities(self, embeddings: np.ndarray, *, model_id: str) -> list[dict[int, float]]:
        """Per probe: ``{person_id: best similarity to that person's negative samples}``."""
        probes = np.asarray(embeddings, dtype=np.float32)
        if probes.ndim == 1:
            probes = probes[None]
        with self.slot.lock:
            state = self._state or self.store.state()  # search() has just synced, as a rule
            cached = self._negatives
            if cached is None or cached[:2] != (state.generation, model_id):
                pids, vectors = self.store.negatives(model_id)
                cached = (state.generation, model_id, pids, vectors)
                self._negatives = cached
        pids, vectors = cached[2], cached[3]
        if len(pids) == 0:
            return [{} for _ in probes]
        sims = np.clip(probes @ vectors.T, -1.0, 1.0)
        out = []
        for row in sims:
            best: dict[int, float] = {}
            for pid, s in zip(pids.tolist(), row.tolist()):
                if s > best.get(pid, -2.0):
                    best[pid] = float(s)
            out.append(best)
        return out

    # ------------------------------------------------------------------ reporting

    def index_stats(self) -> dict[str, Any]:
        """Sizes of the store and the index, and which index answers."""
        with self.slot.lock:
            self._sync()
            index = self.slot.index
            root = self.root
            saved = root / vindex.INDEX_NAME if root is not None else None
            current = (saved is not None and saved.is_file() and self.slot.binding is not None
                       and HnswIndex.saved_binding(saved.parent) == self.slot.binding)
            return {
                "templates": self.count_templates(),
                "index_kind": None if index is None else index.kind,
                "index_elements": 0 if index is None else len(index),
                # a file saved for another state is not this gallery's index: it is rebuilt, not counted
                "index_file_bytes": saved.stat().st_size if current and saved is not None else 0,
            }

    def info(self) -> dict[str, Any]:
        """Everything ``faceapp-cli info`` shows about the gallery."""
        state = self.store.state()
        return {
            "gallery_id": state.gallery_id,
            "generation": state.generation,
            "history": None if state.history is None else f"{state.history:014x}",
            "model_id": state.model_id,
            "model_ids": self.store.model_counts(),
            "people": len(self),
            "encryption": self.store.encryption(),
            **self.index_stats(),
            **self.store.describe(),
        }

    def rekey(self) -> str:
        """Give the gallery a new key (see :meth:`SQLStore.rekey`); returns where it is kept."""
        with self.slot.lock:
            where = self.store.rekey()
            self.slot.file_key = self.store.index_key()
        return where

    def check(self) -> str:
        """The store's integrity check; ``"ok"`` when it is sound."""
        return self.store.check()

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
        with self.slot.lock:
            self.store.close()
            self.slot.index = None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_gallery(spec: Path | str, *, index: str = "auto", lock_timeout: float = 10.0,
                 progress: Callable[[int, int], None] | None = None) -> Gallery:
    """Open the gallery a ``gallery`` setting names (see :meth:`faceapp.config.Settings.gallery_spec`).

    A folder keeps its index beside its database. A shared (PostgreSQL) gallery keeps this
    device's index in the user cache directory (``FACEAPP_CACHE_DIR`` or the platform's),
    in a ``0700`` folder named by the gallery id.

    Args:
        spec: a folder, or a PostgreSQL address without a password.
        index: ``"auto"``, ``"exact"`` or ``"hnsw"``.
        lock_timeout: seconds a folder gallery's writer waits for another process.
        progress: called with ``(people done, people to encrypt)`` while a gallery written
            before encryption is encrypted.

    Raises:
        GalleryError: the gallery cannot be opened.
        GalleryKeyError: this device has no key for the gallery, or the wrong one.
        SettingsError: a database address is malformed or holds a password.
    """
    from faceapp import private
    from faceapp.config import GalleryAddress, default_cache_dir
    from faceapp.gallery.opening import open_store

    address = GalleryAddress.parse(spec)
    if address.folder is not None:
        return Gallery(address.folder, index=index, lock_timeout=lock_timeout, progress=progress)
    store = open_store(address, progress=progress)
    cache = default_cache_dir() / "galleries" / store.state().gallery_id
    try:
        for folder in (cache.parent.parent, cache.parent, cache):
            private.make_private_dir(folder)
    except OSError as exc:
        store.close()
        raise GalleryError(f"cannot create the gallery cache folder {cache} ({exc.strerror}); "
                           "set FACEAPP_CACHE_DIR to a folder you can write") from exc
    return Gallery(cache, index=index, store=store, index_is_cache=True)
