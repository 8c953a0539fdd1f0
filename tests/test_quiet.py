"""stderr carries only faceapp's own lines: opening an absent camera or a broken video
raises one CameraError and lets no OpenCV/FFmpeg/V4L2 warning through."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from faceapp.vision.capture import CameraError, CameraSource, VideoFileSource
for make in (lambda: CameraSource(37), lambda: VideoFileSource(sys.argv[1])):
    try:
        make()
    except CameraError as exc:
        print("refused:", exc)
"""


def test_absent_camera_and_broken_video_are_quiet(tmp_path):
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"\0\0\0\x18ftypmp42" + b"x" * 2000)  # an MP4 header with no movie in it
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("OPENCV_LOG_LEVEL", None)
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(junk)], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("refused:") == 2, run.stdout
    assert run.stderr == "", run.stderr
