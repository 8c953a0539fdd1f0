"""Enrolment: the one use case that turns samples into a person, and the guided-capture rules.

Every way of enrolling (the CLI's ``enroll`` and ``import``, the GUI's "Add person", the
people library's "Add photos", "It's X" on a live face, the unknown-faces inbox, and
:meth:`faceapp.pipeline.Pipeline.enroll`) goes through :class:`Enrolment`, so one set of
rules decides what is stored:

- **One source at a time.** An enrolment's samples come from one source: frames of one live
  view, photo files, or one inbox group. A sample from another source is refused.
- **One person.** Samples unlike the others are refused with the reason (the same-person test
  is the model's 1:1 verification threshold); adding to someone enrolled, a sample must also be
  like their stored samples.
- **No silent look-alikes.** When the samples match someone already enrolled under another name,
  nothing is stored without an explicit choice: add them to that person, or say that the new name
  is someone else (``despite_match``).
- **Provenance.** Each sample says where it came from (which live frame, which photo, which
  inbox face), and the gallery keeps that with the template.

:func:`review_samples` is the pure decision over embeddings and match results;
:class:`SampleSet` applies the same rules one sample at a time while a dialog collects them;
:class:`Enrolment` reads the gallery, decides and stores. Faces (CLI, GUI) word the typed
:class:`EnrolmentReview` for themselves.

Guided capture is pure logic over :class:`~faceapp.types.Face` values, so the GUI holds no
rules of its own. A live sample is taken only when exactly one face is present and it passes
the quality gates; the guide asks for a little pose variety (frontal, then slightly left and
right, in any order). :func:`assess_sample` applies the same gates to stored samples, so that a
library can flag the low-quality ones (tiny, blurred or turned-away crops are what make a
gallery give confident false matches).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np

from faceapp.errors import DuplicatePersonError, FaceappError
from faceapp.gallery.store import Person
from faceapp.gallery.store import Sample as StoredSample
from faceapp.types import Face, Match, Quality


@dataclass(frozen=True)
class QualityGates:
    """Thresholds a sample must pass."""

    min_face_size: float = 40.0  # inter-ocular distance, pixels
    min_sharpness: float = 60.0  # variance of the Laplacian of the aligned crop
    max_abs_yaw: float = 35.0  # degrees
    max_abs_roll: float = 20.0
    min_brightness: float = 50.0
    max_brightness: float = 220.0
    min_change: float = 0.02  # 1 - cosine to every sample so far: skip near-duplicates


# Pose targets: (label, yaw range in degrees, instruction). Yaw is positive when the face
# turns towards the image's right, which on an unmirrored camera is the person's own left.
POSES = [
    ("frontal", (-10.0, 10.0), "look straight at the camera"),
    ("left", (8.0, 35.0), "turn your head slightly to your left"),
    ("right", (-35.0, -8.0), "turn your head slightly to your right"),
]


@dataclass(frozen=True)
class SampleAssessment:
    """Quality badges of one face sample and what is wrong with it.

    Attributes:
        badges: short descriptions for display: size, sharpness, pose.
        problems: why the sample is low quality (empty when it is fine).
        known: whether quality measures were available at all.
    """

    badges: tuple[str, ...]
    problems: tuple[str, ...]
    known: bool = True

    @property
    def low_quality(self) -> bool:
        return bool(self.problems)


def _quality_problems(q: Quality, g: QualityGates) -> list[tuple[str, str, str]]:
    """Every failed gate as ``(gate, problem, guidance)``, most important first; ``gate``
    names the rule without this sample's measure (for counting samples by reason)."""
    out = []
    if q.face_size < g.min_face_size:
        out.append((f"face under {g.min_face_size:.0f} px between the eyes",
                    f"small face ({q.face_size:.0f} px between the eyes, {g.min_face_size:.0f} needed)", "move closer"))
    if q.brightness < g.min_brightness:
        out.append(("too dark", "too dark", "too dark: add light in front of you"))
    if q.brightness > g.max_brightness:
        out.append(("too bright", "too bright", "too bright: avoid light behind or on the camera"))
    if abs(q.roll) > g.max_abs_roll:
        out.append((f"head tilted over {g.max_abs_roll:.0f}°", f"head tilted {abs(q.roll):.0f}°", "keep your head upright"))
    if abs(q.yaw) > g.max_abs_yaw:
        out.append((f"face turned over {g.max_abs_yaw:.0f}°", f"face turned {abs(q.yaw):.0f}°", "face the camera more"))
    if q.sharpness < g.min_sharpness:
        out.append(("blurred", "blurred", "hold still"))
    return out


