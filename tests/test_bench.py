"""`faceapp-cli bench` runs from an installed package: no tests/data, its own face, --json."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["bench", "--sizes", "200", "--queries", "20", "--repeats", "2", "--cold-starts", "1"]


def _run_bench(python_path: Path, cwd: Path, env_extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FACEAPP_BENCH_IMAGE", "FACEAPP_MODELS_DIR")}
    env["PYTHONPATH"] = str(python_path)
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "faceapp.cli", "--gallery", str(cwd / "g"), "--json", *SMALL],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # --json: the whole of stdout is one JSON document


def _check(doc: dict, source: Path) -> None:
    import faceapp.vision.runtime as rt

    pipeline = doc["pipeline"]
    assert pipeline["1_face"]["faces_found"] == 1 and pipeline["5_face"]["faces_found"] == 5
    expected = {"cpu"} | ({"openvino", "openvino-int8"} if rt.availability().openvino else set())
    assert set(doc["embedder"]) >= expected and set(pipeline["runtimes"]) >= expected
    for key, r in doc["embedder"].items():
        assert r["batch_1_ms"] > 0 and r["batch_5_ms"] > 0
        if key.endswith("int8"):
            # the default model fuses SFace (int8 here) with a second network that runs fp32
            assert "int8" in r["runtime"] and 0.99 <= r["min_cosine_to_cpu"] and r["max_abs_diff_to_cpu"] > 1e-4
        else:
            assert r["max_abs_diff_to_cpu"] < 1e-4
    for r in pipeline["runtimes"].values():
        tracked = r["5_face_tracked"]  # the live view's path: faces are embedded only when their track needs it
        assert tracked["frames"] >= 100 and 0 < tracked["embedded_per_frame"] < 1 and tracked["mean_ms"] > 0
    assert doc["cold_start"]["median_s"] > 0 and doc["search"][0]["templates"] == 200
    assert str(source) in doc["where"], doc["where"]


def test_bench_runs_from_a_copy_of_the_package_without_tests_data(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(ROOT / "faceapp", site / "faceapp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "models", site / "faceapp" / "_models", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    work = tmp_path / "elsewhere"
    work.mkdir()
    _check(_run_bench(site, work), site / "faceapp")


@pytest.mark.slow
def test_bench_runs_from_a_built_wheel(tmp_path):
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (pip install '.[dev]')")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, timeout=900)
    wheel = next(wheels.glob("faceapp-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "faceapp/data/bench_face.jpg" in names and "faceapp/_models/sface_fp32_relu.onnx" in names
    assert "faceapp/_models/sface_int8.onnx" in names and "faceapp/_models/fused_sface_omz.json" in names
    assert "faceapp/data/calibration.json" in names and "faceapp/_models/face_reidentification_retail_0095.onnx" in names
    assert not any(n.startswith("tests/") for n in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=900)
    work = tmp_path / "elsewhere"
    work.mkdir()
    _check(_run_bench(site, work), site / "faceapp")
