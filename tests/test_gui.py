"""The desktop app through pytest-qt, offscreen, fed by fake cameras of real photos."""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from faceapp.config import Settings, load_settings  # noqa: E402
from faceapp.errors import ImageError  # noqa: E402
from faceapp.gui.app import MainWindow  # noqa: E402
from faceapp.types import Decision  # noqa: E402
from faceapp.vision.capture import CameraLost, FrameSource  # noqa: E402
from faceapp.vision.images import load_image  # noqa: E402


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
        settings.setdefault("folder_fps", 1000.0)  # the frame folder as fast as it is processed
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


def decided(w, decision):
    """Indices of the view's faces whose shown decision is ``decision`` (tracks show none until settled)."""
    return [k for k, fr in enumerate(w.view.faces) if fr.match is not None and fr.match.decision is decision]


def test_guided_enrolment_from_the_live_view(qtbot, window):
    w = window()
    wait_frames(qtbot, w)
    dlg = w.open_enrolment()
    dlg.guide.target = 3
    dlg.capture.click()
    qtbot.waitUntil(lambda: dlg.guide.done, timeout=60000)
    assert not dlg.capturing  # stops once the samples are taken
    assert [round(f.quality.yaw) < 0 for f in dlg.guide.samples].count(True) >= 1
    assert dlg.thumbs.count() == 3
    dlg.name.setText("Barack")
    dlg.save(ask=lambda title, text: QMessageBox.StandardButton.Yes)
    assert dlg.saved_as == "Barack"
    person = w.pipeline.gallery.get_person("Barack")
    assert person.templates == 3
    qtbot.waitUntil(lambda: w.gallery_label.text() == "gallery: 1 people", timeout=5000)
    # the live view now names him
    qtbot.waitUntil(lambda: any(fr.match is not None and fr.match.person == "Barack" for fr in w.view.faces), timeout=30000)


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


def _video(path, image, frames):
    import cv2

    bgr = np.ascontiguousarray(load_image(image)[:, :, ::-1])
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (bgr.shape[1], bgr.shape[0]))
    for _ in range(frames):
        out.write(bgr)
    out.release()
    return path


def test_enrolment_from_a_video_and_photos(qtbot, window, data_dir, tmp_path):
    """The reported bug, replayed: a name typed while the live view shows someone enrolled."""
    video = _video(tmp_path / "celine.avi", data_dir / "obama.jpg", 30)
    w = window(source=str(video))
    w.pipeline.enroll("Celine Dion", [w.pipeline.main_face(data_dir / "obama2.jpg")])
    dlg = w.open_enrolment()
    dlg.name.setText("John McCain")
    qtbot.waitUntil(lambda: dlg.frames_seen >= 5, timeout=30000)
    assert len(dlg.guide.samples) == 0 and not dlg.capturing  # live capture starts only when asked
    assert not w.worker._embed_all.is_set()
    # photos first: a sample from the live view is then refused, and capture stops
    assert dlg.add_files([data_dir / "biden.jpg"]) == []
    assert dlg.thumbs.item(0).toolTip() == "photo biden.jpg"
    dlg.capture.click()
    assert w.worker._embed_all.is_set()
    qtbot.waitUntil(lambda: not dlg.capturing, timeout=30000)
    assert "comes from the live view (celine.avi)" in dlg.guidance.text() and len(dlg.samples) == 1
    assert not w.worker._embed_all.is_set()
    # the live view alone: each sample says which frame it is
    dlg.thumbs.selectAll()
    dlg.discard_selected()
    assert len(dlg.samples) == 0
    dlg.guide.target = 1
    dlg.capture.click()
    qtbot.waitUntil(lambda: dlg.guide.done, timeout=30000)
    assert dlg.thumbs.item(0).toolTip().startswith("live frame ") and dlg.thumbs.item(0).toolTip().endswith(
        "(celine.avi)")
    # a photo, even of the same person, is refused while the samples come from the live view
    problems = dlg.add_files([data_dir / "obama2.jpg"])
    assert len(problems) == 1 and "comes from photo files" in problems[0] and len(dlg.samples) == 1
    # the samples match Celine Dion: "No" does not save them as John McCain
    questions = []
    dlg.save(ask=lambda title, text: questions.append(text) or QMessageBox.StandardButton.No)
    assert "match 'Celine Dion'" in questions[0]
    assert not w.pipeline.gallery.has_person("John McCain") and dlg.saved_as is None
    assert w.pipeline.gallery.get_person("Celine Dion").templates == 1
    assert dlg.match_view.isVisibleTo(dlg) and dlg.match_view.pixmap().width() == 2 * 112  # her face beside them
    # the explicit choice: John McCain is someone else
    dlg.save(ask=lambda title, text: QMessageBox.StandardButton.Save)
    assert dlg.saved_as == "John McCain"
    assert w.pipeline.gallery.samples("John McCain")[0].source.startswith("live frame ")


def test_answering_no_to_a_lookalike_saves_nothing(qtbot, window, data_dir):
    w = window(source="9")
    w.pipeline.enroll("Celine Dion", [w.pipeline.main_face(data_dir / "obama.jpg")])
    dlg = w.open_enrolment()
    assert dlg.add_files([data_dir / "obama2.jpg"]) == []
    dlg.name.setText("John McCain")
    dlg.save(ask=lambda title, text: QMessageBox.StandardButton.No)
    assert not w.pipeline.gallery.has_person("John McCain")
    assert w.pipeline.gallery.get_person("Celine Dion").templates == 1


