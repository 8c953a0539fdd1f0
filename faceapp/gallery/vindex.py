"""Vector indexes over a store's templates: exact (numpy) and approximate (hnswlib).

An index answers "which templates are nearest to these probes", in cosine similarity
(higher = more alike); hnswlib's inner-product distance is converted in
:func:`_similarity` and nowhere else. Which index is used depends on the number of
templates: the exact index (a brute-force scan, perfect recall, so the open-set rules
see the true second-best person) up to :data:`EXACT_MAX_TEMPLATES`, hnswlib above it.

Only the hnswlib index is saved, as ``index.hnsw`` + ``index.json``. The sidecar binds the
file to the exact store state it was built from (gallery id, generation, model id, a
digest of the template ids) and to the file's own sha256; an index that does not match is
never searched. A saved index never holds a removed vector: deletions are compacted away
before every save.

The index of an encrypted gallery is saved encrypted (AES-256-GCM with the gallery's index
key, its sidecar's binding as associated data): the graph is serialised in memory and only
the ciphertext is written, so no vector is ever on the disk in the clear.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faceapp import private

log = logging.getLogger(__name__)

INDEX_NAME = "index.hnsw"
SIDECAR_NAME = "index.json"
INDEX_FILES = (INDEX_NAME, SIDECAR_NAME)
LOCK_NAME = "index.lock"
INDEX_KINDS = ("auto", "exact", "hnsw")
# Exact search of 20,000 128-d templates took 0.3-1.2 ms per probe on a loaded 2-core
# machine, against 0.1-0.5 ms for hnswlib (README, "Gallery search"); above this size the
# exact index's cost grows past a millisecond while hnswlib's stays flat.
EXACT_MAX_TEMPLATES = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 64  # up to EF_LARGE_FROM templates; larger galleries use HNSW_EF_SEARCH_LARGE
HNSW_EF_SEARCH_LARGE = 128
EF_LARGE_FROM = 200_000
SIDECAR_FORMAT = 2


def ef_for(templates: int, k: int = 1) -> int:
    """hnswlib search breadth for a gallery of this size: recall@1 >= 0.99 up to 1M (README)."""
    return max(k, HNSW_EF_SEARCH_LARGE if templates >= EF_LARGE_FROM else HNSW_EF_SEARCH)


def choose_kind(templates: int, setting: str = "auto") -> str:
    """``"exact"`` or ``"hnsw"`` for a gallery of ``templates`` under the ``index`` setting."""
    if setting not in INDEX_KINDS:
        raise ValueError(f"index must be one of {', '.join(INDEX_KINDS)}, not {setting!r}")
    if setting != "auto":
        return setting
    return "exact" if templates <= EXACT_MAX_TEMPLATES else "hnsw"


def ids_digest(ids: np.ndarray) -> str:
    """sha256 of the sorted template ids: two stores with other templates never share it."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


def _similarity(distances: np.ndarray) -> np.ndarray:
    """hnswlib's inner-product distance (1 - dot) -> cosine similarity of unit vectors, in
    [-1, 1] (stored vectors are unit length within a tolerance, so a dot can stray past 1)."""
    return np.clip(1.0 - distances, -1.0, 1.0)


@dataclass(frozen=True)
class Binding:
    """The store state an index was built from; an index answers only for this state."""

    gallery_id: str
    generation: int
    model_id: str
    dim: int
    ids_digest: str
    history: int | None = None  # see StoreState.history


class VectorIndex(Protocol):
    """Nearest templates by cosine similarity; labels are template ids."""

    kind: str
    dim: int

    def __len__(self) -> int: ...
    def ids(self) -> np.ndarray: ...
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(self, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def items(self) -> tuple[np.ndarray, np.ndarray]: ...


class ExactIndex:
    """Brute-force search over every template: perfect recall.

    hnswlib's ``BFIndex`` does the scan in C++ on one thread per query, which stays fast on
    a busy two-core machine where a multi-threaded BLAS product does not (README, "Gallery
    search").

    Args:
        dim: embedding size.
    """

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.zeros(0, np.int64)
        self._vectors = np.zeros((0, dim), np.float32)
        self._bf: Any = None

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def _rebuild(self, capacity: int) -> None:
        import hnswlib

        self._bf = hnswlib.BFIndex(space="ip", dim=self.dim)
        self._bf.init_index(max_elements=max(capacity, 1024))
        if len(self._ids):
            self._bf.add_items(self._vectors, self._ids.astype(np.uint64))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        vectors = np.asarray(vectors, np.float32)
        self._ids = np.concatenate([self._ids, ids])
        self._vectors = np.ascontiguousarray(np.concatenate([self._vectors, vectors]))
        if self._bf is None or len(self._ids) > self._bf.get_max_elements():
            self._rebuild(2 * len(self._ids))
        else:
            self._bf.add_items(vectors, ids.astype(np.uint64))

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)``: copies of every template in the index."""
        return self._ids.copy(), self._vectors.copy()

    def remove(self, ids: np.ndarray) -> None:
        gone = np.asarray(ids, np.int64)
        keep = ~np.isin(self._ids, gone)
        self._ids, self._vectors = self._ids[keep], np.ascontiguousarray(self._vectors[keep])
        if self._bf is not None:
            for label in gone.tolist():
                with contextlib.suppress(RuntimeError):
                    self._bf.delete_vector(int(label))

    def search(self, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, similarities)``, each ``(N, min(k, len))``, best first."""
        k = min(int(k), len(self._ids))
        if k == 0 or self._bf is None:
            return np.zeros((len(probes), 0), np.int64), np.zeros((len(probes), 0), np.float32)
        labels, dists = self._bf.knn_query(probes, k=k)
        return labels.astype(np.int64), _similarity(dists)


