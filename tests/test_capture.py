"""Frame sources without Qt: camera names, damaged images in a folder, quiet OpenCV."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faceapp.vision.capture import CameraError, CameraLost, ImageFolderSource, list_cameras


def test_cameras_are_listed_by_name_without_opening_them(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    for node, name, index in (("video0", "HD Webcam C270", "0"), ("video1", "HD Webcam C270", "1"),
                              ("video2", "Integrated Camera: Integrated C", "0")):
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
        (tmp_path / node / "index").write_text(index + "\n")
    cams = list_cameras(tmp_path)
    assert [(c.index, c.name) for c in cams] == [(0, "HD Webcam C270"), (2, "Integrated Camera: Integrated C")]
    assert list_cameras(tmp_path / "absent") == []


def test_a_damaged_image_in_a_folder_is_skipped(tmp_path, data_dir):
    shutil.copy(data_dir / "obama.jpg", tmp_path / "1.jpg")
    (tmp_path / "2.jpg").write_bytes((data_dir / "biden.jpg").read_bytes()[:400])
    src = ImageFolderSource(tmp_path)
    shapes = [src.read().shape for _ in range(4)]
    assert all(s[2] == 3 for s in shapes)


def test_a_folder_of_damaged_images_is_a_clear_error(tmp_path):
    (tmp_path / "1.jpg").write_bytes(b"not a jpeg")
    src = ImageFolderSource(tmp_path)
    with pytest.raises(CameraLost, match="no image"):
        src.read()
    with pytest.raises(CameraError):
        ImageFolderSource(tmp_path / "missing")


def test_a_missing_camera_prints_no_opencv_warnings():
    root = Path(__file__).resolve().parents[1]
    code = ("from faceapp.vision.capture import CameraError, CameraSource\n"
            "try:\n    CameraSource(7)\nexcept CameraError as e:\n    print('ok', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.stdout.startswith("ok camera 7 is not available")
    assert "WARN" not in r.stderr and "VIDEOIO" not in r.stderr, r.stderr
