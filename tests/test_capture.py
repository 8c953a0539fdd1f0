"""Frame sources without Qt: camera names, damaged images in a folder, quiet OpenCV."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceapp.vision.capture import (
    CameraError,
    CameraLost,
    ImageFolderSource,
    VideoFileSource,
    list_cameras,
    open_source,
    pace,
)


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


class FakeClock:
    """A clock that moves only when told to, or when the source waits."""

    def __init__(self):
        self.now, self.waits = 100.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.waits.append(round(seconds, 6))
        self.now += seconds


def _numbered_video(path, frames, fps=10.0):
    """A video whose frame k is a flat grey of 8 * k (so frames can be told apart after compression)."""
    import cv2

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for k in range(frames):
        out.write(np.full((48, 64, 3), 8 * k, np.uint8))
    out.release()
    return path


def _index(frame):
    return int(round(float(frame.mean()) / 8))


def test_pace_waits_when_early_and_drops_when_late():
    assert pace(0, 10.0, 10.0, 25.0) == (0.0, 0)
    wait, late = pace(5, 10.0, 10.1, 25.0)  # frame 5 is due at 10.2
    assert wait == pytest.approx(0.1) and late == 0
    assert pace(5, 10.0, 10.33, 25.0) == (0.0, 3)  # frame 8 is due: frames 5-7 are dropped


def test_a_video_file_plays_at_its_own_frame_rate(tmp_path):
    video = _numbered_video(tmp_path / "v.avi", 20, fps=10.0)
    clock = FakeClock()
    src = VideoFileSource(video, loop=False, clock=clock, sleep=clock.sleep)
    assert src.nominal_fps == 10.0
    seen = [_index(src.read()) for _ in range(4)]  # processing takes no time: every read waits its turn
    assert seen == [0, 1, 2, 3] and clock.waits == [0.1, 0.1, 0.1]
    clock.now += 0.35  # processing fell behind: frame 6 is due now
    assert _index(src.read()) == 6 and clock.waits == [0.1, 0.1, 0.1]  # frames 4 and 5 dropped, no wait
    fast = VideoFileSource(video, loop=False, realtime=False, clock=clock, sleep=clock.sleep)
    assert [_index(fast.read()) for _ in range(20)] == list(range(20)) and fast.nominal_fps is None
    with pytest.raises(CameraLost, match="ended"):
        fast.read()
    assert clock.waits == [0.1, 0.1, 0.1]  # read as fast as they are processed


def test_an_image_folder_plays_at_the_chosen_rate(tmp_path, data_dir):
    for k in range(3):
        shutil.copy(data_dir / "obama.jpg", tmp_path / f"{k}.jpg")
    clock = FakeClock()
    src = ImageFolderSource(tmp_path, fps=4.0, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        src.read()
    assert clock.waits == [0.25, 0.25, 0.25] and src.nominal_fps == 4.0
    clock.now += 10.0  # the reader was held up for 40 images' time
    clock.waits.clear()
    for _ in range(3):
        src.read()
    assert clock.waits == [0.25, 0.25]  # no burst of missed images: the rate starts again from now
    with pytest.raises(CameraError, match="image rate"):
        ImageFolderSource(tmp_path, fps=-1.0)
    assert isinstance(open_source(tmp_path, realtime=False), ImageFolderSource)
    assert open_source(tmp_path, realtime=False).nominal_fps is None
    assert open_source(tmp_path, folder_fps=3.0).nominal_fps == 3.0
