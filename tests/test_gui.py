"""The desktop app through pytest-qt, offscreen, fed by fake cameras of real photos."""

import os
import shutil
import time

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from faceapp.capture import CameraLost, FrameSource  # noqa: E402
from faceapp.config import Settings  # noqa: E402
from faceapp.gui.app import MainWindow  # noqa: E402
from faceapp.images import load_image  # noqa: E402
from faceapp.types import Decision  # noqa: E402


@pytest.fixture
def frames(tmp_path, data_dir):
    """A folder of frames: frontal Obama, Obama turned one way, and the same photo mirrored."""
    from PIL import Image

    d = tmp_path / "frames"
    d.mkdir()
    shutil.copy(data_dir / "obama.jpg", d / "1.jpg")
    shutil.copy(data_dir / "obama2.jpg", d / "2.jpg")
    Image.fromarray(load_image(data_dir / "obama2.jpg")[:, ::-1]).save(d / "3.jpg")
    return d


@pytest.fixture
def window(qtbot, tmp_path, frames):
    def make(source=str(frames), **settings):
        w = MainWindow(Settings(gallery=tmp_path / "gallery", **settings), source=source,
                       settings_path=tmp_path / "settings.toml")
        qtbot.addWidget(w)
        w.show()
        return w

    made = []
    yield lambda *a, **k: made.append(make(*a, **k)) or made[-1]
    for w in made:
        w.close()


def wait_frames(qtbot, w, n=1, timeout=30000):
    qtbot.waitUntil(lambda: w.worker is not None, timeout=timeout)
    start = w.worker.frames_processed
    qtbot.waitUntil(lambda: w.worker is not None and w.worker.frames_processed >= start + n and w.last is not None,
                    timeout=timeout)


def test_guided_enrolment_from_the_live_view(qtbot, window):
    w = window()
    wait_frames(qtbot, w)
    dlg = w.open_enrolment()
    dlg.guide.target = 3
    qtbot.waitUntil(lambda: dlg.guide.done, timeout=60000)
    assert [round(f.quality.yaw) < 0 for f in dlg.guide.samples].count(True) >= 1
    assert dlg.thumbs.count() == 3
    dlg.name.setText("Barack")
    dlg.save(ask=lambda title, text: QMessageBox.StandardButton.Yes)
    assert dlg.saved_as == "Barack"
    person = w.pipeline.gallery.get_person("Barack")
    assert person.templates == 3
    qtbot.waitUntil(lambda: w.gallery_label.text() == "gallery: 1 people", timeout=5000)
    # the live view now names him
    qtbot.waitUntil(lambda: any(fr.match.person == "Barack" for fr in w.view.faces), timeout=30000)


def test_enrolment_offers_to_add_to_a_lookalike(qtbot, window, data_dir):
    w = window()
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    dlg = w.open_enrolment()
    problems = dlg.add_files([data_dir / "obama2.jpg", data_dir / "t1.jpg"])
    assert len(problems) == 1 and "faces of similar size" in problems[0]
    dlg.name.setText("Someone new")
    questions = []
    dlg.save(ask=lambda title, text: questions.append(text) or QMessageBox.StandardButton.Yes)
    assert "match 'Obama'" in questions[0]
    assert dlg.saved_as == "Obama" and w.pipeline.gallery.get_person("Obama").templates == 2
    assert not w.pipeline.gallery.has_person("Someone new")


def test_threshold_slider_changes_the_decision(qtbot, window, data_dir):
    w = window()
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    qtbot.waitUntil(lambda: any(fr.match.decision is Decision.MATCH for fr in w.view.faces), timeout=30000)
    w.threshold.setValue(100)  # a similarity of 1.0 is needed now
    w.band.setValue(0.0)
    wait_frames(qtbot, w, 2)
    qtbot.waitUntil(lambda: w.view.faces and all(fr.match.decision is Decision.UNKNOWN for fr in w.view.faces)
                    or False, timeout=30000)
    w.reset_thresholds()
    assert w.threshold.value() == round(w.pipeline.embedder.thresholds.match * 100)
    assert (w.settings_path).exists()


def test_gallery_manager_rename_delete_merge_search(qtbot, window, data_dir):
    w = window()
    for name, photo in (("Ann", "obama.jpg"), ("Bob", "biden.jpg"), ("Cid", "obama2.jpg")):
        w.pipeline.enroll(name, [w.pipeline.main_face(data_dir / photo)])
    dlg = w.open_gallery()
    assert dlg.names() == ["Ann", "Bob", "Cid"]
    assert not dlg.people.item(0).icon().isNull()  # a thumbnail
    dlg.rename("Bob", "Robert")
    dlg.merge("Cid", "Ann")
    assert dlg.names() == ["Ann", "Robert"]
    assert w.pipeline.gallery.get_person("Ann").templates == 2
    dlg.search.setText("rob")
    assert dlg.names() == ["Robert"]
    dlg.delete("Robert")
    assert dlg.names() == []
    dlg.search.setText("")
    dlg.add_samples("Ann", [data_dir / "obama_partial_face.jpg"])
    assert w.pipeline.gallery.get_person("Ann").templates == 3


class FlakyCamera(FrameSource):
    """Delivers a few frames, then behaves like an unplugged camera."""

    name = "flaky camera"

    def __init__(self, frame, frames_before_loss):
        self.frame, self.left = frame, frames_before_loss

    def read(self):
        time.sleep(0.01)
        if self.left <= 0:
            raise CameraLost("flaky camera stopped sending frames (unplugged?); reconnect it and press Retry")
        self.left -= 1
        return self.frame


def test_camera_loss_and_recovery(qtbot, window, data_dir, tmp_path):
    frame = load_image(data_dir / "obama.jpg")
    w = window()
    w._make_source = lambda: FlakyCamera(frame, 3)
    w.start_source()
    qtbot.waitUntil(lambda: "unplugged" in w.view.message, timeout=30000)
    assert "Matching photos and the gallery still work" in w.view.message
    w.match_photo(data_dir / "biden.jpg")  # the rest of the app still works
    assert len(w.view.faces) == 1
    w.pause.setChecked(False)
    w._make_source = lambda: FlakyCamera(frame, 10_000)
    w.retry.click()
    qtbot.waitUntil(lambda: w.worker.frames_processed >= 3 and w.view.message == "", timeout=30000)
    assert w.snapshot(tmp_path / "snap.png").stat().st_size > 1000


def test_missing_camera_is_a_message_not_a_crash(qtbot, window):
    w = window(source="9")
    qtbot.waitUntil(lambda: "not available" in w.view.message, timeout=30000)


def test_settings_switch_gallery(qtbot, window, tmp_path, data_dir):
    w = window()
    w.apply_settings(Settings(gallery=tmp_path / "other"))
    w.pipeline.enroll("X", [w.pipeline.main_face(data_dir / "biden.jpg")])
    w.refresh_gallery_size()
    assert w.gallery_label.text() == "gallery: 1 people"
    assert "other" in (tmp_path / "settings.toml").read_text()
    assert np.isfinite(float(w.threshold.value()))
