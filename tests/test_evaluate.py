import json

import numpy as np
import pytest
from vectors import normalise

from faceapp.cli import main
from faceapp.errors import FaceappError, ImageError
from faceapp.measure.evaluate import (
    FaceSet,
    blend,
    composite_groups,
    enrolment_split,
    evaluate_open_set,
    half_of,
    labelled_photos,
    select,
)
from faceapp.recognise.match import Thresholds


def faceset(emb, labels, names):
    emb = normalise(emb)
    crops = np.zeros((len(emb), 2, 2, 3), np.uint8)
    crops[:, 0, 0, 0] = np.arange(len(emb))  # the crop says which photo it is
    return FaceSet(emb, crops, np.asarray(labels), tuple(names), tuple(f"{i}.jpg" for i in range(len(emb))))


def test_report_counts_names_strangers_and_lookalikes():
    e = np.eye(6)
    # ann and bob: an enrolment photo and an other-day photo each; cy's other photo looks like ann.
    people = faceset([e[0], e[0] + 0.3 * e[3], e[1], e[1] + 0.3 * e[4], e[2], e[0] + 0.1 * e[2]],
                     [0, 0, 1, 1, 2, 2], ["ann", "bob", "cy"])
    strangers = faceset([e[5], e[3] + 0.2 * e[4]], [0, 1], ["s0", "s1"])
    same = faceset([e[0], e[1]], [0, 1], ["ann", "bob"])

    def embed(crops):  # a composite's embedding: the mean of its sources' embeddings
        return normalise(np.stack([people.embeddings[[0, 2]].mean(0) for _ in crops]))

    ev = evaluate_open_set(people, strangers, Thresholds(0.5), same_day=same, composites=5, embed=embed, n_boot=50)
    o = ev.other_day
    assert (ev.people, ev.templates, o.enrolled, o.strangers) == (3, 3, 3, 2)
    assert o.correct == pytest.approx(2 / 3) and o.wrong_name == pytest.approx(1 / 3) and o.fpir == 0.0
    assert ev.same_day.correct == 1.0 and ev.composites == 1.0 and ev.composites_count == 5
    # A composite is equally like ann and bob: a margin stops it being named.
    ev2 = evaluate_open_set(people, strangers, Thresholds(0.5, margin=0.1), composites=5, embed=embed, n_boot=0)
    assert ev2.composites == 0.0 and ev2.intervals == {}
    doc = json.loads(json.dumps(ev.to_dict()))
    assert doc["strangers_named"] == 0.0 and len(doc["det"]["margin"]) == len(doc["det"]["no_margin"]) > 100
    # The curves say how many composites each threshold names (the margin keeps them out).
    at = {row["threshold"]: row["lookalikes"] for row in doc["det"]["no_margin"]}
    assert at[0.5] == 1.0 and at[0.75] == 0.0
    assert all(row["lookalikes"] == 0.0 for row in json.loads(json.dumps(ev2.to_dict()))["det"]["margin"])
    assert any("look-alike composites" in line for line in ev.lines())
    # cy's other photo came closer to ann and was named ann: a miss with another person first
    assert doc["misses"] == {"below_threshold": 0.0, "ambiguous": 0.0, "not_first": 0.0, "wrong_name": pytest.approx(1 / 3)}
    assert any("under the threshold 0.0 %" in line and "another person came first 33.3 %" in line for line in ev.lines())


def test_protocol_helpers(tmp_path):
    labels = np.array([3, 3, 1, 3, 1])
    assert enrolment_split(labels, 1).tolist() == [True, False, True, False, False]
    assert enrolment_split(labels, 2).tolist() == [True, True, True, False, True]
    crops = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 100, 200)])
    assert blend(crops, [[0, 2], [0, 1, 2]])[:, 0, 0, 0].tolist() == [100, 100]
    groups = composite_groups(np.array([0, 0, 1, 1, 2]), np.ones(5, bool), 30, np.random.default_rng(0))
    assert all(2 <= len(g) <= 3 and len({int(np.array([0, 0, 1, 1, 2])[i]) for i in g}) == len(g) for g in groups)
    halves = [half_of(f"person {i}") for i in range(400)]
    assert halves == [half_of(f"person {i}") for i in range(400)] and 150 < halves.count("tune") < 250
    fs = faceset(np.eye(4), [0, 1, 2, 3], [f"person {i}" for i in range(4)])
    assert len(select(fs, "tune")) + len(select(fs, "report")) == 4 and len(select(fs, "all")) == 4

    (tmp_path / "ann").mkdir()
    for f in ("ann/1.jpg", "ann/notes.txt", "loose.png"):
        (tmp_path / f).write_bytes(b"x")
    assert [(p.name, n) for p, n in labelled_photos(tmp_path)] == [("1.jpg", "ann"), ("loose.png", "loose")]
    with pytest.raises(ImageError):
        labelled_photos(tmp_path / "missing")
    with pytest.raises(FaceappError):
        evaluate_open_set(fs, fs, Thresholds(0.5), enrol=0)


def test_evaluate_command_on_real_photos(tmp_path, labelled_folders, capsys):
    people, strangers = labelled_folders
    args = ["--gallery", str(tmp_path / "g"), "--json", "evaluate", str(people), "--strangers", str(strangers),
            "--same-day", "--composites", "3", "--bootstrap", "20", "--cache", str(tmp_path / "cache"),
            "--plot", str(tmp_path / "det.png")]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["other_day"]["enrolled"] == 1 and doc["other_day"]["correct"] == 1.0
    assert doc["same_day"]["correct"] == 1.0 and doc["other_day"]["strangers"] == 1
    assert doc["composites"] == 3 and (tmp_path / "det.png").stat().st_size > 1000
    cached = sorted((tmp_path / "cache").glob("faces-*.npz"))
    assert len(cached) == 3  # people, strangers, same-day copies
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["other_day"] == doc["other_day"]
    assert main(["--gallery", str(tmp_path / "g"), "evaluate", str(people), "--strangers", str(tmp_path / "no")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_embedding_cache_is_kept_apart_per_precision_and_runtime(tmp_path):
    """int8 and fp32 embeddings of the same model never share a cache entry, nor do two runtimes
    (a fused model's int8 setting runs its second network in fp32 or bf16 by the CPU)."""
    from types import SimpleNamespace

    from faceapp.measure.evaluate import _cache_key

    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")

    def pipe(precision, runtime="OpenVINO CPU int8 + fp32"):
        return SimpleNamespace(model_id="m", embedder=SimpleNamespace(precision=precision, runtime_name=runtime),
                               detector_file=SimpleNamespace(sha256="d"),
                               settings=SimpleNamespace(min_face_size=0.0, min_detection_confidence=0.5))

    items = [(photo, "a")]
    assert _cache_key(pipe("int8"), items, "v") != _cache_key(pipe("fp32"), items, "v")
    assert _cache_key(pipe("fp32"), items, "v") == _cache_key(pipe("fp32"), items, "v")
    assert _cache_key(pipe("int8"), items, "v") != _cache_key(pipe("int8", "OpenVINO CPU int8 + bf16"), items, "v")
