"""Frame sources: a camera, a video file, or a folder of images.

All return RGB uint8 ``(H, W, 3)`` frames from :meth:`FrameSource.read`. A camera that
cannot be opened raises :class:`CameraError`; one that stops delivering frames (unplugged)
raises :class:`CameraLost`, after which :meth:`FrameSource.reopen` may be tried.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.config import DEFAULT_FOLDER_FPS
from faceapp.errors import FaceappError, ImageError
from faceapp.vision.images import IMAGE_SUFFIXES, load_image

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
DEFAULT_VIDEO_FPS = 30.0  # for a video file that does not say its frame rate

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def pace(position: int, started: float, now: float, fps: float) -> tuple[float, int]:
    """When the next frame of a paced source is due, and how many frames it is behind.

    Frame ``position`` (counted from 0) is due ``position / fps`` seconds after
    ``started``. Early, the source waits; late by whole frames, it drops them (as a live
    camera would), so playback keeps the source's own speed whatever the processing
    rate.

    Args:
        position: the index of the next frame to read.
        started: clock time when frame 0 was due.
        now: the clock time now.
        fps: the source's frame rate.

    Returns:
        ``(seconds to wait, frames to drop)``; at most one of them is non-zero.
    """
    due = started + position / fps
    if now < due:
        return due - now, 0
    return 0.0, int((now - started) * fps) - position


class Schedule:
    """The clock of a paced source: frame 0 is due when it is first asked for (see :func:`pace`).

    Args:
        clock: seconds, monotonic (tests pass their own).
        sleep: waits that many seconds (tests pass their own).
    """

    def __init__(self, clock: Clock, sleep: Sleep) -> None:
        self.clock, self.sleep = clock, sleep
        self.start: float | None = None

    def wait_for(self, position: int, fps: float) -> int:
        """Wait until frame ``position`` is due; returns how many frames it is late by instead."""
        if self.start is None:
            self.start = self.clock()
        wait, late = pace(position, self.start, self.clock(), fps)
        if wait > 0:
            self.sleep(wait)
        return late

    def restart(self) -> None:
        """Make the next frame frame 0, due now."""
        self.start = self.clock()


class CameraError(FaceappError):
    """The camera (or source) could not be opened."""


class CameraLost(FaceappError):
    """The source stopped delivering frames."""


@dataclass(frozen=True)
class CameraInfo:
    """A camera the system reports, without opening it.

    Attributes:
        index: the index to open it with.
        name: the device's name, e.g. ``"HD Webcam C270"``.
    """

    index: int
    name: str


def list_cameras(sysfs: Path = Path("/sys/class/video4linux")) -> list[CameraInfo]:
    """Cameras by name, without opening any (opening is slow and may disturb other programs).

    On Linux the names come from ``/sys/class/video4linux`` (only each device's first node,
    the one that captures). Elsewhere no names are available and cameras 0 and 1 are
    offered by number.

    Args:
        sysfs: the video4linux class folder (for tests).
    """
    if not sys.platform.startswith("linux"):
        return [CameraInfo(i, f"Camera {i}") for i in (0, 1)]
    out = []
    for node in sorted(sysfs.glob("video*"), key=lambda p: (len(p.name), p.name)):
        try:
            index = int(node.name[5:])
            if (node / "index").is_file() and (node / "index").read_text().strip() not in ("", "0"):
                continue  # a metadata node of the same device
            name = (node / "name").read_text(encoding="utf-8", errors="replace").strip() or f"Camera {index}"
        except (OSError, ValueError):
            continue
        out.append(CameraInfo(index, name))
    return out


class FrameSource:
    """Base class. ``read`` returns the newest frame available, never a backlog.

    Attributes:
        name: what the source is called in messages.
        nominal_fps: the rate the source delivers frames at when paced (a video file's
            own frame rate, an image folder's chosen rate), or ``None`` (a camera: as fast
            as it sends them; or a file read as fast as it is processed).
    """

    name = "source"
    nominal_fps: float | None = None

    def read(self) -> np.ndarray:
        raise NotImplementedError

    def reopen(self) -> None:
        """Try to open the source again after :class:`CameraLost`."""

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _opencv_for_capture() -> Any:
    """``cv2`` with its own logging off, for opening cameras and videos.

    OpenCV and the FFmpeg inside it print warnings straight to stderr when a camera index
    or a file cannot be opened (V4L2, FFMPEG and obsensor backends each have a go); the
    sources here report that as one :class:`CameraError` line instead.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def shown_url(url: str) -> str:
    """A stream URL without the user name and password it may carry (``rtsp://user:pw@cam/``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class CameraSource(FrameSource):
    """An OpenCV camera by index, or a network stream by URL (RTSP, HTTP), with a one-frame
    buffer so frames are never stale."""

    def __init__(self, index: int | str = 0, width: int = 640, height: int = 480, failures_before_lost: int = 10) -> None:
        self.index, self.width, self.height = index, width, height
        self.failures_before_lost = failures_before_lost
        self.name = f"camera {index}" if isinstance(index, int) else f"stream {shown_url(index)}"
        self._cap: Any = None
        self.reopen()

    def reopen(self) -> None:
        cv2 = _opencv_for_capture()
        self.close()
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            if not isinstance(self.index, int):
                raise CameraError(f"{self.name} cannot be opened; check the address and that the camera is on")
            raise CameraError(f"camera {self.index} is not available (absent or used by another program); "
                              "plug one in, close the other program, or choose another camera")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise CameraLost(f"{self.name} is closed; retry to open it again")
        for _ in range(self.failures_before_lost):
            ok, frame = self._cap.read()
            if ok and frame is not None:
                return np.ascontiguousarray(frame[:, :, ::-1])
            time.sleep(0.01)
        raise CameraLost(f"{self.name} stopped sending frames (unplugged?); reconnect it and press Retry")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource(FrameSource):
    """A video file played at its own frame rate: early reads wait, frames that fall behind are skipped.

    Args:
        path: the video.
        loop: start again at the end instead of raising :class:`CameraLost`.
        realtime: keep pace with the clock (as a live camera would, see :func:`pace`);
            ``False`` returns every frame in order, as fast as they are read.
        clock: seconds, monotonic (tests pass their own).
        sleep: waits that many seconds (tests pass their own).

    A file that ends before the frame count it declares (truncated, or cut short while it
    was played) is said once in the log, then looped (or ended) as it is.

    Attributes:
        ended_early: that message, once it has happened; else ``None``.
    """

    def __init__(self, path: Path, loop: bool = True, realtime: bool = True, clock: Clock = time.perf_counter,
                 sleep: Sleep = time.sleep) -> None:
        self.path = Path(path)
        self.loop, self.realtime = loop, realtime
        self.name = self.path.name
        self._clock, self._sleep = clock, sleep
        self._cap: Any = None
        self.fps = DEFAULT_VIDEO_FPS
        self.ended_early: str | None = None
        self.reopen()

    def reopen(self) -> None:
        cv2 = _opencv_for_capture()
        self.close()
        if not self.path.is_file():
            raise CameraError(f"video {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise CameraError(f"video {self.path} cannot be opened; use an MP4/AVI file OpenCV can read")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps <= 1000.0 else DEFAULT_VIDEO_FPS
        self.nominal_fps = self.fps if self.realtime else None
        self.declared_frames = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self._schedule = Schedule(self._clock, self._sleep)
        self._pos = 0

    def read(self) -> np.ndarray:
        import cv2

        if self._cap is None:
            raise CameraLost(f"{self.name} is closed")
        if self.realtime:
            for _ in range(self._schedule.wait_for(self._pos, self.fps)):  # drop the frames we are late for
                if not self._cap.grab():
                    break
                self._pos += 1
        ok, frame = self._cap.read()
        if not ok:
            self._check_length()
            if not self.loop:
                raise CameraLost(f"{self.name} has ended")
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._schedule.restart()
            self._pos = 0
            ok, frame = self._cap.read()
            if not ok:
                raise CameraLost(f"{self.name} cannot be read")
        self._pos += 1
        return np.ascontiguousarray(frame[:, :, ::-1])

    def _check_length(self) -> None:
        """At the end of the file: say once when it came before the declared frame count
        (containers may round that count by a frame or two)."""
        if self.ended_early is None and self.declared_frames and self._pos + 2 < self.declared_frames:
            self.ended_early = (f"{self.name} ended early, after {self._pos} of its {self.declared_frames} frames: "
                                "the file is damaged or was cut short while playing; what is left is "
                                + ("played again" if self.loop else "all there is"))
            log.warning("%s", self.ended_early)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, as frames; loops at the end.

    A damaged or unreadable image is skipped and logged once (not again on every loop);
    when no image of the folder can be read, :meth:`read` raises :class:`CameraLost`.

    Args:
        path: the folder.
        loop: start again at the end instead of raising :class:`CameraLost`.
        fps: images a second (``0``: as fast as they are read).
        clock: seconds, monotonic (tests pass their own).
        sleep: waits that many seconds (tests pass their own).

    Attributes:
        skipped: ``{file name: why it was skipped}``.
    """

    def __init__(self, path: Path, loop: bool = True, fps: float = 0.0, clock: Clock = time.perf_counter,
                 sleep: Sleep = time.sleep) -> None:
        self.path = Path(path)
        self.loop = loop
        if fps < 0:
            raise CameraError(f"the image rate must be 0 (as fast as they are read) or more, not {fps}")
        self.nominal_fps = fps or None
        self.name = self.path.name
        self._clock, self._sleep = clock, sleep
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if self.path.is_dir() else []
        if not self.files:
            raise CameraError(f"{self.path} has no images to use as frames")
        self._i = 0
        self._shown = 0
        self._schedule = Schedule(self._clock, self._sleep)
        self.skipped: dict[str, str] = {}

    def read(self) -> np.ndarray:
        if self.nominal_fps:
            if self._schedule.wait_for(self._shown, self.nominal_fps):
                # behind: images are not dropped, the schedule starts again from now
                self._schedule.restart()
                self._shown = 0
        for _ in range(len(self.files)):
            if self._i >= len(self.files):
                if not self.loop:
                    raise CameraLost(f"{self.name}: no more images")
                self._i = 0
            path = self.files[self._i]
            self._i += 1
            try:
                image = load_image(path)
            except ImageError as exc:
                self._skip(path, exc)
                continue
            self._shown += 1
            return image
        raise CameraLost(f"no image in {self.path} can be read; choose another folder")

    def _skip(self, path: Path, exc: ImageError) -> None:
        if path.name not in self.skipped:
            self.skipped[path.name] = str(exc)
            log.warning("skipping %s: %s", path.name, exc)


def open_source(spec: str | Path | int, width: int = 640, height: int = 480, loop: bool = True, *,
                realtime: bool = True, folder_fps: float = DEFAULT_FOLDER_FPS) -> FrameSource:
    """A camera index (``0``), a stream URL (``rtsp://...``, ``http://...``), a video file, or a
    folder of images.

    Args:
        spec: what to open.
        width: camera frame width to ask for.
        height: camera frame height to ask for.
        loop: start files and folders again at their end.
        realtime: play video files at their own frame rate and folders at ``folder_fps``;
            ``False`` reads them as fast as they are processed (batch work, not real time).
        folder_fps: images a second from a folder.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CameraSource(int(spec), width, height)
    if isinstance(spec, str) and "://" in spec:
        return CameraSource(spec, width, height)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, loop=loop, fps=folder_fps if realtime else 0.0)
    if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        return VideoFileSource(path, loop=loop, realtime=realtime)
    raise CameraError(f"{spec} is neither a camera index, a video file nor a folder of images")