def test_adding_photos_in_the_library_follows_the_same_rules(qtbot, window, data_dir, monkeypatch):
    w = window(source="9")
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    people = w.open_people()
    qtbot.addWidget(people)
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    people._guarded(people.add_samples, "Obama", [data_dir / "biden.jpg"])
    assert "photo biden.jpg is unlike Obama's enrolled samples" in shown[0]
    assert w.pipeline.gallery.get_person("Obama").templates == 1
    people.add_samples("Obama", [data_dir / "obama2.jpg"])
    assert w.pipeline.gallery.get_person("Obama").templates == 2


def test_threshold_slider_changes_the_decision(qtbot, window, data_dir):
    w = window()
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    qtbot.waitUntil(lambda: bool(decided(w, Decision.MATCH)), timeout=30000)
    w.controls.threshold.setValue(100)  # a similarity of 1.0 is needed now
    w.controls.band.setValue(0.0)
    wait_frames(qtbot, w, 2)
    qtbot.waitUntil(lambda: bool(w.view.faces) and len(decided(w, Decision.UNKNOWN)) == len(w.view.faces), timeout=30000)
    w.reset_thresholds()
    assert w.controls.threshold.value() == round(w.pipeline.embedder.thresholds.match * 100)
    assert w.keeper.layers.path.exists()


def test_people_grid_rename_delete_merge_search(qtbot, window, data_dir):
    w = window()
    for name, photo in (("Ann", "obama.jpg"), ("Bob", "biden.jpg")):
        w.pipeline.enroll(name, [w.pipeline.main_face(data_dir / photo)])
    # Ann again under a second name (an explicit choice), to merge below
    w.pipeline.enroll("Cid", [w.pipeline.main_face(data_dir / "obama2.jpg")], despite_match=True)
    dlg = w.open_people()
    qtbot.addWidget(dlg)
    assert dlg.names() == ["Ann", "Bob", "Cid"]
    assert not dlg.model.data(dlg.model.index(0), 1).isNull()  # a thumbnail (DecorationRole)
    assert "1 sample" in dlg.model.data(dlg.model.index(0))
    w.pipeline.gallery.rename("Bob", "Robert")
    w.pipeline.gallery.merge("Cid", "Ann")
    dlg.reload()
    assert dlg.names() == ["Ann", "Robert"]
    dlg.search.setText("rob")
    assert dlg.names() == ["Ann", "Robert"]  # debounced: not on the keystroke itself
    qtbot.waitUntil(lambda: dlg.names() == ["Robert"], timeout=2000)
    dlg.search.setText("")
    dlg.apply_search()
    dlg.add_samples("Ann", [data_dir / "obama_partial_face.jpg"])
    assert w.pipeline.gallery.get_person("Ann").templates == 3


def test_people_grid_decodes_thumbnails_lazily(qtbot, window, data_dir):
    w = window(source=str(data_dir / "missing-source"))
    face = w.pipeline.main_face(data_dir / "obama.jpg")
    rng = np.random.default_rng(0)
    from faceapp.vision.images import encode_crop

    thumb = encode_crop(face.crop)
    for i in range(400):
        e = rng.normal(size=face.embedding.shape).astype(np.float32)
        w.pipeline.gallery.add_templates(f"person {i:04d}", (e / np.linalg.norm(e))[None], model_id=w.pipeline.model_id,
                                         crops=[thumb])
    dlg = w.open_people()
    qtbot.addWidget(dlg)
    qtbot.waitUntil(lambda: dlg.model.thumbnails_decoded > 0, timeout=30000)  # the grid has been drawn
    assert len(dlg.names()) == 400
    assert 0 < dlg.model.thumbnails_decoded < 200  # only what was drawn
    before = dlg.model.thumbnails_decoded
    dlg.search.setText("person 03")
    dlg.apply_search()
    dlg.grid.repaint()
    assert len(dlg.names()) == 100
    assert dlg.model.thumbnails_decoded - before < 100  # a search decodes only what it draws


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
    assert "Matching photos and the people library still work" in w.view.message
    w.photo_mode.match([data_dir / "biden.jpg"])  # the rest of the app still works
    qtbot.waitUntil(lambda: len(w.view.faces) == 1, timeout=30000)
    w.go_live()
    w._make_source = lambda: FlakyCamera(frame, 10_000)
    w.notice.buttons['retry'].click()
    qtbot.waitUntil(lambda: w.worker.frames_processed >= 3 and w.view.message == "", timeout=30000)
    assert w.faces.snapshot(tmp_path / "snap.png").stat().st_size > 1000


def test_missing_camera_offers_a_video_or_photo_folder(qtbot, window):
    w = window(source="9")
    qtbot.waitUntil(lambda: "not available" in w.view.message, timeout=30000)
    assert w.notice.isVisible() and w.notice.buttons['retry'].isVisible()
    assert w.notice.buttons['video'].isVisible() and w.notice.buttons['folder'].isVisible()
    dlg = w.open_enrolment()  # no black preview asking to look at the camera
    assert "add photos" in dlg.guidance.text().lower() and "not available" in dlg.preview.message


def test_empty_gallery_says_add_your_first_person(qtbot, window, data_dir):
    w = window()
    qtbot.waitUntil(lambda: w.notice.isVisible(), timeout=10000)
    assert "Add your first person" in w.notice.text.text() and w.notice.buttons['enrol'].isVisible()
    w.pipeline.enroll("Ann", [w.pipeline.main_face(data_dir / "obama.jpg")])
    w.refresh_gallery_size()
    assert not w.notice.isVisible()


