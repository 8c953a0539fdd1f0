"""The gallery's source of truth, as an interface: people, templates, crops, negatives.

A *store* keeps everything that must survive: people, their templates (embedding, the model
that made it, the aligned face crop it was made from, quality), negative samples ("this is
not X"), a random gallery id fixed at creation and a generation that every write bumps.
Search does not live here: a vector index (:mod:`faceapp.gallery.vindex`) is built from a
store's snapshot and bound to its gallery id and generation.

This module is the protocol and the values that cross it; it imports no implementation.
:class:`faceapp.gallery.sql_store.SQLStore` implements it once for both databases (a folder's
SQLite, :mod:`faceapp.gallery.sqlite_store`; a shared PostgreSQL,
:mod:`faceapp.gallery.pg_store`), and :func:`faceapp.gallery.opening.open_store` opens the
one a gallery address names.
"""

from __future__ import annotations

import functools
import secrets
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from faceapp.errors import Fix, GalleryError, UnknownPersonError

MAX_NAME_LENGTH = 200
# Unicode categories a name may not contain: controls, format characters (zero-width
# spaces and joiners, direction overrides), line/paragraph separators, surrogates,
# private-use and unassigned code points. They make two different names look the same.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def normalise_name(name: str) -> str:
    """Trim and NFKC-normalise a person's name; refuse names that could look like another.

    NFKC folds compatibility forms (full-width letters, a no-break space, ligatures) into
    the characters they stand for, so a name is stored the way it reads.

    Raises:
        GalleryError: the name is empty, too long, or has control, invisible or
            direction-changing characters (Hangul fillers and other default-ignorable ones included).
    """
    clean = unicodedata.normalize("NFKC", str(name)).strip()
    if not clean:
        raise GalleryError("a person's name must not be empty")
    if len(clean) > MAX_NAME_LENGTH:
        raise GalleryError(f"a person's name must be at most {MAX_NAME_LENGTH} characters")
    for ch in clean:
        cat = unicodedata.category(ch)
        if cat == "Cc":
            raise GalleryError("a person's name must not contain control characters (tabs, newlines)")
        if cat in _FORBIDDEN_CATEGORIES or _default_ignorable(ch):
            raise GalleryError(
                f"a person's name must not contain invisible or direction-changing characters "
                f"(found U+{ord(ch):04X}); type the name again"
            )
    return clean


def _default_ignorable(ch: str) -> bool:
    """Unicode's Default_Ignorable_Code_Point: drawn as nothing (Hangul fillers, soft hyphen, variation selectors)."""
    import icu

    return bool(icu.Char.hasBinaryProperty(ch, icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT))


@functools.lru_cache(maxsize=1)
def _spoof_checker() -> Any:
    import icu

    return icu.SpoofChecker()


@functools.lru_cache(maxsize=1 << 16)  # every new name is compared with every enrolled name
def name_keys(name: str) -> frozenset[str]:
    """What a name looks like: two names that share a key can be mistaken for each other.

    A key is a UTS #39 confusable skeleton (ICU's ``SpoofChecker``) of the NFKC-normalised
    name, taken both before and after case folding, so that "\u041ebama" (Cyrillic O) meets
    "Obama", "BiII" meets "Bill" and "\u00c9mile" meets "\u00e9mile". Keys are for comparing
    only, never for display.

    Raises:
        GalleryError: the name itself is refused (see :func:`normalise_name`).
    """
    return _keys(normalise_name(name))


@functools.lru_cache(maxsize=1 << 16)
def _keys(clean: str) -> frozenset[str]:
    skeleton = functools.partial(_spoof_checker().getSkeleton, 0)
    return frozenset({skeleton(clean.casefold()), skeleton(skeleton(clean).casefold())})


def lookalike_of(name: str, others: Iterator[str] | Sequence[str]) -> str | None:
    """The first of ``others`` that ``name`` could be mistaken for (not the same name), or ``None``."""
    keys = name_keys(name)
    clean = normalise_name(name)
    for other in others:
        if other != clean and keys & name_keys(other):
            return other
    return None


def new_row_id() -> int:
    """A random positive 53-bit row id for templates and negatives.

    Ids are never reused, not even by a database restored from an older backup, so an index
    built for another state of the gallery can never attach one person's vector to
    another person's id. 53 bits keep ids exact in JSON.
    """
    return secrets.randbits(53) or 1


def unknown_person(name: str) -> UnknownPersonError:
    """The error for a name that is not enrolled (every store says it the same way)."""
    return UnknownPersonError(f"no person named {name!r} in the gallery", Fix.SEE_PEOPLE)


@dataclass(frozen=True)
class Person:
    """One enrolled person.

    Attributes:
        id: stable id within the store.
        name: display name (unique, case-insensitively).
        templates: number of stored templates.
        created_at: Unix time of enrolment.
    """

    id: int
    name: str
    templates: int
    created_at: float


@dataclass(frozen=True)
class Sample:
    """One stored template of a person, as the face library shows it.

    Attributes:
        template_id: the template's id.
        crop: encoded aligned face crop (JPEG), or ``None`` when none was kept.
        quality: quality measures at enrolment (see :class:`faceapp.types.Quality`).
        source: where it came from (file name, "camera").
        created_at: Unix time it was stored.
        model_id: sha256 of the embedder that made it.
    """

    template_id: int
    crop: bytes | None = field(repr=False)
    quality: dict[str, float] | None
    source: str | None
    created_at: float
    model_id: str | None


