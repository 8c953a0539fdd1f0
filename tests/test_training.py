"""The training loop, export and DDP on tiny synthetic data (no photos needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.data import AugmentConfig, augment, from_aligned_folder, split_identities  # noqa: E402
from training.evaluate import kfold_accuracy, pair_metrics  # noqa: E402
from training.train import load_config, train  # noqa: E402


def make_aligned_tree(root: Path, people: int = 12, per_person: int = 6, seed: int = 0) -> Path:
    """Folder-per-identity 112x112 crops that a small network can learn to tell apart.

    Each identity is a fixed coarse colour pattern; each photo of it has its own contrast,
    a colour cast and pixel noise, so an untrained network is fooled by the nuisances and a
    trained one must learn to ignore them, which carries over to identities it never saw.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    for p in range(people):
        base = np.kron(rng.integers(0, 255, (7, 7, 3)).astype(np.float32), np.ones((16, 16, 1)))
        d = root / f"person{p:02d}"
        d.mkdir(parents=True)
        for i in range(per_person):
            img = base * rng.uniform(0.5, 1.0) + rng.uniform(-60, 60, (1, 1, 3)) + rng.normal(0, 25, base.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"{i}.png")
    return root


TINY = {"data_kind": "aligned", "backbone": "mobilefacenet", "pretrained": "", "width": 0.25,
        "embedding_size": 16, "batch_size": 8, "lr": 3e-3, "keep_close": 0.0, "val_fraction": 0.25,
        "test_fraction": 0.17, "margin": "arcface", "scale": 16.0, "init_head_from_base": False,
        "margin_warmup_steps": 4, "lr_warmup_steps": 2, "train_bn": True, "amp": False}


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """Two shared cores: one torch thread per process avoids oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_aligned_tree(tmp_path_factory.mktemp("aligned"))


def log_of(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def test_split_is_by_identity_and_written_down(tree, tmp_path):
    names = [f"p{i}" for i in range(20)]
    sp = split_identities(names, 0.2, 0.2, seed=1, strangers=[f"s{i}" for i in range(9)])
    parts = [set(sp.train), set(sp.val), set(sp.test)]
    assert all(a.isdisjoint(b) for i, a in enumerate(parts) for b in parts[i + 1:])
    assert set().union(*parts) == set(names) and len(sp.val) == 4 and len(sp.test) == 4
    assert set(sp.val_strangers).isdisjoint(sp.test_strangers) and len(sp.val_strangers) + len(sp.test_strangers) == 9
    assert split_identities(names, 0.2, 0.2, seed=1).train == sp.train  # the seed decides
    with pytest.raises(ValueError, match="too few"):
        split_identities(names[:4], 0.25, 0.25)
    data = from_aligned_folder(tree)
    sel = data.select(data.names[:3])
    assert sel.names == data.names[:3] and sel.labels.max() == 2 and len(sel) == 18
    with pytest.raises(ValueError, match="not in the data"):
        data.select(["nobody"])


def test_open_set_figures_on_known_embeddings():
    """Enrol the first photo of each person; a probe nearer someone else is a wrong name."""
    from training.evaluate import open_set_figures, open_set_protocol

    def unit(*v):
        v = np.asarray(v, np.float32)
        return v / np.linalg.norm(v)

    emb = np.stack([unit(1, 0, 0), unit(1, 0, 0.1),  # person 0: enrolment photo, then a probe near it
                    unit(0, 1, 0), unit(0.9, 0.3, 0)])  # person 1: its probe is nearer person 0
    labels = np.array([0, 0, 1, 1])
    strangers = np.stack([unit(-1, 0, 0), unit(0, -1, 0), unit(-0.2, 0, 1)])
    f = open_set_figures(emb, labels, strangers, target_fpir=0.01)
    assert f["gallery_people"] == 2 and f["enrolled_probes"] == 2 and f["stranger_probes"] == 3
    assert f["fpir"] == 0.0 and f["fnir_at_fpir"] == 0.5 and f["wrong_name_at_fpir"] == 0.5
    # without outside strangers half of the people are enrolled and the rest are the strangers
    g, p, plab = open_set_protocol(np.array([0, 0, 1, 1, 2, 2, 3, 3]), seed=0)
    assert len(g) == 2 and len(p) == 6 and (plab < 0).sum() == 4
    assert set(g).isdisjoint(p) and set(g) | set(p) == set(range(8))


def test_augment_keeps_shape():
    img = np.full((112, 112, 3), 100, np.uint8)
    cfg = AugmentConfig(flip=1, colour=1, blur=1, downscale=1, jpeg=1)
    out = augment(img, cfg, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8


def test_training_learns_a_separable_set(tree, tmp_path):
    """The loss falls and verification on identities never trained on clears a stated bar."""
    out = tmp_path / "run"
    summary = train(load_config(None, {**TINY, "data": str(tree), "out": str(out), "epochs": 4}), progress=False)
    rows = log_of(out)
    base, epochs = rows[0], rows[1:]
    assert base["epoch"] == 0 and [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["loss"] < 0.6 * epochs[0]["loss"]
    best = max(epochs, key=lambda r: r["val_accuracy"])
    # The bar: 0.8 verification accuracy and ROC AUC 0.9 on validation identities; the
    # untrained network is below both, so passing means it learned something that transfers.
    assert base["val_accuracy"] < 0.8 and base["val_auc"] < 0.9
    assert best["val_accuracy"] >= 0.8 and max(r["val_auc"] for r in epochs) >= 0.9
    assert summary["best"]["epoch"] >= 1 and json.loads((out / "best.json").read_text())["beats_base"]
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 7 and len(split["val"]) == 3 and len(split["test"]) == 2


def test_resume_continues_bit_exactly(tree, tmp_path, monkeypatch):
    """An interrupted run, resumed, has the losses and weights of an uninterrupted one."""
    import training.train as tt

    cfg = {**TINY, "data": str(tree), "epochs": 3, "keep_close": 0.3, "init_head_from_base": True}
    whole = tmp_path / "whole"
    train(load_config(None, {**cfg, "out": str(whole)}), progress=False)

    cut = tmp_path / "cut"
    real_write_best = tt.write_best
    calls = []

    def crash_after_two_epochs(*args, **kwargs):
        real_write_best(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(tt, "write_best", crash_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(None, {**cfg, "out": str(cut)}), progress=False)
    monkeypatch.setattr(tt, "write_best", real_write_best)
    assert [r["epoch"] for r in log_of(cut)] == [0, 1, 2]
    train(load_config(cut / "config.toml"), resume=True, progress=False)

    keys = ("epoch", "loss", "keep_close_penalty", "lr", "margin_fraction", "val_fnir", "val_auc", "val_accuracy")
    a, b = log_of(whole), log_of(cut)
    assert [{k: r.get(k) for k in keys} for r in a] == [{k: r.get(k) for k in keys} for r in b]
    wa, wb = torch.load(whole / "last.pt", weights_only=False), torch.load(cut / "last.pt", weights_only=False)
    assert all(torch.equal(wa["backbone"][k], wb["backbone"][k]) for k in wa["backbone"])
    assert all(torch.equal(wa["head"][k], wb["head"][k]) for k in ("weight",)) and wb["head"]["_extra_state"]["steps"] > 0


def test_finetune_export_and_the_app_on_real_faces(tree, tmp_path, faces):
    """finetune -> export (checked on real aligned faces) -> the app loads and uses the file."""
    from faceapp.vision.embed import Embedder
    from training.cli import main as train_main
    from training.export import ExportMismatch, export_onnx
    from training.train import load_run

    out = tmp_path / "run"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    assert train_main(["-q", "finetune", str(tree), "--out", str(out), "--epochs", "2", *sets]) == 0
    assert json.loads((out / "best.json").read_text())["beats_base"]
    onnx_path = tmp_path / "tiny.onnx"
    assert train_main(["-q", "export", str(out), "--out", str(onnx_path)]) == 0
    emb = Embedder(onnx_path, provider="cpu")
    assert emb.dim == 16 and emb.provenance["data"]["train"]["identities"] == 7
    assert emb.provenance["data"]["test_identities"] == 2 and 0 < emb.thresholds.match <= 1

    real = np.stack([f.crop for f in faces.values()])  # aligned crops of real photos
    _, net = load_run(out)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(net(torch.from_numpy(real).permute(0, 3, 1, 2).float()), dim=1).numpy()
    np.testing.assert_allclose(emb.embed(real), ref, atol=1e-4)
    # the export's own check runs on the real crops it is given, and refuses a graph that differs
    class BatchSizeBakedIn(torch.nn.Module):  # traced on one crop, the batch size becomes a constant
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x) * int(x.shape[0])

    with pytest.raises(ExportMismatch):
        export_onnx(BatchSizeBakedIn(), tmp_path / "bad.onnx", sample=real, thresholds=emb.thresholds,
                    provenance={}, embedding_size=16)
    assert not (tmp_path / "bad.onnx").exists()

    from faceapp.cli import main as cli_main

    data = Path(__file__).resolve().parent / "data"
    g = str(tmp_path / "g")
    assert cli_main(["--gallery", g, "--model", str(onnx_path), "enroll", "Obama", str(data / "obama.jpg")]) == 0
    assert cli_main(["--gallery", g, "--model", str(onnx_path), "--json", "match", str(data / "obama.jpg")]) == 0


def test_export_refuses_a_model_that_does_not_beat_the_base(tree, tmp_path, capsys):
    from training.cli import main as train_main

    out = tmp_path / "still"
    # lr 0 and frozen statistics: the weights cannot change, so no epoch can beat the base model
    cfg = {**TINY, "lr": 0.0, "train_bn": False, "data": str(tree), "out": str(out), "epochs": 1}
    train(load_config(None, cfg), progress=False)
    assert not json.loads((out / "best.json").read_text())["beats_base"]
    assert train_main(["-q", "export", str(out), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not exported" in err[0] and "--force" in err[0]
    assert not (tmp_path / "m.onnx").exists()
    assert train_main(["-q", "export", str(out), "--out", str(tmp_path / "m.onnx"), "--force"]) == 0


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    from training.cli import main as train_main

    assert train_main(["-q", "finetune", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert train_main(["-q", "export", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(x.startswith("faceapp-train: error: ") for x in lines)
    assert "is not a folder" in lines[0] and "config.toml not found" in lines[1] and "run folder" in lines[1]


def test_eval_uses_the_runs_test_identities(tree, tmp_path, capsys):
    from training.cli import main as train_main

    out = tmp_path / "run"
    train(load_config(None, {**TINY, "data": str(tree), "out": str(out), "epochs": 1}), progress=False)
    assert train_main(["-q", "eval", str(out), "--data", str(tree), "--split", str(out), "--out", str(tmp_path / "e")]) == 0
    printed = capsys.readouterr().out
    assert "12 images of 2 people" in printed and "FNIR @ FPIR target" in printed
    rep = json.loads((tmp_path / "e" / "report.json").read_text())["run"]
    assert 0 <= rep["open_set"]["fnir_at_fpir"] <= 1


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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",  # rendezvous on a free port
         "-m", "training.cli", "-q", "train", "--config", str(config)],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sums = [json.loads((out / f"rank{r}.json").read_text())["checksum"] for r in (0, 1)]
    assert sums[0] == pytest.approx(sums[1], rel=1e-6)
    assert len((out / "log.jsonl").read_text().splitlines()) == 3  # the base model (epoch 0) and two epochs


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


def test_pairs_csv_evaluation_reads_the_apps_parser(tmp_path, data_dir, pipeline):
    from training.evaluate import evaluate_pairs_csv

    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        (tmp_path / name).write_bytes((data_dir / name).read_bytes())
    csv = tmp_path / "pairs.csv"
    csv.write_text("file_x,file_y,Decision\nobama.jpg,obama2.jpg,Yes\nobama.jpg,biden.jpg,No\nobama2.jpg,biden.jpg,No\n")
    report = evaluate_pairs_csv(pipeline.embedder.embed, csv)
    gen, imp = report["_scores"]
    assert len(gen) == 1 and len(imp) == 2 and gen[0] > imp.max()
    assert report["failed_images"] == []