def test_a_gallery_of_another_model_is_rebuilt_with_a_progress_bar(qtbot, window, tmp_path, data_dir, rotated_model):
    from faceapp.pipeline import Pipeline

    with Pipeline(Settings(gallery=tmp_path / "gallery")) as old:
        old.enroll("Ann", [old.main_face(data_dir / "obama.jpg")])
    w = window(model=rotated_model)
    qtbot.waitUntil(lambda: w.notice.buttons['reembed'].isVisible(), timeout=10000)
    assert "another face model" in w.notice.text.text()
    dlg = w.rebuild_gallery()
    qtbot.waitUntil(lambda: not dlg.isVisible() and dlg.job.report is not None, timeout=60000)
    assert dlg.maximum() >= 1 and "Gallery rebuilt for the new model: 1 face(s)" in dlg.summary()
    assert w.pipeline.gallery.store.state().model_id == w.pipeline.model_id
    assert not w.notice.buttons['reembed'].isVisible()
    named = w.pipeline.match_image(data_dir / "obama2.jpg").faces[0].match
    assert named.person == "Ann"


def test_the_app_opens_a_postgresql_gallery(qtbot, frames, tmp_path, data_dir, pg_dsn):
    from faceapp.config import gallery_arg
    from faceapp.gui.start import parse_args
    from faceapp.pipeline import Pipeline

    assert parse_args(["--gallery", pg_dsn]).gallery == pg_dsn  # an address stays text, not a Path
    with Pipeline(Settings(gallery=pg_dsn)) as desk:  # enrolled at another device
        desk.enroll("Ann", [desk.main_face(data_dir / "obama.jpg")])
    w = MainWindow(Settings(gallery=gallery_arg(pg_dsn)), source=str(frames), settings_path=tmp_path / "settings.toml")
    qtbot.addWidget(w)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.gallery_label.text() == "gallery: 1 people", timeout=20000)
        assert w.pipeline.match_image(data_dir / "obama2.jpg").faces[0].match.person == "Ann"
    finally:
        w.close()


def test_people_show_last_seen_and_history_from_a_shared_gallery(qtbot, data_dir, pg_dsn):
    import time as _time

    from PySide6.QtCore import Qt

    from faceapp.gallery.pg_store import EventRecord
    from faceapp.gui.history import HistoryDialog
    from faceapp.gui.people import PeopleDialog
    from faceapp.pipeline import Pipeline

    with Pipeline(Settings(gallery=pg_dsn)) as pipe:
        pipe.enroll("Ann", [pipe.main_face(data_dir / "obama.jpg")])
        pipe.enroll("Bob", [pipe.main_face(data_dir / "biden.jpg")])
        t = _time.time()
        pipe.gallery.store.add_events([
            EventRecord(t - 60, "Ann", "match", 0.7, 1, None, "camera 0", "door"),
            EventRecord(t - 30, None, "unknown", 0.1, 2, None, "camera 0", "door"),
            EventRecord(t, "Ann", "match", 0.72, 3, None, "camera 0", "door"),
        ], retention_days=30)
        dlg = PeopleDialog(pipe)
        qtbot.addWidget(dlg)
        rows = {dlg.model.person(r).name: r for r in range(dlg.model.rowCount())}
        ann = dlg.model.data(dlg.model.index(rows["Ann"]), Qt.ItemDataRole.DisplayRole)
        bob = dlg.model.data(dlg.model.index(rows["Bob"]), Qt.ItemDataRole.DisplayRole)
        assert "seen never" not in ann and "seen 20" in ann and "seen never" in bob
        everyone = HistoryDialog(pipe)
        qtbot.addWidget(everyone)
        assert everyone.table.rowCount() == 3 and everyone.table.item(0, 1).text() == "Ann"
        assert everyone.table.item(1, 1).text() == "unknown"
        only_ann = HistoryDialog(pipe, "Ann")
        qtbot.addWidget(only_ann)
        assert only_ann.table.rowCount() == 2


def test_a_folder_gallery_has_a_history_button(qtbot, window):
    from faceapp.gui.people import PeopleDialog

    w = window()
    dlg = PeopleDialog(w.pipeline)
    qtbot.addWidget(dlg)
    assert dlg.model.seen == {}  # a history, empty until something is recorded
    assert any(b.isEnabled() for b in dlg.findChildren(type(w.notice.buttons['retry'])) if b.text() == "History...")


def test_settings_switch_gallery(qtbot, window, tmp_path, data_dir):
    w = window()
    assert w.apply_settings({"gallery": tmp_path / "other"})
    w.pipeline.enroll("X", [w.pipeline.main_face(data_dir / "biden.jpg")])
    w.refresh_gallery_size()
    assert w.gallery_label.text() == "gallery: 1 people"
    assert "other" in (tmp_path / "settings.toml").read_text()
    assert np.isfinite(float(w.controls.threshold.value()))


def test_one_off_flags_are_not_saved_and_only_the_touched_value_is(qtbot, window, tmp_path):
    w = window(provider="cpu")  # this run's --gallery and --provider
    w.controls.threshold.setValue(61)
    w.keeper.save_pending()
    saved = load_settings(tmp_path / "settings.toml")
    assert saved.threshold == 0.61
    assert saved.gallery is None and saved.provider == "auto"  # not the one-off values
    assert saved.uncertain_band is None  # untouched: stays the model's recommendation
    w.reset_thresholds()
    assert load_settings(tmp_path / "settings.toml").threshold is None


