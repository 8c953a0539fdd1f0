"""Stored vectors are checked when read: a flipped bit in a template is caught by its checksum
(or its length), the damaged template is never searched, `faceapp-cli check` lists it by person
and re-embeds it from its crop, and no similarity is ever outside [-1, 1]."""

import sqlite3

import numpy as np
import pytest
from vectors import unit_vectors

from faceapp.cli import main
from faceapp.gallery.gallery import Gallery
from faceapp.gallery.vindex import new_index

MODEL = "m" * 64
DIM = 16


def _flip(folder, name, byte, bit):
    """XOR one bit of ``name``'s first stored template, behind faceapp's back."""
    with Gallery(folder) as g:  # names are encrypted: the person's id is asked of faceapp
        pid = g.get_person(name).id
    con = sqlite3.connect(folder / "gallery.sqlite3")
    tid, blob = con.execute("SELECT id, embedding FROM templates WHERE person_id = ? ORDER BY id LIMIT 1",
                            (pid,)).fetchone()
    data = bytearray(blob)
    data[byte] ^= bit
    con.execute("UPDATE templates SET embedding = ? WHERE id = ?", (bytes(data), tid))
    con.commit()
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # SQLite sees nothing wrong
    con.close()
    return tid


@pytest.mark.parametrize(("byte", "bit", "what"), [(3, 0x40, "a float becomes ~1e38"), (0, 0x01, "the lowest bit")])
def test_a_flipped_bit_is_never_searched_and_is_listed(tmp_path, rng, byte, bit, what):
    e = unit_vectors(rng, 3, DIM)
    with Gallery(tmp_path) as g:
        g.add_templates("Obama", e[:1], model_id=MODEL)
        g.add_templates("Biden", e[1:2], model_id=MODEL)
    tid = _flip(tmp_path, "Obama", byte, bit)
    with Gallery(tmp_path) as g:
        for probe in (e[:1], e[1:2], e[2:3], -e[:1]):
            hits = g.search(probe, 2, model_id=MODEL)[0]
            assert all(-1.0 <= h.similarity <= 1.0 for h in hits)
            assert all(h.template_id != tid for h in hits), what  # the damaged template is never searched
        assert g.search(e[1:2], 1, model_id=MODEL)[0][0].name == "Biden"
        damaged = g.damaged_templates()
        assert [(d.name, d.template_id) for d in damaged] == [("Obama", tid)]


def test_check_lists_damaged_templates_by_person_and_reembeds_them(tmp_path, data_dir, capsys):
    gallery = tmp_path / "g"
    assert main(["--gallery", str(gallery), "enroll", "Obama", str(data_dir / "obama.jpg")]) == 0
    assert main(["--gallery", str(gallery), "enroll", "Biden", str(data_dir / "biden.jpg")]) == 0
    _flip(gallery, "Obama", 3, 0x40)
    capsys.readouterr()
    code = main(["--gallery", str(gallery), "match", str(data_dir / "obama2.jpg")])
    out = capsys.readouterr().out
    assert "Obama similarity" not in out  # not named from a damaged template
    code = main(["--gallery", str(gallery), "check"])
    out = capsys.readouterr().out
    assert code == 0 and "Obama: 1 damaged template" in out and "re-embedded 1" in out
    code = main(["--gallery", str(gallery), "check"])
    assert code == 0 and "no damaged template" in capsys.readouterr().out
    assert main(["--gallery", str(gallery), "match", str(data_dir / "obama2.jpg")]) == 0
    assert "Obama similarity" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_a_similarity_is_never_outside_minus_one_one(rng, kind):
    v = unit_vectors(rng, 4, DIM) * np.float32(1.0009)  # within the unit-length tolerance, a little long
    index = new_index(kind, DIM, 8)
    index.add(np.arange(4), v)
    _, sims = index.search(np.concatenate([v, -v]), 4)
    assert sims.max() <= 1.0 and sims.min() >= -1.0


@pytest.mark.postgres
def test_a_flipped_bit_on_the_server_is_never_searched(pg_dsn, tmp_path, rng, monkeypatch):
    import psycopg

    from faceapp.gallery.gallery import open_gallery

    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "cache"))
    e = unit_vectors(rng, 2, DIM)
    with open_gallery(pg_dsn) as g:
        g.add_templates("Obama", e[:1], model_id=MODEL)
        g.add_templates("Biden", e[1:], model_id=MODEL)
        pid = g.get_person("Obama").id  # names are encrypted on the server
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        tid = con.execute("SELECT id FROM templates WHERE person_id = %s", (pid,)).fetchone()[0]
        con.execute("UPDATE templates SET embedding = overlay(embedding placing "
                    "set_byte(substring(embedding from 4 for 1), 0, get_byte(embedding, 3) # 64) from 4 for 1) "
                    "WHERE id = %s", (tid,))
    monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / "other-device"))
    with open_gallery(pg_dsn) as g:
        assert all(h.template_id != tid for h in g.search(e, 2, model_id=MODEL)[0])
        assert [(d.name, d.row_id) for d in g.damaged_templates()] == [("Obama", tid)]
