"""A device's index of a shared gallery, kept in its cache folder without holding up search.

Building an hnswlib graph of 100,000 templates takes a minute or more on a small machine, and
compacting one after a removal is a rebuild. A running device must not stop answering for
that, so for a gallery whose index lives in the device cache (:func:`faceapp.gallery.open_gallery`
with a PostgreSQL store):

* a first sync answers at once from an exact index, and the hnswlib graph is built in the
  background from a snapshot, brought up to date with whatever changed meanwhile, and swapped in;
* a removal takes effect in memory at once (the vectors are marked deleted and never
  returned), the saved index files are wiped at once (no removed vector stays on disk), and
  a compacted graph is rebuilt and saved in the background;
* an addition is saved in the background, a moment later, coalescing bursts of changes.

The saved files are written under a file lock, so several processes of one device share the
cache folder safely.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from . import vindex
from .vindex import HnswIndex

log = logging.getLogger(__name__)

SAVE_DELAY_S = 1.0  # coalesce a burst of changes into one save


class IndexKeeper:
    """Background builder and saver for one gallery's cached hnswlib index.

    Args:
        gallery: the :class:`~faceapp.gallery.Gallery` (its ``_mutex``, ``_index`` and
            ``_binding`` are read and swapped under its mutex).
        root: the cache folder.
    """

    def __init__(self, gallery: Any, root: Path) -> None:
        self.gallery = gallery
        self.root = root
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def wipe(self) -> None:
        """Erase the saved index files now (a removal: they may hold removed vectors)."""
        with self._locked():
            vindex.wipe_index_files(self.root)

    def schedule(self) -> None:
        """Save (building or compacting first when needed) in the background, soon."""
        self._idle.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="faceapp-index-keeper", daemon=True)
            self._thread.start()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is left to build or save (tests and benchmarks)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop; a pending save of a ready graph is done now, a build in progress is abandoned
        (the next start catches up from the saved index or rebuilds)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._idle.is_set():
            return
        g = self.gallery
        with g._mutex:
            index, binding = g._index, g._binding
            if isinstance(index, HnswIndex) and not index.has_deleted and binding is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    self._save(index, binding)

    @contextlib.contextmanager
    def _locked(self):  # type: ignore[no-untyped-def]
        import filelock

        with filelock.FileLock(str(self.root / "index.lock"), timeout=60):
            yield

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                break
            if self._stop.wait(SAVE_DELAY_S):
                break
            self._wake.clear()
            try:
                self._work()
            except Exception as exc:  # noqa: BLE001 - a cache that cannot be saved is rebuilt next time
                log.warning("could not save the gallery index in %s (%s); it will be rebuilt next time", self.root, exc)
            if not self._wake.is_set():
                self._idle.set()

    def _work(self) -> None:
        g = self.gallery
        with g._mutex:
            index, binding = g._index, g._binding
            if index is None or binding is None:
                return
            wanted = vindex.choose_kind(len(index), g.index_setting)
            if wanted != "hnsw":
                return
            if isinstance(index, HnswIndex) and not index.has_deleted:
                self._save(index, binding)
                return
            ids, vectors = index.items()
        fresh = HnswIndex(binding.dim, capacity=len(ids) + 1)  # the long part, outside the mutex
        fresh.add(ids, vectors)
        if self._stop.is_set():
            return
        with g._mutex:
            current, binding = g._index, g._binding
            if current is None or binding is None or current.dim != fresh.dim:
                return
            now_ids, now_vectors = current.items()
            if len(np.setdiff1d(ids, now_ids)):  # removed while we built: build again from a new snapshot
                self._wake.set()
                return
            new = np.isin(now_ids, ids, invert=True)
            if new.any():
                fresh.add(now_ids[new], now_vectors[new])
            g._index = fresh
            self._save(fresh, binding)
        log.info("gallery index of %d templates built and saved in %s", len(fresh), self.root)

    def _save(self, index: HnswIndex, binding: vindex.Binding) -> None:
        with self._locked():
            index.save(self.root, binding)
