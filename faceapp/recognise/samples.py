"""Enrolment samples: where each came from, why one is refused, and a set collected one at a time.

- **One source at a time.** An enrolment's samples come from one source: frames of one live
  view, photo files, or one inbox group (:attr:`Provenance.origin`). A sample from another
  source is refused.
- **One person.** A sample unlike the others is refused with the reason (the same-person test
  is the model's 1:1 verification threshold).
- **Provenance.** Each sample says where it came from (which live frame, which photo, which
  inbox face), and the gallery keeps that with the template.

:class:`SampleSet` applies these rules one sample at a time while a dialog collects them; the
enrolment use case (:mod:`faceapp.recognise.enrol`) applies them to a whole batch and words its
refusals with the same :class:`RefusedSample` builders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from faceapp.types import Face, Quality


class SourceKind(str, Enum):
    """The kinds of source an enrolment takes samples from."""

    LIVE = "live"  # frames of the live view (a camera, a video file, a photo folder played as video)
    PHOTOS = "photos"  # photo files the user chose
    INBOX = "inbox"  # one group of the unknown-faces inbox


@dataclass(frozen=True)
class Provenance:
    """Where one sample came from.

    Attributes:
        kind: the kind of source.
        source: which source of that kind: the live view's name, the inbox group; empty for
            photo files (the photos chosen for one enrolment are one source).
        item: which frame, photo file or inbox face.
    """

    kind: SourceKind
    source: str = ""
    item: str = ""

    @classmethod
    def live(cls, source: str, frame: int) -> Provenance:
        """Frame number ``frame`` of the live view ``source`` (a camera or file name)."""
        return cls(SourceKind.LIVE, source, f"frame {frame}")

    @classmethod
    def photo(cls, name: str) -> Provenance:
        """The photo file called ``name``."""
        return cls(SourceKind.PHOTOS, "", name)

    @classmethod
    def inbox(cls, group: int, face: int) -> Provenance:
        """Face ``face`` of unknown-faces group ``group``."""
        return cls(SourceKind.INBOX, f"group {group}", f"face {face}")

    @property
    def origin(self) -> tuple[SourceKind, str]:
        """What the samples of one enrolment must share."""
        return self.kind, self.source

    @property
    def source_label(self) -> str:
        """The source in words: "the live view (Camera 0)", "photo files", "unknown-faces group 3"."""
        if self.kind is SourceKind.LIVE:
            return f"the live view ({self.source})" if self.source else "the live view"
        if self.kind is SourceKind.PHOTOS:
            return "photo files"
        return f"unknown-faces {self.source}"

    @property
    def label(self) -> str:
        """The sample in words, as shown beside it and kept with its template:
        "live frame 12 (Camera 0)", "photo obama.jpg", "unknown-faces group 3, face 2"."""
        if self.kind is SourceKind.LIVE:
            where = f" ({self.source})" if self.source else ""
            return f"live {self.item}{where}" if self.item else f"live view{where}"
        if self.kind is SourceKind.PHOTOS:
            return f"photo {self.item}" if self.item else "photo"
        return f"unknown-faces {self.source}, {self.item}" if self.item else f"unknown-faces {self.source}"


@dataclass(frozen=True)
class EnrolSample:
    """One face offered for enrolment.

    Attributes:
        embedding: ``(D,)`` float32 unit-length embedding.
        provenance: where it came from.
        quality: its quality measures, or ``None`` when unknown.
        crop: the ``(112, 112, 3)`` RGB uint8 aligned crop, or its stored JPEG, or ``None``.
    """

    embedding: np.ndarray = field(repr=False)
    provenance: Provenance
    quality: Quality | None = None
    crop: np.ndarray | bytes | None = field(default=None, repr=False)

    @classmethod
    def from_face(cls, face: Face, provenance: Provenance) -> EnrolSample:
        """A sample of an embedded face.

        Raises:
            ValueError: the face has no embedding yet.
        """
        if face.embedding is None:
            raise ValueError("a face must be embedded before it can be an enrolment sample")
        return cls(face.embedding, provenance, face.quality, face.crop)


class Refusal(str, Enum):
    """Why a sample was refused."""

    OTHER_SOURCE = "other source"
    UNLIKE_OTHERS = "unlike the other samples"
    UNLIKE_PERSON = "unlike the person"


@dataclass(frozen=True)
class RefusedSample:
    """A sample that will not be stored, and why.

    Attributes:
        sample: the sample.
        reason: the rule it broke.
        similarity: its best similarity to the samples kept (or to the person's stored
            samples); ``None`` for another source.
        message: the reason in one line.
    """

    sample: EnrolSample
    reason: Refusal
    similarity: float | None
    message: str

    @classmethod
    def other_source(cls, sample: EnrolSample, origin: Provenance) -> RefusedSample:
        """``sample`` comes from another source than ``origin``, the enrolment's first sample's."""
        msg = (f"{sample.provenance.label} comes from {sample.provenance.source_label}, but this enrolment's "
               f"samples come from {origin.source_label}: enrol from one source at a time (discard the others first)")
        return cls(sample, Refusal.OTHER_SOURCE, None, msg)

    @classmethod
    def unlike(cls, sample: EnrolSample, similarity: float | None, same_person: float, whom: str) -> RefusedSample:
        """``sample`` is unlike ``whom``: "the other samples", or a person's enrolled samples."""
        reason = Refusal.UNLIKE_OTHERS if whom == "the other samples" else Refusal.UNLIKE_PERSON
        how = f"similarity {similarity:.2f}" if similarity is not None else "not among the most similar people"
        msg = (f"{sample.provenance.label} is unlike {whom} ({how}; the same person reaches {same_person:.2f}): "
               "leave it out, or enrol it as the person it shows")
        return cls(sample, reason, similarity, msg)

    @classmethod
    def no_majority(cls, sample: EnrolSample, groups: int) -> RefusedSample:
        """The samples fall into ``groups`` people of the same size, so none can be kept."""
        msg = (f"{sample.provenance.label}: the samples show {groups} different people and none of them is the "
               "majority; enrol one person at a time")
        return cls(sample, Refusal.UNLIKE_OTHERS, None, msg)


@dataclass
class SampleSet:
    """Samples collected one at a time (a dialog's), under the enrolment rules.

    A sample is refused when it comes from another source than the first one, or when it is
    unlike every sample already in the set. Refusing the newcomer (not an earlier sample)
    keeps what the user has already seen accepted; an earlier sample of the wrong person can
    be discarded.

    Args:
        same_person: the similarity at which two faces are the same person (the model's 1:1
            verification threshold).
    """

    same_person: float
    samples: list[EnrolSample] = field(default_factory=list)

    def check(self, sample: EnrolSample) -> RefusedSample | None:
        """Why ``sample`` would be refused, or ``None`` when it would be taken."""
        if not self.samples:
            return None
        origin = self.samples[0].provenance
        if sample.provenance.origin != origin.origin:
            return RefusedSample.other_source(sample, origin)
        best = float(np.max(np.stack([s.embedding for s in self.samples]) @ sample.embedding))
        if best < self.same_person:
            return RefusedSample.unlike(sample, best, self.same_person, "the other samples")
        return None

    def add(self, sample: EnrolSample) -> RefusedSample | None:
        """Take ``sample`` unless it is refused; returns the refusal."""
        refused = self.check(sample)
        if refused is None:
            self.samples.append(sample)
        return refused

    def discard(self, i: int) -> None:
        del self.samples[i]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[EnrolSample]:
        return iter(self.samples)
