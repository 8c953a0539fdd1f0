"""Fuzz the image decoder: damaged JPEG, PNG and WebP files never crash, hang or flood memory.

Runs ``tests/fuzz_images.py`` in a child process (so its peak memory is its own) on 600
deterministic cases: every case must decode or raise :class:`faceapp.errors.ImageError`
with a one-line message, none may take more than 2 s, the whole run must finish within
60 s and peak resident memory stay under 512 MB.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_damaged_images_only_raise_image_error():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(HERE / "fuzz_images.py"), "600", "20261126"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["cases"] == 600
    assert report["failures"] == [], report["failures"][:10]
    assert report["outcomes"]["refused"] > 100 and report["outcomes"]["decoded"] > 0  # both paths exercised
    assert report["slowest_s"] < 2.0, report["slowest_case"]
    assert report["peak_rss_mb"] < 512, report
