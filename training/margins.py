"""The additive-angular-margin family of softmax heads, in one formula.

For the target class the logit ``cos(theta)`` becomes

    psi(theta) = (-1)^k * cos(m1 * theta + m2) - 2k - m3,   k = floor((m1 * theta + m2) / pi)

and every logit is then multiplied by ``s``. Angles are in radians.

* ``k = 0`` while ``m1 * theta + m2 <= pi``, where psi is the textbook
  ``cos(m1 * theta + m2) - m3``: ArcFace (1, 0.5, 0), CosFace (1, 0, 0.35), SphereFace
  (m1 > 1), and the combined margin (1, 0.3, 0.2).
* Beyond that, plain ``cos`` would turn round and *increase* with theta (a worse sample
  would get a better logit). The ``(-1)^k ... - 2k`` continuation is SphereFace's
  monotonic form, applied to the whole family: psi stays continuous and strictly
  decreasing on ``[0, pi]`` for every preset. This is used instead of ArcFace's
  "easy margin" (which drops the margin where ``cos(theta) < 0`` and so stops pushing
  the hardest samples) and instead of the ``th``/``mm`` linear fallback (which is
  monotonic but only for ``m1 = 1``).

``cos(theta)`` is clamped to ``[-1 + eps, 1 - eps]`` before ``acos`` so gradients stay
finite at the edges; when ``m1 = 1`` and ``m2 = 0`` (CosFace, plain softmax on cosines)
``acos`` is skipped entirely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-7


@dataclass(frozen=True)
class Margin:
    """Margin parameters ``(m1, m2, m3)`` and scale ``s``."""

    m1: float = 1.0
    m2: float = 0.5
    m3: float = 0.0
    s: float = 64.0

    def __post_init__(self) -> None:
        if not (self.s > 0 and math.isfinite(self.s)):
            raise ValueError(f"scale s must be a positive number, got {self.s}")
        if self.m1 < 1:
            raise ValueError(f"m1 must be >= 1 (a multiplicative margin), got {self.m1}")
        if not 0 <= self.m2 < math.pi:
            raise ValueError(f"m2 must be in [0, pi) radians, got {self.m2}")
        if not 0 <= self.m3 < 2:
            raise ValueError(f"m3 must be in [0, 2), got {self.m3}")

    def scaled(self, fraction: float) -> Margin:
        """The margin grown to ``fraction`` (0 = none, 1 = full) of itself; for warm-up."""
        f = min(max(float(fraction), 0.0), 1.0)
        return Margin(1.0 + f * (self.m1 - 1.0), f * self.m2, f * self.m3, self.s)


PRESETS: dict[str, Margin] = {
    "softmax": Margin(1.0, 0.0, 0.0),
    "arcface": Margin(1.0, 0.5, 0.0),
    "cosface": Margin(1.0, 0.0, 0.35),
    "sphereface": Margin(1.7, 0.0, 0.0),
    "combined": Margin(1.0, 0.3, 0.2),
}


def margin_preset(name: str, s: float | None = None) -> Margin:
    """A named preset from :data:`PRESETS`, optionally with another scale ``s``.

    Args:
        name: preset name.
        s: logit scale; ``None`` keeps the preset's.

    Raises:
        ValueError: unknown name.
    """
    try:
        m = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown margin {name!r}; choose from {', '.join(PRESETS)}") from None
    return m if s is None else Margin(m.m1, m.m2, m.m3, s)


def target_logit(cos: torch.Tensor, margin: Margin) -> torch.Tensor:
    """psi(theta) for target-class cosines (any shape), before scaling by ``s``."""
    if margin.m1 == 1.0 and margin.m2 == 0.0:
        return cos - margin.m3
    theta = torch.acos(cos.clamp(-1.0 + EPS, 1.0 - EPS))
    arg = margin.m1 * theta + margin.m2
    k = torch.floor(arg / math.pi).detach()
    sign = 1.0 - 2.0 * torch.remainder(k, 2.0)  # (-1)^k
    return sign * torch.cos(arg) - 2.0 * k - margin.m3


def margin_logits(cos: torch.Tensor, labels: torch.Tensor, margin: Margin) -> torch.Tensor:
    """Scaled logits with the margin applied to each row's target column.

    Args:
        cos: ``(B, C)`` cosines between embeddings and class centres.
        labels: ``(B,)`` int64 class indices.
        margin: the margin and scale.
    """
    idx = labels.view(-1, 1)
    tgt = target_logit(cos.gather(1, idx), margin)
    return margin.s * cos.scatter(1, idx, tgt)


class MarginHead(nn.Module):
    """Classifier over ``num_classes`` identity centres with a margin on the target logit.

    Args:
        dim: embedding size.
        num_classes: number of training identities.
        margin: margin parameters (see :data:`PRESETS`).
        warmup_steps: the margin grows linearly from 0 to full over this many steps
            (:meth:`step`); a full margin from the first step often fails to converge.
    """

    def __init__(self, dim: int, num_classes: int, margin: Margin, warmup_steps: int = 0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError("need at least two classes")
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)
        self.margin = margin
        self.warmup_steps = int(warmup_steps)
        # The step count lives on the host: reading a device tensor every step would
        # force a GPU sync. It travels in checkpoints as the module's extra state.
        self.steps = 0

    def current_margin(self) -> Margin:
        """The margin in force at the current step (grown linearly during warm-up)."""
        if self.warmup_steps <= 0:
            return self.margin
        return self.margin.scaled(self.steps / self.warmup_steps)

    def step(self) -> None:
        """Count one optimiser step (advances the margin warm-up)."""
        self.steps += 1

    def get_extra_state(self) -> dict[str, int]:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.steps = int(state["steps"])

    def cosines(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy loss of ``(B, D)`` embeddings against ``(B,)`` labels."""
        cos = self.cosines(emb)
        if cos.dtype in (torch.float16, torch.bfloat16):  # mixed precision: the margin needs float32
            cos = cos.float()
        logits = margin_logits(cos, labels, self.current_margin())
        return F.cross_entropy(logits, labels)