def test_a_bad_model_is_refused_before_saving_in_the_apps_words(qtbot, window, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    (tmp_path / "settings.toml").write_text("threshold = 0.5\n")
    w = window()
    old = w.pipeline
    assert not w.apply_settings({"model": tmp_path / "nope.onnx"})
    assert (tmp_path / "settings.toml").read_text() == "threshold = 0.5\n"
    assert shown and "--" not in shown[0] and "Settings" in shown[0]
    assert w.pipeline is old and w.pipeline.embedder is not None  # the old pipeline is still in use


class BrokenFolder(FrameSource):
    """A folder source whose next image is a truncated JPEG."""

    name = "broken folder"

    def __init__(self, frame, good=2):
        self.frame, self.left = frame, good

    def read(self):
        time.sleep(0.01)
        if self.left <= 0:
            raise ImageError("frame.jpg is damaged or truncated; re-save it or remove it")
        self.left -= 1
        return self.frame


def test_every_error_in_capture_or_processing_reaches_the_view(qtbot, window, data_dir, monkeypatch):
    frame = load_image(data_dir / "obama.jpg")
    w = window()
    w._make_source = lambda: BrokenFolder(frame)
    w.start_source()
    qtbot.waitUntil(lambda: "truncated" in w.view.message, timeout=30000)
    assert w.notice.buttons['retry'].isVisible()
    qtbot.waitUntil(lambda: not w.worker.running, timeout=5000)  # the loop ended, no frozen frame
    # an exception that is not ours
    calls = {"n": 0}
    real = w.pipeline.track_frame

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("shape mismatch in a frame")
        return real(*a, **k)

    monkeypatch.setattr(w.pipeline, "track_frame", flaky)
    w._make_source = lambda: BrokenFolder(frame, 10_000)
    w.notice.buttons['retry'].click()
    qtbot.waitUntil(lambda: "shape mismatch" in w.view.message, timeout=30000)
    assert "unexpected error" in w.view.message and w.notice.buttons['retry'].isVisible()
    w.notice.buttons['retry'].click()
    qtbot.waitUntil(lambda: w.worker.frames_processed >= 2 and w.view.message == "", timeout=30000)


class SlowCamera(FrameSource):
    """Blocks in ``read`` for longer than the old 5 s stop timeout."""

    name = "slow camera"

    def __init__(self, frame, block=5.5):
        self.frame, self.block, self.reading = frame, block, threading.Event()

    def read(self):
        self.reading.set()
        time.sleep(self.block)
        return self.frame


def test_stop_always_joins_the_worker_before_the_pipeline_closes(qtbot, window, data_dir):
    frame = load_image(data_dir / "obama.jpg")
    w = window()
    cam = SlowCamera(frame)
    w._make_source = lambda: cam
    w.start_source()
    assert cam.reading.wait(30)
    worker = w.worker
    thread = worker._thread
    w.stop_source()
    assert not thread.is_alive()


def test_photo_mode_runs_in_the_background_and_stays_until_back_to_live(qtbot, window, data_dir):
    w = window()
    wait_frames(qtbot, w)
    w.photo_mode.match([data_dir / "biden.jpg"])
    assert w.mode == "photo" and w.busy.isVisible()  # busy while the photo is matched off the GUI thread
    qtbot.waitUntil(lambda: not w.busy.isVisible(), timeout=30000)
    assert len(w.view.faces) == 1 and "1 face" in w.photo_mode.label.text()
    shown = w.view.faces[0]
    qtbot.wait(2500)  # live frames must not replace the photo
    assert w.view.faces[0] is shown and w.photo_mode.bar.isVisible()
    w.go_live()
    assert w.mode == "live" and not w.photo_mode.bar.isVisible()
    wait_frames(qtbot, w, 2)


def test_photo_folder_steps_through_results_and_skips_bad_files(qtbot, window, data_dir, tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(data_dir / "obama.jpg", d / "a.jpg")
    (d / "b.jpg").write_bytes((data_dir / "biden.jpg").read_bytes()[:500])  # truncated
    shutil.copy(data_dir / "biden.jpg", d / "c.jpg")
    w = window()
    w.photo_mode.match([d])
    qtbot.waitUntil(lambda: not w.busy.isVisible(), timeout=60000)
    assert len(w.photo_mode.results) == 3 and isinstance(w.photo_mode.results[1], str)
    w.photo_mode.next_button.click()
    assert "not usable" in w.photo_mode.label.text() and w.view.message
    w.photo_mode.next_button.click()
    assert len(w.view.faces) == 1 and "Photo 3 of 3" in w.photo_mode.label.text()


def test_source_picker_shows_the_real_source(qtbot, window, frames, tmp_path):
    w = window(source="9")
    kinds = [w.source.picker.itemData(i) for i in range(w.source.picker.count())]
    assert "video" in kinds and "folder" in kinds
    w.use_source(str(frames))
    qtbot.waitUntil(lambda: w.source.name.text() == "frames", timeout=30000)
    assert w.source.picker.currentText() == "frames (folder)"  # not "Camera 0" while a folder plays
    wait_frames(qtbot, w)
    assert load_settings(tmp_path / "settings.toml").camera_index == 0  # a file source is not saved


def test_enrolment_box_is_green_only_when_a_sample_is_taken(qtbot, window, data_dir):
    from faceapp.gui.widgets import COLOURS

    w = window(source="9")
    dlg = w.open_enrolment()
    turned = w.pipeline.main_face(data_dir / "obama2.jpg")  # turned: not the frontal pose asked first
    frame = load_image(data_dir / "obama2.jpg")
    dlg.capture.click()
    dlg.offer(frame, [turned], "Camera 9")
    if dlg.guide.samples:  # a pose still missing is accepted in any order
        assert dlg.preview._boxes[0][2] == COLOURS[Decision.MATCH]
        dlg.offer(frame, [turned], "Camera 9")  # the same pose again is not
    box, text, colour = dlg.preview._boxes[0]
    assert colour != COLOURS[Decision.MATCH] and text == dlg.guidance.text()
    assert dlg.progress.value() == len(dlg.guide.samples) and dlg.progress.maximum() == 5


def test_not_x_from_the_live_view(qtbot, window, data_dir):
    w = window()
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    qtbot.waitUntil(lambda: bool(decided(w, Decision.MATCH)), timeout=30000)
    w.source.pause.setChecked(True)
    qtbot.wait(200)
    i = decided(w, Decision.MATCH)[0]
    menu = w.faces.face_menu(i)
    assert any(a.text() == "Not Obama" for a in menu.actions())
    obama = w.pipeline.gallery.get_person("Obama").id
    w.faces.reject(i)
    pids, emb = w.pipeline.gallery.store.negatives(w.pipeline.model_id)
    assert list(pids) == [obama]
    from faceapp.gui.answers import embedded

    assert float(emb[0] @ embedded(w.pipeline, w.view.faces[i].face).embedding) > 0.99


def test_candidates_of_an_uncertain_face(qtbot, window, data_dir):
    w = window(threshold=0.99, uncertain_band=0.5)
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    qtbot.waitUntil(lambda: bool(decided(w, Decision.UNCERTAIN)), timeout=30000)
    w.source.pause.setChecked(True)
    qtbot.wait(200)
    i = decided(w, Decision.UNCERTAIN)[0]
    dlg = w.faces.open_candidates(i)
    qtbot.addWidget(dlg)
    assert "Obama" in dlg.rows
    dlg.rows["Obama"][0].click()  # "It's Obama"
    assert w.pipeline.gallery.get_person("Obama").templates == 2


def test_sample_quality_badges_and_deleting_one_sample(qtbot, window, data_dir):
    import dataclasses

    w = window(source="9")
    good = w.pipeline.main_face(data_dir / "obama.jpg")
    tiny = dataclasses.replace(good, quality=dataclasses.replace(good.quality, face_size=9.0, sharpness=10.0))
    w.pipeline.enroll("Obama", [good, tiny, good])
    dlg = w.open_people().open_person("Obama")
    qtbot.addWidget(dlg)
    assert len(dlg.template_ids()) == 3 and len(dlg.low_quality_ids()) == 1
    assert "1 low quality" in dlg.summary.text()
    dlg.delete_samples(dlg.low_quality_ids())
    assert len(dlg.template_ids()) == 2 and w.pipeline.gallery.get_person("Obama").templates == 2


def test_unknown_faces_inbox_collects_and_names_a_group(qtbot, window, tmp_path):
    w = window(inbox=True)
    qtbot.waitUntil(lambda: w.inbox is not None and len(w.inbox.groups()) >= 1, timeout=30000)
    w.source.pause.setChecked(True)
    assert oct((tmp_path / "gallery" / "inbox.sqlite3").stat().st_mode & 0o777) == "0o600"
    dlg = w.open_inbox()
    qtbot.addWidget(dlg)
    gid = dlg.group_ids()[0]
    dlg.name_group(gid, "Visitor")
    assert w.pipeline.gallery.get_person("Visitor").templates >= 1
    assert gid not in dlg.group_ids()


def test_the_inbox_is_off_unless_turned_on(qtbot, window, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    w = window()
    assert w.inbox is None and w.open_inbox() is None and "Settings" in shown[0]


def test_painting_many_frames_does_not_leak_none(qtbot, data_dir):
    """PySide6 6.12.0 drops a reference to None on every void call; Python aborts when it reaches 0."""
    if sys.version_info >= (3, 12):
        pytest.skip("None is immortal from Python 3.12 on")
    from faceapp.gui.widgets import COLOURS, VideoView

    view = VideoView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show()
    frame = load_image(data_dir / "obama.jpg")
    boxes = [((10.0 * k, 10.0, 10.0 * k + 50, 60.0), f"face {k}", COLOURS[Decision.MATCH]) for k in range(4)]
    for _ in range(10):
        view.show_boxes(frame, boxes)
        view.grab()
    before = sys.getrefcount(None)
    for i in range(300):
        view.show_boxes(frame, boxes)
        view.show_message("" if i % 2 else "message")
        view.grab()
    lost = before - sys.getrefcount(None)
    assert lost < 100, f"{lost} references to None lost over 300 frames; use a PySide6 version without the leak"


def test_faceapp_without_qt_says_how_to_install_it():
    code = ("import sys; sys.modules['PySide6'] = None; sys.modules['PySide6.QtWidgets'] = None\n"
            "from faceapp.gui import main; raise SystemExit(main([]))")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root)}, timeout=60)
    assert r.returncode == 2
    assert "faceapp[gui]" in r.stderr and "Traceback" not in r.stderr


