"""Rebuilding a SQL gallery's stored vectors: damaged ones found and repaired, and re-embedding.

:class:`Rebuilder` is the part of :class:`~faceapp.gallery.sql_store.SQLStore` that makes
stored vectors again from their face crops: it lists the rows that are not what was written
(:mod:`faceapp.gallery.integrity`), puts a newly made vector in place of a damaged one, and
keeps a re-embedding's new-model rows beside the old ones until it is finished
(:mod:`faceapp.gallery.reembed` drives it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceapp.gallery import crypto as seal
from faceapp.gallery import integrity
from faceapp.gallery.store import Erased, ReembedStatus, ReembedWork, new_row_id

if TYPE_CHECKING:
    from faceapp.gallery.sql_store import SQLStore

SEAL_BYTES = seal.NONCE + 16  # what sealing adds to a value: its nonce and its tag


class Rebuilder:
    """Finds, repairs and re-embeds the stored vectors of ``store``.

    Args:
        store: the store whose rows are rebuilt (its database, data keys and change log).
    """

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self.db = store.dialect
        self.keys = store.data_keys

    # ------------------------------------------------------------------ damage

    def damaged(self) -> list[integrity.Damaged]:
        """Every stored template and negative sample that is not what was written, by person."""
        found = []
        for kind, table in (("template", "templates"), ("negative", "negatives")):
            sql = (f"SELECT t.id, p.name, t.embedding, t.checksum, t.model_id, t.crop IS NOT NULL, p.id FROM {table} t "
                   "JOIN persons p ON p.id = t.person_id")
            state = self.store.state()
            rows = self.keys.named(self.db.rows(sql, (), binary=True), 6, 1)
            for rid, name, value, crc, model, has_crop, pid in sorted(rows, key=lambda r: (r[1].casefold(), r[0])):
                dim = state.dim if model == state.model_id else None
                if self.keys.vector(pid, kind, rid, value, crc, dim)[0] is None:
                    found.append(integrity.Damaged(kind, int(rid), name, model, bool(has_crop)))
        return found

    def repair(self, kind: str, row_id: int, vector: np.ndarray) -> None:
        """Put a newly made vector (from the row's own crop) in place of a damaged one."""
        emb = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(-1))
        table = "templates" if kind == "template" else "negatives"
        with self.db.transaction() as tx:
            model = tx.rows(f"SELECT model_id, person_id FROM {table} WHERE id = ?", (int(row_id),))
            if not model:
                return
            pid = int(model[0][1])
            self.keys.open_keys([pid], tx)
            value = self.keys.seal(pid, kind, int(row_id), emb.tobytes()) or b""
            tx.run(f"UPDATE {table} SET embedding = ?, checksum = ? WHERE id = ?",
                   (value, integrity.checksum(row_id, value), int(row_id)))
            if kind == "template":  # devices that left it out of their index take it in again
                self.store.log_templates(tx, "add", [(int(row_id), model[0][0])])

    # ------------------------------------------------------------------ re-embedding

    def _pending(self, table: str) -> str:
        """Rows of ``table`` (aliased ``o``) with a crop and no counterpart of the new model yet."""
        return (f"FROM {table} o WHERE o.model_id {self.db.distinct} ? AND o.crop IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {table} n WHERE n.derived_from = o.id AND n.model_id = ?)")

    def reembed_status(self, model_id: str) -> ReembedStatus:
        """How far a re-embedding into ``model_id`` has come, and who has no crop to rebuild from."""
        done = self.db.rows("SELECT COUNT(*) FROM templates WHERE model_id = ? AND derived_from IS NOT NULL",
                            (model_id,))
        pending = self.db.rows(f"SELECT COUNT(*) {self._pending('templates')}", (model_id, model_id))
        lost = self.keys.named(self.db.rows(
            "SELECT DISTINCT p.id, p.name FROM templates t JOIN persons p ON p.id = t.person_id "
            f"WHERE t.model_id {self.db.distinct} ? AND t.crop IS NULL", (model_id,)))
        return ReembedStatus(done=int(done[0][0]), pending=int(pending[0][0]),
                             without_crop=tuple(sorted((r[1] for r in lost), key=str.casefold)))

    def reembed_work(self, model_id: str, limit: int) -> list[ReembedWork]:
        """Up to ``limit`` rows still to be made with ``model_id``, with their face crops in the clear."""
        rows = self.db.rows(
            f"SELECT 'template', o.id, o.crop, o.person_id {self._pending('templates')} "
            f"UNION ALL SELECT 'negative', o.id, o.crop, o.person_id {self._pending('negatives')} ORDER BY 2 LIMIT ?",
            (model_id, model_id, model_id, model_id, int(limit)),
        )
        self.keys.open_keys({r[3] for r in rows})
        return [ReembedWork(k, int(i), self.keys.open(p, f"{k}-crop", int(i), c) or b"") for k, i, c, p in rows]

    def add_reembedded(self, model_id: str, rows: Sequence[tuple[ReembedWork, np.ndarray]]) -> None:
        """Store new-model rows beside the old ones; searches keep using the old model until finished."""
        with self.db.transaction() as tx:
            added: list[tuple[int, str | None]] = []
            for work, emb in rows:
                table = "templates" if work.kind == "template" else "negatives"
                owner = tx.rows(f"SELECT person_id FROM {table} WHERE id = ?", (work.row_id,))
                if not owner:
                    continue
                pid = int(owner[0][0])
                self.keys.open_keys([pid], tx)
                new = new_row_id()
                value = self.keys.seal(pid, work.kind, new, np.ascontiguousarray(emb, dtype=np.float32).tobytes()) or b""
                crop = self.keys.seal(pid, f"{work.kind}-crop", new, work.crop)  # sealed for its new row
                crc = integrity.checksum(new, value)
                if work.kind == "template":  # its source and quality are sealed for the new row too
                    [(source, quality, level)] = tx.rows("SELECT t.source, t.quality, p.seal_level FROM templates t "
                                                         "JOIN persons p ON p.id = t.person_id WHERE t.id = ?",
                                                         (work.row_id,))
                    source, quality = (self.keys.seal_text(pid, kind, new, self.keys.open_text(pid, kind, work.row_id, v, level),
                                                           level)
                                       for kind, v in ((seal.TEMPLATE_SOURCE, source), (seal.TEMPLATE_QUALITY, quality)))
                    tx.run(
                        "INSERT INTO templates (id, person_id, embedding, created_at, source, quality, crop, model_id, "
                        "derived_from, checksum) SELECT ?, person_id, ?, created_at, ?, ?, ?, ?, id, ? "
                        "FROM templates WHERE id = ?", (new, value, source, quality, crop, model_id, crc, work.row_id))
                    added.append((new, model_id))
                else:
                    tx.run(
                        "INSERT INTO negatives (id, person_id, embedding, model_id, crop, created_at, derived_from, "
                        "checksum) SELECT ?, person_id, ?, ?, ?, created_at, id, ? FROM negatives WHERE id = ?",
                        (new, value, model_id, crop, crc, work.row_id))
            self.store.log_templates(tx, "add", added)

    def finish_reembed(self, model_id: str) -> Erased:
        """Switch the gallery to ``model_id`` and erase every row of other models.

        People whose templates could not be rebuilt (no crop) stay listed, with no
        templates, until they are enrolled again.
        """
        other = f"model_id {self.db.distinct} ?"
        with self.db.transaction() as tx:
            dim = tx.rows(f"SELECT (length(t.embedding) - CASE WHEN p.data_key IS NULL THEN 0 ELSE {SEAL_BYTES} END) / 4 "
                          "FROM templates t JOIN persons p ON p.id = t.person_id WHERE t.model_id = ? LIMIT 1",
                          (model_id,))
            n, c = self.store.erase_templates(tx, other, (model_id,))
            neg, _ = self.store.erase_negatives(tx, other, (model_id,))
            tx.run("UPDATE templates SET derived_from = NULL WHERE derived_from IS NOT NULL")
            tx.run("UPDATE negatives SET derived_from = NULL WHERE derived_from IS NOT NULL")
            tx.run(self.db.set_model_sql, (model_id,))
            if dim:
                tx.run(self.db.set_dim_sql, (int(dim[0][0]),))
        return Erased(templates=n, crops=c, negatives=neg, log_cleared=self.db.erased())