@dataclass(frozen=True)
class StoreState:
    """What an index must be bound to.

    Attributes:
        gallery_id: random id chosen when the store was created.
        generation: bumped by every write.
        model_id: sha256 of the embedder whose templates are searched, or ``None`` when empty.
        dim: embedding size of those templates, or ``None``.
        history: the history id of this generation: a token the write that made it logged
            (PostgreSQL), so that a database restored from an older backup, which goes on
            with other writes, is not taken for the history a device synced; ``None`` where
            the store keeps none.
    """

    gallery_id: str
    generation: int
    model_id: str | None
    dim: int | None
    history: int | None = None


@dataclass(frozen=True)
class Changes:
    """Templates of one model added and removed since an earlier generation.

    Attributes:
        state: the store's state these changes lead to.
        added: ``(A,)`` int64 ids of templates added (and not removed again) since then.
        removed: ``(R,)`` int64 ids of templates removed since then.
    """

    state: StoreState
    added: np.ndarray
    removed: np.ndarray


@dataclass(frozen=True)
class Erased:
    """What a removal erased from every file of the gallery.

    Attributes:
        templates: template vectors erased.
        crops: aligned face crops erased.
        negatives: negative samples erased.
        log_cleared: the write-ahead log was emptied (``False`` while another process
            still reads an older state; it is emptied when that process closes).
    """

    templates: int = 0
    crops: int = 0
    negatives: int = 0
    log_cleared: bool = True

    def __add__(self, other: Erased) -> Erased:
        return Erased(self.templates + other.templates, self.crops + other.crops,
                      self.negatives + other.negatives, self.log_cleared and other.log_cleared)


@dataclass(frozen=True)
class ReembedWork:
    """One stored face crop still to be embedded with a new model.

    Attributes:
        kind: ``"template"`` or ``"negative"``.
        row_id: the old row's id.
        crop: its encoded aligned face crop.
    """

    kind: str
    row_id: int
    crop: bytes = field(repr=False)


@dataclass(frozen=True)
class ReembedStatus:
    """Progress of a re-embedding towards ``model_id``.

    Attributes:
        done: old rows that already have a new-model counterpart.
        pending: old rows with a crop still to embed.
        without_crop: names of people with templates that cannot be rebuilt (no crop).
    """

    done: int
    pending: int
    without_crop: tuple[str, ...]


class Store(Protocol):
    """The source of truth of a gallery. Every write is one transaction that bumps the generation."""

    location: str
    read_only: bool

    def state(self) -> StoreState: ...
    def list_persons(self, search: str | None = None) -> list[Person]: ...
    def get_person(self, name: str) -> Person: ...
    def count_persons(self) -> int: ...
    def count_templates(self) -> int: ...
    def model_counts(self) -> dict[str, int]: ...
    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      crops: Sequence[bytes | None], sources: Sequence[str | None],
                      qualities: Sequence[dict[str, float] | None], create: bool, must_be_new: bool) -> Person: ...
    def rename(self, old: str, new: str) -> Person: ...
    def merge(self, source: str, target: str) -> Person: ...
    def remove(self, name: str) -> Erased: ...
    def remove_template(self, template_id: int) -> Erased: ...
    def samples(self, name: str) -> list[Sample]: ...
    def crops(self) -> Iterator[tuple[str, int, bytes]]: ...
    def add_negative(self, name: str, embedding: np.ndarray, *, model_id: str, crop: bytes | None) -> int: ...
    def negatives(self, model_id: str) -> tuple[np.ndarray, np.ndarray]: ...
    def negative_samples(self, model_id: str) -> list[tuple[int, np.ndarray, bytes | None]]:
        """Every negative sample of ``model_id`` as (person id, embedding, face crop or None), read at once."""
        ...
    def template_ids(self, model_id: str) -> np.ndarray: ...
    def changes_since(self, generation: int, model_id: str, history: int | None = None) -> Changes | None:
        """What changed after ``generation``, or ``None`` when the store keeps no log reaching back that far."""
        ...
    def embeddings(self, ids: np.ndarray, dim: int) -> np.ndarray: ...
    def checked_embeddings(self, ids: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]: ...
    def damaged(self) -> list[Any]: ...
    def repair(self, kind: str, row_id: int, vector: np.ndarray) -> None: ...
    def owners(self, ids: Sequence[int]) -> dict[int, tuple[int, str]]: ...
    def reembed_status(self, model_id: str) -> ReembedStatus: ...
    def reembed_work(self, model_id: str, limit: int) -> list[ReembedWork]: ...
    def add_reembedded(self, model_id: str, rows: Sequence[tuple[ReembedWork, np.ndarray]]) -> None: ...
    def finish_reembed(self, model_id: str) -> Erased: ...
    def describe(self) -> dict[str, Any]: ...
    def encryption(self) -> dict[str, Any]: ...
    def copy_mark(self) -> str | None: ...
    def mark_copy(self, source: str) -> str: ...
    def finish_copy(self, token: str) -> None: ...
    def discard_copy(self, token: str | None = None) -> Erased: ...
    def index_key(self) -> bytes | None: ...
    def rekey(self) -> str: ...
    def check(self) -> str: ...
    def close(self) -> None: ...