def pose_label(yaw: float) -> str:
    """``"frontal"``, ``"left"`` or ``"right"`` (the person's own side), or ``"turned"``."""
    for label, (lo, hi), _ in POSES:
        if lo <= yaw <= hi:
            return label
    return "turned"


def as_quality(quality: Quality | Mapping[str, float] | None) -> Quality | None:
    """A :class:`Quality` from itself or from the dict the gallery and the inbox store.

    Returns:
        ``None`` when there is no quality or the dict lacks a measure.
    """
    if quality is None or isinstance(quality, Quality):
        return quality
    try:
        return Quality(**{f.name: float(quality[f.name]) for f in dataclasses.fields(Quality)})
    except (KeyError, TypeError, ValueError):
        return None


def assess_sample(quality: Quality | Mapping[str, float] | None, gates: QualityGates | None = None) -> SampleAssessment:
    """Badges and problems of a stored or live sample, by the enrolment quality gates.

    Args:
        quality: the sample's measures (a :class:`Quality` or the dict the gallery stores);
            ``None`` when the sample has none.
        gates: the thresholds (default :class:`QualityGates`).

    Returns:
        A :class:`SampleAssessment`; ``low_quality`` when any gate fails.
    """
    g = gates or QualityGates()
    q = as_quality(quality)
    if q is None:
        return SampleAssessment(badges=("quality not measured",), problems=(), known=False)
    sharp = "sharp" if q.sharpness >= g.min_sharpness else "blurred"
    badges = (f"{q.face_size:.0f} px", sharp, pose_label(q.yaw))
    return SampleAssessment(badges=badges, problems=tuple(p for _, p, _ in _quality_problems(q, g)))


@dataclass(frozen=True)
class LowQuality:
    """How many samples of a batch (an import, photos added to a person) fail the quality
    gates, and why.

    Attributes:
        flagged: samples with at least one problem.
        total: samples looked at.
        reasons: ``(gate, samples failing it)``, most samples first (a sample may fail several).
    """

    flagged: int
    total: int
    reasons: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        if not self.flagged:
            return f"all {self.total} sample(s) pass the quality checks"
        why = ", ".join(f"{n} {gate}" for gate, n in self.reasons)
        return (f"{self.flagged} of {self.total} sample(s) flagged low quality ({why}); they may give confident "
                "wrong matches: review them in the People view (Select low-quality)")


def low_quality(qualities: Iterable[Quality | Mapping[str, float] | None], gates: QualityGates | None = None) -> LowQuality:
    """Count the samples of a batch that fail the quality gates, by gate.

    Args:
        qualities: each sample's measures (samples without any are counted, never flagged).
        gates: the thresholds (default :class:`QualityGates`).
    """
    g = gates or QualityGates()
    counts: Counter[str] = Counter()
    flagged = total = 0
    for quality in qualities:
        total += 1
        q = as_quality(quality)
        gates_failed = [gate for gate, _, _ in _quality_problems(q, g)] if q is not None else []
        flagged += bool(gates_failed)
        counts.update(gates_failed)
    return LowQuality(flagged, total, tuple(counts.most_common()))


def sample_score(quality: Quality | Mapping[str, float] | None) -> float:
    """How good a sample is for a template, higher is better: passing the gates first, then
    a large, sharp, frontal face. Used to keep the best samples of a group."""
    q = as_quality(quality)
    if q is None:
        return -1e6
    return -1000.0 * len(assess_sample(q).problems) + min(q.face_size, 150.0) + min(q.sharpness, 500.0) / 10.0 - abs(q.yaw)


# ---------------------------------------------------------------------- samples and where they came from


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


def _other_source(sample: EnrolSample, origin: Provenance) -> RefusedSample:
    msg = (f"{sample.provenance.label} comes from {sample.provenance.source_label}, but this enrolment's samples "
           f"come from {origin.source_label}: enrol from one source at a time (discard the others first)")
    return RefusedSample(sample, Refusal.OTHER_SOURCE, None, msg)


