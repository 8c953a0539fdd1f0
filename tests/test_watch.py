"""`faceapp-cli watch`: one JSON line per event, over a folder, a video and a lost camera, and a
clean stop on SIGTERM; with a PostgreSQL gallery enrolled from another process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from faceapp import watch as watch_mod
from faceapp.vision.capture import CameraError, CameraLost, FrameSource, shown_url
from faceapp.vision.images import load_image

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, **kw):
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "faceapp.cli", *args], capture_output=True, text=True, env=full,
                          timeout=300, **kw)


def _video(path: Path, image: Path, frames: int) -> Path:
    import cv2

    bgr = np.ascontiguousarray(load_image(image)[:, :, ::-1])
    h, w = bgr.shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for _ in range(frames):
        out.write(bgr)
    out.release()
    return path


@pytest.mark.postgres
def test_watch_a_folder_with_a_gallery_enrolled_on_another_device(pg_dsn, data_dir, tmp_path):
    enrol = cli("--gallery", pg_dsn, "enroll", "Obama", str(data_dir / "obama.jpg"),
                env={"FACEAPP_CACHE_DIR": str(tmp_path / "desk")})
    assert enrol.returncode == 0, enrol.stderr
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(data_dir / "obama2.jpg", frames / "1.jpg")
    shutil.copy(data_dir / "biden.jpg", frames / "2.jpg")
    run = cli("--gallery", pg_dsn, "watch", str(frames), "--record", "--snapshots", "--device", "door",
              env={"FACEAPP_CACHE_DIR": str(tmp_path / "door")})
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(e["event"], e["person"], e["decision"]) for e in events] == [
        ("face", "Obama", "match"), ("face", None, "unknown")]
    first = events[0]
    assert set(first) >= {"track_id", "time", "person", "decision", "similarity", "box"}
    assert first["similarity"] > 0.5 and len(first["box"]) == 4 and first["track_id"] != events[1]["track_id"]
    kept = cli("--gallery", pg_dsn, "--json", "events", env={"FACEAPP_CACHE_DIR": str(tmp_path / "desk")})
    assert [(e["person"], e["decision"], e["device"], e["snapshot"]) for e in json.loads(kept.stdout)] == [
        ("Obama", "match", "door", True), (None, "unknown", "door", True)]
    bad = cli("--gallery", pg_dsn, "watch", str(frames), "--snapshots", env={"FACEAPP_CACHE_DIR": str(tmp_path / "door")})
    assert bad.returncode == 2 and "add --record" in bad.stderr


def test_watch_a_video_reports_a_track_once(tmp_path, data_dir):
    gallery = tmp_path / "g"
    assert cli("--gallery", str(gallery), "enroll", "Obama", str(data_dir / "obama.jpg")).returncode == 0
    video = _video(tmp_path / "v.avi", data_dir / "obama2.jpg", 12)
    run = cli("--gallery", str(gallery), "watch", "--fast", str(video))  # every frame, however slow the machine
    assert run.returncode == 0, run.stderr
    assert "not real time" in run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(e["event"], e["person"], e["decision"]) for e in events] == [("face", "Obama", "match")]


def test_sigterm_stops_cleanly(tmp_path, data_dir):
    gallery = tmp_path / "g"
    video = _video(tmp_path / "v.avi", data_dir / "obama2.jpg", 2000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "faceapp.cli", "--gallery", str(gallery), "watch", str(video)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()  # an empty gallery: the track settles on "unknown"
    assert json.loads(first)["decision"] == "unknown"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)  # a hang guard: the video alone would run far longer
    assert proc.returncode == 0 and "Traceback" not in err


class _Flaky(FrameSource):
    """A camera that is unplugged after two frames and is back on the second try."""

    name = "camera 9"

    def __init__(self, frame):
        self.frame, self.reads, self.reopens = frame, 0, 0

    def read(self):
        self.reads += 1
        if self.reads == 3:
            raise CameraLost("camera 9 stopped sending frames (unplugged?)")
        return self.frame

    def reopen(self):
        self.reopens += 1
        if self.reopens == 1:
            raise CameraError("camera 9 is not available")


def test_camera_loss_is_reported_and_reconnected(pipeline, data_dir, monkeypatch):
    flaky = _Flaky(load_image(data_dir / "obama2.jpg"))
    monkeypatch.setattr(watch_mod, "open_source", lambda *a, **k: flaky)
    monkeypatch.setattr(watch_mod, "RECONNECT_BACKOFF_S", (0.01,))
    events = []
    frames = watch_mod.watch(pipeline, 9, events.append, threading.Event(), max_frames=8)
    kinds = [e.kind for e in events]
    assert frames == 8 and flaky.reopens == 2
    assert kinds.index("source_lost") < kinds.index("source_back")
    assert "unplugged" in events[kinds.index("source_lost")].message


def test_stream_addresses_never_show_credentials():
    assert shown_url("rtsp://admin:pa55@10.0.0.5:554/stream1?token=x") == "rtsp://10.0.0.5:554/stream1"
    run = cli("watch", "rtsp://admin:pa55@127.0.0.1:9/none")
    assert run.returncode == 2 and "pa55" not in run.stderr
    assert run.stderr.splitlines()[-1].startswith("faceapp-cli: error: stream rtsp://127.0.0.1:9/none cannot be opened")


def _result(track_id, person):
    from faceapp.recognise.track import TrackResult
    from faceapp.types import Decision, Detection, Face, Match, Quality

    face = Face(Detection((0, 0, 10, 10), np.zeros((6, 2), np.float32), 0.9), np.zeros((4, 4, 3), np.uint8),
                Quality(50, 100, 0, 0, 120))
    m = None if person is None else Match(Decision.MATCH, person, 0.9, ())
    return TrackResult(track_id, (0, 0, 10, 10), face, m, m, True, 1)


def test_a_name_taken_away_is_reported_again_only_when_it_settles_again():
    events = watch_mod.TrackEvents()
    shown = ["Ann", "Ann", None, None, "Ann", "Ann"]
    got = [[e.person for e in events.update([_result(1, p)], float(k), "cam")] for k, p in enumerate(shown)]
    assert got == [["Ann"], [], [], [], ["Ann"], []]


def test_watch_paces_a_video_unless_fast(pipeline, tmp_path, data_dir, monkeypatch, caplog):
    video = _video(tmp_path / "v.avi", data_dir / "obama2.jpg", 6)
    opened = []
    real = watch_mod.open_source

    def spy(*a, **k):
        src = real(*a, **k)
        opened.append(src.nominal_fps)
        return src

    monkeypatch.setattr(watch_mod, "open_source", spy)
    assert watch_mod.watch(pipeline, video, lambda e: None, threading.Event(), max_frames=2) == 2
    assert watch_mod.watch(pipeline, video, lambda e: None, threading.Event(), fast=True) == 6
    assert opened == [10.0, None]
    assert "not real time" in caplog.text
