"""Compare the ways of running MediaPipe's face detectors: speed per 640x480 frame, load time, size.

    python scripts/detector_runtimes.py [--frames 200] [--kind full]

Candidates (each skipped when its package is missing):

* ``onnxruntime``: faceapp's detector, the ONNX file built by ``models/build.py``;
* ``openvino-1``, ``openvino-2``: the same file and code on OpenVINO with one and two threads
  (the detector's other runtime, see README "The detector's runtime");
* ``litert``: the original ``.tflite`` in LiteRT (``ai-edge-litert``, XNNPACK), with the
  same letterbox, anchor decoding and suppression as faceapp;
* ``mediapipe``: MediaPipe's own ``FaceDetector`` task on the ``.tflite`` (this one sends
  usage logs over the network; run it without a network or under ``strace``).

The frame is ``tests/data/t1.jpg`` resized to 640x480. Each candidate is timed on the same
frame after 10 warm-up calls; the median and 90th percentile are printed with the
installed size of the package(s) it needs beyond numpy.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def package_mb(*names: str) -> float:
    """Installed size of the named distributions' files, in MB."""
    from importlib import metadata

    total = 0
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            p = Path(str(dist.locate_file(f)))
            if p.is_file():
                total += p.stat().st_size
    return total / 1e6


def onnx_candidate(kind: str) -> Callable[[np.ndarray], int]:
    from faceapp.vision import models
    from faceapp.vision.detect import FaceDetector

    det = FaceDetector(models.resolve_detector(kind).path)
    return lambda rgb: len(det.detect(rgb, retry_padded=False))


def openvino_candidate(threads: int) -> Callable[[str], Callable[[np.ndarray], int]]:
    def make(kind: str) -> Callable[[np.ndarray], int]:
        import tempfile

        from faceapp.vision import models
        from faceapp.vision.detect import FaceDetector, open_backend

        path = models.resolve_detector(kind).path
        det = FaceDetector(path, backend=open_backend(path, "openvino", threads=threads,
                                                      cache_dir=Path(tempfile.mkdtemp())))
        return lambda rgb: len(det.detect(rgb, retry_padded=False))

    return make


def litert_candidate(kind: str) -> Callable[[np.ndarray], int]:
    from ai_edge_litert.interpreter import Interpreter

    from faceapp.vision import models
    from faceapp.vision.detect import _SCORE_FLOOR, ANCHOR_SPECS, decode, letterbox, weighted_nms

    path = models.bundled_path(f"{models.ROLE_DETECTOR[kind]}-tflite")
    interp = Interpreter(model_path=str(path), num_threads=1)  # as faceapp runs onnxruntime
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outs = {d["shape"][-1]: d["index"] for d in interp.get_output_details()}
    size = int(inp["shape"][1])
    anchors = ANCHOR_SPECS[size].centres()

    def run(rgb: np.ndarray) -> int:
        tensor, *_ = letterbox(rgb, size)
        interp.set_tensor(inp["index"], tensor)
        interp.invoke()
        reg, cls = interp.get_tensor(outs[16])[0], interp.get_tensor(outs[1])[0, :, 0]
        return len([d for d in weighted_nms(*decode(reg, cls, anchors, size, _SCORE_FLOOR), 0.3) if d[2] >= 0.5])

    return run


def mediapipe_candidate(kind: str) -> Callable[[np.ndarray], int]:
    from mediapipe_reference import MediaPipeReference

    ref = MediaPipeReference(kind)
    return lambda rgb: len([d for d in ref.detect(rgb) if d.score >= 0.5])


CANDIDATES = {
    "onnxruntime": (onnx_candidate, "onnxruntime", ("onnxruntime",)),
    "openvino-1": (openvino_candidate(1), "openvino", ("openvino",)),
    "openvino-2": (openvino_candidate(2), "openvino", ("openvino",)),
    "litert": (litert_candidate, "ai_edge_litert", ("ai-edge-litert",)),
    "mediapipe": (mediapipe_candidate, "mediapipe", ("mediapipe", "opencv-contrib-python")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--kind", choices=["full", "short"], default="full")
    args = ap.parse_args()

    import cv2

    from faceapp.vision.images import load_image

    frame = np.ascontiguousarray(cv2.resize(load_image(ROOT / "tests/data/t1.jpg"), (640, 480)))
    print(f"{args.kind}-range detector, 640x480 frame, {args.frames} frames")
    print(f"{'runtime':12s} {'load ms':>8s} {'median ms':>10s} {'p90 ms':>8s} {'faces':>6s} {'package MB':>11s}")
    for name, (make, module, dists) in CANDIDATES.items():
        if importlib.util.find_spec(module) is None:
            print(f"{name:12s} (not installed)")
            continue
        t0 = time.perf_counter()
        run = make(args.kind)
        load_ms = (time.perf_counter() - t0) * 1e3
        for _ in range(10):
            faces = run(frame)
        times = []
        for _ in range(args.frames):
            t = time.perf_counter()
            run(frame)
            times.append((time.perf_counter() - t) * 1e3)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:12s} {load_ms:8.0f} {statistics.median(times):10.2f} {p90:8.2f} {faces:6d} {package_mb(*dists):11.0f}")


if __name__ == "__main__":
    main()
