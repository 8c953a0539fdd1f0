"""Copy a gallery between stores (a folder and a PostgreSQL database, either way).

People, their templates (embedding, model id, aligned face crop, source, quality) and their
negative samples are copied person by person, each person in one transaction of the
destination. People without templates (left by a re-embedding that had no crop for them)
are not copied: they are listed in the report. Negative samples keep their face crops, so a
later re-embedding of the copy rebuilds them too.
The destination must be empty. At the end the destination's people, templates per model
and negative samples are counted and compared with the source's.

A copy is all or nothing. Into a folder (:func:`copy_gallery`), it is written into a hidden
staging folder beside the destination (``.NAME.incomplete``) and published by renaming it
only once the counts are checked. A copy that is killed leaves only the staging folder,
which never opens as the destination's gallery and is cleared by the next run; a copy that
fails removes it. Into a database (:func:`copy_store`), the destination is first marked as
an unfinished copy, in a transaction of its own that also checks it is empty and unmarked,
and the mark is cleared once the counts are checked: a marked gallery is never opened (one
line says to run the copy again), a device that opened it before the mark cannot write into
it meanwhile, and the next copy into it erases what the interrupted one wrote before it
starts. A copy that fails erases what it wrote, and only the copy holding the mark's token
can finish or erase it. (One transaction for the whole copy would hold every template of a
large gallery in one server transaction, and the copy's connection would be the only one
that could write meanwhile; the mark keeps the copy person by person.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceapp import private
from faceapp.config import GalleryAddress
from faceapp.errors import Fix, GalleryError
from faceapp.gallery.opening import open_store
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
    """Copy every person of ``src`` into the empty ``dst`` and check the counts, all or nothing.

    ``dst`` is marked as an unfinished copy while the people are written (see the module's
    docstring); the rest of an interrupted copy into it is erased first.

    Args:
        src: the store to read.
        dst: an empty store, or the rest of an interrupted copy (opened with ``copying=True``).
        progress: called with (templates copied, templates in all) after each person.

    Raises:
        GalleryError: ``dst`` is not empty, ``src`` is half-way through a re-embedding, or
            the counts differ at the end (the message says which).
    """
    if dst.copy_mark() is not None:  # the rest of an interrupted copy: started again from nothing
        dst.discard_copy()
    models = src.model_counts()
    if "?" in models or len(models) > 1:
        raise GalleryError(f"gallery {src.location} holds templates of {len(models)} models (a re-embedding is not "
                           "finished)", Fix.REEMBED_FIRST)
    token = dst.mark_copy(src.location)  # refuses a gallery that holds anyone
    try:
        report = _copy_people(src, dst, models, progress)
        dst.finish_copy(token)
    except BaseException:
        with contextlib.suppress(Exception):  # else the mark stays, and the next copy erases it
            dst.discard_copy(token)
        raise
    return report


def _copy_people(src: Store, dst: Store, models: dict[str, int],
                 progress: Callable[[int, int], None] | None) -> CopyReport:
    """Copy every person of ``src`` with templates into ``dst``; check the counts."""
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


def staging_folder(final: Path) -> Path:
    """Where a copy into the folder ``final`` is written before it is published."""
    return final.parent / f".{final.name}.incomplete"


def copy_gallery(src_spec: str | Path, dst_spec: str | Path, *,
                 progress: Callable[[int, int], None] | None = None) -> tuple[CopyReport, str]:
    """Copy the gallery ``src_spec`` names into the empty one ``dst_spec`` names.

    A folder destination is written under :func:`staging_folder` and renamed into place at
    the end, so it holds the whole copy or nothing (an empty folder given as the
    destination stays as it was until then).

    Args:
        src_spec: a gallery folder or PostgreSQL address.
        dst_spec: an empty (or missing) folder, or an empty PostgreSQL database.
        progress: see :func:`copy_store`.

    Returns:
        The report and where the copy now is.

    Raises:
        GalleryError: see :func:`copy_store`; also when the destination folder is not empty.
    """
    src = open_store(src_spec)
    try:
        address = GalleryAddress.parse(dst_spec)
        if address.folder is None:
            dst = open_store(address, copying=True)
            try:
                return copy_store(src, dst, progress=progress), dst.location
            finally:
                dst.close()
        final = address.folder
        if final.exists() and (not final.is_dir() or any(final.iterdir())):
            raise GalleryError(f"gallery {final} is not empty; copy into a new folder or an empty database")
        staging = staging_folder(final)
        if staging.exists():  # left by a copy that was killed: never published, never a gallery
            shutil.rmtree(staging)
        try:
            dst = open_store(staging, copying=True)
            try:
                report = copy_store(src, dst, progress=progress)
            finally:
                dst.close()
            _publish(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return report, str(final)
    finally:
        src.close()


def _publish(staging: Path, final: Path) -> None:
    """Rename the finished copy into place (an empty destination folder is replaced)."""
    for leftover in staging.glob("*-shm"):  # SQLite's shared memory is not part of the copy
        with contextlib.suppress(OSError):
            leftover.unlink()
    if final.is_dir():
        final.rmdir()
    os.replace(staging, final)
    private.fsync_dir(final.parent)
