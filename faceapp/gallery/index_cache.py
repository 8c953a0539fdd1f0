"""A device's index of a shared gallery, kept in its cache folder without holding up search.

Building an hnswlib graph of 100,000 templates takes a minute or more on a small machine, and
compacting one after a removal is a rebuild. A running device must not stop answering for
that, so for a gallery whose index lives in the device cache (:func:`faceapp.gallery.gallery.open_gallery`
with a PostgreSQL store):

* a first sync answers at once from an exact index, and the hnswlib graph is built in the
  background from a snapshot, brought up to date with whatever changed meanwhile, and swapped in;
* a removal takes effect in memory at once (the vectors are marked deleted and never
  returned); the saved index files, which may hold them, are wiped in the background right
  away, and a compacted graph is rebuilt and saved;
* an index that only grew is saved once the gallery has been quiet for a while, and on
  close; a device that stops without saving catches up from its older saved index.

The saved files are written under a file lock, so several processes of one device share the
cache folder safely.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

import numpy as np

from faceapp.gallery import vindex
from faceapp.gallery.vindex import HnswIndex, IndexSlot

log = logging.getLogger(__name__)

BUILD_DELAY_S = 0.5  # a build or compaction starts this soon after the change that needs it
SAVE_IDLE_S = 30.0  # an index that only grew is saved once the gallery has been quiet this long (and on close)


class IndexKeeper:
    """Background builder, saver and wiper for one gallery's cached hnswlib index.

    Args:
        slot: the gallery's index and binding (read, and swapped for a new graph, under its lock).
        root: the cache folder.
        index_setting: the gallery's ``index`` setting (``"auto"``, ``"exact"`` or ``"hnsw"``).
    """

    save_idle_s = SAVE_IDLE_S

    def __init__(self, slot: IndexSlot, root: Path, index_setting: str) -> None:
        self.slot = slot
        self.root = root
        self.index_setting = index_setting
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._state_lock = threading.Lock()
        self._due: float | None = None
        self._urgent = False
        self._wipe_needed = False
        self._thread: threading.Thread | None = None

    def wipe(self) -> None:
        """Erase the saved index files very soon, in the background (a removal: they may hold
        removed vectors, which the in-memory index already no longer returns)."""
        with self._state_lock:
            self._wipe_needed = True
        self._kick()

    def schedule(self) -> None:
        """Build, compact or save in the background: soon when the in-memory index needs a new
        graph, after :attr:`save_idle_s` quiet seconds when it only grew. Call under the slot's lock."""
        index = self.slot.index
        rebuild = index is not None and (not isinstance(index, HnswIndex) or index.has_deleted)
        delay = BUILD_DELAY_S if rebuild else self.save_idle_s
        with self._state_lock:
            due = time.monotonic() + delay
            if rebuild:
                self._due = due if self._due is None else min(self._due, due)
                self._urgent = True
            elif not self._urgent:
                self._due = due  # the quiet period starts again
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="faceapp-index-keeper", daemon=True)
            self._thread.start()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is left to build, save or wipe (tests and benchmarks)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop. A pending wipe is done now, and so is a pending save of a ready graph; a build
        in progress is abandoned (the next start catches up from the saved index or rebuilds)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._idle.is_set():
            return
        if self._wipe_needed:
            self._wipe_files()
        with self.slot.lock:
            index, binding = self.slot.index, self.slot.binding
            if isinstance(index, HnswIndex) and not index.has_deleted and binding is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    self._save(index, binding)

    @contextlib.contextmanager
    def _locked(self):  # type: ignore[no-untyped-def]
        with vindex.index_lock(self.root, timeout=60) as held:
            if not held:
                raise TimeoutError(f"{self.root / vindex.LOCK_NAME} is held by another process")
            yield

    def _wipe_files(self) -> None:
        with self._state_lock:
            self._wipe_needed = False
        with self._locked():
            vindex.wipe_index_files(self.root)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._wipe_needed:
                    self._wipe_files()
                with self._state_lock:
                    due = self._due
                if due is None:
                    if not self._wipe_needed:
                        self._idle.set()
                    self._wake.wait()
                    self._wake.clear()
                    continue
                left = due - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    self._wake.clear()
                    continue
                with self._state_lock:
                    self._due, self._urgent = None, False
                self._work()
            except Exception as exc:  # noqa: BLE001 - a cache that cannot be saved is rebuilt next time
                log.warning("could not save the gallery index in %s (%s); it will be rebuilt next time", self.root, exc)

    def _work(self) -> None:
        slot = self.slot
        with slot.lock:
            index, binding = slot.index, slot.binding
            if index is None or binding is None:
                return
            wanted = vindex.choose_kind(len(index), self.index_setting)
            if wanted != "hnsw":
                return
            if isinstance(index, HnswIndex) and not index.has_deleted:
                self._save(index, binding)
                return
            ids, vectors = index.items()
        fresh = HnswIndex(binding.dim, capacity=len(ids) + 1)  # the long part, outside the mutex,
        fresh.add(ids, vectors, threads=1)  # on one core, so the device goes on answering
        if self._stop.is_set():
            return
        with slot.lock:
            current, binding = slot.index, slot.binding
            if current is None or binding is None or current.dim != fresh.dim:
                return
            now_ids, now_vectors = current.items()
            if len(np.setdiff1d(ids, now_ids)):  # removed while we built: build again from a new snapshot
                with self._state_lock:
                    self._due, self._urgent = time.monotonic(), True
                return
            new = np.isin(now_ids, ids, invert=True)
            if new.any():
                fresh.add(now_ids[new], now_vectors[new])
            slot.index = fresh
            self._save(fresh, binding)
        log.info("gallery index of %d templates built and saved in %s", len(fresh), self.root)

    def _save(self, index: HnswIndex, binding: vindex.Binding) -> None:
        with self._locked():
            index.save(self.root, binding, self.slot.file_key)
