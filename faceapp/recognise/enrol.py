"""Enrolment: the one use case that turns samples into a person.

Every way of enrolling (the CLI's ``enroll`` and ``import``, the GUI's "Add person", the
people library's "Add photos", "It's X" on a live face, the unknown-faces inbox, and
:meth:`faceapp.pipeline.Pipeline.enroll`) goes through :class:`Enrolment`, so one set of
rules decides what is stored:

- **One source at a time** and **one person**: the sample rules of
  :mod:`faceapp.recognise.samples`, applied to the whole batch; adding to someone enrolled, a
  sample must also be like their stored samples.
- **No silent look-alikes.** When the samples match someone already enrolled under another name,
  nothing is stored without an explicit choice: add them to that person, or say that the new name
  is someone else (``despite_match``).
- **Provenance.** The gallery keeps each sample's :class:`~faceapp.recognise.samples.Provenance`
  label with its template.

:func:`review_samples` is the pure decision over embeddings and match results;
:class:`Enrolment` reads the gallery, decides and stores. Faces (CLI, GUI) word the typed
:class:`EnrolmentReview` for themselves.

The sample types (:mod:`faceapp.recognise.samples`), the quality gates
(:mod:`faceapp.recognise.quality`) and guided capture (:mod:`faceapp.recognise.guide`) live in
their own modules; the names the faces use are importable from here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from faceapp.errors import DuplicatePersonError, FaceappError, Fix
from faceapp.gallery.store import Person
from faceapp.gallery.store import Sample as StoredSample
from faceapp.recognise.guide import EnrolmentGuide
from faceapp.recognise.quality import LowQuality, assess_sample, low_quality
from faceapp.recognise.samples import EnrolSample, Provenance, Refusal, RefusedSample, SampleSet, SourceKind
from faceapp.types import Match

__all__ = [
    # this module's
    "Enrolment", "EnrolmentError", "EnrolmentGallery", "EnrolmentResult", "EnrolmentReview", "Lookalike",
    "LookalikeError", "UnlikeSamplesError", "review_samples", "similarity_to",
    # the faces' imports, from the modules that define them
    "EnrolSample", "EnrolmentGuide", "LowQuality", "Provenance", "Refusal", "SourceKind", "assess_sample",
    "low_quality",
]


@dataclass(frozen=True)
class Lookalike:
    """Someone already enrolled, under another name, whom the samples match.

    Attributes:
        name: their name.
        similarity: the best similarity of a kept sample to them.
        samples: which kept samples match them (indices into ``EnrolmentReview.accepted``).
        face: one of their stored face crops (JPEG) to show beside the samples, or ``None``.
    """

    name: str
    similarity: float
    samples: tuple[int, ...]
    face: bytes | None = None


@dataclass(frozen=True)
class EnrolmentReview:
    """What enrolling these samples under this name would do.

    Attributes:
        name: the name asked for.
        exists: someone is already enrolled under that name.
        add: the samples are to be added to an existing person.
        accepted: the samples that would be stored, in the order given.
        refused: the samples that would not, with the reason.
        lookalikes: people enrolled under other names whom the kept samples match, best first.
        same_person: the same-person similarity the samples were checked against.
    """

    name: str
    exists: bool
    add: bool
    accepted: tuple[EnrolSample, ...]
    refused: tuple[RefusedSample, ...]
    lookalikes: tuple[Lookalike, ...]
    same_person: float

    @property
    def duplicate_name(self) -> bool:
        """The name is taken and the samples were not meant to be added to that person."""
        return self.exists and not self.add

    @property
    def needs_choice(self) -> bool:
        """Storing needs the user's explicit choice: the samples match someone else enrolled."""
        return bool(self.lookalikes)


def similarity_to(match: Match, name: str) -> float | None:
    """The probe's similarity to ``name`` among the match's candidates (``None`` when absent)."""
    key = name.casefold()
    return next((c.similarity for c in match.candidates if c.name.casefold() == key), None)


