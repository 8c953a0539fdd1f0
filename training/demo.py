"""The angular-margin picture: softmax versus ArcFace on a tiny 3-D embedding.

A small network maps scikit-learn's bundled 8x8 digit images (offline, 10 classes) to
3-D embeddings, trained once with a plain softmax classifier and once with the ArcFace
head. Both sets of held-out embeddings are drawn on the unit sphere side by side; the
margin pulls each class into a tight cap, and :func:`intra_class_angle` measures how tight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .margins import MarginHead, margin_preset


@dataclass(frozen=True)
class DemoResult:
    softmax: np.ndarray  # (N, 3) unit embeddings of the test digits
    arcface: np.ndarray
    labels: np.ndarray
    softmax_angle: float  # mean angle (degrees) between an embedding and its class mean
    arcface_angle: float
    softmax_accuracy: float
    arcface_accuracy: float


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.PReLU(128), nn.Linear(128, 64), nn.PReLU(64), nn.Linear(64, 3))


def intra_class_angle(emb: np.ndarray, labels: np.ndarray) -> float:
    """Mean angle in degrees between each unit embedding and its class's mean direction."""
    angles = []
    for c in np.unique(labels):
        e = emb[labels == c]
        centre = e.mean(0)
        centre /= np.linalg.norm(centre) + 1e-12
        angles.append(np.degrees(np.arccos(np.clip(e @ centre, -1, 1))))
    return float(np.concatenate(angles).mean())


def _nearest_centre_accuracy(train_e: np.ndarray, train_y: np.ndarray, test_e: np.ndarray, test_y: np.ndarray) -> float:
    centres = np.stack([train_e[train_y == c].mean(0) for c in range(10)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return float((np.argmax(test_e @ centres.T, axis=1) == test_y).mean())


def run_demo(steps: int = 600, seed: int = 0) -> DemoResult:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:1400], perm[1400:]
    out = {}
    for kind in ("softmax", "arcface"):
        torch.manual_seed(seed)
        net = _net()
        if kind == "softmax":
            head: nn.Module = nn.Linear(3, 10)
            params = list(net.parameters()) + list(head.parameters())
        else:
            head = MarginHead(3, 10, margin_preset("arcface", s=16.0), warmup_steps=steps // 3)
            params = list(net.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-2)
        for _ in range(steps):
            emb = net(x[tr])
            loss = F.cross_entropy(head(emb), y[tr]) if kind == "softmax" else head(emb, y[tr])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if kind == "arcface":
                head.step()  # type: ignore[operator]
        with torch.no_grad():
            e_tr = F.normalize(net(x[tr]), dim=1).numpy()
            e_te = F.normalize(net(x[te]), dim=1).numpy()
        out[kind] = (e_te, intra_class_angle(e_te, y[te].numpy()),
                     _nearest_centre_accuracy(e_tr, y[tr].numpy(), e_te, y[te].numpy()))
    return DemoResult(
        softmax=out["softmax"][0], arcface=out["arcface"][0], labels=y[te].numpy(),
        softmax_angle=out["softmax"][1], arcface_angle=out["arcface"][1],
        softmax_accuracy=out["softmax"][2], arcface_accuracy=out["arcface"][2],
    )


def plot_demo(result: DemoResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 6))
    u, v = np.mgrid[0 : 2 * np.pi : 40j, 0 : np.pi : 20j]
    for i, (name, emb, ang, acc) in enumerate([
        ("softmax", result.softmax, result.softmax_angle, result.softmax_accuracy),
        ("ArcFace (m = 0.5)", result.arcface, result.arcface_angle, result.arcface_accuracy),
    ]):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4)
        sc = ax.scatter(emb[:, 0], emb[:, 1], emb[:, 2], c=result.labels, cmap="tab10", s=8, depthshade=False)
        ax.set_title(f"{name}\nmean intra-class angle {ang:.1f} deg, accuracy {acc:.3f}")
        ax.set_box_aspect((1, 1, 1))
        ax.set_axis_off()
    fig.colorbar(sc, ax=fig.axes, shrink=0.6, label="digit")
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
