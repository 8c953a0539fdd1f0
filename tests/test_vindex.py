"""The vector index and its saved file: the fast path of a fresh graph, a stale file never
reported or kept, one line per refused file, and private lock files."""

import json
import logging
import stat

import numpy as np
from vectors import unit_vectors

from faceapp.gallery import vindex
from faceapp.gallery.gallery import Gallery
from faceapp.gallery.vindex import HnswIndex

MODEL = "m" * 64
DIM = 16


class _NoReadBack:
    """An hnswlib graph that refuses to hand its vectors back."""

    def __init__(self, raw):
        self.raw = raw

    def get_items(self, *_a, **_k):
        raise AssertionError("vectors were read back from the graph")

    def __getattr__(self, name):
        return getattr(self.raw, name)


def test_a_fresh_graph_hands_over_its_vectors_without_reading_the_graph(rng):
    e = unit_vectors(rng, 50, DIM)
    index = HnswIndex(DIM)
    index.add(np.arange(50), e)
    index.remove(np.array([3, 7]))
    index._index = _NoReadBack(index._index)
    ids, vectors = index.items()
    assert sorted(ids.tolist()) == [i for i in range(50) if i not in (3, 7)]
    np.testing.assert_array_equal(vectors, e[ids])


def _stale_index(tmp_path, rng):
    """A gallery whose saved index claims a later state than the database's."""
    with Gallery(tmp_path, index="hnsw") as g:
        g.add_templates("a", unit_vectors(rng, 3, DIM), model_id=MODEL)
    side = json.loads((tmp_path / vindex.SIDECAR_NAME).read_text())
    side["binding"]["generation"] += 100  # a database restored from an older backup
    (tmp_path / vindex.SIDECAR_NAME).write_text(json.dumps(side))
    return side["size"]


def test_a_stale_index_is_refused_once_rebuilt_and_kept(tmp_path, rng, caplog):
    _stale_index(tmp_path, rng)
    with caplog.at_level(logging.WARNING), Gallery(tmp_path, index="hnsw") as g:
        assert g.search(unit_vectors(rng, 1, DIM), 1, model_id=MODEL)[0]  # a read-only command
    assert caplog.text.count("built for another state") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING), Gallery(tmp_path, index="hnsw") as g:
        g.search(unit_vectors(rng, 1, DIM), 1, model_id=MODEL)
        info = g.info()
    assert "rebuilding" not in caplog.text  # the rebuilt index was kept by the first reader
    assert info["index_file_bytes"] == (tmp_path / vindex.INDEX_NAME).stat().st_size > 0


def test_info_never_shows_a_stale_index_file(tmp_path, rng, monkeypatch):
    _stale_index(tmp_path, rng)
    monkeypatch.setattr(HnswIndex, "save", lambda *_a, **_k: None)  # nothing can be saved
    with Gallery(tmp_path, index="hnsw") as g:
        info = g.info()
    assert info["index_elements"] == 3 and info["index_file_bytes"] == 0


def test_index_locks_are_private(tmp_path, rng):
    from faceapp.gallery.index_cache import IndexKeeper
    from faceapp.gallery.vindex import IndexSlot

    with Gallery(tmp_path, index="hnsw") as g:  # a reader's save takes the folder's index lock
        g.add_templates("a", unit_vectors(rng, 3, DIM), model_id=MODEL)
    cache = tmp_path / "cache"
    cache.mkdir()
    with IndexKeeper(IndexSlot(), cache, "hnsw")._locked():  # a device cache's lock
        pass
    locks = [*tmp_path.glob("*.lock"), *cache.glob("*.lock")]
    assert {p.name for p in locks} >= {"index.lock"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in locks), [oct(p.stat().st_mode) for p in locks]
