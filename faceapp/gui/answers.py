"""The user's answers about one face: "It's X" adds it as a sample, "Not X" keeps it as a
negative sample. Shared by the face menu, the candidates and the recent recognitions."""

from __future__ import annotations

import dataclasses

from faceapp.pipeline import Pipeline
from faceapp.recognise.enrol import EnrolmentResult, EnrolSample, Provenance
from faceapp.recognise.track import TrackResult
from faceapp.types import Face, FaceResult, Match


def shown_match(fr: FaceResult | TrackResult) -> Match | None:
    """The decision to act on for a face in the view: a track's settled decision, else its
    newest evaluation; a photo face's match."""
    if isinstance(fr, TrackResult):
        return fr.match or fr.latest
    return fr.match


def embedded(pipeline: Pipeline, face: Face) -> Face:
    """``face`` with its embedding (a tracked face is embedded only on some frames)."""
    if face.embedding is not None:
        return face
    return dataclasses.replace(face, embedding=pipeline.embedder.embed(face.crop[None])[0])


def confirm_face(pipeline: Pipeline, face: Face, name: str, provenance: Provenance) -> EnrolmentResult:
    """"It's X", the user's explicit choice: add the face as a sample of ``name``, who is enrolled."""
    sample = EnrolSample.from_face(embedded(pipeline, face), provenance)
    return pipeline.enrolment().enrol(name, [sample], add=True, despite_match=True)


def reject_face(pipeline: Pipeline, face: Face, name: str) -> None:
    """"Not X": keep the face as a negative sample of ``name``."""
    pipeline.reject(name, embedded(pipeline, face))
