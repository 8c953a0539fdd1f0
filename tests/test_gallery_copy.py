"""`faceapp-cli gallery copy`: folder -> PostgreSQL -> folder keeps every person, template, crop
and negative sample (with its crop), refuses a destination that is not empty, and checks its counts."""

from __future__ import annotations

import numpy as np
import pytest

from faceapp.cli import main
from faceapp.errors import GalleryError
from faceapp.gallery.copy import copy_store
from faceapp.gallery.gallery import Gallery
from faceapp.gallery.opening import open_store
from faceapp.gallery.sqlite_store import SQLiteStore

pytestmark = pytest.mark.postgres
MODEL = "c" * 64


def _fill(folder):
    rng = np.random.default_rng(3)
    v = rng.standard_normal((5, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with Gallery(folder) as g:
        g.add_templates("Ada", v[:3], model_id=MODEL, crops=[b"a1", b"a2", None], sources=["1.jpg", "2.jpg", None])
        g.add_templates("Ben", v[3:4], model_id=MODEL, crops=[b"b1"], qualities=[{"sharpness": 0.5}])
        g.add_negative("Ada", v[4], model_id=MODEL, crop=b"not-ada")
        g.add_negative("Ben", v[0], model_id=MODEL)
    return v


def _snapshot(store):
    out = {}
    for p in store.list_persons():
        samples = store.samples(p.name)
        vecs = store.embeddings(np.array([s.template_id for s in samples], np.int64), 16)
        out[p.name] = sorted((s.crop or b"", s.source or "", str(s.quality), s.model_id, vecs[i].tobytes())
                             for i, s in enumerate(samples))
    owner = {p.id: p.name for p in store.list_persons()}
    negatives = sorted((owner[pid], vec.tobytes(), crop or b"") for pid, vec, crop in store.negative_samples(MODEL))
    assert len(negatives) == len(store.negatives(MODEL)[0])
    return out, negatives


def test_folder_to_postgres_and_back(tmp_path, pg_dsn, capsys):
    _fill(tmp_path / "src")
    assert main(["--json", "gallery", "copy", str(tmp_path / "src"), pg_dsn]) == 0
    assert '"people": 2' in capsys.readouterr().out
    assert main(["gallery", "copy", pg_dsn, str(tmp_path / "back")]) == 0
    assert "counts and model ids checked" in capsys.readouterr().out
    a, b, c = (open_store(x) for x in (str(tmp_path / "src"), pg_dsn, str(tmp_path / "back")))
    assert _snapshot(a) == _snapshot(b) == _snapshot(c)
    assert [(name, crop) for name, _, crop in _snapshot(a)[1]] == [("Ada", b"not-ada"), ("Ben", b"")]
    for s in (a, b, c):
        s.close()


def test_destination_must_be_empty(tmp_path, pg_dsn, capsys):
    _fill(tmp_path / "src")
    assert main(["gallery", "copy", str(tmp_path / "src"), pg_dsn]) == 0
    assert main(["gallery", "copy", str(tmp_path / "src"), pg_dsn]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and err.count("\n") == 1


def test_counts_are_checked(tmp_path, monkeypatch):
    _fill(tmp_path / "src")
    src, dst = SQLiteStore(tmp_path / "src"), SQLiteStore(tmp_path / "dst")
    real = dst.add_templates

    def lossy(name, embeddings, **kw):  # a destination that silently drops a template
        kw = {**kw, "crops": kw["crops"][:1], "sources": kw["sources"][:1], "qualities": kw["qualities"][:1]}
        return real(name, embeddings[:1], **kw)

    monkeypatch.setattr(dst, "add_templates", lossy)
    with pytest.raises(GalleryError, match="does not match"):
        copy_store(src, dst)


def test_folder_to_folder_keeps_negative_crops(tmp_path):
    _fill(tmp_path / "src")
    src, dst = SQLiteStore(tmp_path / "src"), SQLiteStore(tmp_path / "dst")
    report = copy_store(src, dst)
    assert report.negatives == 2
    assert _snapshot(dst) == _snapshot(src)
    assert sorted((crop for _, _, crop in dst.negative_samples(MODEL)), key=lambda c: c or b"") == [None, b"not-ada"]
    src.close()
    dst.close()
