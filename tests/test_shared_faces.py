"""Broader checks on the labelled photos in ../shared/faces (skipped when it is absent)."""

import csv

import numpy as np
import pytest

from faceapp.measure.calibrate import embed_labelled, pair_scores, roc_auc

pytestmark = pytest.mark.shared


def test_every_dlib_john_is_found_and_identities_separate(pipeline, shared_faces):
    data = embed_labelled(pipeline, [shared_faces / "dlib_johns"])
    assert data.failed == []
    assert len(data.files) == 55
    gen, imp = pair_scores(data.embeddings, data.labels)
    assert roc_auc(gen, imp) > 0.99


def test_deepface_pairs(pipeline, shared_faces):
    root = shared_faces / "deepface"
    rows = list(csv.DictReader((root / "master.csv").open()))
    cache = {}

    def emb(name):
        if name not in cache:
            cache[name] = pipeline.main_face(root / name).embedding
        return cache[name]

    sims = np.array([float(emb(r["file_x"]) @ emb(r["file_y"])) for r in rows])
    same = np.array([r["Decision"] == "Yes" for r in rows])
    assert roc_auc(sims[same], sims[~same]) > 0.99
    acc = ((sims >= pipeline.verify_threshold()) == same).mean()
    assert acc > 0.95


def test_import_and_match_knn_examples(tmp_path, shared_faces, capsys):
    import json

    from faceapp.cli import main

    knn = shared_faces / "face_recognition_knn"
    g = str(tmp_path / "g")
    assert main(["--gallery", g, "import", str(knn / "train")]) == 0
    capsys.readouterr()
    assert main(["--gallery", g, "--json", "match", str(knn / "test" / "obama_and_biden.jpg")]) == 0
    doc = json.loads(capsys.readouterr().out)
    people = {f["person"] for f in doc[0]["faces"]}
    assert people == {"obama", "biden"}