def test_soak_short_form(qtbot):
    """The soak benchmark (scripts/gui_soak.py runs it for 10 minutes) in a few seconds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from gui_soak import soak

    result = soak(10.0, photo_every=4.0, library_every=4.0)
    # memory growth is judged by the 10-minute run; seconds of it measure the allocator's noise
    assert all(ok for name, ok in result["checks"].items() if name != "library_memory_flat"), result
    assert result["photo_round_trips"] >= 1 and result["frames_shown"] > 10
    assert result["library_rounds"] >= 1 and result["rss_mb_growth_since_first_library_round"] is not None


def test_photo_round_trips_release_their_jobs(qtbot, window, data_dir):
    """Each "Match photos" keeps its photos in memory until "Back to live"; after that they must go."""
    import gc

    from faceapp.gui.worker import PhotoJob

    w = window(source="9")
    for _ in range(4):
        w.photo_mode.match([data_dir / "biden.jpg"])
        qtbot.waitUntil(lambda: not w.busy.isVisible(), timeout=30000)
        w.go_live()
    gc.collect()
    assert sum(isinstance(o, PhotoJob) for o in gc.get_objects()) <= 1


@pytest.mark.postgres
def test_live_view_records_events_in_a_database_gallery(qtbot, tmp_path, frames, data_dir, pg_dsn):
    from faceapp.config import gallery_arg
    from faceapp.gallery.gallery import open_gallery

    w = MainWindow(Settings(gallery=gallery_arg(pg_dsn), record_events=True), source=str(frames),
                   settings_path=tmp_path / "settings.toml")
    qtbot.addWidget(w)
    w.show()
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    with open_gallery(pg_dsn) as g:
        qtbot.waitUntil(lambda: any(e.person == "Obama" and e.decision == "match" for e in g.store.events()),
                        timeout=30000)
    w.stop_source()


def test_live_view_records_events_in_a_folder_gallery(qtbot, window, data_dir):
    """record_events with a gallery folder: kept in its database, shown as last seen and in History."""
    from PySide6.QtCore import Qt

    from faceapp.gui.history import HistoryDialog
    from faceapp.gui.people import PeopleDialog

    w = window(record_events=True)
    said = []
    w.statusBar().messageChanged.connect(said.append)
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    store = w.pipeline.gallery.store
    qtbot.waitUntil(lambda: any(e.person == "Obama" and e.decision == "match" for e in store.events()), timeout=30000)
    assert not any("record_events is ignored" in m for m in said)
    people = PeopleDialog(w.pipeline)
    qtbot.addWidget(people)
    shown = people.model.data(people.model.index(0), Qt.ItemDataRole.DisplayRole)
    assert "seen never" not in shown and "seen 20" in shown
    history = HistoryDialog(w.pipeline, "Obama")
    qtbot.addWidget(history)
    assert history.table.rowCount() >= 1 and history.table.item(0, 1).text() == "Obama"
    w.stop_source()


def test_a_video_file_plays_at_its_own_rate_and_the_label_says_what_it_counts(qtbot, window, tmp_path, data_dir):
    import cv2

    from faceapp.gui.worker import rate_text

    path = tmp_path / "v.avi"
    bgr = np.ascontiguousarray(load_image(data_dir / "obama2.jpg")[:, :, ::-1])
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, bgr.shape[1::-1])
    for _ in range(5):
        out.write(bgr)
    out.release()
    w = window(source=str(path))
    wait_frames(qtbot, w, 2)
    assert w.last.source_fps == 10.0
    assert w.fps_label.text().endswith("fps analysed · source plays 10 fps")
    assert rate_text(12.34, None) == "12.3 fps analysed"  # a camera: as fast as it sends frames


def test_closed_dialogs_are_released(qtbot, window, data_dir):
    """Opening and closing People and a person's samples many times leaves none of them alive."""
    import gc

    from PySide6.QtWidgets import QDialog

    from faceapp.gui.people import PeopleDialog
    from faceapp.gui.recent import RecentDialog
    from faceapp.gui.samples import SamplesDialog

    w = window(source="9")
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    for _ in range(5):
        people = w.open_people()
        people.open_person("Obama").close()
        people.close()
        w.open_recent().close()
    del people
    qtbot.waitUntil(lambda: not w.findChildren(QDialog), timeout=10000)  # deleted when the event loop gets to it
    gc.collect()
    assert sum(isinstance(o, PeopleDialog | SamplesDialog | RecentDialog) for o in gc.get_objects()) == 0


