"""Face-library operations over a gallery: how alike two people are, moving samples between them.

No Qt: the GUI's people and samples views call these and word the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from faceapp.errors import FaceappError, GalleryError
from faceapp.gallery.store import Erased, Person, Sample, StoreState
from faceapp.recognise.enrol import EnrolmentGallery


class _Store(Protocol):
    def state(self) -> StoreState: ...
    def embeddings(self, ids: np.ndarray, dim: int) -> np.ndarray: ...


class LibraryGallery(EnrolmentGallery, Protocol):
    """What these operations need of a gallery (:class:`~faceapp.gallery.gallery.Gallery` has it)."""

    @property
    def store(self) -> _Store: ...
    def get_person(self, name: str) -> Person: ...
    def remove_template(self, template_id: int) -> Erased: ...


def _embeddings(gallery: LibraryGallery, samples: Sequence[Sample]) -> np.ndarray:
    """``(N, D)`` float32 stored embeddings of ``samples``."""
    dim = gallery.store.state().dim
    if dim is None or not samples:
        return np.zeros((0, dim or 0), np.float32)
    return gallery.store.embeddings(np.array([s.template_id for s in samples], np.int64), int(dim))


def mean_face(gallery: LibraryGallery, name: str, model_id: str) -> np.ndarray | None:
    """The unit-length mean of ``name``'s templates made by ``model_id``; ``None`` when there are none.

    Raises:
        UnknownPersonError: ``name`` is not enrolled.
    """
    emb = _embeddings(gallery, [s for s in gallery.samples(name) if s.model_id == model_id])
    if len(emb) == 0:
        return None
    m = emb.mean(axis=0)
    n = float(np.linalg.norm(m))
    return m / n if n > 0 else m


def person_similarity(gallery: LibraryGallery, a: str, b: str, model_id: str) -> float | None:
    """How alike two enrolled people are: the similarity of their mean faces (higher = more
    alike, on the same scale as the match threshold); ``None`` when either has no template of
    ``model_id``.

    Raises:
        UnknownPersonError: either is not enrolled.
    """
    fa, fb = mean_face(gallery, a, model_id), mean_face(gallery, b, model_id)
    if fa is None or fb is None:
        return None
    return float(fa @ fb)


def move_samples(gallery: LibraryGallery, name: str, template_ids: Sequence[int], target: str) -> Person:
    """Move samples of ``name`` to ``target``: each is stored under ``target`` exactly as it was
    (embedding, crop, quality, source, model), then erased from ``name``.

    Stored first and erased second, so a failure half-way leaves a sample under both people,
    never under neither. The person's last sample stays (merge or delete the person instead).

    Args:
        gallery: the gallery.
        name: the person the samples belong to now.
        template_ids: the samples.
        target: the enrolled person to move them to.

    Returns:
        ``target`` as stored after the move.

    Raises:
        FaceappError: a sample is not ``name``'s, every sample was chosen, or ``target`` is ``name``.
        UnknownPersonError: ``name`` or ``target`` is not enrolled.
    """
    if target.strip().casefold() == name.strip().casefold():
        raise FaceappError(f"the samples already belong to {name}; choose another person")
    samples = {s.template_id: s for s in gallery.samples(name)}
    chosen = [samples[int(t)] for t in template_ids if int(t) in samples]
    if len(chosen) != len(template_ids):
        raise GalleryError(f"some of those samples are no longer {name}'s; reopen their samples")
    if not chosen:
        raise FaceappError("no sample chosen; select the samples to move")
    if len(chosen) >= len(samples):
        raise FaceappError(f"that would move every sample of {name}; merge {name} into {target} instead")
    if any(s.model_id is None for s in chosen):
        raise GalleryError("a sample's model is not recorded; rebuild the gallery with this model first")
    gallery.get_person(target)  # raises before anything changes when the target is not enrolled
    emb = _embeddings(gallery, chosen)
    for s, e in zip(chosen, emb):
        gallery.add_templates(target, e[None], model_id=str(s.model_id), crops=[s.crop], sources=[s.source],
                              qualities=[s.quality], create=False)
        gallery.remove_template(s.template_id)
    return gallery.get_person(target)