def _groups(sims: np.ndarray, same_person: float) -> list[list[int]]:
    """Samples linked by "same person" (directly or through others), largest group first."""
    n = len(sims)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(sims >= same_person, 1))):
        parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def review_samples(name: str, samples: Sequence[EnrolSample], matches: Sequence[Match], *, exists: bool,
                   add: bool, same_person: float, match_threshold: float) -> EnrolmentReview:
    """Decide which samples can be enrolled under ``name`` and what needs the user's choice.

    Pure: the gallery's part comes in as ``matches`` (each sample against the enrolled people).

    1. Samples from another source than the first one are refused.
    2. The rest are grouped by "same person" (similarity at least ``same_person``, directly or
       through other samples). Adding to someone enrolled, the group that is like their stored
       samples is kept; otherwise the largest group, and when two groups tie for largest, none.
    3. Enrolled people other than ``name`` whom a kept sample matches (similarity at least
       ``match_threshold``, and, when ``name`` is enrolled, more than the sample's similarity to
       them) are look-alikes: storing then needs an explicit choice.

    Args:
        name: the person's name.
        samples: the samples, in the order offered.
        matches: per sample, its decision against the gallery with candidates.
        exists: ``name`` is enrolled.
        add: add to ``name`` (when it exists) rather than create them.
        same_person: the 1:1 same-person similarity.
        match_threshold: the 1:N similarity at which an enrolled person is named.

    Returns:
        The :class:`EnrolmentReview`.
    """
    if len(matches) != len(samples):
        raise ValueError("one match per sample is needed")
    refused: dict[int, RefusedSample] = {}
    origin = samples[0].provenance if samples else None
    same = [i for i, s in enumerate(samples) if origin is not None and s.provenance.origin == origin.origin]
    for i, s in enumerate(samples):
        if origin is not None and i not in same:
            refused[i] = RefusedSample.other_source(s, origin)
    keep = list(same)
    if same:
        emb = np.stack([samples[i].embedding for i in same])
        sims = emb @ emb.T
        to_person = [similarity_to(matches[i], name) if exists else None for i in same]
        groups = _groups(sims, same_person)
        if exists and add:
            liked = [g for g in groups if any((to_person[k] or -1.0) >= same_person for k in g)]
            keep = [same[k] for g in liked for k in g]
            for g in groups:
                if g not in liked:
                    for k in g:
                        refused[same[k]] = RefusedSample.unlike(samples[same[k]], to_person[k], same_person,
                                                               f"{name}'s enrolled samples")
        elif len(groups) > 1 and len(groups[0]) == len(groups[1]):
            keep = []
            for k in range(len(same)):
                refused[same[k]] = RefusedSample.no_majority(samples[same[k]], len(groups))
        else:
            keep = [same[k] for k in groups[0]]
            for g in groups[1:]:
                for k in g:
                    best = float(np.max(sims[k, groups[0]]))
                    refused[same[k]] = RefusedSample.unlike(samples[same[k]], best, same_person, "the other samples")
        keep.sort()
    found: dict[str, tuple[float, list[int]]] = {}
    for pos, i in enumerate(keep):
        own = similarity_to(matches[i], name) if exists else None
        for c in matches[i].candidates:
            if c.name.casefold() == name.casefold() or c.similarity < match_threshold:
                continue
            if own is not None and c.similarity <= own:
                continue
            best, which = found.get(c.name, (-1.0, []))
            found[c.name] = (max(best, c.similarity), [*which, pos])
    lookalikes = tuple(Lookalike(n, sim, tuple(which)) for n, (sim, which) in
                       sorted(found.items(), key=lambda kv: -kv[1][0]))
    return EnrolmentReview(name=name, exists=exists, add=add, accepted=tuple(samples[i] for i in keep),
                           refused=tuple(refused[i] for i in sorted(refused)), lookalikes=lookalikes,
                           same_person=same_person)


# ---------------------------------------------------------------------- errors


class EnrolmentError(FaceappError):
    """An enrolment that was refused; :attr:`review` says why, for a face to word itself."""

    def __init__(self, message: str, review: EnrolmentReview, fix: Fix | None = None, **details: object) -> None:
        super().__init__(message, fix, **details)
        self.review = review


class UnlikeSamplesError(EnrolmentError):
    """Some samples are from another source or unlike the others; nothing was stored."""


class LookalikeError(EnrolmentError):
    """The samples match someone enrolled under another name; nothing was stored."""


def _refused_message(review: EnrolmentReview) -> str:
    first = review.refused[0].message
    more = len(review.refused) - 1
    return first + (f" ({more} more sample(s) refused)" if more else "") + "; nothing was stored"


def _lookalike_message(review: EnrolmentReview) -> str:
    top = review.lookalikes[0]
    others = f" (and {len(review.lookalikes) - 1} more enrolled people)" if len(review.lookalikes) > 1 else ""
    return (f"these samples match {top.name!r} (similarity {top.similarity:.2f}){others}, who is already "
            "enrolled; nothing was stored")


# ---------------------------------------------------------------------- the use case


