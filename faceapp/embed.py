"""Face embeddings with onnxruntime.

Input: aligned crops ``(N, H, W, 3)`` RGB uint8 (H, W from the model's contract).
Output: ``(N, D)`` float32, each row unit length. The preprocessing (colour order,
mean/std, layout) is read from the model file's ``faceapp.contract`` metadata, never
guessed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .contract import CONTRACT_KEY, PROVENANCE_KEY, THRESHOLDS_KEY, Contract, RecommendedThresholds
from .errors import ModelError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def _create_session(model: Path, providers: list[str]) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), sess_options=opts, providers=providers)


class Embedder:
    """An ArcFace-family embedder in onnxruntime.

    Args:
        model_path: ONNX file carrying faceapp's contract metadata.
        provider: ``"auto"`` (CUDA when onnxruntime-gpu and a GPU work, else CPU),
            ``"cuda"`` (fail if CUDA does not work) or ``"cpu"``.

    Attributes:
        provider: the provider actually in use (``"cuda"`` or ``"cpu"``).
        provider_note: why that provider was chosen, for display.
        contract: the preprocessing contract.
        thresholds: the model's recommended thresholds.
        provenance: the model's provenance record (may be empty).
    """

    def __init__(self, model_path: Path, provider: str = "auto") -> None:
        self.model_path = Path(model_path)
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise ModelError(f"onnxruntime is not installed ({exc}); reinstall faceapp") from exc
        available = ort.get_available_providers()
        self.session, self.provider, self.provider_note = self._open(provider, available)
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONTRACT_KEY not in meta:
            raise ModelError(
                f"{self.model_path} carries no '{CONTRACT_KEY}' metadata; use a model exported by "
                "`faceapp-train export` or the bundled one"
            )
        try:
            self.contract = Contract.from_json(meta[CONTRACT_KEY])
            self.thresholds = RecommendedThresholds.from_json(
                meta.get(THRESHOLDS_KEY, '{"match": 0.5, "uncertain_band": 0.0, "verify": 0.4}')
            )
            self.provenance: dict[str, Any] = json.loads(meta.get(PROVENANCE_KEY, "{}"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{self.model_path} has invalid faceapp metadata ({exc}); re-export it") from exc
        names = [i.name for i in self.session.get_inputs()]
        if self.contract.input_name not in names:
            raise ModelError(
                f"{self.model_path}: contract names input {self.contract.input_name!r} but the graph has {names}"
            )
        self._mean = np.asarray(self.contract.mean, np.float32)
        self._inv_std = 1.0 / np.asarray(self.contract.std, np.float32)
        self._batch_fixed = self._fixed_batch()

    def _open(self, provider: str, available: list[str]) -> tuple[Any, str, str]:
        if provider not in ("auto", "cuda", "cpu"):
            raise ModelError(f"unknown provider {provider!r}; use auto, cuda or cpu")
        reason = ""
        if provider in ("auto", "cuda"):
            if CUDA in available:
                try:
                    session = self._load([CUDA, CPU])
                    if session.get_providers()[0] == CUDA:
                        return session, "cuda", "CUDA (onnxruntime-gpu)"
                    reason = "CUDA provider did not initialise (no usable GPU or CUDA libraries)"
                except ModelError:
                    raise
                except Exception as exc:  # onnxruntime raises plain exceptions for CUDA set-up
                    reason = f"CUDA provider failed ({str(exc).splitlines()[0]})"
            else:
                reason = "onnxruntime has no CUDA provider (install onnxruntime-gpu for GPU use)"
            if provider == "cuda":
                raise ModelError(f"--provider cuda was asked for but {reason}; use --provider auto or cpu")
        session = self._load([CPU])
        note = "CPU" if provider == "cpu" else f"CPU ({reason})"
        return session, "cpu", note

    def _load(self, providers: list[str]) -> Any:
        try:
            return _create_session(self.model_path, providers)
        except Exception as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError)):
                raise ModelError(f"model file {self.model_path} cannot be read ({exc})") from exc
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "CUDA" in first or "cuda" in first:
                raise
            raise ModelError(f"{self.model_path} is not a usable ONNX model ({first[:200]}); check --model") from exc

    def _fixed_batch(self) -> int | None:
        shape = self.session.get_inputs()[0].shape
        return shape[0] if isinstance(shape[0], int) else None

    @property
    def input_size(self) -> tuple[int, int]:
        return (int(self.contract.input_size[0]), int(self.contract.input_size[1]))

    @property
    def dim(self) -> int:
        return int(self.contract.embedding_size)

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` RGB uint8 -> model input as the contract says."""
        x = np.asarray(crops)
        if x.ndim == 3:
            x = x[None]
        h, w = self.input_size
        if x.ndim != 4 or x.shape[1:] != (h, w, 3):
            raise ValueError(f"expected crops of shape (N, {h}, {w}, 3), got {x.shape}")
        x = x.astype(np.float32)
        if self.contract.color == "BGR":
            x = x[..., ::-1]
        x = (x - self._mean) * self._inv_std
        if self.contract.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

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
        feed = self.contract.input_name
        outputs = [self.contract.output_name]
        if self._batch_fixed == 1:
            y = np.concatenate([self.session.run(outputs, {feed: x[i : i + 1]})[0] for i in range(len(x))])
        else:
            y = self.session.run(outputs, {feed: x})[0]
        y = np.asarray(y, np.float32).reshape(len(x), -1)
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return y / np.maximum(norms, 1e-12)
