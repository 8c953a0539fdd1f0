"""The desktop app never leaves the user guessing: a damaged or read-only gallery, a folder
gallery's event history, problems of a source shown once in the window, a status bar that
shows its whole message."""

import errno
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from faceapp.config import Settings  # noqa: E402
from faceapp.gui.app import MainWindow  # noqa: E402
from faceapp.pipeline import Pipeline  # noqa: E402

NO_CAMERA = "9"  # a camera index no test machine has: the live view fails at once


@pytest.fixture
def boxes(monkeypatch):
    """The texts of the warning boxes the window would show (instead of blocking on them)."""
    shown: list[str] = []
    monkeypatch.setattr("faceapp.gui.app.error_box", lambda parent, exc: shown.append(str(exc)))
    return shown


@pytest.fixture
def enrolled(tmp_path, data_dir):
    """A gallery folder with one person in it."""
    folder = tmp_path / "gallery"
    with Pipeline(Settings(gallery=folder)) as pipe:
        pipe.enroll("Obama", [pipe.main_face(data_dir / "obama.jpg")])
    return folder


def open_window(qtbot, tmp_path, folder, **settings):
    w = MainWindow(Settings(gallery=folder, **settings), source=NO_CAMERA, settings_path=tmp_path / "settings.toml")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.source_error is not None, timeout=30000)
    return w


def test_a_damaged_gallery_is_explained_in_the_window(qtbot, tmp_path, enrolled, boxes):
    (enrolled / "gallery.sqlite3").write_bytes(b"not a database " * 1000)
    w = open_window(qtbot, tmp_path, enrolled)
    assert w.open_people() is None  # no traceback: the problem is shown
    assert any("damaged" in text for text in boxes)
    assert "Matching photos and the people library still work" not in w.view.message
    assert "cannot be used" in w.view.message
    assert "damaged" in w.notice.text.text() and w.notice.buttons["settings"].isVisibleTo(w.notice)
    assert w.gallery_label.text() == "gallery: error"
    w.close()


def test_a_read_only_gallery_opens_for_matching_and_browsing(qtbot, tmp_path, enrolled, data_dir, boxes,
                                                             monkeypatch):
    """As on a read-only medium: nothing may be written or have its mode changed."""
    enrolled.chmod(0o755)
    inside = str(enrolled)
    real_access, real_chmod = os.access, os.chmod

    def access(path, mode, **kw):
        return False if mode & os.W_OK and str(path).startswith(inside) else real_access(path, mode, **kw)

    def chmod(path, mode, **kw):
        if str(path).startswith(inside):
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return real_chmod(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "chmod", chmod)
    w = open_window(qtbot, tmp_path, enrolled, inbox=True)
    assert not boxes, boxes
    assert w.gallery_label.text() == "gallery: 1 people, read-only"
    assert "read-only" in w.notice.text.text() and "cannot create" not in w.notice.text.text()
    assert "browsing the people library still work" in w.view.message and "read-only" in w.view.message
    assert w.inbox is None and "read-only" in w.inbox_button.toolTip()
    people = w.open_people()
    assert people is not None and people.model.rowCount() == 1
    from PySide6.QtWidgets import QPushButton

    enabled = {b.text(): b.isEnabled() for b in people.findChildren(QPushButton)}
    assert enabled["Samples..."] and enabled["History..."] and not enabled["Rename..."] and not enabled["Delete..."]
    people.close()
    result = w.pipeline.match_image(data_dir / "obama.jpg")
    assert result.faces[0].match.person == "Obama"
    w.close()


def test_a_photo_folder_with_bad_files_says_each_problem_once(qtbot, tmp_path, data_dir, caplog):
    """The folder loops many times; each bad file is said once on stderr and listed once in the window."""
    import logging
    import shutil

    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(data_dir / "obama.jpg", folder / "1.jpg")
    for name in ("2.jpg", "3.png", "4.jpg"):
        (folder / name).write_bytes(b"not an image")
    caplog.set_level(logging.WARNING, logger="faceapp")
    w = MainWindow(Settings(gallery=tmp_path / "gallery"), source=str(folder), settings_path=tmp_path / "settings.toml")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.worker is not None and w.worker.frames_processed >= 6, timeout=60000)
    said = [r.getMessage() for r in caplog.records if r.name == "faceapp.vision.capture"]
    assert len(said) == 3, said  # six rounds of the folder, three bad files: three lines
    qtbot.waitUntil(lambda: len(w.problems.counts) == 3, timeout=5000)
    assert w.problems_button.isVisibleTo(w) and w.problems_button.text() == "3 problems"
    listed = w.problems_button.open_list()
    assert listed.list.count() == 3 and all("skipping" in listed.list.item(i).text() for i in range(3))
    listed.close()
    w.close()