class EnrolmentGallery(Protocol):
    """What enrolment needs of a gallery (:class:`~faceapp.gallery.gallery.Gallery` has it)."""

    def has_person(self, name: str) -> bool: ...
    def samples(self, name: str) -> list[StoredSample]: ...
    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      crops: Sequence[bytes | None] | None = None,
                      sources: Sequence[str | None] | None = None,
                      qualities: Sequence[dict[str, float] | None] | None = None,
                      create: bool = True, must_be_new: bool = False) -> Person: ...


@dataclass(frozen=True)
class EnrolmentResult:
    """What was stored.

    Attributes:
        person: the person as stored (their name and template count).
        review: the review it was stored by; ``review.accepted`` were stored,
            ``review.lookalikes`` were acknowledged by an explicit choice.
    """

    person: Person
    review: EnrolmentReview

    @property
    def added(self) -> tuple[EnrolSample, ...]:
        return self.review.accepted


@dataclass(frozen=True)
class Enrolment:
    """The enrolment use case: review samples for a name, then store them under the rules.

    Args:
        gallery: where people are stored.
        match: ``(N, D)`` embeddings -> a decision with candidates per row, against the gallery.
        model_id: sha256 of the embedder that made the embeddings.
        same_person: 1:1 same-person similarity (the model's verification threshold).
        match_threshold: 1:N similarity at which an enrolled person is named.
        encode: aligned crop -> stored JPEG; ``None`` keeps no crops.
    """

    gallery: EnrolmentGallery
    match: Callable[[np.ndarray], Sequence[Match]]
    model_id: str
    same_person: float
    match_threshold: float
    encode: Callable[[np.ndarray], bytes] | None = None

    def sample_set(self) -> SampleSet:
        """An empty :class:`SampleSet` under this use case's same-person threshold."""
        return SampleSet(self.same_person)

    def review(self, name: str, samples: Sequence[EnrolSample], *, add: bool = False) -> EnrolmentReview:
        """What storing ``samples`` under ``name`` would do; changes nothing.

        Raises:
            FaceappError: no name, or no sample.
        """
        name = name.strip()
        if not name:
            raise FaceappError("no name given; type the person's name")
        if not samples:
            raise FaceappError("no usable face to enrol")
        matches = self.match(np.stack([s.embedding for s in samples]).astype(np.float32))
        review = review_samples(name, samples, matches, exists=self.gallery.has_person(name), add=add,
                                same_person=self.same_person, match_threshold=self.match_threshold)
        if review.lookalikes:
            review = dataclasses.replace(review, lookalikes=tuple(
                dataclasses.replace(lk, face=self._face_of(lk.name)) for lk in review.lookalikes))
        return review

    def _face_of(self, name: str) -> bytes | None:
        return next((s.crop for s in self.gallery.samples(name) if s.crop), None)

    def enrol(self, name: str, samples: Sequence[EnrolSample], *, add: bool = False, despite_match: bool = False,
              drop_refused: bool = False) -> EnrolmentResult:
        """Store ``samples`` as templates of ``name`` in one transaction, under the rules.

        Args:
            name: the person's name.
            samples: the samples (all from one source).
            add: add to ``name`` when they are enrolled (created when not).
            despite_match: the user's explicit choice that ``name`` is not the enrolled
                person the samples match.
            drop_refused: store the accepted samples when some are refused (else nothing is
                stored).

        Raises:
            DuplicatePersonError: ``name`` is enrolled and ``add`` is false.
            UnlikeSamplesError: samples were refused (and not ``drop_refused``), or none is left.
            LookalikeError: the samples match someone else enrolled and not ``despite_match``.
        """
        review = self.review(name, samples, add=add)
        if review.duplicate_name:
            raise DuplicatePersonError(f"a person named {review.name!r} already exists", Fix.ADD_TO_THEM)
        if review.refused and (not drop_refused or not review.accepted):
            raise UnlikeSamplesError(_refused_message(review), review)
        if review.lookalikes and not despite_match:
            raise LookalikeError(_lookalike_message(review), review, Fix.ADD_OR_DESPITE,
                                 match=review.lookalikes[0].name, name=review.name)
        kept = review.accepted
        person = self.gallery.add_templates(
            review.name, np.stack([s.embedding for s in kept]).astype(np.float32), model_id=self.model_id,
            crops=[self._crop(s) for s in kept], sources=[s.provenance.label for s in kept],
            qualities=[dataclasses.asdict(s.quality) if s.quality is not None else None for s in kept],
            create=True, must_be_new=not add,
        )
        return EnrolmentResult(person, review)

    def _crop(self, sample: EnrolSample) -> bytes | None:
        if self.encode is None or sample.crop is None:
            return None
        return sample.crop if isinstance(sample.crop, bytes) else self.encode(sample.crop)