def _unlike(sample: EnrolSample, similarity: float | None, same_person: float, whom: str) -> RefusedSample:
    reason = Refusal.UNLIKE_OTHERS if whom == "the other samples" else Refusal.UNLIKE_PERSON
    how = f"similarity {similarity:.2f}" if similarity is not None else "not among the most similar people"
    msg = (f"{sample.provenance.label} is unlike {whom} ({how}; the same person reaches {same_person:.2f}): "
           "leave it out, or enrol it as the person it shows")
    return RefusedSample(sample, reason, similarity, msg)


def _no_majority(sample: EnrolSample, groups: int) -> RefusedSample:
    msg = (f"{sample.provenance.label}: the samples show {groups} different people and none of them is the "
           "majority; enrol one person at a time")
    return RefusedSample(sample, Refusal.UNLIKE_OTHERS, None, msg)


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
            return _other_source(sample, origin)
        best = float(np.max(np.stack([s.embedding for s in self.samples]) @ sample.embedding))
        if best < self.same_person:
            return _unlike(sample, best, self.same_person, "the other samples")
        return None

    def add(self, sample: EnrolSample) -> RefusedSample | None:
        """Take ``sample`` unless it is refused; returns the refusal."""
        refused = self.check(sample)
        if refused is None:
            self.samples.append(sample)
        return refused

    def discard(self, i: int) -> None:
        del self.samples[i]

    def clear(self) -> None:
        self.samples.clear()

    @property
    def origin(self) -> Provenance | None:
        """The source of the samples so far (the first sample's), or ``None`` when empty."""
        return self.samples[0].provenance if self.samples else None

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[EnrolSample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> EnrolSample:
        return self.samples[i]


# ---------------------------------------------------------------------- the decision


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
            refused[i] = _other_source(s, origin)
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
                        refused[same[k]] = _unlike(samples[same[k]], to_person[k], same_person,
                                                   f"{name}'s enrolled samples")
        elif len(groups) > 1 and len(groups[0]) == len(groups[1]):
            keep = []
            for k in range(len(same)):
                refused[same[k]] = _no_majority(samples[same[k]], len(groups))
        else:
            keep = [same[k] for k in groups[0]]
            for g in groups[1:]:
                for k in g:
                    best = float(np.max(sims[k, groups[0]]))
                    refused[same[k]] = _unlike(samples[same[k]], best, same_person, "the other samples")
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

    def __init__(self, message: str, review: EnrolmentReview) -> None:
        super().__init__(message)
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
            f"enrolled; add them to {top.name!r} with --add, or use --despite-match if {review.name!r} is "
            "someone else; nothing was stored")


# ---------------------------------------------------------------------- the use case


