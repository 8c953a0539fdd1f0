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
