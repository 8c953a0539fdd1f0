"""A gallery whose key on this device is protected by a passphrase opens in the desktop app:
the passphrase is asked for in a masked field (no terminal), a wrong one is said and asked
again, and Cancel opens the window with the gallery locked and a way to ask again.

The dialog is driven by key clicks and button clicks; each try runs at once on the GUI
thread, so no test waits on a clock for it."""

from __future__ import annotations

import logging
import os
import secrets

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QDialogButtonBox, QLineEdit  # noqa: E402

from faceapp.config import Settings  # noqa: E402
from faceapp.gallery import keys  # noqa: E402
from faceapp.gui.app import MainWindow  # noqa: E402
from faceapp.pipeline import Pipeline  # noqa: E402
from faceapp.types import Decision  # noqa: E402

PASSPHRASE = "correct horse battery"
NO_CAMERA = "9"  # no test machine has this camera: the live view, once started, fails at once
OK, CANCEL = QDialogButtonBox.StandardButton.Ok, QDialogButtonBox.StandardButton.Cancel


@pytest.fixture
def device_keys(tmp_path, monkeypatch):
    """This device's keys in a folder of the test's own, no passphrase in the environment,
    and a cheaper scrypt for the keys the test seals (the app reads the cost from the file)."""
    monkeypatch.setenv("FACEAPP_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("FACEAPP_NO_KEYRING", "1")
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(keys, "SCRYPT_N", 1 << 12)
    return keys.KeyStore()


def enrolled_gallery(folder, data_dir, store, key=None):
    """A gallery with Obama in it whose key on this device is then sealed with PASSPHRASE
    (or replaced by ``key``, in the clear)."""
    with Pipeline(Settings(gallery=folder)) as pipe:
        pipe.enroll("Obama", [pipe.main_face(data_dir / "obama.jpg")])
        gid = pipe.gallery.store.state().gallery_id
    plain = store.read(gid)
    assert plain is not None and not plain.protected
    if key is None:
        store.save(gid, plain.key(None), PASSPHRASE)
        assert store.read(gid).protected
    else:
        store.save(gid, key)
    return folder


@pytest.fixture
def protected(tmp_path, data_dir, device_keys):
    return enrolled_gallery(tmp_path / "gallery", data_dir, device_keys)


def open_window(qtbot, tmp_path, folder):
    w = MainWindow(Settings(gallery=folder), source=NO_CAMERA, settings_path=tmp_path / "settings.toml")
    qtbot.addWidget(w)
    w.show()
    return w


def answer(qtbot, dlg, text):
    """Type ``text`` into the dialog's passphrase field and press OK."""
    qtbot.keyClicks(dlg.field, text)
    dlg.buttons.button(OK).click()


def matches_obama(w, data_dir):
    found = w.pipeline.match_image(data_dir / "obama.jpg").faces
    return [fr.match.person for fr in found if fr.match.decision is Decision.MATCH]


def test_the_right_passphrase_opens_the_gallery_and_faces_match(qtbot, tmp_path, data_dir, protected, caplog,
                                                                 capfd):
    caplog.set_level(logging.DEBUG)
    w = open_window(qtbot, tmp_path, protected)
    dlg = w.unlock.dialog
    assert dlg is not None and dlg.isVisible() and w.unlock.locked
    assert dlg.field.echoMode() is QLineEdit.EchoMode.Password
    answer(qtbot, dlg, PASSPHRASE)
    assert not dlg.isVisible() and not w.unlock.locked
    assert dlg.field.text() == ""  # not kept in the field
    assert keys.PASSPHRASE_ENV not in os.environ  # nor in the environment once the gallery is open
    assert w.gallery_label.text() == "gallery: 1 people"
    assert "locked" not in w.notice.text.text()
    assert w.worker is not None  # the live view starts once the gallery is open
    assert matches_obama(w, data_dir) == ["Obama"]
    out, err = capfd.readouterr()
    assert PASSPHRASE not in out + err + caplog.text
    w.close()


def test_a_wrong_passphrase_is_said_and_asked_again(qtbot, tmp_path, data_dir, protected):
    w = open_window(qtbot, tmp_path, protected)
    dlg = w.unlock.dialog
    assert not dlg.problem.isVisible()
    answer(qtbot, dlg, "wrong horse")
    assert dlg.isVisible() and w.unlock.locked
    assert dlg.problem.isVisible() and "wrong passphrase, try again" in dlg.problem.text()
    assert dlg.field.text() == "" and keys.PASSPHRASE_ENV not in os.environ
    assert w.worker is None  # nothing runs against a locked gallery
    answer(qtbot, dlg, PASSPHRASE)
    assert not dlg.isVisible() and not w.unlock.locked
    assert matches_obama(w, data_dir) == ["Obama"]
    w.close()


def test_cancel_opens_the_window_locked_and_it_asks_again(qtbot, tmp_path, data_dir, protected):
    w = open_window(qtbot, tmp_path, protected)
    w.unlock.dialog.buttons.button(CANCEL).click()
    assert not w.unlock.dialog.isVisible() and w.unlock.locked
    notice = w.notice.text.text()
    assert w.notice.isVisible() and "locked" in notice and "passphrase" in notice
    assert w.notice.buttons["unlock"].isVisibleTo(w.notice)
    assert "locked" in w.view.message and w.worker is None
    people = next(b for b in w.findChildren(type(w.inbox_button)) if b.text() == "People...")
    assert not people.isEnabled() and "locked" in people.toolTip()
    assert w.gallery_label.text() == "gallery: locked"
    w.start_source()  # Retry and the like do not start the live view on a locked gallery
    assert w.worker is None
    w.notice.buttons["unlock"].click()
    dlg = w.unlock.dialog
    assert dlg.isVisible() and not dlg.problem.isVisible()
    answer(qtbot, dlg, PASSPHRASE)
    assert not w.unlock.locked and people.isEnabled()
    assert "locked" not in w.notice.text.text() and w.gallery_label.text() == "gallery: 1 people"
    assert w.worker is not None
    assert matches_obama(w, data_dir) == ["Obama"]
    w.close()


def test_a_wrong_key_in_the_clear_is_a_gallery_problem_not_a_passphrase(qtbot, tmp_path, data_dir, device_keys):
    folder = enrolled_gallery(tmp_path / "gallery", data_dir, device_keys, key=secrets.token_bytes(keys.KEY_BYTES))
    w = open_window(qtbot, tmp_path, folder)
    assert w.unlock.dialog is None and not w.unlock.locked
    assert "not the gallery's key" in w.notice.text.text()
    w.close()


def test_a_passphrase_in_the_environment_opens_without_asking(qtbot, tmp_path, data_dir, protected, monkeypatch):
    monkeypatch.setenv(keys.PASSPHRASE_ENV, PASSPHRASE)
    w = open_window(qtbot, tmp_path, protected)
    assert w.unlock.dialog is None and not w.unlock.locked
    assert os.environ[keys.PASSPHRASE_ENV] == PASSPHRASE  # the user's own setting is left as it was
    assert matches_obama(w, data_dir) == ["Obama"]
    w.close()


def test_a_settings_change_keeps_the_gallery_unlocked(qtbot, tmp_path, data_dir, protected):
    """The passphrase is asked for once per run: changing a setting (which checks it with a new
    pipeline) neither asks again nor locks the gallery; a new key file (a rekey) would."""
    w = open_window(qtbot, tmp_path, protected)
    answer(qtbot, w.unlock.dialog, PASSPHRASE)
    assert not w.unlock.locked
    assert w.apply_settings({"threshold": 0.6})
    assert not w.unlock.locked and w.settings.threshold == 0.6
    assert w.unlock.dialog is None or not w.unlock.dialog.isVisible()  # not asked again
    assert matches_obama(w, data_dir) == ["Obama"]
    w.close()


def test_the_dialog_never_shows_a_servers_password(qtbot):
    """A shared gallery's address can carry a password: the dialog names the gallery without it."""
    from types import SimpleNamespace

    from PySide6.QtWidgets import QLabel, QWidget

    from faceapp.gui.unlock import GalleryUnlock

    parent = QWidget()
    qtbot.addWidget(parent)
    pipe = SimpleNamespace(settings=Settings(gallery="postgresql://faceapp:s3cret-pw@db.example/faces"))
    dlg = GalleryUnlock(lambda: pipe, parent).ask()
    shown = " ".join(label.text() for label in dlg.findChildren(QLabel))
    assert "db.example/faces" in shown and "s3cret-pw" not in shown
    dlg.reject()
