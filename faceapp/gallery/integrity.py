"""What a stored vector must be: finite, unit length, of the gallery's dimension, and the
bytes its checksum was taken from.

Checked when a template or a negative sample is written, so that a damaged embedding (a
broken compiled model, a bad input) is never stored, and when it is read, so that a
damaged one (a flipped bit on the disk, an edited database) is never searched.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from faceapp.errors import Fix, GalleryError

UNIT_TOLERANCE = 1e-3  # float32 embeddings normalised by the embedder are within 1e-6 of unit length


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Per row of ``(N, D)`` vectors: finite and of length 1 within :data:`UNIT_TOLERANCE`."""
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return np.isfinite(vectors).all(axis=1) & (np.abs(norms - 1.0) <= UNIT_TOLERANCE)


def check_embeddings(vectors: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    """``vectors`` as contiguous ``(N, D)`` float32 if every row may be stored.

    Args:
        vectors: ``(N, D)`` (or ``(D,)`` for one) embeddings.
        what: how to call them in the message ("templates", "a negative sample").
        dim: the gallery's dimension, when it has one.

    Raises:
        GalleryError: a row is not finite or not of unit length, or the dimension differs.
    """
    emb = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if emb.ndim == 1:
        emb = emb[None]
    if emb.ndim != 2 or len(emb) == 0:
        raise GalleryError(f"no {what} to add")
    if dim is not None and emb.shape[1] != dim:
        raise GalleryError(f"refusing {what} of {emb.shape[1]} numbers: this gallery holds {dim}-number templates")
    bad = np.flatnonzero(~unit_rows(emb))
    if len(bad):
        with np.errstate(over="ignore", invalid="ignore"):
            norm = float(np.linalg.norm(emb[bad[0]].astype(np.float64)))
        raise GalleryError(
            f"refusing {what}: embedding {int(bad[0]) + 1} is not a unit-length vector of finite numbers "
            f"(length {norm:.3g}); the model gave a broken result and nothing was stored", Fix.CHECK_MODEL_OUTPUT
        )
    return emb


def checksum(row_id: int, blob: bytes) -> int:
    """CRC-32 of a stored vector's bytes and its row id: any flipped bit (and any vector moved
    to another row) changes it. Kept beside each template and negative sample."""
    return zlib.crc32(blob, zlib.crc32(struct.pack("<q", int(row_id))))


def intact(row_id: int, blob: bytes, stored_checksum: int | None, dim: int | None) -> bool:
    """Whether a stored vector is what was written: its checksum (when it has one), its size,
    finite numbers of unit length."""
    if stored_checksum is not None and checksum(row_id, blob) != int(stored_checksum):
        return False
    if len(blob) % 4 or (dim is not None and len(blob) != 4 * dim) or not blob:
        return False
    return bool(unit_rows(np.frombuffer(blob, np.float32)[None])[0])


@dataclass(frozen=True)
class Damaged:
    """A stored vector that is not what was written.

    Attributes:
        kind: ``"template"`` or ``"negative"``.
        row_id: its id.
        name: the person it belongs to.
        model_id: the model that made it.
        has_crop: whether its face crop is kept (it can be embedded again).
    """

    kind: str
    row_id: int
    name: str
    model_id: str | None
    has_crop: bool

    @property
    def template_id(self) -> int:
        return self.row_id