@pytest.mark.parametrize("text, key", [("threshold = 1.7\n", "threshold"), ('threshold = "high"\n', "threshold"),
                                       ("threshold = [[[\n", None)])
def test_a_bad_settings_file_opens_the_window_with_the_problem_and_a_fix(qtbot, tmp_path, text, key):
    from faceapp.gui.start import parse_args, startup_layers

    path = tmp_path / "settings.toml"
    path.write_text(text)
    layers = startup_layers(parse_args(["--config", str(path), "--gallery", str(tmp_path / "g")]))
    w = MainWindow(layers, source="9")
    qtbot.addWidget(w)
    w.show()
    assert w.notice.isVisible() and w.notice.buttons['fix_setting'].isVisible()
    assert "threshold" in w.notice.text.text() or key is None
    assert w.settings.threshold is None  # the model's default is in force
    w.notice.buttons['fix_setting'].click()
    assert not w.notice.buttons['fix_setting'].isVisible()
    assert "threshold" not in (path.read_text() if path.exists() else "")
    assert (tmp_path / "settings.toml.bad").exists() == (key is None)


def test_threshold_widgets_show_the_value_in_force(qtbot, tmp_path, window):
    """Every saved value in range is shown as it is, and the widgets cannot hold one out of range."""
    from faceapp.config import LIMITS

    w = window(source="9", uncertain_band=LIMITS["uncertain_band"][1], min_face_size=LIMITS["min_face_size"][1],
               min_detection_confidence=LIMITS["min_detection_confidence"][0], threshold=LIMITS["threshold"][1])
    assert w.controls.band.value() == pytest.approx(w.settings.uncertain_band)
    assert w.controls.min_face.value() == w.settings.min_face_size
    assert w.controls.confidence.value() == pytest.approx(w.settings.min_detection_confidence)
    assert w.controls.threshold.value() == round(100 * w.settings.threshold)
    assert (w.controls.band.minimum(), w.controls.band.maximum()) == pytest.approx(LIMITS["uncertain_band"])