def test_a_video_cut_short_while_playing_says_it_ended_early(tmp_path, caplog):
    import logging

    import cv2
    import numpy as np

    from faceapp.vision.capture import VideoFileSource

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(60):
        writer.write(rng.integers(0, 255, (120, 160, 3), np.uint8))
    writer.release()
    caplog.set_level(logging.WARNING, logger="faceapp")
    source = VideoFileSource(path, loop=True, realtime=False)
    for _ in range(5):
        source.read()
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 4 // 10])  # cut short while playing
    for _ in range(200):  # several rounds of what is left
        source.read()
    source.close()
    said = [r.getMessage() for r in caplog.records if "ended early" in r.getMessage()]
    assert len(said) == 1 and source.ended_early == said[0] and "of its 60 frames" in said[0]


def test_a_whole_video_is_not_said_to_end_early(tmp_path, caplog):
    import logging

    import cv2
    import numpy as np

    from faceapp.vision.capture import VideoFileSource

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(30):
        writer.write(np.full((120, 160, 3), i, np.uint8))
    writer.release()
    caplog.set_level(logging.WARNING, logger="faceapp")
    source = VideoFileSource(path, loop=True, realtime=False)
    for _ in range(100):
        source.read()
    source.close()
    assert source.ended_early is None and not caplog.records


def test_the_status_bar_shows_a_long_message_whole_or_elided_with_a_tooltip(qtbot, window_at):
    w = window_at()
    text = "the gallery folder /very/long/path/" + "x" * 300 + " cannot be read; choose another folder in Settings"
    w.statusBar().showMessage(text, 10000)
    shown = w.statusBar().message
    qtbot.waitUntil(lambda: shown.width() > 100, timeout=5000)
    assert shown.text() != text and shown.text().endswith("…")
    assert shown.fontMetrics().horizontalAdvance(shown.text()) <= shown.width()
    assert shown.toolTip() == text and w.statusBar().currentMessage() == text
    w.statusBar().showMessage("source: clip.avi", 3000)
    assert shown.text() == "source: clip.avi" and shown.toolTip() == ""
    w.close()


@pytest.fixture
def window_at(qtbot, tmp_path):
    def make():
        w = MainWindow(Settings(gallery=tmp_path / "gallery"), source=NO_CAMERA, settings_path=tmp_path / "s.toml")
        qtbot.addWidget(w)
        w.show()
        return w

    return make


def test_guided_enrolment_can_skip_a_pose_and_shows_what_is_missing(qtbot, tmp_path, data_dir):
    from faceapp.gui.dialogs import EnrolDialog
    from faceapp.vision.images import load_image

    with Pipeline(Settings(gallery=tmp_path / "gallery")) as pipe:
        dlg = EnrolDialog(pipe, target=3)
        qtbot.addWidget(dlg)
        frontal, right = (load_image(data_dir / n) for n in ("obama.jpg", "obama2.jpg"))
        frontal_face, right_face = pipe.main_face(frontal), pipe.main_face(right)
        dlg.capture.setChecked(True)
        dlg.offer(frontal, [frontal_face], "clip.avi")
        assert len(dlg.samples) == 1 and dlg.skip.isEnabled()
        for _ in range(3):  # the same request until the user skips
            dlg.offer(frontal, [frontal_face], "clip.avi")
            assert "to your left" in dlg.guidance.text() and "skip" in dlg.guidance.text()
        dlg.skip.click()
        assert dlg.guidance.text() == "left pose skipped; next: turn your head slightly to your right"
        assert dlg.coverage.text() == "poses: frontal; missing: left (skipped), right"
        dlg.offer(right, [right_face], "clip.avi")
        assert len(dlg.samples) == 2
        assert dlg.coverage.text() == "poses: frontal, right; missing: left (skipped)" and not dlg.skip.isEnabled()
        dlg.close()
