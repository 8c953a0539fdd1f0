"""Face detection: MediaPipe's BlazeFace detectors run in onnxruntime.

Input: RGB uint8 ``(H, W, 3)`` of any size. Output: :class:`~faceapp.types.Detection`
list, largest face first, boxes and keypoints in the input's pixel coordinates. Images
whose longest side exceeds ``max_side`` are downscaled for detection only.

The networks are MediaPipe's own face detectors (full-range and short-range),
converted once to ONNX by ``models/build.py``. What MediaPipe's ``FaceDetector`` task
does around the network is done here in numpy, step for step: letterbox the image into
the square model input (bilinear, zero border, values in ``[-1, 1]``), decode the SSD
anchors (box centre, size and six keypoints per anchor, sigmoid score), merge
overlapping boxes with weighted non-maximum suppression, and map the result back to
the image. Nothing of MediaPipe is imported, so nothing of it runs (its native library
sends usage logs over the network).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from faceapp.errors import ModelError
from faceapp.types import Detection
from faceapp.vision.images import as_rgb8
from faceapp.vision.loading import Graphs, load_network, open_graph

if TYPE_CHECKING:
    from faceapp.vision.backends import Backend
    from faceapp.vision.runtime import Selection

NUM_KEYPOINTS = 6
# Scores are computed for every anchor and filtered here, so that a changed
# min_confidence takes effect without reloading the model; candidates below this
# floor never reach suppression (MediaPipe's task is run with the same floor).
_SCORE_FLOOR = 0.2
_SCORE_CLIP = 100.0


@dataclass(frozen=True)
class AnchorSpec:
    """SSD anchor layout of a BlazeFace model (MediaPipe's ``SsdAnchorsCalculator``).

    Attributes:
        input_size: side of the square model input (pixels).
        strides: one stride per anchor layer; consecutive layers with the same stride
            share one grid.
        anchors_per_layer: anchors each layer puts in every grid cell.
    """

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int

    def centres(self) -> np.ndarray:
        """Anchor centres ``(N, 2)`` float32 (x, y) in ``[0, 1]``, in the model's output order.

        Anchors are fixed-size (width = height = 1), so only the centres matter.
        """
        out: list[np.ndarray] = []
        i = 0
        while i < len(self.strides):
            stride = self.strides[i]
            per_cell = 0
            while i < len(self.strides) and self.strides[i] == stride:
                per_cell += self.anchors_per_layer
                i += 1
            cells = -(-self.input_size // stride)
            grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
            ys, xs = np.meshgrid(grid, grid, indexing="ij")
            xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
            out.append(np.repeat(xy, per_cell, axis=0))
        return np.concatenate(out).astype(np.float32)


# The two layouts MediaPipe uses for its face detectors, keyed by model input size.
ANCHOR_SPECS = {
    128: AnchorSpec(128, (8, 16, 16, 16), 2),  # short-range: 512 + 384 = 896 anchors
    192: AnchorSpec(192, (4,), 1),  # full-range: 48 x 48 = 2304 anchors
}


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Fit ``rgb`` into a ``size`` x ``size`` model input, keeping its aspect ratio.

    Args:
        rgb: RGB uint8 ``(H, W, 3)``.
        size: model input side.

    Returns:
        ``(tensor, scale, dx, dy)``: float32 ``(1, size, size, 3)`` in ``[-1, 1]`` with a
        zero (black) border, and the map from image to input pixels:
        ``u = x * scale + dx``, ``v = y * scale + dy``.
    """
    import cv2

    h, w = rgb.shape[:2]
    side = max(h, w)
    scale = size / side
    dx, dy = (side - w) / 2 * scale, (side - h) / 2 * scale
    m = np.array([[scale, 0.0, dx], [0.0, scale, dy]], np.float32)
    square = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    tensor = square.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
    return tensor[None], scale, dx, dy


def decode(regressors: np.ndarray, scores: np.ndarray, anchors: np.ndarray, size: int,
           floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn raw model outputs into candidate faces in model-input coordinates ``[0, 1]``.

    Args:
        regressors: ``(N, 16)``: box centre offset, box size, six keypoint offsets (x, y),
            in input pixels relative to the anchor centre.
        scores: ``(N,)`` raw logits.
        anchors: ``(N, 2)`` anchor centres.
        size: model input side.
        floor: candidates scoring below this are dropped.

    Returns:
        ``(boxes (M, 4) x0 y0 x1 y1, keypoints (M, 6, 2), scores (M,))``, float32.
    """
    with np.errstate(over="ignore"):  # exp(100) is inf in float32: the score is then 0, as intended
        prob = 1.0 / (1.0 + np.exp(-np.clip(scores, -_SCORE_CLIP, _SCORE_CLIP)))
    keep = prob >= floor
    reg = regressors[keep] / np.float32(size)
    anc = anchors[keep]
    centre = reg[:, 0:2] + anc
    half = reg[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = reg[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + anc[:, None, :]
    return boxes.astype(np.float32), kps.astype(np.float32), prob[keep].astype(np.float32)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], others[:, :2])
    hi = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    union = area + np.prod(others[:, 2:] - others[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Weighted non-maximum suppression (MediaPipe's ``WEIGHTED`` algorithm, IoU overlap).

    The best remaining candidate takes every candidate overlapping it by more than
    ``threshold`` IoU (itself included); its box and keypoints become their
    score-weighted mean, its score stays its own.

    Returns:
        ``[(box (4,), keypoints (6, 2), score)]``, best first.
    """
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        top = order[0]
        overlap = _iou(boxes[top], boxes[order]) > threshold
        group, order = order[overlap], order[~overlap]
        w = scores[group]
        total = float(w.sum())
        box = (boxes[group] * w[:, None]).sum(axis=0) / total
        kps = (keypoints[group] * w[:, None, None]).sum(axis=0) / total
        out.append((box, kps, float(scores[top])))
    return out


# The detector never runs on CUDA, and onnxruntime runs it on one thread: for a network this
# small its thread pool costs more than it gains (``scripts/detector_runtimes.py``).
DETECTOR_GRAPHS = Graphs(cuda=False, onnxruntime_threads=1)


def open_backend(model_path: Path, runtime_name: str = "cpu", *, threads: int = 0,
                 cache_dir: Path | None = None) -> Backend:
    """Load a detector network on ``"cpu"`` (onnxruntime, one thread) or ``"openvino"`` (``threads``, 0 = every core).

    Raises:
        ModelError: the runtime cannot load the file.
    """
    return open_graph(Path(model_path), runtime_name, DETECTOR_GRAPHS, threads=threads, cache_dir=cache_dir)


def _probe(backend: Backend) -> np.ndarray:
    return np.zeros(tuple(d or 1 for d in backend.input_shape), np.float32)


def select_backend(model: Path, model_sha256: str, requested: str, *, threads: int,
                   cache_dir: Path | None = None) -> Selection:
    """The detector's runtime: ``requested`` when it names a CPU runtime, else the faster one here.

    Like the embedder's ``auto`` (:func:`faceapp.vision.loading.load_network`), both CPU runtimes
    are timed on the detector once per model, machine and thread setting, and the choice is
    cached; the detector never runs on CUDA.
    """
    return load_network(model, requested, DETECTOR_GRAPHS, model_sha256=model_sha256, threads=threads,
                        cache_dir=cache_dir, probe=_probe)


class FaceDetector:
    """MediaPipe's face detector (full-range or short-range model) in onnxruntime or OpenVINO.

    Args:
        model_path: a face detection ``.onnx`` file built by ``models/build.py``.
        min_confidence: detections scoring below this are dropped.
        max_side: longest image side used for detection; larger images are downscaled.
        suppression: non-maximum suppression IoU threshold.
        backend: the network already loaded on a runtime (:func:`select_backend`); default
            onnxruntime on the CPU.

    Raises:
        ModelError: the file is not a detector faceapp can run.
    """

    def __init__(self, model_path: Path, *, min_confidence: float = 0.5, max_side: int = 1920,
                 suppression: float = 0.3, backend: Backend | None = None) -> None:
        self.model_path = Path(model_path)
        self.min_confidence = float(min_confidence)
        self.max_side = int(max_side)
        self.suppression = float(suppression)
        self._lock = threading.Lock()
        if self.model_path.suffix.lower() == ".tflite":
            raise ModelError(f"{self.model_path} is a TFLite file; faceapp runs the ONNX detectors "
                             "that `python models/build.py` makes from it")
        try:
            self._backend: Backend | None = (backend if backend is not None
                                             else load_network(self.model_path, "cpu", DETECTOR_GRAPHS).backend)
        except ModelError as exc:
            raise ModelError(f"face detector {self.model_path} could not be loaded ({exc}); reinstall faceapp") from exc
        b = self._backend
        shape = b.input_shape if len(b.input_names) == 1 else None
        size = shape[1] if shape and len(shape) == 4 else None
        try:
            self._outputs = (b.output_index("regressors"), b.output_index("classificators"))
        except ValueError:
            size = None
        if size not in ANCHOR_SPECS:
            raise ModelError(f"{self.model_path} is not a BlazeFace detector built by models/build.py; "
                             "reinstall faceapp")
        self.input_size: int = size
        self.runtime_name: str = b.label
        self._anchors = ANCHOR_SPECS[size].centres()

    def _candidates(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Faces in ``rgb`` as ``(box, keypoints, score)`` in ``rgb``'s pixels, unfiltered."""
        size = self.input_size
        tensor, scale, dx, dy = letterbox(rgb, size)
        with self._lock:
            backend = self._backend
            if backend is None:
                raise ModelError("the face detector was closed")
            outputs = backend.run_all(tensor)
        reg, cls = outputs[self._outputs[0]], outputs[self._outputs[1]]
        if reg.shape[1] != len(self._anchors):
            raise ModelError(f"{self.model_path} gives {reg.shape[1]} boxes, expected {len(self._anchors)}")
        boxes, kps, scores = decode(reg[0], cls[0, :, 0], self._anchors, size, _SCORE_FLOOR)
        offset = np.array([dx, dy], np.float32)
        out = []
        for box, kp, score in weighted_nms(boxes, kps, scores, self.suppression):
            box_px = ((box.reshape(2, 2) * size - offset) / scale).ravel()
            out.append((box_px, (kp * size - offset) / scale, score))
        return out

    def detect(self, image: np.ndarray, min_confidence: float | None = None,
               retry_padded: bool = True) -> list[Detection]:
        """Find faces.

        Args:
            image: RGB uint8 ``(H, W, 3)`` (grey and other dtypes are converted).
            min_confidence: overrides the constructor's threshold for this call.
            retry_padded: when nothing is found, look again with a border round the image
                (finds faces that fill the frame, as in face chips); costs a second pass,
                so live video turns it off.

        Returns:
            Detections sorted by box area, largest first.
        """
        rgb = as_rgb8(image)
        h, w = rgb.shape[:2]
        threshold = self.min_confidence if min_confidence is None else min_confidence
        scale = 1.0
        work = rgb
        if max(h, w) > self.max_side:
            import cv2

            scale = self.max_side / max(h, w)
            work = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
        found = self._candidates(work)
        pad = 0
        if retry_padded and not any(score >= threshold for _, _, score in found):
            # Tight face chips (the face fills the frame) are missed by the detector's
            # anchors; a border gives the face the context it was trained with.
            import cv2

            pad = max(work.shape[:2]) // 4
            padded = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            found = self._candidates(padded)
        out: list[Detection] = []
        for box_px, kps_px, score in found:
            if score < threshold:
                continue
            x0, y0, x1, y1 = ((box_px - pad) / scale).tolist()
            box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            kps = ((kps_px - pad) / scale).astype(np.float32)
            out.append(Detection(box=box, keypoints=kps, score=score))
        out.sort(key=lambda det: det.area, reverse=True)
        return out

    def close(self) -> None:
        """Release the model; :meth:`detect` raises :class:`ModelError` afterwards."""
        with self._lock:
            self._backend = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
