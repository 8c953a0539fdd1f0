"""The detector's own parts: anchors, suppression, model checks (parity with MediaPipe is in
test_detect_parity.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from faceapp.errors import ModelError
from faceapp.vision import models
from faceapp.vision.detect import ANCHOR_SPECS, FaceDetector, weighted_nms

DATA = Path(__file__).resolve().parent / "data"


def test_anchor_layouts_match_the_models():
    full, short = ANCHOR_SPECS[192].centres(), ANCHOR_SPECS[128].centres()
    assert full.shape == (2304, 2) and short.shape == (896, 2)
    assert np.allclose(full[0], [0.5 / 48, 0.5 / 48]) and np.allclose(full[1], [1.5 / 48, 0.5 / 48])
    # short-range: 2 anchors per cell on the 16x16 grid, then 6 per cell on the 8x8 grid
    assert np.allclose(short[0], short[1]) and np.allclose(short[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(short[512:518], [0.5 / 8, 0.5 / 8])
    for kind in ("full", "short"):
        det = FaceDetector(models.resolve_detector(kind).path)
        size = det.input_size
        assert len(det._anchors) == det._backend.run_all(np.zeros((1, size, size, 3), np.float32))[0].shape[1]


def test_weighted_suppression_merges_overlaps_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kps = np.repeat(boxes[:, None, :2], 6, axis=1)
    scores = np.array([0.9, 0.3, 0.6], np.float32)
    out = weighted_nms(boxes, kps, scores, 0.3)
    assert [round(s, 2) for _, _, s in out] == [0.9, 0.6]  # the best keeps its own score
    assert np.allclose(out[0][0], [0.25, 0.25, 10.25, 10.25])  # (0.9 * 0 + 0.3 * 1) / 1.2
    assert np.allclose(out[1][0], boxes[2])


def test_unusable_model_files_are_refused(tmp_path):
    with pytest.raises(ModelError, match="TFLite file"):
        FaceDetector(models.bundled_path("detector-full-range-tflite"))
    with pytest.raises(ModelError, match="not a BlazeFace detector"):
        FaceDetector(models.bundled_path(models.ROLE_SFACE))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="could not be loaded"):
        FaceDetector(junk)


def test_closed_detector_says_so():
    det = FaceDetector(models.resolve_detector("short").path)
    det.close()
    with pytest.raises(ModelError, match="closed"):
        det.detect(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed")
@pytest.mark.parametrize("kind", ["full", "short"])
def test_openvino_finds_the_same_faces_as_onnxruntime(kind, tmp_path):
    from faceapp.vision.detect import open_backend
    from faceapp.vision.images import load_image

    path = models.resolve_detector(kind).path
    ort = FaceDetector(path)
    ov = FaceDetector(path, backend=open_backend(path, "openvino", cache_dir=tmp_path))
    assert ort.runtime_name.startswith("onnxruntime") and ov.runtime_name.startswith("OpenVINO")
    for photo in ("obama.jpg", "t1.jpg", "biden.jpg"):
        image = load_image(DATA / photo)
        a, b = ort.detect(image), ov.detect(image)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            side = x.box[2] - x.box[0]
            assert abs(x.score - y.score) < 1e-3
            assert np.abs(np.subtract(x.box, y.box)).max() < 1e-3 * side
            assert np.abs(x.keypoints - y.keypoints).max() < 1e-3 * side


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed")
def test_detector_runtime_follows_the_provider_and_auto_times_and_caches(tmp_path):
    from faceapp.vision import runtime
    from faceapp.vision.detect import select_backend

    file = models.resolve_detector("full")
    assert select_backend(file.path, file.sha256, "cpu", threads=1, cache_dir=tmp_path).backend.name == "cpu"
    assert select_backend(file.path, file.sha256, "openvino", threads=1, cache_dir=tmp_path).backend.name == "openvino"
    assert not (tmp_path / "runtime.json").exists()  # nothing was timed
    for requested in ("auto", "cuda"):  # the detector never runs on CUDA: both time the CPU runtimes
        chosen = select_backend(file.path, file.sha256, requested, threads=1, cache_dir=tmp_path / requested)
        record = runtime.RuntimeCache(tmp_path / requested / "runtime.json").get(
            file.sha256, f"{runtime.machine_key()}|threads=1")
        assert record is not None and set(record["timings_ms"]) == {"cpu", "openvino"}
        assert chosen.backend.name == record["runtime"] and "auto:" in chosen.note
