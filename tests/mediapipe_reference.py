"""MediaPipe's own ``FaceDetector`` task, the reference for faceapp's detector.

Test-only: faceapp never imports MediaPipe (its native library sends usage logs over
the network). The parity tests run this and :class:`faceapp.vision.detect.FaceDetector` on the
same photos; both are given the same image (downscaled the same way), and the detector
floor and suppression threshold faceapp uses. Needs the ``parity`` extra
(``pip install -e '.[parity]'``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceapp.vision import models

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass(frozen=True)
class RefDetection:
    """One face as MediaPipe reports it, in the given image's pixels."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 (MediaPipe rounds to whole pixels)
    keypoints: np.ndarray  # (6, 2) float32
    score: float


class MediaPipeReference:
    """MediaPipe Tasks ``FaceDetector`` on the ``.tflite`` file the ONNX detector came from.

    Args:
        kind: ``"full"`` or ``"short"``.
        floor: MediaPipe's ``min_detection_confidence``.
        suppression: MediaPipe's ``min_suppression_threshold``.
    """

    def __init__(self, kind: str = "full", floor: float = 0.2, suppression: float = 0.3) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path: Path = models.bundled_path(f"{models.ROLE_DETECTOR[kind]}-tflite")
        models.check(path)
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
            min_detection_confidence=floor, min_suppression_threshold=suppression,
        )
        with _quiet_fd2():
            self._detector = vision.FaceDetector.create_from_options(options)

    def detect(self, rgb: np.ndarray) -> list[RefDetection]:
        """Faces in RGB uint8 ``(H, W, 3)``, best score first."""
        import mediapipe as mp

        h, w = rgb.shape[:2]
        with _quiet_fd2():
            found = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                   data=np.ascontiguousarray(rgb))).detections
        out = []
        for d in found:
            bb = d.bounding_box
            kps = np.array([[k.x * w, k.y * h] for k in d.keypoints], np.float32)
            box = (float(bb.origin_x), float(bb.origin_y), float(bb.origin_x + bb.width), float(bb.origin_y + bb.height))
            out.append(RefDetection(box=box, keypoints=kps, score=float(d.categories[0].score)))
        return sorted(out, key=lambda d: -d.score)

    def close(self) -> None:
        with _quiet_fd2():
            self._detector.close()
