"""The training loop, export and DDP on tiny synthetic data (no photos needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.data import AugmentConfig, augment, from_aligned_folder, split_by_identity  # noqa: E402
from training.evaluate import kfold_accuracy, pair_metrics  # noqa: E402
from training.train import load_config, train  # noqa: E402


def make_aligned_tree(root: Path, people: int = 6, per_person: int = 6, seed: int = 0) -> Path:
    """Folder-per-identity 112x112 crops: each identity is a fixed random pattern plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for p in range(people):
        base = rng.integers(0, 255, (14, 14, 3)).astype(np.float32)
        base = np.kron(base, np.ones((8, 8, 1)))
        d = root / f"person{p}"
        d.mkdir(parents=True)
        for i in range(per_person):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i}.png")
    return root


TINY = {"data_kind": "aligned", "backbone": "mobilefacenet", "pretrained": "", "width": 0.25,
        "embedding_size": 16, "batch_size": 8, "lr": 3e-3, "keep_close": 0.5, "val_fraction": 0.34,
        "margin_warmup_steps": 4, "lr_warmup_steps": 2, "train_bn": True, "amp": False}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_aligned_tree(tmp_path_factory.mktemp("aligned"))


def test_split_is_by_identity(tree):
    data = from_aligned_folder(tree)
    tr, va = split_by_identity(data, 0.34, seed=1)
    assert set(tr.names).isdisjoint(va.names) and tr.num_classes + va.num_classes == 6
    assert len(tr) + len(va) == len(data) and tr.labels.max() == tr.num_classes - 1


def test_augment_keeps_shape():
    img = np.full((112, 112, 3), 100, np.uint8)
    cfg = AugmentConfig(flip=1, colour=1, blur=1, downscale=1, jpeg=1)
    out = augment(img, cfg, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8


def test_train_resume_and_export(tree, tmp_path):
    from faceapp.embed import Embedder
    from training.cli import main as train_main
    from training.train import load_run

    out = tmp_path / "run"
    cfg = load_config(None, {**TINY, "data": str(tree), "out": str(out), "epochs": 2})
    summary = train(cfg, progress=False)
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["images_per_second"] > 0 for r in lines)
    assert "val_auc" in lines[-1] and (out / "last.pt").is_file() and (out / "model.pt").is_file()
    assert summary["last"]["epoch"] == 2

    cfg3 = load_config(out / "config.toml", {"epochs": 3})
    train(cfg3, resume=True, progress=False)
    assert [json.loads(x)["epoch"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]

    onnx_path = tmp_path / "tiny.onnx"
    assert train_main(["-q", "export", str(out), "--out", str(onnx_path)]) == 0
    emb = Embedder(onnx_path, provider="cpu")
    assert emb.dim == 16 and emb.provenance["data"]["train"]["identities"] == 4
    assert 0 < emb.thresholds.match <= 1
    _, net = load_run(out)
    crops = from_aligned_folder(tree).crops[:5]
    with torch.no_grad():
        ref = torch.nn.functional.normalize(net(torch.from_numpy(crops).permute(0, 3, 1, 2).float()), dim=1).numpy()
    np.testing.assert_allclose(emb.embed(crops), ref, atol=1e-4)

    # the app takes the exported file as it is
    from faceapp.cli import main as cli_main

    data = Path(__file__).resolve().parent / "data"
    g = str(tmp_path / "g")
    assert cli_main(["--gallery", g, "--model", str(onnx_path), "enroll", "Obama", str(data / "obama.jpg")]) == 0
    assert cli_main(["--gallery", g, "--model", str(onnx_path), "--json", "match", str(data / "obama.jpg")]) == 0


def test_frozen_stages_do_not_change(tree, tmp_path):
    from training.train import build_backbone, load_run

    cfg = load_config(None, {**TINY, "data": str(tree), "out": str(tmp_path / "f"), "epochs": 1,
                             "freeze_stages": 2, "train_bn": False, "seed": 3})
    torch.manual_seed(cfg.seed)
    before = build_backbone(cfg).state_dict()
    train(cfg, progress=False)
    _, after = load_run(tmp_path / "f")
    first = [k for k in before if k.startswith("features.0.") and k.endswith("weight")]
    late = [k for k in before if k.startswith("gdc.") and k.endswith("weight")]
    assert first and all(torch.equal(before[k], after.state_dict()[k]) for k in first)
    assert any(not torch.equal(before[k], after.state_dict()[k]) for k in late)


def test_two_process_ddp_stays_in_sync(tree, tmp_path):
    out = tmp_path / "ddp"
    config = tmp_path / "ddp.toml"
    import tomli_w

    config.write_text(tomli_w.dumps({**TINY, "data": str(tree), "out": str(out), "epochs": 2}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         "-m", "training.cli", "-q", "train", "--config", str(config)],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sums = [json.loads((out / f"rank{r}.json").read_text())["checksum"] for r in (0, 1)]
    assert sums[0] == pytest.approx(sums[1], rel=1e-6)
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_metrics_on_known_scores():
    gen, imp = np.array([0.8, 0.9, 0.7]), np.array([0.1, 0.2, 0.3, 0.0])
    assert kfold_accuracy(gen, imp, folds=7)["accuracy"] == 1.0
    m = pair_metrics(gen, imp)
    assert m["roc_auc"] == 1.0 and m["accuracy"] == 1.0
    assert m["tar_at_far_0.001"] is None and "cannot resolve" in m["tar_at_far_0.001_note"]


def slow_kfold(genuine, impostor, folds=10, seed=0):
    """Reference k-fold accuracy: every candidate threshold scored on every pair, in a loop."""
    scores = np.concatenate([genuine, impostor])
    same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    parts = np.array_split(np.random.default_rng(seed).permutation(len(scores)), max(2, min(folds, len(scores))))
    u = np.unique(scores)
    candidates = np.concatenate([[u[0] - 1e-6], (u[1:] + u[:-1]) / 2, [u[-1] + 1e-6]])
    accs, thrs = [], []
    for k in range(len(parts)):
        train_idx = np.concatenate([parts[j] for j in range(len(parts)) if j != k])
        acc = [sum((scores[i] >= t) == same[i] for i in train_idx) / len(train_idx) for t in candidates]
        best = [t for t, a in zip(candidates, acc) if a == max(acc)]
        t = (min(best) + max(best)) / 2
        thrs.append(t)
        accs.append(np.mean([(scores[i] >= t) == same[i] for i in parts[k]]))
    return {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "threshold": float(np.mean(thrs))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfold_accuracy_matches_a_slow_loop(seed):
    rng = np.random.default_rng(seed)
    gen = np.round(rng.normal(0.6, 0.15, 40), 2)  # rounding makes ties, the edge case of counting
    imp = np.round(rng.normal(0.2, 0.15, 90), 2)
    fast, slow = kfold_accuracy(gen, imp, folds=7, seed=seed), slow_kfold(gen, imp, folds=7, seed=seed)
    assert fast == pytest.approx(slow, abs=1e-12)
    assert 0.5 < fast["accuracy"] < 1.0  # overlapping scores: the threshold choice matters


def test_demo_arcface_is_tighter_than_softmax(tmp_path):
    pytest.importorskip("sklearn")
    from training.demo import plot_demo, run_demo

    r = run_demo(steps=300)
    assert r.arcface_angle < 0.8 * r.softmax_angle
    assert plot_demo(r, tmp_path / "demo.png").stat().st_size > 10_000
