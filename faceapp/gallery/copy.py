"""Copy a gallery between stores (a folder and a PostgreSQL database, either way).

People, their templates (embedding, model id, aligned face crop, source, quality) and their
negative samples are copied person by person, each person in one transaction of the
destination. People without templates (left by a re-embedding that had no crop for them)
are not copied: they are listed in the report. Negative samples keep their face crops, so a
later re-embedding of the copy rebuilds them too.
The destination must be empty. At the end the destination's people, templates per model
and negative samples are counted and compared with the source's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from faceapp.errors import GalleryError
from faceapp.gallery.store import Store


@dataclass(frozen=True)
class CopyReport:
    """What a copy did.

    Attributes:
        people: people copied.
        templates: templates copied, per model id.
        negatives: negative samples copied.
        skipped: names of people without templates, not copied.
    """

    people: int
    templates: dict[str, int]
    negatives: int
    skipped: tuple[str, ...] = ()


def copy_store(src: Store, dst: Store, *, progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy every person of ``src`` into the empty ``dst`` and check the counts.

    Args:
        src: the store to read.
        dst: an empty store.
        progress: called with (templates copied, templates in all) after each person.

    Raises:
        GalleryError: ``dst`` is not empty, ``src`` is half-way through a re-embedding, or
            the counts differ at the end (the message says which).
    """
    if dst.count_persons():
        raise GalleryError(f"gallery {dst.location} is not empty; copy into a new folder or an empty database")
    models = src.model_counts()
    if "?" in models or len(models) > 1:
        raise GalleryError(f"gallery {src.location} holds templates of {len(models)} models (a re-embedding is not "
                           "finished); run `faceapp-cli reembed` on it first")
    state = src.state()
    total = src.count_templates()
    done = 0
    negatives: dict[int, list[tuple[np.ndarray, bytes | None]]] = {}
    model = state.model_id
    if model is not None:
        for pid, vec, crop in src.negative_samples(model):
            negatives.setdefault(pid, []).append((vec, crop))
    everyone = src.list_persons()
    people = [p for p in everyone if p.templates]
    for person in people:
        samples = src.samples(person.name)
        if samples and model is not None and state.dim is not None:
            vectors = src.embeddings(np.array([s.template_id for s in samples], np.int64), state.dim)
            dst.add_templates(person.name, vectors, model_id=model, crops=[s.crop for s in samples],
                              sources=[s.source for s in samples], qualities=[s.quality for s in samples],
                              create=True, must_be_new=True)
        for vec, crop in negatives.get(person.id, []):
            assert model is not None
            dst.add_negative(person.name, vec, model_id=model, crop=crop)
        done += len(samples)
        if progress is not None:
            progress(done, total)
    got = dst.model_counts()
    problems = []
    if got != models:
        problems.append(f"templates per model {got} instead of {models}")
    if dst.count_persons() != len(people):
        problems.append(f"{dst.count_persons()} people instead of {len(people)}")
    want_neg = sum(len(negatives.get(p.id, [])) for p in people)
    got_neg = len(dst.negatives(model)[0]) if model is not None else want_neg
    if got_neg != want_neg:
        problems.append(f"{got_neg} negative samples instead of {want_neg}")
    if problems:
        raise GalleryError(f"the copy in {dst.location} does not match {src.location}: {'; '.join(problems)}")
    return CopyReport(people=len(people), templates=got, negatives=want_neg,
                      skipped=tuple(p.name for p in everyone if not p.templates))
