"""faceapp's detector (ONNX in onnxruntime) against MediaPipe's own ``FaceDetector`` task.

Both run the same network on the same image. A MediaPipe face (score >= 0.5, the app's
threshold) counts as found when faceapp reports a face whose six keypoints lie within
``FOUND`` face sizes of MediaPipe's and whose score clears the threshold less
``SCORE_TOL``. Found faces must then agree within the stated tolerances:

* score: within ``SCORE_TOL`` (0.03) of MediaPipe's;
* keypoints: the worst of the six within ``KP_TOL`` (5%) of the face size;
* box corners: within ``BOX_TOL`` (5%) of the face size plus 2 pixels (MediaPipe truncates
  boxes to whole pixels). Boxes that touch the image border are not compared: MediaPipe
  clips the origin and keeps the size, faceapp clips both corners.

A few faces per thousand sit where weighted suppression merges a borderline neighbour in
one run and not the other; they are still found, and at most ``OUTLIER_RATE`` of the
faces may fall outside the keypoint or box tolerance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from faceapp.vision import models
from faceapp.vision.detect import FaceDetector
from faceapp.vision.images import IMAGE_SUFFIXES, load_image

pytest.importorskip("mediapipe", reason="MediaPipe (the parity extra) is not installed")
from mediapipe_reference import MediaPipeReference  # noqa: E402

THRESHOLD = 0.5
SCORE_TOL = 0.03
KP_TOL = 0.05
BOX_TOL = 0.05
FOUND = 0.25
OUTLIER_RATE = 0.01


@dataclass
class Report:
    faces: int = 0
    missing: list[str] = field(default_factory=list)
    score_err: list[float] = field(default_factory=list)
    kp_err: list[float] = field(default_factory=list)
    box_err: list[float] = field(default_factory=list)
    outliers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def pct(v: list[float]) -> str:
            return "-" if not v else f"p50 {np.median(v):.4f} p99 {np.percentile(v, 99):.4f} max {max(v):.4f}"

        return (f"{self.faces} faces, {len(self.missing)} missing, {len(self.outliers)} outliers; "
                f"score {pct(self.score_err)}; keypoints {pct(self.kp_err)}; box {pct(self.box_err)}")


def compare(ours: FaceDetector, ref: MediaPipeReference, files: list[Path], report: Report) -> Report:
    for f in files:
        rgb = load_image(f)
        h, w = rgb.shape[:2]
        mine = ours.detect(rgb, min_confidence=THRESHOLD - SCORE_TOL, retry_padded=False)
        for r in (r for r in ref.detect(rgb) if r.score >= THRESHOLD):
            report.faces += 1
            size = max(r.box[2] - r.box[0], r.box[3] - r.box[1])
            errs = [float(np.abs(d.keypoints - r.keypoints).max()) / size for d in mine]
            if not errs or min(errs) > FOUND:
                report.missing.append(f"{f.name} (score {r.score:.3f})")
                continue
            d = mine[int(np.argmin(errs))]
            report.score_err.append(abs(d.score - r.score))
            report.kp_err.append(min(errs))
            bad = min(errs) > KP_TOL
            box_err = 0.0
            if r.box[0] > 0 and r.box[1] > 0 and r.box[2] < w - 1 and r.box[3] < h - 1:
                box_err = max(float(np.max(np.abs(np.array(d.box) - np.array(r.box)) - 2.0)) / size, 0.0)
                report.box_err.append(box_err)
                bad |= box_err > BOX_TOL
            if bad:
                report.outliers.append(f"{f.name} keypoints {min(errs):.3f} box {box_err:.3f}")
    return report


def check(report: Report) -> None:
    print(report.summary())
    assert report.faces > 0
    assert report.missing == [], report.summary()
    assert max(report.score_err) <= SCORE_TOL, report.summary()
    assert len(report.outliers) <= OUTLIER_RATE * report.faces, (report.outliers, report.summary())


def _photos(*roots: Path, limit: int | None = None) -> list[Path]:
    files = sorted(p for r in roots for p in r.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit] if limit else files


@pytest.fixture(scope="module", params=["full", "short"])
def pair(request):
    ours = FaceDetector(models.resolve_detector(request.param).path, max_side=10**6)
    ref = MediaPipeReference(request.param, floor=0.2, suppression=ours.suppression)
    yield ours, ref
    ref.close()
    ours.close()


def test_parity_on_committed_photos(pair, data_dir):
    report = compare(*pair, _photos(data_dir), Report())
    assert report.faces >= 5
    check(report)


@pytest.mark.shared
def test_parity_on_shared_faces(pair, shared_faces):
    # All of deepface, dlib_johns and face_recognition_knn; LFW by default a fixed slice
    # (FACEAPP_PARITY_LFW=all for every photo).
    lfw_limit = None if os.environ.get("FACEAPP_PARITY_LFW") == "all" else 600
    files = _photos(shared_faces / "deepface", shared_faces / "dlib_johns", shared_faces / "face_recognition_knn")
    files += _photos(shared_faces / "lfw", limit=lfw_limit)
    check(compare(*pair, files, Report()))