def test_the_notice_offers_the_most_pressing_fix_first():
    from faceapp.config import SettingProblem
    from faceapp.gui.notice import notice_for

    problem = SettingProblem(Path("s.toml"), "threshold", "s.toml: threshold must be between 0 and 1, not 1.7")
    everything = dict(stale=True, source_error="camera 0 is not available", camera=True, empty=True)
    assert notice_for(problem=problem, **everything).actions == ("fix_setting",)
    assert notice_for(problem=None, **everything).actions == ("reembed", "enrol", "video", "folder")
    err = notice_for(problem=None, stale=False, source_error="video.mp4 ended", camera=False, empty=False)
    assert err.actions == ("retry",) and "No camera?" not in err.text
    assert notice_for(problem=None, stale=False, source_error=None, camera=True, empty=False).text == ""


def test_damaged_templates_are_listed_by_person_and_repaired_from_the_window(qtbot, tmp_path, frames, data_dir):
    """A flipped bit in a stored template: the window names whose template it is, and Repair embeds it again."""
    import sqlite3

    gallery = tmp_path / "gallery"
    w = MainWindow(Settings(gallery=gallery), source="9", settings_path=tmp_path / "settings.toml")
    qtbot.addWidget(w)
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    w.close()
    con = sqlite3.connect(gallery / "gallery.sqlite3")
    tid, blob = con.execute("SELECT id, embedding FROM templates LIMIT 1").fetchone()
    con.execute("UPDATE templates SET embedding = ? WHERE id = ?", (bytes([blob[0] ^ 1]) + bytes(blob[1:]), tid))
    con.commit()
    con.close()
    w = MainWindow(Settings(gallery=gallery), source="9", settings_path=tmp_path / "settings.toml")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.notice.buttons["repair"].isVisible(), timeout=10000)  # checked once the window is up
    assert w.notice.buttons["repair"].isVisible() and "Obama: 1" in w.notice.text.text()
    w.notice.buttons["repair"].click()
    assert not w.notice.buttons["repair"].isVisible()
    assert w.pipeline.gallery.damaged_templates() == []


def _inbox_face(w, path):
    """Put the main face of a photo into the window's inbox as one unknown sighting."""
    import dataclasses

    from faceapp.vision.images import encode_crop

    face = w.pipeline.main_face(path)
    return w.inbox.add(face.embedding, model_id=w.pipeline.model_id, thumbnail=encode_crop(face.crop),
                       quality=dataclasses.asdict(face.quality))


def test_an_inbox_group_suggests_who_it_looks_like_and_confirms_in_one_click(qtbot, window, data_dir):
    w = window(source="9", inbox=True)
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    w.pipeline.enroll("Biden", [w.pipeline.main_face(data_dir / "biden.jpg")])
    gid = _inbox_face(w, data_dir / "obama2.jpg")
    dlg = w.open_inbox()
    qtbot.addWidget(dlg)
    hint = dlg.suggestions[gid]
    sim = w.pipeline.match_embeddings(w.pipeline.main_face(data_dir / "obama2.jpg").embedding[None])[0]
    assert hint.name == "Obama" and hint.similarity == pytest.approx(sim.candidates[0].similarity, abs=1e-4)
    assert f"looks like Obama ({hint.similarity:.2f})" in dlg.list.item(0).text()
    dlg.list.setCurrentRow(0)
    assert dlg.confirm_button.isEnabled() and dlg.confirm_button.text() == "It's Obama"
    dlg.confirm_button.click()
    assert w.pipeline.gallery.get_person("Obama").templates == 2 and dlg.group_ids() == []
    assert [p.name for p in w.pipeline.gallery.list_persons()] == ["Biden", "Obama"]


def test_naming_a_group_with_an_enrolled_name_adds_only_after_asking(qtbot, window, data_dir):
    w = window(source="9", inbox=True)
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    gid = _inbox_face(w, data_dir / "obama2.jpg")
    dlg = w.open_inbox()
    qtbot.addWidget(dlg)
    asked = []
    dlg.name_group(gid, "obama", ask=lambda title, text: asked.append(text) or QMessageBox.StandardButton.Cancel)
    assert "already enrolled" in asked[0] and dlg.group_ids() == [gid]
    assert [(p.name, p.templates) for p in w.pipeline.gallery.list_persons()] == [("Obama", 1)]
    dlg.name_group(gid, "obama", ask=lambda title, text: QMessageBox.StandardButton.Yes)
    assert [(p.name, p.templates) for p in w.pipeline.gallery.list_persons()] == [("Obama", 2)]


def test_merge_shows_both_people_and_their_similarity_and_asks(qtbot, window, data_dir):
    from faceapp.recognise.library import person_similarity

    w = window(source="9")
    w.pipeline.enroll("Ann", [w.pipeline.main_face(data_dir / "obama.jpg")])
    w.pipeline.enroll("Bob", [w.pipeline.main_face(data_dir / "biden.jpg")])
    w.pipeline.enroll("Cid", [w.pipeline.main_face(data_dir / "obama2.jpg")], despite_match=True)
    dlg = w.open_people()
    qtbot.addWidget(dlg)
    asked = []

    def no(title, text):
        asked.append(text)
        return QMessageBox.StandardButton.No

    assert dlg.merge("Cid", "Ann", ask=no) is False
    sim = person_similarity(w.pipeline.gallery, "Cid", "Ann", w.pipeline.model_id)
    assert f"Similarity {sim:.2f}: like the same person" in asked[0] and "'Cid' (left) into 'Ann' (right)" in asked[0]
    assert dlg.names() == ["Ann", "Bob", "Cid"]
    dlg.merge("Bob", "Ann", ask=no)
    assert "NOT like the same person" in asked[1]
    assert dlg.merge("Cid", "Ann", ask=lambda title, text: QMessageBox.StandardButton.Yes) is True
    assert dlg.names() == ["Ann", "Bob"] and w.pipeline.gallery.get_person("Ann").templates == 2


