"""Frozen dataclasses that cross module boundaries.

Boxes are always pixel ``(x0, y0, x1, y1)`` in the coordinates of the image the caller
passed in; keypoints are pixel ``(x, y)``. Images are RGB ``uint8`` arrays of shape
``(H, W, 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One detected face.

    Attributes:
        box: pixel ``(x0, y0, x1, y1)``, clipped to the image.
        keypoints: ``(6, 2)`` float32 pixel points in MediaPipe's order: the eye on the
            image's left, the eye on the image's right, nose tip, mouth centre, the ear
            tragion on the image's left, the ear tragion on the image's right.
        score: detector confidence in ``[0, 1]``.
    """

    box: Box
    keypoints: np.ndarray = field(repr=False)
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True)
class Quality:
    """Per-face quality measures, computed from the keypoints and the aligned crop.

    Attributes:
        face_size: inter-ocular distance in source pixels (about 0.4 of the face width).
        sharpness: variance of the Laplacian of the grey aligned crop (higher = sharper).
        yaw: rough head turn in degrees from the keypoints; positive = the face is
            turned towards the image's right. 0 is frontal.
        roll: in-plane tilt of the eye line in degrees.
        brightness: mean grey level of the aligned crop, 0-255.
    """

    face_size: float
    sharpness: float
    yaw: float
    roll: float
    brightness: float


@dataclass(frozen=True)
class Face:
    """A detected, aligned and (optionally) embedded face.

    Attributes:
        detection: the detector's output for this face.
        crop: ``(112, 112, 3)`` RGB uint8 aligned crop (the embedder's first alignment; the
            gallery stores it).
        quality: quality measures.
        embedding: ``(D,)`` float32 unit-length embedding, or ``None`` before embedding.
        inputs: crops for the embedder's other alignments, in its order (a fused embedder's
            networks that want the face aligned their own way), aligned from the photo;
            empty when the embedder has one alignment or the face comes from a stored crop.
    """

    detection: Detection
    crop: np.ndarray = field(repr=False)
    quality: Quality
    embedding: np.ndarray | None = field(default=None, repr=False)
    inputs: tuple[np.ndarray, ...] = field(default=(), repr=False)


class Decision(str, Enum):
    """Open-set decision for one face."""

    MATCH = "match"
    AMBIGUOUS = "ambiguous"  # clears the threshold, but the runner-up person is too close to tell apart
    UNCERTAIN = "uncertain"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Candidate:
    """One gallery person and their best similarity to a probe (higher = more alike)."""

    person_id: int
    name: str
    similarity: float


@dataclass(frozen=True)
class Match:
    """The decision for one probe face.

    Attributes:
        decision: match / ambiguous / uncertain / unknown.
        person: the best person's name when ``decision`` is ``MATCH``, else ``None``: a
            name is never shown without a match (the candidates say who came close).
        similarity: the best person's cosine similarity, or ``None`` for an empty gallery.
        candidates: the top-k people, best first.
    """

    decision: Decision
    person: str | None
    similarity: float | None
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class FaceResult:
    """A face in an image and what it matched."""

    face: Face
    match: Match
