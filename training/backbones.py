"""Face embedding backbones, registered by name.

Every backbone takes ``(B, 3, 112, 112)`` float RGB pixels in 0-255 (the preprocessing
contract of the shipped model: normalisation happens inside the network) and returns
``(B, D)`` embeddings (not normalised).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} registered twice")
        BACKBONES[name] = fn
        return fn

    return deco


def create_backbone(name: str, **kwargs: object) -> nn.Module:
    try:
        return BACKBONES[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(sorted(BACKBONES))}") from None


class ConvBNPReLU(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int = 1, act: bool = True,
                 eps: float = 1e-3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.prelu = nn.PReLU(cout) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


# (name, in, out, stride, depthwise): the layers of OpenCV Zoo's SFace network.
SFACE_LAYERS = [("conv_1", 3, 32, 1, False)]
for _i, (_cin, _cout, _stride) in enumerate(
    [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
     (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 1024, 2), (1024, 1024, 1)],
    start=2,
):
    SFACE_LAYERS.append((f"conv_{_i}_dw", _cin, _cin, _stride, True))
    SFACE_LAYERS.append((f"conv_{_i}", _cin, _cout, 1, False))


class SFaceNet(nn.Module):
    """The SFace network (MobileNet-style, 9.6 M parameters, 128-d output) as plain torch.

    Layer names follow the ONNX graph so that :func:`load_sface_onnx` can fill every
    parameter by name; all parameters, PReLU slopes included, are trainable.
    """

    def __init__(self, embedding_size: int = 128, dropout: float = 0.4) -> None:
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(127.5))
        self.register_buffer("pixel_scale", torch.tensor(0.0078125))
        self.layers = nn.ModuleDict({
            name: ConvBNPReLU(cin, cout, 3 if dw else (3 if name == "conv_1" else 1), stride,
                              groups=cin if dw else 1)
            for name, cin, cout, stride, dw in SFACE_LAYERS
        })
        self.bn1 = nn.BatchNorm2d(1024, eps=2e-5)
        self.dropout = nn.Dropout(dropout)
        self.pre_fc1 = nn.Linear(1024 * 7 * 7, embedding_size)
        self.fc1 = nn.BatchNorm1d(embedding_size, eps=2e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 112, 112) 0-255 RGB
        x = (x - self.pixel_mean) * self.pixel_scale
        for layer in self.layers.values():
            x = layer(x)
        x = self.dropout(self.bn1(x))
        return self.fc1(self.pre_fc1(torch.flatten(x, 1)))  # (B, 128)

    def stages(self) -> list[nn.Module]:
        """Modules in input-to-output order, for freezing the early ones."""
        return [*self.layers.values(), self.bn1, self.pre_fc1, self.fc1]


def load_sface_onnx(model: SFaceNet, path: Path) -> SFaceNet:
    """Copy the weights of faceapp's fp32 SFace ONNX file into ``model`` by name.

    Raises:
        ValueError: a parameter has no counterpart in the file, or shapes differ.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}

    def pick(*names: str) -> torch.Tensor:
        for n in names:
            if n in weights:
                return weights[n]
        raise ValueError(f"{path} has none of {names}")

    state: dict[str, torch.Tensor] = {}
    for name, *_ in SFACE_LAYERS:
        conv = name + "_conv2d_weight"
        state[f"layers.{name}.conv.weight"] = pick(conv + "_reshaped", conv + "_dequantized", conv)
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_var")):
            state[f"layers.{name}.bn.{ours}"] = pick(f"{name}_batchnorm_{theirs}")
        state[f"layers.{name}.prelu.weight"] = pick(f"{name}_relu_gamma").reshape(-1)
    for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                         ("running_var", "moving_var")):
        state[f"bn1.{ours}"] = pick(f"bn1_{theirs}")
        state[f"fc1.{ours}"] = pick(f"fc1_{theirs}")
    state["pre_fc1.weight"] = pick("pre_fc1_weight_dequantized", "pre_fc1_weight")
    state["pre_fc1.bias"] = pick("pre_fc1_bias_dequantized", "pre_fc1_bias")
    own = model.state_dict()
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ValueError(f"{key}: shape {tuple(value.shape)} in {path}, {tuple(own[key].shape)} in the network")
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked") and not k.startswith("pixel_")]
    if missing:
        raise ValueError(f"parameters not found in {path}: {missing[:5]}")
    model.load_state_dict(state, strict=False)
    return model


@register("sface")
def sface(embedding_size: int = 128, pretrained: Path | str | None = None, **_: object) -> SFaceNet:
    """SFace; ``pretrained`` = an SFace ONNX file (default: faceapp's bundled one)."""
    model = SFaceNet(embedding_size=embedding_size)
    if pretrained is not None:
        if embedding_size != 128:
            raise ValueError("the pretrained SFace weights are 128-d")
        load_sface_onnx(model, Path(pretrained))
    return model


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            ConvBNPReLU(cin, mid, 1, 1, eps=1e-5),
            ConvBNPReLU(mid, mid, 3, stride, groups=mid, eps=1e-5),
            ConvBNPReLU(mid, cout, 1, 1, act=False, eps=1e-5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileFaceNet(nn.Module):
    """MobileFaceNet (Chen et al. 2018): about 1 M parameters, global depthwise pooling.

    ``width`` scales every channel count (0.5 gives a very small network for tests).
    """

    # (expansion, out channels, repeats, first stride)
    SETTINGS = [(2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)]

    def __init__(self, embedding_size: int = 128, width: float = 1.0) -> None:
        super().__init__()

        def c(n: int) -> int:
            return max(8, int(n * width))

        layers: list[nn.Module] = [ConvBNPReLU(3, c(64), 3, 2, eps=1e-5), ConvBNPReLU(c(64), c(64), 3, 1, groups=c(64), eps=1e-5)]
        cin = c(64)
        for t, cout, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_Bottleneck(cin, c(cout), s if i == 0 else 1, t))
                cin = c(cout)
        layers.append(ConvBNPReLU(cin, c(512), 1, 1, eps=1e-5))
        self.features = nn.Sequential(*layers)
        self.gdc = nn.Sequential(
            nn.Conv2d(c(512), c(512), 7, groups=c(512), bias=False), nn.BatchNorm2d(c(512)),
            nn.Conv2d(c(512), embedding_size, 1, bias=False), nn.BatchNorm2d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 112, 112) 0-255 RGB
        x = (x - 127.5) / 128.0
        return torch.flatten(self.gdc(self.features(x)), 1)  # (B, D)

    def stages(self) -> list[nn.Module]:
        return [*self.features, self.gdc]


@register("mobilefacenet")
def mobilefacenet(embedding_size: int = 128, width: float = 1.0, **_: object) -> MobileFaceNet:
    return MobileFaceNet(embedding_size=embedding_size, width=width)