def test_a_sample_moves_to_another_person(qtbot, window, data_dir):
    from faceapp.vision.images import encode_crop

    w = window(source="9")
    ann, bob = (w.pipeline.main_face(data_dir / p) for p in ("obama.jpg", "biden.jpg"))
    w.pipeline.enroll("Bob", [w.pipeline.main_face(data_dir / "biden.jpg")])
    # Bob's face filed under Ann by mistake
    w.pipeline.gallery.add_templates("Ann", np.stack([ann.embedding, bob.embedding]), model_id=w.pipeline.model_id,
                                     crops=[encode_crop(ann.crop), encode_crop(bob.crop)],
                                     sources=["photo obama.jpg", "photo biden.jpg"])
    dlg = w.open_people().open_person("Ann")
    qtbot.addWidget(dlg)
    wrong = [s.template_id for s in w.pipeline.gallery.samples("Ann") if s.source == "photo biden.jpg"]
    dlg.move_samples(wrong, "Bob")
    assert len(dlg.template_ids()) == 1
    assert sorted(s.source for s in w.pipeline.gallery.samples("Bob")) == ["photo", "photo biden.jpg"]
    assert w.pipeline.match_embeddings(bob.embedding[None])[0].person == "Bob"


def test_people_view_counts_search_results(qtbot, window, data_dir):
    w = window(source="9")
    for name, photo in (("Ann", "obama.jpg"), ("Bob", "biden.jpg")):
        w.pipeline.enroll(name, [w.pipeline.main_face(data_dir / photo)])
    dlg = w.open_people()
    qtbot.addWidget(dlg)
    assert dlg.count.text() == "2 people"
    dlg.search.setText("bo")
    dlg.apply_search()
    assert dlg.count.text() == "1 of 2 people"
    dlg.search.setText("zz")
    dlg.apply_search()
    assert dlg.count.text() == "0 of 2 people"


def test_a_face_is_named_in_one_click_from_the_live_view_and_a_photo(qtbot, window, data_dir):
    import dataclasses

    w = window()
    qtbot.waitUntil(lambda: bool(decided(w, Decision.UNKNOWN)), timeout=30000)
    w.source.pause.setChecked(True)
    qtbot.wait(200)
    i = decided(w, Decision.UNKNOWN)[0]
    assert "Name this person..." in [a.text() for a in w.faces.face_menu(i).actions()]
    done = w.faces.name_face(i, "Obama", ask=never_asked)
    assert done.person.templates == 1 and w.pipeline.gallery.samples("Obama")[0].source.startswith("live face confirmed")
    shown = photo_result(qtbot, w, data_dir / "biden.jpg")
    (j,) = decided(w, Decision.UNKNOWN)
    assert "Name this person..." in [a.text() for a in w.faces.face_menu(j).actions()]
    w.faces.name_face(j, "Biden", ask=never_asked)
    assert w.pipeline.gallery.samples("Biden")[0].source == f"photo {shown}"
    # an uncertain face offers its closest person in one click
    w.pipeline.settings = dataclasses.replace(w.pipeline.settings, threshold=0.99, uncertain_band=0.5)
    photo_result(qtbot, w, data_dir / "obama2.jpg")
    (k,) = decided(w, Decision.UNCERTAIN)
    assert "This is Obama" in [a.text() for a in w.faces.face_menu(k).actions()]
    w.faces.confirm_face(k, "Obama")
    assert w.pipeline.gallery.get_person("Obama").templates == 2


def never_asked(title, text):
    raise AssertionError(f"unexpected question: {text}")


def photo_result(qtbot, w, path):
    """Match one photo in photo mode and wait until its result is shown; returns the shown source."""
    w.photo_mode.match([path])
    qtbot.waitUntil(lambda: w.mode == "photo" and w.last is not None and path.name in w.last.source
                    and bool(w.view.faces), timeout=30000)
    return w.last.source


def test_recent_recognitions_confirm_or_correct_an_answer(qtbot, window, data_dir):
    w = window()
    w.pipeline.enroll("Obama", [w.pipeline.main_face(data_dir / "obama.jpg")])
    qtbot.waitUntil(lambda: any(e.person == "Obama" for e in w.recent.entries()), timeout=30000)
    w.source.pause.setChecked(True)
    named = next(e for e in w.recent.entries() if e.person == "Obama")
    dlg = w.open_recent()
    qtbot.addWidget(dlg)
    assert w.pipeline.gallery.get_person("Obama").templates == 1  # nothing added without the user
    yes, no = dlg.buttons[named.id]
    assert (yes.text(), no.text()) == ("Yes, Obama", "Not Obama")
    yes.click()
    assert w.pipeline.gallery.get_person("Obama").templates == 2 and named.id not in dlg.buttons
    # the same face seen again on another track, and corrected
    from faceapp.recognise.track import TrackResult
    from faceapp.types import Match

    seen = Match(Decision.MATCH, "Obama", named.similarity)
    again = TrackResult(10_000, named.face.detection.box, named.face, seen, seen, False, 5)
    (entry,) = w.recent.note([again])
    dlg.reload()
    dlg.buttons[entry.id][1].click()
    pids, _ = w.pipeline.gallery.store.negatives(w.pipeline.model_id)
    assert list(pids) == [w.pipeline.gallery.get_person("Obama").id] and entry.id not in dlg.buttons
