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


def angles_to_class_centre(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)`` angle in degrees between each unit embedding and its class's mean direction."""
    out = np.empty(len(emb))
    for c in np.unique(labels):
        e = emb[labels == c]
        centre = e.mean(0)
        centre /= np.linalg.norm(centre) + 1e-12
        out[labels == c] = np.degrees(np.arccos(np.clip(e @ centre, -1, 1)))
    return out


def intra_class_angle(emb: np.ndarray, labels: np.ndarray) -> float:
    """Mean angle in degrees between each unit embedding and its class's mean direction."""
    return float(angles_to_class_centre(emb, labels).mean())


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
    """Both sets of embeddings on spheres, and the spread of angles to the class centres.

    Args:
        result: the output of :func:`run_demo`.
        path: where to write the PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colours = plt.get_cmap("tab10")(result.labels % 10)
    fig = plt.figure(figsize=(15, 5.6), dpi=110)
    grid = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.0, 0.85], wspace=0.02, left=0.01, right=0.98, top=0.86,
                            bottom=0.17)
    u, v = np.mgrid[0 : 2 * np.pi : 48j, 0 : np.pi : 24j]
    sphere = (np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v))
    panels = [("softmax", result.softmax, result.softmax_angle, result.softmax_accuracy),
              ("ArcFace (m = 0.5)", result.arcface, result.arcface_angle, result.arcface_accuracy)]
    for i, (name, emb, ang, acc) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i], projection="3d")
        ax.plot_surface(*sphere, color="0.92", alpha=0.35, linewidth=0, shade=False)
        ax.plot_wireframe(*sphere, color="0.75", linewidth=0.25, rstride=2, cstride=2)
        ax.scatter(emb[:, 0], emb[:, 1], emb[:, 2], c=colours, s=16, depthshade=True, edgecolors="none")
        ax.view_init(elev=22, azim=40)
        ax.set_box_aspect((1, 1, 1), zoom=1.6)
        ax.set_axis_off()
        ax.set_title(f"{name}\nintra-class angle {ang:.1f}\u00b0, nearest-centre accuracy {acc:.3f}",
                     fontsize=11, pad=-6)
    ax = fig.add_subplot(grid[0, 2])
    bins = np.linspace(0, 60, 41)
    for (name, emb, _, _), colour in zip(panels, ("tab:grey", "tab:red")):
        a = angles_to_class_centre(emb, result.labels)
        ax.hist(a, bins=bins, alpha=0.55, color=colour, label=f"{name}: median {np.median(a):.1f}\u00b0")
    ax.set_xlabel("angle to its class centre (degrees)")
    ax.set_ylabel("held-out digits")
    ax.set_title("the margin pulls each class together", fontsize=11)
    ax.legend(fontsize=9)
    ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="", color=plt.get_cmap("tab10")(d), label=str(d)) for d in range(10)]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.12, 0.02), ncol=10, title="digit",
               fontsize=9, title_fontsize=9, frameon=False)
    fig.suptitle("Softmax vs ArcFace: 3-D embeddings of held-out handwritten digits on the unit sphere", fontsize=13)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
