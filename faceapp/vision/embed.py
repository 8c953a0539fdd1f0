"""Face embeddings on onnxruntime or OpenVINO (the runtime is chosen in :mod:`faceapp.vision.runtime`).

Input: aligned crops ``(N, H, W, 3)`` RGB uint8 (H, W from the model's contract).
Output: ``(N, D)`` float32, each row unit length. :class:`FusedEmbedder` puts several
networks behind the same interface; :func:`load_embedder` opens whichever a model file is. The preprocessing (colour order,
mean/std, layout) is read from the model file's ``faceapp.vision.contract`` metadata, never
guessed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.errors import Fix, ModelError
from faceapp.vision.contract import (
    CONTRACT_KEY,
    PROVENANCE_KEY,
    THRESHOLDS_KEY,
    Alignment,
    Contract,
    RecommendedThresholds,
)
from faceapp.vision.loading import GraphPath, Graphs, load_network
from faceapp.vision.models import ModelFile

log = logging.getLogger(__name__)


def preprocess(crops: np.ndarray, contract: Contract) -> np.ndarray:
    """Aligned crops as ``contract``'s network input.

    Args:
        crops: ``(N, H, W, 3)`` (or one ``(H, W, 3)``) RGB uint8, H and W the contract's input size.
        contract: the network's preprocessing contract.

    Returns:
        float32 ``(N, 3, H, W)`` or ``(N, H, W, 3)`` as the contract's layout says.
    """
    x = np.asarray(crops)
    if x.ndim == 3:
        x = x[None]
    h, w = int(contract.input_size[0]), int(contract.input_size[1])
    if x.ndim != 4 or x.shape[1:] != (h, w, 3):
        raise ValueError(f"expected crops of shape (N, {h}, {w}, 3), got {x.shape}")
    channels = (1, 3, 1, 1) if contract.layout == "NCHW" else (1, 1, 1, 3)
    if contract.color == "BGR":
        x = x[..., ::-1]
    if contract.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    # One pass over the pixels converts, reorders the channels and lays them out (a float copy
    # per step cost 25x as much: 3.3 ms against 0.12 ms for five faces of both networks).
    x = x.astype(np.float32, order="C")
    mean, std = np.asarray(contract.mean, np.float32), np.asarray(contract.std, np.float32)
    if mean.any() or (std != 1).any():
        x -= mean.reshape(channels)
        x /= std.reshape(channels)
    return x


class Embedder:
    """An ArcFace-family embedder on onnxruntime (CPU or CUDA) or OpenVINO.

    Args:
        model_path: ONNX file carrying faceapp's contract metadata.
        provider: ``"auto"`` (CUDA when it works, else the faster CPU runtime, timed once per
            model and machine and cached), ``"cuda"``, ``"openvino"`` or ``"cpu"``
            (onnxruntime's CPU provider); see :mod:`faceapp.vision.runtime`.
        model_sha256: the model's hash when already known (keys the cached choice).
        ort_model_path: an equivalent graph for onnxruntime (the bundled PRelu-free
            rewrite of the same network), used instead of ``model_path`` on onnxruntime; a
            callable is called only when onnxruntime is opened (its file is hash-checked then).
        ov_model_path: a graph for OpenVINO to load instead of ``model_path`` (the bundled
            int8 graph when ``precision`` is ``"int8"``), or a callable giving it (or ``None``)
            when OpenVINO is opened.
        precision: the precision of ``ov_model_path``'s graph (``"int8"`` or ``"fp32"``); it
            keys the cached runtime choice and is shown in the runtime's name.
        cache_dir: where timed choices and OpenVINO's compiled models are cached
            (default: the user cache directory).
        threads: CPU inference threads; ``None`` or 0 = the runtime's default (every core).

    Attributes:
        provider: the runtime in use (``"cpu"``, ``"openvino"`` or ``"cuda"``).
        provider_note: the runtime with version and why it was chosen, for display.
        runtime_name: the runtime with its version, short, e.g. ``"OpenVINO 2026.4.1 CPU"``.
        contract: the preprocessing contract.
        thresholds: the model's recommended thresholds.
        provenance: the model's provenance record (may be empty).
    """

    def __init__(self, model_path: Path, provider: str = "auto", *, model_sha256: str | None = None,
                 ort_model_path: GraphPath = None, cache_dir: Path | None = None,
                 threads: int | None = None, ov_model_path: GraphPath = None,
                 precision: str = "fp32") -> None:
        self.model_path = Path(model_path)
        graphs = Graphs(onnxruntime=ort_model_path, openvino=ov_model_path, precision=precision)
        selection = load_network(self.model_path, provider, graphs, model_sha256=model_sha256, threads=threads or 0,
                                 cache_dir=cache_dir, probe=self._probe)
        self.backend = selection.backend
        self.provider = self.backend.name
        self.runtime_name = self.backend.label
        self.provider_note = selection.note
        meta = self.backend.metadata
        self.contract = self._contract(meta)
        try:
            self.thresholds = RecommendedThresholds.from_json(
                meta.get(THRESHOLDS_KEY, '{"match": 0.5, "uncertain_band": 0.0, "verify": 0.4}')
            )
            self.provenance: dict[str, Any] = json.loads(meta.get(PROVENANCE_KEY, "{}"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{self.model_path} has invalid faceapp metadata ({exc}); re-export it") from exc
        names = self.backend.input_names
        if self.contract.input_name not in names:
            raise ModelError(
                f"{self.model_path}: contract names input {self.contract.input_name!r} but the graph has {names}"
            )
        try:
            self.backend.output_index(self.contract.output_name)
        except ValueError:
            raise ModelError(
                f"{self.model_path}: contract names output {self.contract.output_name!r} but the graph has "
                f"{self.backend.output_names}"
            ) from None
        self.backend.use_output(self.contract.output_name)
        self.alignments: tuple[Alignment, ...] = (self.contract.alignment,)
        self._batch_fixed = self.backend.batch

    def _contract(self, meta: dict[str, str]) -> Contract:
        if CONTRACT_KEY not in meta:
            raise ModelError(
                f"{self.model_path} carries no '{CONTRACT_KEY}' metadata; use a model exported by "
                "`faceapp-train export` or the bundled one"
            )
        try:
            return Contract.from_json(meta[CONTRACT_KEY])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{self.model_path} has invalid faceapp metadata ({exc}); re-export it") from exc

    def _probe(self, backend: Any) -> np.ndarray:
        """A batch-1 input of the contract's shape to time runtimes on."""
        contract = self._contract(backend.metadata)
        h, w = contract.input_size
        shape = (1, 3, h, w) if contract.layout == "NCHW" else (1, h, w, 3)
        return np.random.default_rng(0).uniform(-1.0, 1.0, shape).astype(np.float32)

    @property
    def precision(self) -> str:
        """The precision setting the runtime in use follows: ``"int8"`` when it runs at reduced
        precision (the quantised graph, or bf16 where the network ships none), else ``"fp32"``."""
        return "fp32" if getattr(self.backend, "precision", "fp32") == "fp32" else "int8"

    @property
    def session(self) -> Any:
        """The onnxruntime session (only when the runtime is onnxruntime)."""
        sess = getattr(self.backend, "session", None)
        if sess is None:
            raise AttributeError(f"the {self.provider} runtime has no onnxruntime session")
        return sess

    @property
    def input_size(self) -> tuple[int, int]:
        return (int(self.contract.input_size[0]), int(self.contract.input_size[1]))

    @property
    def dim(self) -> int:
        return int(self.contract.embedding_size)

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` RGB uint8 -> model input as the contract says."""
        return preprocess(crops, self.contract)

    def embed_aligned(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`embed` of ``crops[0]``: the one-network form of :meth:`FusedEmbedder.embed_aligned`."""
        return self.embed(crops[0])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Embed aligned crops.

        Args:
            crops: ``(N, H, W, 3)`` RGB uint8 aligned faces (or one ``(H, W, 3)``).

        Returns:
            ``(N, D)`` float32 unit-length embeddings.
        """
        x = self.preprocess(crops)
        if len(x) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self._batch_fixed == 1:
            y = np.concatenate([self.backend.run(x[i : i + 1]) for i in range(len(x))])
        else:
            y = self.backend.run(x)
        y = np.asarray(y, np.float32).reshape(len(x), -1)
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return y / np.maximum(norms, 1e-12)


class FusedEmbedder:
    """Several networks as one model: per-network unit vectors, weighted, concatenated.

    Network ``i`` with weight ``w_i`` (the weights sum to 1) contributes ``sqrt(w_i) * e_i``,
    so the fused vector is unit length and the cosine of two fused vectors is
    ``sum_i w_i cos_i``. To the rest of the app it is one embedder: one vector per face,
    one model id (the fused file's sha256).

    Each network sees the face aligned its own way (:attr:`alignments`, one entry per
    distinct alignment, the first one's crop being what the gallery stores). :meth:`embed`
    takes crops of the first alignment only and makes the others from them
    (:func:`~faceapp.vision.align.realign`); :meth:`embed_aligned` takes one crop per
    alignment, aligned from the photo.

    Args:
        members: ``(embedder, weight)`` per network, weights summing to 1.
        thresholds: the fused model's thresholds.
        provenance: where the combination comes from.
    """

    def __init__(self, members: Sequence[tuple[Embedder, float]], thresholds: RecommendedThresholds,
                 provenance: dict[str, Any]) -> None:
        if len(members) < 2:
            raise ValueError("a fused embedder needs at least two networks")
        self.members = list(members)
        self.thresholds = thresholds
        self.provenance = provenance
        self.alignments: tuple[Alignment, ...] = tuple(dict.fromkeys(m.contract.alignment for m, _ in members))
        self._slot = [self.alignments.index(m.contract.alignment) for m, _ in members]
        self._scale = [float(np.sqrt(w)) for _, w in members]
        first = members[0][0]
        self.contract = first.contract  # the stored crop's contract: template and input size
        self.provider = first.provider
        self.runtime_name = _joint_runtime_name([m for m, _ in members])
        self.provider_note = f"{self.runtime_name}: " + "; ".join(f"{m.model_path.name} on {m.provider_note}"
                                                                  for m, _ in members)

    @property
    def precision(self) -> str:
        """``"int8"`` when any network runs a quantised graph, else ``"fp32"``."""
        return "int8" if any(m.precision == "int8" for m, _ in self.members) else "fp32"

    @property
    def input_size(self) -> tuple[int, int]:
        return self.members[0][0].input_size

    @property
    def dim(self) -> int:
        return sum(m.dim for m, _ in self.members)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Embed crops aligned for the first alignment (the stored crop): ``(N, H, W, 3)`` RGB uint8 -> ``(N, D)``."""
        from faceapp.vision.align import realign

        x = np.asarray(crops)
        if x.ndim == 3:
            x = x[None]
        return self.embed_aligned([x] + [realign(x, self.alignments[0], a) for a in self.alignments[1:]])

    def embed_aligned(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Embed faces given one crop stack per alignment (``crops[i]`` aligned for ``alignments[i]``).

        Returns:
            ``(N, D)`` float32 unit-length fused embeddings.
        """
        parts = [m.embed(crops[slot]) * scale for (m, _), slot, scale in zip(self.members, self._slot, self._scale)]
        y = np.concatenate(parts, axis=1).astype(np.float32)
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def _joint_runtime_name(nets: Sequence[Embedder]) -> str:
    """One runtime name for several networks: ``"OpenVINO 2026.4.1 CPU int8 + bf16"`` where they share a runtime."""
    precisions = [str(getattr(n.backend, "precision", "fp32")) for n in nets]
    bases = {n.runtime_name.removesuffix(f" {p}") for n, p in zip(nets, precisions)}
    if len(bases) > 1:
        return " + ".join(dict.fromkeys(n.runtime_name for n in nets))
    base = bases.pop()
    return base if set(precisions) == {"fp32"} else f"{base} {' + '.join(precisions)}"


def load_embedder(file: ModelFile, *, provider: str = "auto", precision: str = "int8",
                  threads: int | None = None) -> Embedder | FusedEmbedder:
    """The embedder a checked model file stands for, with its calibrated thresholds.

    A fused file (:func:`~faceapp.vision.models.is_fused`) loads each of its networks; an
    ONNX file loads that network. Bundled networks use their shipped runtime variants (the
    PRelu-free graph on onnxruntime, the int8 graph on OpenVINO when ``precision`` is
    ``"int8"`` and one is shipped). The thresholds come from the calibration file keyed by
    the model id (:mod:`faceapp.vision.calibration`), else from the file's own metadata.

    Raises:
        ModelError: a file is missing, damaged or not an embedder.
    """
    from faceapp.vision import calibration, models

    def one(member: ModelFile) -> Embedder:
        return Embedder(
            member.path, provider=provider, model_sha256=member.sha256,
            ort_model_path=lambda: models.onnxruntime_variant(member),
            ov_model_path=lambda: models.runtime_variant(member, "openvino", precision) if precision != "fp32" else None,
            precision=precision, threads=threads,
        )

    embedder: Embedder | FusedEmbedder
    if models.is_fused(file.path):
        parts = models.fused_members(file)
        nets = [(one(p.file), p.weight) for p in parts]
        provenance = {"name": " + ".join(str(e.provenance.get("name", e.model_path.name)) for e, _ in nets),
                      "weights": {p.file.path.name: p.weight for p in parts}}
        fallback = RecommendedThresholds(match=0.5, uncertain_band=0.0, verify=0.4)
        embedder = FusedEmbedder(nets, fallback, provenance)
    else:
        embedder = one(file)
    found = calibration.lookup(file.sha256)
    if found is not None:
        embedder.thresholds = found.thresholds()
    elif isinstance(embedder, FusedEmbedder):
        log.warning("%s", ModelError(f"no calibration for model {file.sha256[:12]}...; using untuned thresholds",
                                     Fix.CALIBRATE))
    return embedder