class EnrolmentGallery(Protocol):
    """What enrolment needs of a gallery (:class:`~faceapp.gallery.gallery.Gallery` has it)."""

    def has_person(self, name: str) -> bool: ...
    def samples(self, name: str) -> list[StoredSample]: ...
    def add_templates(self, name: str, embeddings: np.ndarray, *, model_id: str,
                      thumbnails: Sequence[bytes | None] | None = None,
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
            raise DuplicatePersonError(
                f"a person named {review.name!r} already exists; use --add to add these photos to them")
        if review.refused and (not drop_refused or not review.accepted):
            raise UnlikeSamplesError(_refused_message(review), review)
        if review.lookalikes and not despite_match:
            raise LookalikeError(_lookalike_message(review), review)
        kept = review.accepted
        person = self.gallery.add_templates(
            review.name, np.stack([s.embedding for s in kept]).astype(np.float32), model_id=self.model_id,
            thumbnails=[self._thumbnail(s) for s in kept], sources=[s.provenance.label for s in kept],
            qualities=[dataclasses.asdict(s.quality) if s.quality is not None else None for s in kept],
            create=True, must_be_new=not add,
        )
        return EnrolmentResult(person, review)

    def _thumbnail(self, sample: EnrolSample) -> bytes | None:
        if self.encode is None or sample.crop is None:
            return None
        return sample.crop if isinstance(sample.crop, bytes) else self.encode(sample.crop)


# ---------------------------------------------------------------------- guided capture from the live view


@dataclass(frozen=True)
class Verdict:
    """What happened to one frame during guided capture.

    Attributes:
        accepted: a sample was taken.
        message: what to tell the user.
        face: the face the verdict is about, if any.
        refused: when the face passed the quality gates but the enrolment rules refused it.
    """

    accepted: bool
    message: str
    face: Face | None = None
    refused: RefusedSample | None = None


@dataclass
class EnrolmentGuide:
    """Collects ``target`` live samples from successive frames into a :class:`SampleSet`.

    Call :meth:`offer` with every frame's faces while the user has asked for live capture.
    A pose the person cannot give (a stiff neck, a fixed camera) can be skipped
    (:meth:`skip_pose`): it is no longer asked for, and :meth:`coverage` says it is missing.
    """

    samples: SampleSet
    target: int = 5
    gates: QualityGates = field(default_factory=QualityGates)
    skipped: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return len(self.samples) >= self.target

    @property
    def progress(self) -> tuple[int, int]:
        """``(samples taken, samples wanted)``."""
        return len(self.samples), self.target

    def _covered(self) -> set[str]:
        return {pose_label(s.quality.yaw) for s in self.samples if s.quality is not None}

    def missing_poses(self) -> list[tuple[str, tuple[float, float], str]]:
        """The poses (of the first ``target``) that no sample covers yet and that were not
        skipped, in :data:`POSES` order."""
        have = self._covered()
        return [p for p in POSES[: self.target] if p[0] not in have and p[0] not in self.skipped]

    def skip_pose(self) -> str | None:
        """Stop asking for the pose asked for now; returns its label (``None``: none was asked for)."""
        missing = self.missing_poses()
        if not missing:
            return None
        self.skipped.add(missing[0][0])
        return missing[0][0]

    def coverage(self) -> str:
        """Which poses the samples cover and which are missing (skipped ones said so)."""
        have = self._covered()
        poses = [p[0] for p in POSES[: self.target]]
        got = [p for p in poses if p in have]
        lacking = [p + (" (skipped)" if p in self.skipped else "") for p in poses if p not in have]
        return f"poses: {', '.join(got) or 'none yet'}" + (f"; missing: {', '.join(lacking)}" if lacking else "")

    def wanted_pose(self) -> tuple[str, tuple[float, float], str]:
        """The next pose to ask for; any of the missing ones is accepted."""
        missing = self.missing_poses()
        return missing[0] if missing else POSES[len(self.samples) % len(POSES)]

    def check(self, face: Face) -> str | None:
        """The first quality problem of ``face`` as guidance, or ``None`` when it passes."""
        problems = _quality_problems(face.quality, self.gates)
        return problems[0][2] if problems else None

    def offer(self, faces: list[Face], provenance: Provenance) -> Verdict:
        """One frame's embedded faces; a sample is taken when exactly one good face is in view.

        Args:
            faces: the frame's faces, embedded.
            provenance: where this frame came from.
        """
        if self.done:
            return Verdict(False, "all samples taken: save, or discard some to take more")
        if not faces:
            return Verdict(False, "no face in view")
        if len(faces) > 1:
            return Verdict(False, "only one person in view, please")
        face = faces[0]
        problem = self.check(face)
        if problem:
            return Verdict(False, problem, face)
        missing = self.missing_poses()
        label = pose_label(face.quality.yaw)
        if missing and label not in {m[0] for m in missing}:
            return Verdict(False, f"{missing[0][2]} (or skip this pose)", face)
        sample = EnrolSample.from_face(face, provenance)
        if len(self.samples):
            sims = np.stack([s.embedding for s in self.samples]) @ sample.embedding
            if 1.0 - float(np.max(sims)) < self.gates.min_change:
                return Verdict(False, "move a little", face)
        refused = self.samples.add(sample)
        if refused is not None:
            return Verdict(False, refused.message, face, refused)
        left = self.missing_poses()
        nxt = "" if self.done else f"; next: {left[0][2]}" if left else "; keep moving a little"
        return Verdict(True, f"sample {len(self.samples)} of {self.target} taken ({label}){nxt}", face)
