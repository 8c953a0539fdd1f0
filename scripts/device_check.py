"""GPU checks for the embedder and the training loop, in one run (``scripts/device_check.sh``).

1. Embedder parity on CUDA: the shipped ``sface_fp32.onnx`` through faceapp's
   :class:`~faceapp.vision.embed.Embedder` with onnxruntime's CUDA provider against the CPU
   provider, on real aligned face crops (max abs difference, timings). Where onnxruntime
   has no CUDA provider, the same weights run through the torch port of SFace on CUDA in
   fp32 instead, and the report says so.
2. Fine-tuning throughput in images/s, with mixed precision and in fp32: fine-tuning
   steps alone on data already on the GPU, and the training loop of
   :func:`training.train.train` with its data loader (per epoch).
3. A small grid of fine-tunes (margin presets and freezing choices) on an aligned
   folder-per-person tree with a folder of strangers (and, with several GPUs, the training
   loop under DistributedDataParallel); every run is kept, and the run
   whose best epoch has the lowest validation FNIR is named in the report.

Everything is written under ``--out``: ``results.json`` and one folder per run.

    python scripts/device_check.py --data DIR --out DIR [--epochs N] [--grid quick|full]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("device_check")

# (name, overrides): margin presets at the middle freezing choice, then freezing choices.
GRIDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "full": [
        ("arcface-freeze15", {"margin": "arcface", "freeze_stages": 15}),
        ("cosface-freeze15", {"margin": "cosface", "freeze_stages": 15}),
        ("combined-freeze15", {"margin": "combined", "freeze_stages": 15}),
        ("arcface-freeze0", {"margin": "arcface", "freeze_stages": 0}),
        ("arcface-freeze27", {"margin": "arcface", "freeze_stages": 27}),
        ("arcface-freeze15-lr5e-4-close0.1", {"margin": "arcface", "freeze_stages": 15, "lr": 5e-4, "keep_close": 0.1}),
        ("combined-freeze15-lr5e-4-close0.1", {"margin": "combined", "freeze_stages": 15, "lr": 5e-4, "keep_close": 0.1}),
        ("arcface-freeze27-lr1e-3-close0.1", {"margin": "arcface", "freeze_stages": 27, "lr": 1e-3, "keep_close": 0.1}),
        ("arcface-freeze0-lr3e-5-close0", {"margin": "arcface", "freeze_stages": 0, "lr": 3e-5, "keep_close": 0.0}),
    ],
    "quick": [("arcface-freeze15", {"margin": "arcface", "freeze_stages": 15})],
}


def _timed(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1000.0


def embedder_parity(crops: np.ndarray, model: Path, torch_device: str = "cuda") -> dict[str, Any]:
    """CUDA against CPU embeddings of the same crops, with timings in milliseconds."""
    import onnxruntime as ort

    from faceapp.vision.embed import Embedder

    cpu = Embedder(model, provider="cpu")
    want = cpu.embed(crops)
    out: dict[str, Any] = {"crops": len(crops), "onnxruntime": ort.__version__,
                           "providers": ort.get_available_providers()}
    out["cpu_ms_batch1"] = _timed(lambda: cpu.embed(crops[:1]), 20)
    out["cpu_ms_batch32"] = _timed(lambda: cpu.embed(crops[:32]), 5)
    if "CUDAExecutionProvider" in out["providers"] and torch_device == "cuda":
        try:
            gpu = Embedder(model, provider="cuda")
            got = gpu.embed(crops)
            out.update(path="onnxruntime CUDAExecutionProvider", provider_note=gpu.provider_note,
                       max_abs_diff=float(np.abs(got - want).max()),
                       gpu_ms_batch1=_timed(lambda: gpu.embed(crops[:1]), 50),
                       gpu_ms_batch32=_timed(lambda: gpu.embed(crops[:32]), 20))
            return out
        except Exception as exc:  # reported, then the torch path below
            out["cuda_provider_error"] = str(exc).splitlines()[0]
    import torch

    from training.backbones import create_backbone

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for a parity check
    torch.backends.cudnn.allow_tf32 = False
    net = create_backbone("sface", pretrained=model).eval().to(torch_device)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().to(torch_device)
            e = torch.nn.functional.normalize(net(t), dim=1).cpu().numpy()
        return e

    got = np.concatenate([run(crops[s : s + 64]) for s in range(0, len(crops), 64)])
    out.update(path="torch port of the same ONNX weights on CUDA, fp32 (onnxruntime here has no CUDA provider)",
               max_abs_diff=float(np.abs(got - want).max()),
               gpu_ms_batch1=_timed(lambda: run(crops[:1]), 50), gpu_ms_batch32=_timed(lambda: run(crops[:32]), 20))
    return out


def step_throughput(model: Path, device: str, batch: int, amp: bool, steps: int, freeze: int = 0) -> float:
    """Images/s of fine-tuning steps alone (forward, margin loss, backward, AdamW) on resident data.

    The data loader is left out, so this is what the network and the device can do; the
    training loop's own figure (per epoch, loader included) is reported next to it.
    """
    import torch

    from training.backbones import create_backbone
    from training.margins import MarginHead, margin_preset
    from training.train import _freeze

    net = create_backbone("sface", pretrained=model).to(device).train()
    _freeze(net, freeze)
    head = MarginHead(128, 1000, margin_preset("arcface", s=32.0)).to(device)
    opt = torch.optim.AdamW([p for p in list(net.parameters()) + list(head.parameters()) if p.requires_grad], lr=1e-5)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device == "cuda")
    x = torch.rand(batch, 3, 112, 112, device=device) * 255
    y = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp and device == "cuda"):
            loss = head(net(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def ddp_throughput(cfg: dict[str, Any], gpus: int, out: Path) -> dict[str, Any]:
    """Images/s (all processes together) of the training loop under ``torchrun`` on ``gpus`` GPUs."""
    import subprocess
    import sys

    import tomli_w

    out.mkdir(parents=True, exist_ok=True)
    config = out / "ddp.toml"
    config.write_text(tomli_w.dumps({**cfg, "out": str(out / "run")}), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus),
                           "-m", "training.cli", "-q", "train", "--config", str(config)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    rows = [json.loads(x) for x in (out / "run" / "log.jsonl").read_text().splitlines()]
    return {"gpus": gpus, "images_per_second": rows[-1].get("images_per_second")}


def run_config(base: dict[str, Any], name: str, overrides: dict[str, Any], out: Path) -> dict[str, Any]:
    from training.train import load_config, train

    cfg = load_config(None, {**base, **overrides, "out": str(out / name)})
    t0 = time.perf_counter()
    summary = train(cfg, progress=False)
    rows = [json.loads(x) for x in (out / name / "log.jsonl").read_text().splitlines()]
    ips = [r["images_per_second"] for r in rows[1:] if r.get("images_per_second")]
    return {"name": name, "overrides": overrides, "wall_s": time.perf_counter() - t0, "base": summary.get("base"),
            "best": summary.get("best"), "images_per_second_median": float(np.median(ips)) if ips else None,
            "images_per_second_last": ips[-1] if ips else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder with people/, strangers/ and parity_crops.npy")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=Path("models/sface_fp32.onnx"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--grid", choices=sorted(GRIDS), default="full")
    p.add_argument("--device", default="auto", help="auto, cuda or cpu (cpu: a dry run of the script)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=6)
    p.add_argument("--steps-only", action="store_true", help="only time fine-tuning steps on the CPU")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    res: dict[str, Any] = {"torch": torch.__version__, "cuda": cuda,
                           "gpu": torch.cuda.get_device_name(0) if cuda else None,
                           "gpus": torch.cuda.device_count() if cuda else 0}
    log.info("%s", res)
    if cuda:
        crops = np.load(args.data / "parity_crops.npy")
        res["parity"] = embedder_parity(crops, args.model)
        log.info("parity: %s", res["parity"])

    base = {"data": str(args.data / "people"), "data_kind": "aligned", "strangers": str(args.data / "strangers"),
            "pretrained": str(args.model), "epochs": args.epochs, "batch_size": args.batch_size,
            "workers": args.workers, "device": "cuda" if cuda else "cpu", "lr": 1e-4, "keep_close": 1.0,
            "margin_warmup_steps": 50, "lr_warmup_steps": 20, "scale": 32.0}
    if args.steps_only:
        res["step_throughput"] = [{"device": "cpu", "batch_size": 32, "amp": False,
                                   "images_per_second": step_throughput(args.model, "cpu", 32, False, 3)}]
        log.info("%s", res["step_throughput"])
        (args.out / "results.json").write_text(json.dumps(res, indent=1, default=float))
        return 0
    if cuda:
        res["step_throughput"] = []
        for batch in (64, 256):
            for amp in (False, True):
                ips = step_throughput(args.model, "cuda", batch, amp, 30)
                res["step_throughput"].append({"device": "cuda", "batch_size": batch, "amp": amp, "images_per_second": ips})
                log.info("steps alone: %s", res["step_throughput"][-1])
    if cuda:  # the training loop itself, loader included, with and without mixed precision; the second epoch is warm
        res["throughput"] = []
        for batch, workers in ((args.batch_size, args.workers), (128, 14)):
            for amp in (False, True):
                name = f"speed-b{batch}-w{workers}-amp{int(amp)}"
                r = run_config({**base, "epochs": 2, "amp": amp, "batch_size": batch, "workers": workers}, name,
                               {"freeze_stages": 0}, args.out / "speed")
                res["throughput"].append({"batch_size": batch, "workers": workers, "amp": amp,
                                          "images_per_second": r["images_per_second_last"]})
                log.info("throughput: %s", res["throughput"][-1])
    if cuda and res["gpus"] > 1:  # DistributedDataParallel over every GPU, one process each
        res["ddp"] = ddp_throughput({**base, "epochs": 2, "amp": True, "freeze_stages": 0}, res["gpus"], args.out / "ddp")
        log.info("DDP over %d GPUs: %s", res["gpus"], res["ddp"])
    runs = []
    for name, overrides in GRIDS[args.grid]:
        runs.append(run_config(base, name, overrides, args.out))
        log.info("%s: %s", name, {k: runs[-1][k] for k in ("wall_s", "images_per_second_median")})
        log.info("  base %s", runs[-1]["base"])
        log.info("  best %s", runs[-1]["best"])
        (args.out / "results.json").write_text(json.dumps({**res, "runs": runs}, indent=1, default=float))
    from training.train import selection_key

    chosen = min(runs, key=lambda r: selection_key(r["best"] or {}))
    res["chosen"] = chosen["name"]
    (args.out / "results.json").write_text(json.dumps({**res, "runs": runs}, indent=1, default=float))
    log.info("chosen by validation: %s", chosen["name"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
