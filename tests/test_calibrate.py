from pathlib import Path
from statistics import NormalDist
from types import SimpleNamespace

import numpy as np
import pytest

from faceapp.errors import FaceappError, ImageError, NoFaceError
from faceapp.measure.calibrate import (
    calibrate,
    calibrate_open_set,
    gaussian_far,
    gaussian_threshold,
    read_pairs_csv,
)
from faceapp.measure.evaluate import FaceSet


class FakePipe:
    """main_face(path) -> a face whose embedding is looked up by file name (no models)."""

    def __init__(self, table):
        self.table = table

    def main_face(self, path):
        e = self.table.get(Path(path).name)
        if e is None:
            raise NoFaceError(f"no face found in {path}")
        e = np.asarray(e, np.float32)
        return SimpleNamespace(embedding=e / np.linalg.norm(e))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_pairs_csv_labels_only_the_listed_pairs(tmp_path):
    csv = write(tmp_path / "pairs.csv", "file_x,file_y,Decision\nsub/a.jpg,b.jpg,Yes\nc.jpg,d.jpg,Yes\nsub/a.jpg,c.jpg,No\n")
    pairs = read_pairs_csv(csv)
    assert [(p.a, p.b, p.same) for p in pairs][0] == (tmp_path / "sub/a.jpg", tmp_path / "b.jpg", True)
    # a, b, c, d: two "identities" by their Yes pairs, but only a-c is known to be different people.
    emb = {"a.jpg": [1, 0.1], "b.jpg": [1, 0.2], "c.jpg": [0.2, 1], "d.jpg": [0.3, 1]}
    doc, _ = calibrate(FakePipe(emb), csv)
    assert doc["genuine_pairs"] == 2 and doc["impostor_pairs"] == 1


def test_bad_pairs_csv_is_one_clear_error(tmp_path):
    with pytest.raises(ImageError, match="file_x,file_y,Decision"):
        read_pairs_csv(write(tmp_path / "x.csv", "a,b\n1,2\n"))
    with pytest.raises(ImageError, match="Yes or No"):
        read_pairs_csv(write(tmp_path / "y.csv", "file_x,file_y,Decision\na.jpg,b.jpg,maybe\n"))


def test_sets_without_pairs_raise_instead_of_crashing(tmp_path):
    for name in ("ann", "bob"):  # one photo each: no genuine pair
        (tmp_path / "people" / name).mkdir(parents=True)
        (tmp_path / "people" / name / f"{name}.jpg").write_bytes(b"x")
    with pytest.raises(FaceappError, match="same person"):
        calibrate(FakePipe({"ann.jpg": [1, 0], "bob.jpg": [0, 1]}), tmp_path / "people")
    with pytest.raises(FaceappError, match="two people"):
        calibrate(FakePipe({}), tmp_path / "people")  # no usable face at all
    csv = write(tmp_path / "p.csv", "file_x,file_y,Decision\na.jpg,b.jpg,Yes\n")
    with pytest.raises(FaceappError, match="different people"):
        calibrate(FakePipe({"a.jpg": [1, 0], "b.jpg": [1, 0.1]}), csv)


def test_gaussian_tail_keeps_its_precision():
    imp = np.random.default_rng(0).normal(0.0, 0.1, 20_000)
    mu, sd = imp.mean(), imp.std(ddof=1)
    t = mu + 9 * sd  # far beyond 1 - cdf's resolution
    assert 1.0 - NormalDist(mu, sd).cdf(t) == 0.0
    assert gaussian_far(imp, t) == pytest.approx(NormalDist().cdf(-9), rel=1e-6, abs=0)
    assert gaussian_far(imp, gaussian_threshold(imp, 1e-14)) == pytest.approx(1e-14, rel=1e-3, abs=0)


def synthetic_sets(rng, people=48, photos=3, strangers=48, d=32, noise=0.45):
    centres = rng.normal(size=(people + strangers, d))
    emb, labels, names = [], [], []
    for i in range(people):
        for _ in range(photos):
            emb.append(centres[i] + noise * rng.normal(size=d))
            labels.append(i)
        names.append(f"person{i}")
    p_emb = np.array(emb, np.float32)
    p_emb /= np.linalg.norm(p_emb, axis=1, keepdims=True)
    s_emb = (centres[people:] + noise * rng.normal(size=(strangers, d))).astype(np.float32)
    s_emb /= np.linalg.norm(s_emb, axis=1, keepdims=True)
    crops = rng.integers(0, 255, (len(p_emb), 4, 4, 3), dtype=np.uint8)
    s_crops = rng.integers(0, 255, (strangers, 4, 4, 3), dtype=np.uint8)
    ppl = FaceSet(p_emb, crops, np.array(labels), tuple(names), tuple(f"{n}.jpg" for n in labels))
    strg = FaceSet(s_emb, s_crops, np.arange(strangers), tuple(f"stranger{i}" for i in range(strangers)),
                   tuple(f"s{i}.jpg" for i in range(strangers)))
    return ppl, strg


def test_open_set_calibration_tunes_on_one_half_and_reports_on_the_other():
    rng = np.random.default_rng(0)
    people, strangers = synthetic_sets(rng)

    def embed(crops):  # blends and composites: random faces
        e = np.random.default_rng(int(crops.sum()) % 1000).normal(size=(len(crops), 32)).astype(np.float32)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    rows = calibrate_open_set(people, strangers, embed=embed, target_fpir=0.05, gallery_sizes=[5, 100],
                              composites=20, n_boot=20)
    small, big = rows
    assert small.gallery_size == 5 and small.distractors == (0, 0)
    n_real, n_blend = big.distractors
    assert n_real > 0 and n_blend > 0  # beyond the real strangers, blends fill the gallery
    for r in rows:
        assert r.tuned.rates.fpir <= 0.05
        assert r.threshold_ci.low <= r.tuned.threshold <= r.threshold_ci.high
        assert r.held_out.enrolled > 0 and r.held_out.strangers > 0
    # The bigger gallery needs a threshold at least as high to keep strangers out.
    assert big.tuned.threshold >= small.tuned.threshold - 0.05