class HnswIndex:
    """An hnswlib graph (inner product on unit vectors); removals are compacted before saving.

    Args:
        dim: embedding size.
        capacity: initial number of slots.
    """

    kind = "hnsw"

    def __init__(self, dim: int, capacity: int = 1024, _index: Any = None) -> None:
        import hnswlib

        self.dim = dim
        fresh = _index is None
        if _index is None:
            _index = hnswlib.Index(space="ip", dim=dim)
            _index.init_index(max_elements=max(capacity, 1024), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
        self._index = _index
        self._deleted: set[int] = set()
        # A copy of the vectors added since this graph was made (not kept for a loaded file),
        # so that :meth:`items` need not read them back out of the graph one by one.
        self._added: list[tuple[np.ndarray, np.ndarray]] | None = [] if fresh else None

    def __len__(self) -> int:
        return int(self._index.get_current_count()) - len(self._deleted)

    def ids(self) -> np.ndarray:
        have = np.array(self._index.get_ids_list(), dtype=np.int64)
        if self._deleted:
            have = np.setdiff1d(have, np.fromiter(self._deleted, np.int64))
        return have

    def add(self, ids: np.ndarray, vectors: np.ndarray, threads: int = -1) -> None:
        """Add vectors; ``threads`` for hnswlib's insertion (-1: every core)."""
        if len(ids) == 0:
            return
        need = int(self._index.get_current_count()) + len(ids)
        if need > self._index.get_max_elements():
            self._index.resize_index(max(need, 2 * self._index.get_max_elements()))
        ids64, vecs = np.asarray(ids, np.int64), np.asarray(vectors, np.float32)
        self._index.add_items(vecs, ids64.astype(np.uint64), num_threads=threads)
        if self._added is not None:
            self._added.append((ids64.copy(), vecs.copy()))

    def remove(self, ids: np.ndarray) -> None:
        for label in np.asarray(ids, np.int64):
            with contextlib.suppress(RuntimeError):
                self._index.mark_deleted(int(label))
            self._deleted.add(int(label))

    @property
    def has_deleted(self) -> bool:
        return bool(self._deleted)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of the live templates (removed ones are left out)."""
        live = self.ids()
        if not len(live):
            return live, np.zeros((0, self.dim), np.float32)
        if self._added:
            ids = np.concatenate([i for i, _ in self._added])
            vecs = np.concatenate([v for _, v in self._added])
            keep = np.isin(ids, live)
            if int(keep.sum()) == len(live):
                return ids[keep], vecs[keep]
        return live, np.asarray(self._index.get_items(live.astype(np.uint64), return_type="numpy"), np.float32)

    def compacted(self) -> HnswIndex:
        """A new graph of the live templates only: removed vectors are not copied."""
        live, vectors = self.items()
        fresh = HnswIndex(self.dim, capacity=len(live) + 1)
        if len(live):
            fresh.add(live, vectors)
        return fresh

    def search(self, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(int(k), len(self))
        self._index.set_ef(ef_for(len(self), k))
        labels, dists = self._index.knn_query(probes, k=k)
        return labels.astype(np.int64), _similarity(dists)

    # ------------------------------------------------------------------ files

    def save(self, root: Path, binding: Binding, key: bytes | None = None) -> None:
        """Write ``index.hnsw`` and its sidecar durably (``0600``); the index must be compacted.

        Args:
            root: the folder.
            binding: the store state the index answers for.
            key: encrypt the file with it (``None``: hnswlib's own format, in the clear).
        """
        if self._deleted:
            raise ValueError("compact the index before saving it")
        path, side_path = root / INDEX_NAME, root / SIDECAR_NAME
        if key is None:
            private.write_atomically(path, lambda tmp: self._index.save_index(str(tmp)))
        else:
            import pickle
            import secrets

            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            nonce = secrets.token_bytes(12)
            private.write_atomically(path, nonce + AESGCM(key).encrypt(nonce, pickle.dumps(self._index),
                                                                        _sealed_ad(binding)))
        side = {"format": SIDECAR_FORMAT, "space": "ip", "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                "max_elements": int(self._index.get_max_elements()), "size": path.stat().st_size,
                "sha256": private.sha256_file(path), "binding": asdict(binding), "sealed": key is not None}
        private.write_atomically(side_path, json.dumps(side))

    @classmethod
    def load(cls, root: Path, binding: Binding, key: bytes | None = None) -> HnswIndex | None:
        """The saved index if its file is intact and it was built from exactly ``binding``'s state.

        Logs one line and returns ``None`` otherwise: the caller rebuilds from the store.
        ``key`` opens an encrypted file (see :meth:`save`).
        """
        found = cls._read(root, binding.dim, lambda saved: saved == binding, key)
        return None if found is None else found[0]

    @classmethod
    def load_lineage(cls, root: Path, binding: Binding, key: bytes | None = None) -> tuple[HnswIndex, Binding] | None:
        """A saved index of the same gallery, model and size at ``binding``'s generation or an
        earlier one, with the binding it was saved with; the caller applies what changed since.
        """
        def same_lineage(saved: Binding) -> bool:
            return ((saved.gallery_id, saved.model_id, saved.dim) == (binding.gallery_id, binding.model_id, binding.dim)
                    and saved.generation <= binding.generation)

        return cls._read(root, binding.dim, same_lineage, key)

    @classmethod
    def saved_binding(cls, root: Path) -> Binding | None:
        """The state the saved index file says it was built from (``None``: no readable sidecar)."""
        try:
            side = json.loads((root / SIDECAR_NAME).read_text(encoding="utf-8"))
            return Binding(**side["binding"]) if side.get("format") == SIDECAR_FORMAT else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def _read(cls, root: Path, dim: int, accept: Any, key: bytes | None = None) -> tuple[HnswIndex, Binding] | None:
        import hnswlib

        path, side_path = root / INDEX_NAME, root / SIDECAR_NAME
        if not (path.is_file() and side_path.is_file()):
            return None
        try:
            side = json.loads(side_path.read_text(encoding="utf-8"))
            saved = Binding(**side["binding"]) if side.get("format") == SIDECAR_FORMAT else None
            if saved is None or not accept(saved):
                log.warning("gallery index %s was built for another state of the gallery; rebuilding it from the database",
                            path)
                return None
            if side.get("size") != path.stat().st_size or side.get("sha256") != private.sha256_file(path):
                log.warning("gallery index %s is damaged or was modified; rebuilding it from the database", path)
                return None
            if bool(side.get("sealed")) != (key is not None):
                log.warning("gallery index %s is %s; rebuilding it from the database", path,
                            "encrypted and the gallery is not" if key is None else "not encrypted")
                return None
            if key is not None:
                import pickle

                from cryptography.exceptions import InvalidTag
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM

                data = path.read_bytes()
                try:
                    plain = AESGCM(key).decrypt(data[:12], data[12:], _sealed_ad(saved))
                except InvalidTag:
                    log.warning("gallery index %s does not open with this gallery's key; rebuilding it", path)
                    return None
                raw = pickle.loads(plain)  # noqa: S301 - authenticated above: written by this gallery's key holder
                if raw.dim != dim:
                    return None
            else:
                raw = hnswlib.Index(space="ip", dim=dim)
                raw.load_index(str(path), max_elements=int(side["max_elements"]))
            return cls(dim, _index=raw), saved
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            log.warning("gallery index %s could not be read (%s); rebuilding it from the database", path, exc)
            return None


def _sealed_ad(binding: Binding) -> bytes:
    """What an encrypted index file is bound to: the state in its sidecar."""
    return ("faceapp index|" + json.dumps(asdict(binding), sort_keys=True)).encode()


@dataclass
class IndexSlot:
    """The index a gallery searches and the store state it answers for, guarded by ``lock``.

    Shared by a :class:`~faceapp.gallery.gallery.Gallery` and its background
    :class:`~faceapp.gallery.index_cache.IndexKeeper`: whoever reads or swaps ``index`` and
    ``binding`` holds ``lock``.
    """

    lock: threading.RLock = field(default_factory=threading.RLock)
    index: VectorIndex | None = None
    binding: Binding | None = None
    file_key: bytes | None = field(default=None, repr=False)  # encrypts the saved index (None: plain)
@contextlib.contextmanager
def index_lock(root: Path, timeout: float) -> Iterator[bool]:
    """Hold ``root/index.lock`` (``0600``) while saving or wiping index files.

    Args:
        root: the folder of the index files.
        timeout: seconds to wait for another process; 0 tries once.

    Yields:
        Whether the lock is held (``False``: another process holds it and ``timeout`` passed).
    """
    import filelock

    path = root / LOCK_NAME
    private.create_private_file(path)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def wipe_index_files(root: Path) -> None:
    """Overwrite saved index files with zeros, then delete them."""
    names = [root / n for n in INDEX_FILES]
    for p in [*names, *(t for n in names for t in private.leftover_temporaries(n))]:
        with contextlib.suppress(OSError):
            if p.is_file():
                size = p.stat().st_size
                with open(p, "r+b") as f:
                    f.write(b"\0" * size)
                    f.flush()
                    os.fsync(f.fileno())
                p.unlink()
    private.fsync_dir(root)


def new_index(kind: str, dim: int, capacity: int) -> VectorIndex:
    return ExactIndex(dim) if kind == "exact" else HnswIndex(dim, capacity)
