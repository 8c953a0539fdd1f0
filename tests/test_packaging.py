"""The installers' OpenCV check (packaging/check_opencv.py): it finds what the app calls and
refuses an OpenCV build that lacks any of it."""

import importlib.util
import sys
import types
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_opencv", ROOT / "packaging" / "check_opencv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finds_the_calls_of_a_module(check, tmp_path):
    (tmp_path / "a.py").write_text(
        "import cv2\n"
        "def f(x):\n"
        "    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)\n"
        "    cap = cv2.VideoCapture(0)\n"
        "    cap.set(cv2.CAP_PROP_FPS, 5)\n"
        "    return cv2.resize(x, (2, 2)).shape, cap.read()\n")
    assert check.used_names(tmp_path) == {"utils.logging.setLogLevel", "utils.logging.LOG_LEVEL_SILENT",
                                          "VideoCapture", "CAP_PROP_FPS", "resize"}


def test_the_app_uses_warps_and_capture(check):
    names = check.used_names(ROOT / "faceapp")
    assert {"warpAffine", "VideoCapture", "imencode"} <= names


def test_an_opencv_without_a_called_function_is_refused(check):
    names = check.used_names(ROOT / "faceapp")
    assert check.missing(cv2, names) == []
    slim = types.SimpleNamespace(**{n: getattr(cv2, n) for n in dir(cv2) if n != "warpAffine"})
    assert check.missing(slim, names) == ["warpAffine"]
    no_logging = types.SimpleNamespace(**{n: getattr(cv2, n) for n in dir(cv2)})
    no_logging.utils = types.SimpleNamespace()
    assert check.missing(no_logging, {"utils.logging.setLogLevel"}) == ["utils.logging.setLogLevel"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the video backends checked are Linux's")
def test_an_opencv_without_ffmpeg_is_refused(check):
    assert check.missing_backends(cv2) == []
    registry = cv2.videoio_registry
    # As OpenCV built without FFmpeg lists it: still a backend, but one to load as a plugin.
    plugin_only = types.SimpleNamespace(
        getBackends=registry.getBackends, getBackendName=registry.getBackendName,
        isBackendBuiltIn=lambda b: registry.getBackendName(b) != "FFMPEG" and registry.isBackendBuiltIn(b))
    assert check.missing_backends(types.SimpleNamespace(videoio_registry=plugin_only)) == ["FFMPEG"]
