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
    people.close()
    result = w.pipeline.match_image(data_dir / "obama.jpg")
    assert result.faces[0].match.person == "Obama"
    w.close()
