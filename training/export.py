"""Export a torch backbone to an ONNX file the app loads as it is.

The file gets a dynamic batch dimension, faceapp's preprocessing contract, thresholds
and a provenance record in its metadata, and is checked against torch on real inputs
before it is written.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceapp.vision.contract import Contract, RecommendedThresholds, metadata_props

log = logging.getLogger(__name__)

INPUT_NAME = "data"
OUTPUT_NAME = "embedding"


class ExportMismatch(RuntimeError):
    """The exported graph does not reproduce the torch model."""


def export_onnx(model: torch.nn.Module, path: Path, *, sample: np.ndarray, thresholds: RecommendedThresholds,
                provenance: dict[str, Any], embedding_size: int, atol: float = 1e-4) -> Path:
    """Write ``model`` as ONNX with faceapp metadata after checking it against torch.

    Args:
        model: backbone taking ``(B, 3, 112, 112)`` 0-255 RGB.
        path: output file.
        sample: ``(N, 112, 112, 3)`` uint8 real aligned crops used for the check (N >= 2).
        thresholds: recommended thresholds to record.
        provenance: where the model came from (base model hash, data summary, settings).
        embedding_size: output size.
        atol: largest allowed absolute difference between torch and onnxruntime outputs.

    Raises:
        ExportMismatch: outputs differ by more than ``atol``.
    """
    import onnx
    import onnxruntime as ort

    model = model.eval().cpu()
    x = torch.from_numpy(np.ascontiguousarray(sample)).permute(0, 3, 1, 2).float()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x[:1],), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=17, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    contract = Contract(input_name=INPUT_NAME, output_name=OUTPUT_NAME, embedding_size=embedding_size)
    for key, value in metadata_props(contract, thresholds, provenance).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    diff = float(np.abs(got - want).max())
    log.info("export check: max |onnx - torch| = %.2e on %d real crops", diff, len(x))
    if diff > atol:
        raise ExportMismatch(f"exported model differs from torch by {diff:.2e} (> {atol:g})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def provenance_record(base_model: Path | None, base_sha256: str | None, data_summary: dict[str, Any],
                      settings: dict[str, Any], validation: dict[str, Any] | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "name": "faceapp fine-tuned embedder",
        "base_model": str(base_model) if base_model else None,
        "base_sha256": base_sha256,
        "data": data_summary,
        "settings": settings,
        "torch": torch.__version__,
    }
    if validation is not None:
        rec["validation"] = validation
    json.dumps(rec)  # must be serialisable
    return rec
