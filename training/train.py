"""One training loop: fine-tune (or train) an embedder with a margin-softmax head.

Runs on the CPU by default and on CUDA when present (with mixed precision). Under
``torchrun`` it uses DistributedDataParallel (gloo on CPU, NCCL on CUDA). Each run
writes to its ``out`` folder:

* ``config.toml``: the settings;
* ``split.json``: the identity-disjoint train / validation / test split (and strangers),
  made once; resuming, export and evaluation read it and never split again;
* ``log.jsonl``: one line per epoch, epoch 0 being the base model before training;
* ``last.pt``: checkpoint for resuming (weights, optimiser, schedule, random states);
* ``model.pt`` and ``best.json``: the weights of the epoch with the best validation
  figures, and those figures next to the base model's.

Validation is open-set identification as the app does it: FNIR (enrolled people not
given their own name) at a fixed FPIR (strangers given a name), through
:func:`training.evaluate.open_set_figures` and :mod:`faceapp.measure.openset`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .backbones import create_backbone
from .data import (
    AugmentConfig,
    CropDataset,
    FaceCrops,
    Split,
    from_aligned_folder,
    from_gallery,
    from_photo_folder,
    from_stranger_folder,
    load_split,
    split_identities,
)
from .margins import Margin, MarginHead, margin_preset

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """An experiment; load one from TOML with :func:`load_config`.

    Attributes:
        data: the training data: a folder-per-identity tree or a gallery folder.
        data_kind: ``photos`` (detect and align), ``aligned`` (crops) or ``gallery``.
        strangers: a folder of photos of people in none of ``data``'s identities (one
            person per photo), added as stranger probes to validation and test ("" = none).
        cache_dir: where aligned crops of photos are cached ("" = next to the photos).
        out: run folder.
        backbone: a name from :data:`training.backbones.BACKBONES`.
        pretrained: ONNX weights for ``sface`` (``"bundled"`` = faceapp's model, ``""`` = none).
        width: channel multiplier for ``mobilefacenet``.
        embedding_size: output size.
        margin: preset name (``arcface``, ``cosface``, ``sphereface``, ``combined``, ``softmax``).
        m1, m2, m3: override the preset's parameters when set.
        scale: the logit scale ``s``.
        margin_warmup_steps: steps over which the margin grows from 0 to full.
        optimizer: ``adamw`` or ``sgd``.
        lr: backbone learning rate; the head uses ``lr * head_lr_mult``.
        weight_decay: decoupled weight decay.
        epochs, batch_size: as usual (batch size per process).
        lr_warmup_steps: linear learning-rate warm-up, then cosine decay to 0.
        grad_clip: gradient norm clipping (0 = off).
        freeze_stages: how many of the backbone's early stages to freeze.
        train_bn: update BatchNorm statistics (off by default: small fine-tuning sets
            give poor statistics).
        keep_close: weight of the penalty ``1 - cos(e, e_base)`` that keeps embeddings near the
            base model's (guards against forgetting on small data; 0 = off).
        init_head_from_base: start each class centre at the mean base-model embedding.
        val_fraction: share of identities held out for validation (choosing the best epoch).
        test_fraction: share held out for the final test, never seen in training or selection.
        target_fpir: the FPIR at which validation measures FNIR.
        seed: random seed.
        augment: augmentation probabilities.
        amp: mixed precision on CUDA.
        device: ``auto``, ``cpu`` or ``cuda``.
        workers: data-loader worker processes.
    """

    data: str = ""
    data_kind: str = "photos"
    strangers: str = ""
    cache_dir: str = ""
    out: str = "runs/exp"
    backbone: str = "sface"
    pretrained: str = "bundled"
    width: float = 1.0
    embedding_size: int = 128
    margin: str = "arcface"
    m1: float | None = None
    m2: float | None = None
    m3: float | None = None
    scale: float = 32.0
    margin_warmup_steps: int = 100
    optimizer: str = "adamw"
    lr: float = 1e-4
    head_lr_mult: float = 10.0
    weight_decay: float = 5e-4
    epochs: int = 10
    batch_size: int = 32
    lr_warmup_steps: int = 20
    grad_clip: float = 5.0
    freeze_stages: int = 0
    train_bn: bool = False
    keep_close: float = 1.0
    init_head_from_base: bool = True
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    target_fpir: float = 0.01
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    amp: bool = True
    device: str = "auto"
    workers: int = 0

    def __post_init__(self) -> None:
        if self.data_kind not in ("photos", "aligned", "gallery"):
            raise ValueError(f"data_kind must be photos, aligned or gallery, not {self.data_kind!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError("optimizer must be adamw or sgd")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        if not 0 < self.target_fpir < 1:
            raise ValueError(f"target_fpir must be between 0 and 1, not {self.target_fpir}")
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        self.margin_params()  # validates

    def margin_params(self) -> Margin:
        base = margin_preset(self.margin)
        return Margin(
            base.m1 if self.m1 is None else self.m1, base.m2 if self.m2 is None else self.m2,
            base.m3 if self.m3 is None else self.m3, self.scale,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """An experiment from a TOML file (or none) with ``overrides`` on top.

    Args:
        path: a TOML file of :class:`TrainConfig` fields, e.g. a run's ``config.toml``.
        overrides: field values that replace the file's.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unknown field or a bad value.
    """
    values: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} not found: give an experiment TOML file, or a run folder written "
                                    "by faceapp-train finetune")
        values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
    return TrainConfig(**values)


def save_config(cfg: TrainConfig, path: Path) -> None:
    import tomli_w

    path.write_text(tomli_w.dumps(cfg.to_dict()), encoding="utf-8")


def load_data(cfg: TrainConfig) -> FaceCrops:
    """The labelled crops of ``cfg.data``, aligned (and cached) when they are photos."""
    if not cfg.data:
        raise ValueError("no training data: set data to a folder-per-person tree")
    if cfg.data_kind == "photos":
        return from_photo_folder(Path(cfg.data), Path(cfg.cache_dir) if cfg.cache_dir else None)
    if cfg.data_kind == "aligned":
        return from_aligned_folder(Path(cfg.data))
    return from_gallery(Path(cfg.data))


def load_strangers(cfg: TrainConfig) -> FaceCrops | None:
    """The stranger crops of ``cfg.strangers``, or None when it is not set."""
    if not cfg.strangers:
        return None
    return from_stranger_folder(Path(cfg.strangers), Path(cfg.cache_dir) if cfg.cache_dir else None,
                                aligned=cfg.data_kind == "aligned")


def build_backbone(cfg: TrainConfig) -> nn.Module:
    kwargs: dict[str, Any] = {"embedding_size": cfg.embedding_size, "width": cfg.width}
    if cfg.backbone == "sface" and cfg.pretrained:
        from faceapp.vision import models

        kwargs["pretrained"] = models.resolve_embedder(None).path if cfg.pretrained == "bundled" else Path(cfg.pretrained)
    return create_backbone(cfg.backbone, **kwargs)


def base_model_hash(cfg: TrainConfig) -> str | None:
    if cfg.backbone != "sface" or not cfg.pretrained:
        return None
    from faceapp.vision import models

    return models.resolve_embedder(None if cfg.pretrained == "bundled" else Path(cfg.pretrained)).sha256


class Trainee(nn.Module):
    """Backbone + margin head + the keep-close penalty, as one module for DDP."""

    def __init__(self, backbone: nn.Module, head: MarginHead, base: nn.Module | None, keep_close: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.base = base
        self.keep_close = keep_close

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.backbone(x)
        loss = self.head(emb, y)
        penalty = torch.zeros((), device=x.device)
        if self.base is not None and self.keep_close > 0:
            with torch.no_grad():
                ref = self.base(x)
            penalty = (1.0 - F.cosine_similarity(emb.float(), ref.float(), dim=1)).mean()
        return loss + self.keep_close * penalty, penalty


def _set_bn_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _freeze(backbone: nn.Module, stages: int) -> None:
    if stages <= 0:
        return
    parts = backbone.stages() if hasattr(backbone, "stages") else list(backbone.children())
    for part in parts[:stages]:
        for p in part.parameters():
            p.requires_grad_(False)


def lr_lambda(step: int, warmup: int, total: int) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(cfg: TrainConfig) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda was asked for but torch sees no CUDA GPU; use device = 'cpu'")
    return cfg.device


def param_checksum(module: nn.Module) -> float:
    """A number that differs when any parameter differs (for checking DDP replicas)."""
    with torch.no_grad():
        return float(sum((p.double() * (i + 1)).sum() for i, p in enumerate(module.parameters())))


def class_means(backbone: nn.Module, data: FaceCrops, device: str) -> torch.Tensor:
    from .evaluate import torch_embedder

    emb = torch_embedder(backbone, device)(data.crops)
    means = np.zeros((data.num_classes, emb.shape[1]), np.float32)
    for c in range(data.num_classes):
        means[c] = emb[data.labels == c].mean(0)
    return torch.from_numpy(means)


def validate(backbone: nn.Module, val: FaceCrops, strangers: FaceCrops | None, cfg: TrainConfig,
             device: str) -> dict[str, Any]:
    """Open-set and pair figures of ``backbone`` on the validation identities."""
    from .evaluate import evaluate_crops, torch_embedder

    rep = evaluate_crops(torch_embedder(backbone, device), val.crops, val.labels,
                         strangers=strangers.crops if strangers is not None else None, target_fpir=cfg.target_fpir)
    o = rep["open_set"]
    return {"val_fnir": o["fnir_at_fpir"], "val_wrong_name": o["wrong_name_at_fpir"], "val_fpir": o["fpir"],
            "val_threshold": o["threshold"], "val_auc": rep["roc_auc"], "val_accuracy": rep["accuracy"]}


def selection_key(record: dict[str, Any]) -> tuple[float, float]:
    """Lower is better: FNIR at the target FPIR, then the wrong-name rate (NaN counts as worst)."""
    def v(x: Any) -> float:
        return float("inf") if x is None or not math.isfinite(float(x)) else float(x)

    return v(record.get("val_fnir")), v(record.get("val_wrong_name"))


def beats(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``a`` has better validation figures than ``b`` (strictly)."""
    return selection_key(a) < selection_key(b)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def make_split(cfg: TrainConfig, data: FaceCrops, strangers: FaceCrops | None, out: Path, resume: bool) -> Split:
    """The run's split: read back from ``out/split.json`` when resuming, made anew otherwise."""
    if resume and (out / "split.json").is_file():
        return load_split(out)
    return split_identities(data.names, cfg.val_fraction, cfg.test_fraction, cfg.seed,
                            strangers.names if strangers is not None else None)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run one experiment.

    Args:
        cfg: the experiment.
        resume: continue from ``out/last.pt`` (same split, same random states: the losses
            are those of an uninterrupted run).
        progress: show progress bars.

    Returns:
        A summary: run folder, device, ``base`` and ``best`` validation records, ``last``
        epoch's record (loss, images per second, validation figures).
    """
    from tqdm import tqdm

    device = pick_device(cfg)
    di = init_distributed(device)
    if device == "cuda":
        device = f"cuda:{di.local_rank}"
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    resume = resume and ckpt_path.is_file()
    if di.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.toml")

    data = load_data(cfg)
    strangers = load_strangers(cfg)
    split = make_split(cfg, data, strangers, out, resume)
    train_set, val_set = data.select(split.train), data.select(split.val)
    val_strangers = strangers.select(split.val_strangers) if strangers is not None and split.val_strangers else None
    if di.main:
        split.save(out / "split.json")
        log.info("%d training images of %d people; validation %d images of %d people and %d strangers; "
                 "test %d people and %d strangers held out", len(train_set), train_set.num_classes, len(val_set),
                 val_set.num_classes, len(split.val_strangers), len(split.test), len(split.test_strangers))

    backbone = build_backbone(cfg).to(device)
    base = copy.deepcopy(backbone).eval().requires_grad_(False) if cfg.keep_close > 0 else None
    head = MarginHead(cfg.embedding_size, train_set.num_classes, cfg.margin_params(), cfg.margin_warmup_steps).to(device)
    if cfg.init_head_from_base and not resume:
        with torch.no_grad():
            head.weight.copy_(class_means(backbone, train_set, device))
    _freeze(backbone, cfg.freeze_stages)
    model: nn.Module = Trainee(backbone, head, base, cfg.keep_close)

    dataset = CropDataset(train_set, cfg.augment, cfg.seed)
    order = torch.Generator()  # reseeded every epoch, so a resumed run draws the same batches
    sampler = (DistributedSampler(dataset, di.world, di.rank, shuffle=True, seed=cfg.seed, drop_last=True)
               if di.world > 1 else RandomSampler(dataset, generator=order))
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                        drop_last=len(dataset) >= 2 * cfg.batch_size, pin_memory=device.startswith("cuda"))
    steps_per_epoch = max(1, len(loader))
    total_steps = steps_per_epoch * cfg.epochs

    groups = [
        {"params": [p for p in backbone.parameters() if p.requires_grad], "lr": cfg.lr},
        {"params": list(head.parameters()), "lr": cfg.lr * cfg.head_lr_mult},
    ]
    opt: torch.optim.Optimizer
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(groups, momentum=0.9, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, cfg.lr_warmup_steps, total_steps))
    use_amp = cfg.amp and device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch = 0
    base_rec: dict[str, Any] = {}
    best_rec: dict[str, Any] = {}
    if resume:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        backbone.load_state_dict(ckpt["backbone"])
        head.load_state_dict(ckpt["head"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if ckpt["rng"].get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        start_epoch = int(ckpt["epoch"]) + 1
        base_rec, best_rec = ckpt.get("base", {}), ckpt.get("best", {})
        log.info("resumed from %s at epoch %d", ckpt_path, start_epoch + 1)
    elif di.main:
        (out / "log.jsonl").write_text("", encoding="utf-8")
        if val_set.num_classes >= 2:
            base_rec = {"epoch": 0, **validate(backbone, val_set, val_strangers, cfg, device)}
            with (out / "log.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(base_rec) + "\n")
            log.info("base model: %s", _rounded(base_rec))

    if di.world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[di.local_rank] if device.startswith("cuda") else None, find_unused_parameters=False,
        )

    summary: dict[str, Any] = {"out": str(out), "device": device, "world_size": di.world}
    for epoch in range(start_epoch, cfg.epochs):
        dataset.epoch = epoch
        order.manual_seed(cfg.seed * 1_000_003 + epoch)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        model.train()
        if not cfg.train_bn:
            _set_bn_eval(backbone)
        if base is not None:
            base.eval()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        seen = 0
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # summed on the device: no sync per step
        pen_sum = torch.zeros((), device=device, dtype=torch.float64)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and di.main), leave=False)
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                loss, penalty = model(x, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            head.step()
            seen += len(x)
            loss_sum += loss.detach().double() * len(x)
            pen_sum += penalty.detach().double() * len(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        record: dict[str, Any] = {
            "epoch": epoch + 1, "loss": float(loss_sum) / max(1, seen), "keep_close_penalty": float(pen_sum) / max(1, seen),
            "lr": sched.get_last_lr()[0], "margin_fraction": min(1.0, head.steps / max(1, cfg.margin_warmup_steps)),
            "seconds": seconds, "images_per_second": seen * di.world / seconds if seconds > 0 else None,
        }
        if di.main:
            if val_set.num_classes >= 2:
                record.update(validate(backbone, val_set, val_strangers, cfg, device))
                if not best_rec or beats(record, best_rec):
                    best_rec = dict(record)
                    _atomic_save(backbone.state_dict(), out / "model.pt")
            elif not best_rec or epoch + 1 == cfg.epochs:  # nothing to select on: keep the last
                best_rec = dict(record)
                _atomic_save(backbone.state_dict(), out / "model.pt")
            with (out / "log.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            _atomic_save({
                "backbone": backbone.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                "config": cfg.to_dict(), "base": base_rec, "best": best_rec,
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            }, ckpt_path)
            write_best(out, base_rec, best_rec, cfg)
            log.info("epoch %d: %s", epoch + 1, _rounded(record))
        summary["last"] = record
    summary["base"], summary["best"] = base_rec, best_rec
    summary["checksum"] = param_checksum(backbone)
    if di.world > 1:
        Path(out / f"rank{di.rank}.json").write_text(json.dumps({"checksum": summary["checksum"]}))
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _rounded(record: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}


def write_best(out: Path, base: dict[str, Any], best: dict[str, Any], cfg: TrainConfig) -> None:
    """``best.json``: the kept epoch's validation figures, the base model's, and whether it beat them."""
    verdict = bool(base) and bool(best) and beats(best, base)
    (out / "best.json").write_text(json.dumps({
        "target_fpir": cfg.target_fpir, "base": base, "best": best, "beats_base": verdict,
    }, indent=1), encoding="utf-8")


def read_best(run: Path) -> dict[str, Any]:
    """The ``best.json`` of a run folder.

    Raises:
        FileNotFoundError: the run has not finished an epoch.
    """
    path = Path(run) / "best.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run has not finished an epoch")
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def load_run(run: Path, device: str = "cpu") -> tuple[TrainConfig, nn.Module]:
    """The config and trained backbone of a finished run folder."""
    cfg = load_config(Path(run) / "config.toml")
    cfg.pretrained = ""  # the weights come from model.pt
    backbone = build_backbone(cfg)
    backbone.load_state_dict(torch.load(Path(run) / "model.pt", map_location=device, weights_only=True))
    return cfg, backbone.eval()
