"""The embedder's preprocessing contract, written once.

An embedder ONNX file carries, in its metadata properties:

* ``faceapp.vision.contract``: JSON of :class:`Contract` (input/output names, crop size, layout,
  colour order, per-channel mean and std applied to 0-255 pixels, alignment template,
  embedding size);
* ``faceapp.thresholds``: JSON of the recommended cosine thresholds (``match`` for 1:N
  identification, ``uncertain_band``, ``verify`` for 1:1, ``margin`` between the best and
  the second-best person; a file without ``margin`` gets :data:`DEFAULT_MARGIN`);
* ``faceapp.provenance``: JSON describing where the model came from.

The app reads all three back (:mod:`faceapp.vision.embed`); the training package writes them
when it exports (:mod:`training.export`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# The 5-point ArcFace template for 112x112 crops, in image coordinates (x right, y
# down): the eye on the image's left, the eye on the image's right, nose tip, mouth
# corner on the image's left, mouth corner on the image's right.
ARCFACE_TEMPLATE_112: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)

# Open Model Zoo's 5-point template for its face re-identification network, on a 96x112
# (width x height) face that is then stretched to the network's 128x128 input: the ArcFace
# template shifted 8 pixels to the left, so its face is the middle 96 columns of an ArcFace crop.
OMZ_TEMPLATE_96X112: tuple[tuple[float, float], ...] = tuple((x - 8.0, y) for x, y in ARCFACE_TEMPLATE_112)

CONTRACT_KEY = "faceapp.contract"
THRESHOLDS_KEY = "faceapp.thresholds"
PROVENANCE_KEY = "faceapp.provenance"


@dataclass(frozen=True)
class Alignment:
    """Where a network wants the face: the 5-point template, its frame, and the crop size.

    Attributes:
        template: 5 (x, y) points in pixels of a ``template_size`` face.
        template_size: (height, width) of the face the template's points are given in.
        input_size: (height, width) of the crop; the template's face is resized to it.
    """

    template: tuple[tuple[float, float], ...]
    template_size: tuple[int, int] = (112, 112)
    input_size: tuple[int, int] = (112, 112)


@dataclass(frozen=True)
class Contract:
    """How to turn an aligned RGB uint8 crop into the model's input.

    ``input = (pixel - mean) / std`` per channel, with pixels in 0-255 in ``color``
    order, laid out as ``layout``.

    The face is aligned by a similarity transform onto ``template``, whose points are
    pixels of a ``template_size`` (height, width) face; that face is then resized to
    ``input_size`` (height, width), stretched when the two shapes differ.
    """

    input_name: str = "data"
    output_name: str = "fc1"
    input_size: tuple[int, int] = (112, 112)
    layout: str = "NCHW"
    color: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    template: tuple[tuple[float, float], ...] = ARCFACE_TEMPLATE_112
    embedding_size: int = 128
    pixel_range: tuple[int, int] = field(default=(0, 255))
    template_size: tuple[int, int] = (112, 112)

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, not {self.layout!r}")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, not {self.color!r}")
        if len(self.template) != 5 or any(len(p) != 2 for p in self.template):
            raise ValueError("template must hold 5 (x, y) points")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not contain 0")
        if min(self.input_size) < 16 or min(self.template_size) < 16:
            raise ValueError("input_size and template_size must be at least 16 pixels a side")

    @property
    def alignment(self) -> Alignment:
        """How faces are aligned for this network."""
        template = tuple((float(p[0]), float(p[1])) for p in self.template)
        (th, tw), (h, w) = self.template_size, self.input_size
        return Alignment(template, (int(th), int(tw)), (int(h), int(w)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Contract:
        data: dict[str, Any] = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("input_size", "mean", "std", "pixel_range", "template_size"):
            if key in known:
                known[key] = tuple(known[key])
        if "template" in known:
            known["template"] = tuple(tuple(float(c) for c in p) for p in known["template"])
        return cls(**known)


# The runner-up margin for models whose metadata names none: calibrated for the bundled
# SFace model on LFW (README, "Who gets a name: open-set decisions").
DEFAULT_MARGIN = 0.08


@dataclass(frozen=True)
class RecommendedThresholds:
    """Cosine-similarity thresholds recommended by whoever made the model."""

    match: float
    uncertain_band: float
    verify: float
    margin: float = DEFAULT_MARGIN

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RecommendedThresholds:
        data = json.loads(text)
        return cls(
            match=float(data["match"]),
            uncertain_band=float(data.get("uncertain_band", 0.0)),
            verify=float(data.get("verify", data["match"])),
            margin=float(data.get("margin", DEFAULT_MARGIN)),
        )


def metadata_props(contract: Contract, thresholds: RecommendedThresholds,
                   provenance: dict[str, Any]) -> dict[str, str]:
    """The metadata properties an exported embedder carries."""
    return {
        CONTRACT_KEY: contract.to_json(),
        THRESHOLDS_KEY: thresholds.to_json(),
        PROVENANCE_KEY: json.dumps(provenance, sort_keys=True),
    }


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


# ModelProto.metadata_props is field 14 of onnx.proto; each entry is a StringStringEntryProto
# (key = 1, value = 2).
_METADATA_PROPS_FIELD = 14


def with_metadata(model_bytes: bytes, props: dict[str, str]) -> bytes:
    """An ONNX file's bytes with ``props`` added to its metadata properties.

    Appending a serialised field to a protobuf message appends to that repeated field, so
    this needs neither the ``onnx`` package nor a parse of the graph; everything else in
    the file keeps its bytes.
    """
    extra = b"".join(
        _field(_METADATA_PROPS_FIELD, _field(1, key.encode()) + _field(2, props[key].encode())) for key in sorted(props)
    )
    return model_bytes + extra
