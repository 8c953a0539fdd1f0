"""The compiled-model cache: verified against the digests kept beside it and rebuilt when it
differs, private like the rest of the cache; an embedding that is all zero or not finite is
never stored."""

import importlib.util
import logging
import stat

import numpy as np
import pytest
from vectors import unit_vectors

from faceapp.errors import GalleryError
from faceapp.gallery.gallery import Gallery
from faceapp.vision import backends, models
from faceapp.vision.embed import Embedder

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
MODEL = "m" * 64


def _blobs(folder):
    return [p for p in folder.rglob("*.blob") if p.is_file()]


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_a_damaged_compiled_model_is_rebuilt_not_loaded(tmp_path, caplog):
    bundled = models.resolve_embedder(models.bundled_path(models.ROLE_SFACE))  # one network's compiled cache
    crops = np.random.default_rng(0).integers(0, 255, (2, 112, 112, 3), dtype=np.uint8)
    first = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path).embed(crops)
    blobs = _blobs(tmp_path / "openvino")
    assert blobs and all((b.parent / backends.CACHE_DIGESTS).is_file() for b in blobs)
    for blob in blobs:  # flip one bit every megabyte of the first quarter (OpenVINO's own check misses these)
        data = bytearray(blob.read_bytes())
        for i in range(64, len(data) // 4, 1_000_003):
            data[i] ^= 0x40
        blob.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path).embed(crops)
    np.testing.assert_allclose(again, first, atol=1e-5)
    assert "compiled-model cache" in caplog.text


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_the_cache_is_private_whatever_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        bundled = models.resolve_embedder(models.bundled_path(models.ROLE_SFACE))  # one network's compiled cache
        Embedder(bundled.path, "auto", model_sha256=bundled.sha256, cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    for p in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]:
        want = 0o700 if p.is_dir() else 0o600
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))


@pytest.mark.parametrize("bad", ["zero", "nan", "inf", "long", "short"])
def test_an_embedding_that_is_not_a_unit_vector_is_never_stored(tmp_path, rng, bad):
    e = unit_vectors(rng, 2, 8)
    e[1] = {"zero": 0.0, "nan": np.nan, "inf": np.inf, "long": e[1] * 1.5, "short": e[1] * 0.5}[bad]
    with Gallery(tmp_path) as g:
        with pytest.raises(GalleryError, match="not a unit-length"):
            g.add_templates("a", e, model_id=MODEL)
        with pytest.raises(GalleryError, match="not a unit-length"):
            g.add_negative("b", e[1], model_id=MODEL)
        assert len(g) == 0 and g.count_templates() == 0
