"""Face detection with MediaPipe Tasks' ``FaceDetector``.

Input: RGB uint8 ``(H, W, 3)`` of any size. Output: :class:`~faceapp.types.Detection`
list, largest face first, boxes and keypoints in the input's pixel coordinates. Images
whose longest side exceeds ``max_side`` are downscaled for detection only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import ModelError
from .images import as_rgb8
from .types import Detection

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what MediaPipe's native code writes to fd 2 while loading a model."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _close_before_thread_shutdown(finalizer: weakref.finalize) -> None:
    """Run ``finalizer`` at interpreter exit while thread pools still work.

    MediaPipe closes its tasks through a thread pool that is shut down before plain
    ``atexit`` handlers run; hooks registered with threading run earlier (last first).
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - other Python implementations
        finalizer.atexit = True
        return
    try:
        register(finalizer)
    except RuntimeError:  # already shutting down
        finalizer.atexit = True


def _close_quietly(detector: object) -> None:
    with _quiet_native_stderr():
        detector.close()  # type: ignore[attr-defined]


class FaceDetector:
    """MediaPipe face detector (full-range or short-range model).

    Args:
        model_path: a MediaPipe face detection ``.tflite`` file.
        min_confidence: detections scoring below this are dropped.
        max_side: longest image side used for detection; larger images are downscaled.
        suppression: non-maximum suppression IoU threshold.
    """

    def __init__(self, model_path: Path, *, min_confidence: float = 0.5, max_side: int = 1920,
                 suppression: float = 0.3) -> None:
        self.model_path = Path(model_path)
        self.min_confidence = float(min_confidence)
        self.max_side = int(max_side)
        self._lock = threading.Lock()
        try:
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:  # pragma: no cover - dependency missing
            raise ModelError(f"mediapipe is not installed ({exc}); reinstall faceapp") from exc
        # Scores are filtered here, not by MediaPipe, so that a changed
        # min_confidence takes effect without reloading the model.
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=self.model_path.read_bytes()),
            min_detection_confidence=0.2,
            min_suppression_threshold=suppression,
        )
        try:
            with _quiet_native_stderr():
                self._detector = vision.FaceDetector.create_from_options(options)
                # Close before interpreter teardown, or MediaPipe's own __del__ fails noisily.
                self._finalizer = weakref.finalize(self, _close_quietly, self._detector)
                self._finalizer.atexit = False
                _close_before_thread_shutdown(self._finalizer)
                # The first call allocates; keep its log lines out of the user's terminal.
                self._run(np.zeros((480, 640, 3), np.uint8))
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"face detector {self.model_path} could not be loaded ({exc}); reinstall faceapp") from exc

    def _run(self, rgb: np.ndarray) -> list:
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        with self._lock:
            return list(self._detector.detect(image).detections)

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
        found = self._run(np.ascontiguousarray(work))
        pad = 0
        if retry_padded and not any(d.categories and d.categories[0].score >= threshold for d in found):
            # Tight face chips (the face fills the frame) are missed by the detector's
            # anchors; a border gives the face the context it was trained with.
            import cv2

            pad = max(work.shape[:2]) // 4
            work = cv2.copyMakeBorder(work, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            found = self._run(np.ascontiguousarray(work))
        wh, ww = work.shape[:2]
        out: list[Detection] = []
        for d in found:
            score = float(d.categories[0].score) if d.categories else 0.0
            if score < threshold:
                continue
            bb = d.bounding_box
            x0 = (bb.origin_x - pad) / scale
            y0 = (bb.origin_y - pad) / scale
            x1 = (bb.origin_x + bb.width - pad) / scale
            y1 = (bb.origin_y + bb.height - pad) / scale
            box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            kps = np.array([[(k.x * ww - pad) / scale, (k.y * wh - pad) / scale] for k in d.keypoints], np.float32)
            if kps.shape != (6, 2):
                continue
            out.append(Detection(box=box, keypoints=kps, score=score))
        out.sort(key=lambda det: det.area, reverse=True)
        return out

    def close(self) -> None:
        fin = getattr(self, "_finalizer", None)
        if fin is not None:
            fin()
        self._detector = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
