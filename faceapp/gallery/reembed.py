"""Re-embedding: rebuild a gallery's templates with a new model from the stored face crops.

The new templates are written beside the old ones in batches, each batch one transaction,
so an interrupted run resumes where it stopped and searches keep answering with the old
model until the new set is complete. Then one transaction switches the gallery to the new
model and erases the old templates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from faceapp.gallery.gallery import Gallery
from faceapp.gallery.integrity import Damaged
from faceapp.gallery.store import Erased

BATCH = 32


@dataclass(frozen=True)
class ReembedReport:
    """What a re-embedding did.

    Attributes:
        embedded: crops embedded by this run (templates and negative samples).
        resumed: rows an earlier, interrupted run had already done.
        erased: the old model's rows, erased at the switch.
        without_crop: people with templates that had no stored crop: enrol them again.
    """

    embedded: int
    resumed: int
    erased: Erased
    without_crop: tuple[str, ...]


def reembed(gallery: Gallery, model_id: str, embed: Callable[[np.ndarray], np.ndarray],
            decode: Callable[[bytes], np.ndarray], *, progress: Callable[[int, int], None] | None = None,
            batch: int = BATCH, stop_after: int | None = None) -> ReembedReport | None:
    """Rebuild every template and negative sample of other models with ``embed``.

    Args:
        gallery: the gallery to convert.
        model_id: sha256 of the new embedder.
        embed: ``(N, 112, 112, 3)`` RGB uint8 crops -> ``(N, D)`` unit embeddings.
        decode: a stored crop's bytes -> ``(112, 112, 3)`` RGB uint8.
        progress: called with ``(done, total)`` after each batch.
        batch: crops per embedder call and per transaction.
        stop_after: stop (unfinished, returning ``None``) after this many batches; for
            tests of resuming.

    Returns:
        The report, or ``None`` when stopped early by ``stop_after``.
    """
    store = gallery.store
    before = store.reembed_status(model_id)
    total = before.pending
    done = batches = 0
    while True:
        work = store.reembed_work(model_id, batch)
        if not work:
            break
        if stop_after is not None and batches >= stop_after:
            return None
        vectors = embed(np.stack([decode(w.crop) for w in work]))
        store.add_reembedded(model_id, list(zip(work, vectors)))
        done += len(work)
        batches += 1
        if progress is not None:
            progress(done, total)
    erased = store.finish_reembed(model_id)
    gallery.refresh(erased=True)
    return ReembedReport(embedded=done, resumed=before.done, erased=erased, without_crop=before.without_crop)


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_damaged` found and did.

    Attributes:
        damaged: every damaged stored vector found, by person (never searched).
        repaired: those embedded again from their own face crops.
        left: those that could not be (no crop: negative samples or templates enrolled
            without crops, or made by another model): their people need enrolling again.
    """

    damaged: tuple[Damaged, ...]
    repaired: tuple[Damaged, ...]
    left: tuple[Damaged, ...]

    def by_person(self) -> dict[str, int]:
        """Damaged vectors per person, in the order they were found."""
        counts: dict[str, int] = {}
        for d in self.damaged:
            counts[d.name] = counts.get(d.name, 0) + 1
        return counts


def repair_damaged(gallery: Gallery, model_id: str, embed: Callable[[np.ndarray], np.ndarray],
                   decode: Callable[[bytes], np.ndarray]) -> RepairReport:
    """Embed every damaged template again from its stored face crop, in its place.

    Args:
        gallery: the gallery to check.
        model_id: the model ``embed`` runs; templates of another model are left.
        embed: ``(N, H, W, 3)`` RGB uint8 crops -> ``(N, D)`` unit-length embeddings.
        decode: a stored crop's bytes -> its ``(H, W, 3)`` RGB uint8 image.
    """
    damaged = tuple(gallery.damaged_templates())
    repaired: list[Damaged] = []
    left: list[Damaged] = []
    crops: dict[str, dict[int, bytes | None]] = {}
    for d in damaged:
        if d.kind == "template" and d.name not in crops:
            crops[d.name] = {s.template_id: s.crop for s in gallery.samples(d.name)}
        crop = crops.get(d.name, {}).get(d.row_id) if d.kind == "template" else None
        if crop is None or d.model_id != model_id:
            left.append(d)
            continue
        gallery.repair(d, embed(decode(crop)[None]))
        repaired.append(d)
    return RepairReport(damaged, tuple(repaired), tuple(left))
