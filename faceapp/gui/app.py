"""The main window and the ``faceapp`` entry point."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from faceapp.config import PROVIDERS, Settings, SettingsLayers, gallery_arg
from faceapp.errors import FaceappError, SettingsError
from faceapp.gui.dialogs import EnrolDialog, SettingsDialog
from faceapp.gui.library import CandidatesDialog, InboxDialog, PeopleDialog, reject_face, shown_match
from faceapp.gui.messages import for_gui
from faceapp.gui.reembed import ReembedDialog, needs_reembed
from faceapp.gui.widgets import IMAGE_FILTER, VideoView, error_box
from faceapp.gui.worker import FrameResult, PhotoJob, ProcessingWorker, rate_text
from faceapp.pipeline import Pipeline
from faceapp.recognise.inbox import UnknownInbox, add_unknowns
from faceapp.recognise.track import TrackResult
from faceapp.types import Decision, FaceResult
from faceapp.vision.capture import VIDEO_SUFFIXES, FrameSource, list_cameras, open_source
from faceapp.vision.images import IMAGE_SUFFIXES
from faceapp.watch import EventRecorder, keeps_events

log = logging.getLogger(__name__)
RESOLUTIONS = ["640x480", "1280x720", "1920x1080", "320x240"]
SAVE_DELAY_MS = 400
VIDEO_FILTER = "Videos (" + " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES)) + ")"


def _layers(settings: Settings | SettingsLayers | None, settings_path: Path | None) -> SettingsLayers:
    """Settings handed in by a caller are this run's values, like flags: never saved unless
    the user changes them in the app."""
    if isinstance(settings, SettingsLayers):
        return settings
    base = Settings()
    flags = {} if settings is None else {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)
                                         if getattr(settings, f.name) != getattr(base, f.name)}
    return SettingsLayers(settings_path, flags=flags)


def is_camera(spec: str | None) -> bool:
    return spec is None or spec.isdigit()


class MainWindow(QMainWindow):
    """Live matching view, photo mode, threshold controls, and the way into the library.

    Args:
        settings: the settings layers, or this run's settings (treated as command-line
            values: in force, never saved unless changed in the app).
        source: camera index, video file or image folder; ``None`` = the settings' camera.
        settings_path: the settings file (``None`` = the default file).
    """

    def __init__(self, settings: Settings | SettingsLayers | None = None, source: str | None = None,
                 settings_path: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("faceapp")
        self.resize(1180, 720)
        self.layers = _layers(settings, settings_path)
        self.source_spec = source
        self.pipeline = Pipeline(self.settings, interactive=True)
        self.worker: ProcessingWorker | None = None
        self.photo_job: PhotoJob | None = None
        self.photos: list[FrameResult | str | None] = []
        self.photo_index = 0
        self.mode = "live"
        self.inbox: UnknownInbox | None = None
        self.enrol_dialog: EnrolDialog | None = None
        self.last: FrameResult | None = None
        self.source_error: str | None = None
        self._pending: dict[str, Any] = {}
        self._detector_noted = False
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_pending)
        self._build()
        self._load_models()
        QTimer.singleShot(0, self.start_source)

    @property
    def settings(self) -> Settings:
        """The settings in force: model defaults < saved < this run's flags and changes."""
        return self.layers.effective

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.view = VideoView()
        self.view.faceClicked.connect(self.face_menu)
        # the notice bar: first-run hints and errors, with what to do next
        self.notice = QFrame()
        self.notice.setFrameShape(QFrame.Shape.StyledPanel)
        self.notice_text = QLabel()
        self.notice_text.setWordWrap(True)
        self.retry = QPushButton("Retry")
        self.retry.clicked.connect(self.start_source)
        self.offer_video = QPushButton("Open a video file...")
        self.offer_video.clicked.connect(self.choose_video)
        self.offer_folder = QPushButton("Open a photo folder...")
        self.offer_folder.clicked.connect(self.choose_folder)
        self.offer_enrol = QPushButton("Add your first person...")
        self.offer_enrol.clicked.connect(self.open_enrolment)
        self.offer_reembed = QPushButton("Rebuild gallery for this model")
        self.offer_reembed.clicked.connect(self.rebuild_gallery)
        nlay = QHBoxLayout(self.notice)
        nlay.addWidget(self.notice_text, 1)
        for b in (self.offer_reembed, self.offer_enrol, self.offer_video, self.offer_folder, self.retry):
            nlay.addWidget(b)
        # photo mode bar
        self.photo_bar = QFrame()
        self.photo_label = QLabel()
        self.prev_photo = QPushButton("< Previous")
        self.prev_photo.clicked.connect(lambda: self.show_photo(self.photo_index - 1))
        self.next_photo = QPushButton("Next >")
        self.next_photo.clicked.connect(lambda: self.show_photo(self.photo_index + 1))
        self.back_to_live = QPushButton("Back to live")
        self.back_to_live.clicked.connect(self.go_live)
        play = QHBoxLayout(self.photo_bar)
        play.addWidget(self.photo_label, 1)
        for b in (self.prev_photo, self.next_photo, self.back_to_live):
            play.addWidget(b)
        left = QVBoxLayout()
        left.addWidget(self.notice)
        left.addWidget(self.photo_bar)
        left.addWidget(self.view, 1)

        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold_label = QLabel()
        self.band = QDoubleSpinBox()
        self.band.setRange(0.0, 0.5)
        self.band.setSingleStep(0.01)
        self.min_face = QSpinBox()
        self.min_face.setRange(0, 500)
        self.min_face.setSuffix(" px")
        self.confidence = QDoubleSpinBox()
        self.confidence.setRange(0.05, 1.0)
        self.confidence.setSingleStep(0.05)
        reset = QPushButton("Reset to model defaults")
        reset.clicked.connect(self.reset_thresholds)
        self.threshold.valueChanged.connect(lambda v: self._changed(threshold=v / 100.0))
        self.band.valueChanged.connect(lambda v: self._changed(uncertain_band=float(v)))
        self.min_face.valueChanged.connect(lambda v: self._changed(min_face_size=float(v)))
        self.confidence.valueChanged.connect(lambda v: self._changed(min_detection_confidence=float(v)))
        tform = QFormLayout()
        tform.addRow("Match threshold", self.threshold)
        tform.addRow("", self.threshold_label)
        tform.addRow("Uncertain band", self.band)
        tform.addRow("Min face size", self.min_face)
        tform.addRow("Detection confidence", self.confidence)
        tform.addRow(reset)
        tbox = QGroupBox("Thresholds")
        tbox.setLayout(tform)

        self.source_picker = QComboBox()
        self._fill_source_picker()
        self.resolution = QComboBox()
        self.resolution.addItems(RESOLUTIONS)
        self.resolution.setCurrentText(f"{self.settings.camera_width}x{self.settings.camera_height}")
        self.open_source_button = QPushButton("Open")
        self.open_source_button.clicked.connect(self.open_picked_source)
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.pause.toggled.connect(self.set_paused)
        snapshot = QPushButton("Snapshot...")
        snapshot.clicked.connect(self.snapshot_dialog)
        self.source_name = QLabel()
        self.source_name.setWordWrap(True)
        cform = QFormLayout()
        cform.addRow("Source", self.source_picker)
        cform.addRow("Resolution", self.resolution)
        cform.addRow("Now", self.source_name)
        row = QHBoxLayout()
        for b in (self.open_source_button, self.pause, snapshot):
            row.addWidget(b)
        cform.addRow(row)
        cbox = QGroupBox("Source")
        cbox.setLayout(cform)

        actions = QVBoxLayout()
        self.inbox_button = QPushButton("Unknown faces...")
        for text, slot in (("Match photos...", self.match_photo_dialog), ("Add person...", self.open_enrolment),
                           ("People...", self.open_people), ("Unknown faces...", self.open_inbox),
                           ("Settings...", self.open_settings)):
            b = self.inbox_button if text == "Unknown faces..." else QPushButton(text)
            b.clicked.connect(slot)
            actions.addWidget(b)
        side = QVBoxLayout()
        side.addWidget(cbox)
        side.addWidget(tbox)
        side.addLayout(actions)
        side.addStretch(1)
        panel = QWidget()
        panel.setLayout(side)
        panel.setFixedWidth(340)
        central = QWidget()
        lay = QHBoxLayout(central)
        lay.addLayout(left, 1)
        lay.addWidget(panel)
        self.setCentralWidget(central)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.mode_label = QLabel("live")
        self.fps_label = QLabel("-- fps")
        self.latency_label = QLabel("-- ms")
        self.provider_label = QLabel("provider: --")
        self.gallery_label = QLabel("gallery: --")
        for w in (self.busy, self.mode_label, self.fps_label, self.latency_label, self.provider_label, self.gallery_label):
            self.statusBar().addPermanentWidget(w)
        self.photo_bar.setVisible(False)
        self.notice.setVisible(False)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut("Ctrl+Q")
        quit_action.triggered.connect(self.close)
        self.addAction(quit_action)

    def _fill_source_picker(self) -> None:
        self.source_picker.clear()
        for cam in list_cameras():
            self.source_picker.addItem(f"{cam.name} (camera {cam.index})", str(cam.index))
        if self.source_picker.count() == 0:
            self.source_picker.addItem("Camera 0 (none found)", "0")
        self.source_picker.addItem("Video file...", "video")
        self.source_picker.addItem("Photo folder...", "folder")
        i = self.source_picker.findData(str(self.settings.camera_index))
        if i >= 0:
            self.source_picker.setCurrentIndex(i)

    def _load_models(self) -> None:
        try:
            emb = self.pipeline.embedder
            self.provider_label.setText(f"runtime: {emb.runtime_name}")
            self.provider_label.setToolTip(f"embedder: {emb.provider_note}")
            self._detector_noted = False  # the detector loads with the first frame; its runtime is added then
            self._sync_controls()
            self._open_inbox()
            self.refresh_gallery_size()
        except FaceappError as exc:
            self.view.show_message(for_gui(exc))
            QTimer.singleShot(0, lambda e=exc: error_box(self, e))

    def _open_inbox(self) -> None:
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None
        s = self.settings
        if s.inbox:
            self.inbox = UnknownInbox(s.gallery_dir(), retention_days=s.inbox_retention_days,
                                      join_threshold=self.pipeline.thresholds().match)
        self.inbox_button.setEnabled(True)
        self.inbox_button.setToolTip("" if s.inbox else "Off: turn it on in Settings")

    def _sync_controls(self) -> None:
        thr = self.pipeline.thresholds()
        widgets = (self.threshold, self.band, self.min_face, self.confidence)
        for w in widgets:
            w.blockSignals(True)
        self.threshold.setValue(round(thr.match * 100))
        self.band.setValue(thr.uncertain_band)
        self.min_face.setValue(int(self.settings.min_face_size))
        self.confidence.setValue(self.settings.min_detection_confidence)
        for w in widgets:
            w.blockSignals(False)
        self._show_threshold(thr.match)

    def _show_threshold(self, value: float) -> None:
        self.threshold_label.setText(f"{value:.2f} (model default {self.pipeline.embedder.thresholds.match:.2f})")

    # ------------------------------------------------------------------ settings
    def _changed(self, **change: Any) -> None:
        """A control moved: in force now, saved (only this key) once the user stops moving it."""
        self._pending.update(change)
        self.pipeline.settings = dataclasses.replace(self.pipeline.settings, **change)  # the worker's next frame
        if "threshold" in change:
            self._show_threshold(change["threshold"])
        self._save_timer.start()

    def save_pending(self) -> None:
        """Save what the user changed in the controls (and nothing else)."""
        self._save_timer.stop()
        changes, self._pending = self._pending, {}
        if changes:
            self.change_settings(**changes)

    def change_settings(self, **changes: Any) -> bool:
        """Validate and save settings the user changed; say why in the status bar when refused."""
        try:
            self.layers.change(**changes)
        except (SettingsError, OSError) as exc:
            self.statusBar().showMessage(f"settings not saved: {for_gui(exc)}", 8000)
            return False
        self.pipeline.settings = self.settings
        return True

    def reset_thresholds(self) -> None:
        self._pending.clear()
        self.change_settings(threshold=None, uncertain_band=None, min_face_size=None, min_detection_confidence=None)
        self._sync_controls()

    # ------------------------------------------------------------------ source
    def _make_source(self) -> FrameSource:
        s = self.settings
        spec = self.source_spec if self.source_spec is not None else str(s.camera_index)
        return open_source(spec, s.camera_width, s.camera_height, folder_fps=s.folder_fps)

    def start_source(self) -> None:
        """(Re)start the live view on the current source."""
        self.stop_source()
        self.source_error = None
        self.view.show_message("starting ...")
        self.worker = ProcessingWorker(self.pipeline, self._make_source, on_result=self._to_inbox,
                                       record=self._event_recorder())
        self.worker.frameReady.connect(self._on_frame)
        self.worker.failed.connect(self._on_failed)
        self.worker.sourceOpened.connect(self._on_opened)
        self.worker.set_paused(self.pause.isChecked() or self.mode == "photo")
        self.worker.set_embed_all(self.enrol_dialog is not None)
        self.worker.start()
        self._update_notice()

    def stop_source(self) -> None:
        """Stop the live view; returns only when its thread has ended."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def _event_recorder(self) -> EventRecorder | None:
        """The gallery's event recorder when ``record_events`` is on and the gallery keeps events."""
        if not self.settings.record_events:
            return None
        store = self.pipeline.gallery.store
        if not keeps_events(store):
            self.statusBar().showMessage("record_events is ignored: only a PostgreSQL gallery keeps events", 10000)
            return None
        return EventRecorder(store, self.settings.event_retention_days)

    def _to_inbox(self, faces: Sequence[FaceResult | TrackResult]) -> None:
        if self.inbox is not None:
            add_unknowns(self.inbox, faces, model_id=self.pipeline.model_id)

    def use_source(self, spec: str) -> None:
        """Switch the live view to a camera index, video file or image folder (this run only)."""
        self.source_spec = spec
        if self.mode == "photo":
            self.go_live()
        self.start_source()

    def use_camera(self, index: int, width: int | None = None, height: int | None = None) -> None:
        """Switch to a camera; the choice is saved as the default camera."""
        s = self.settings
        self.change_settings(camera_index=int(index), camera_width=width or s.camera_width,
                             camera_height=height or s.camera_height)
        self.use_source(str(index))

    def open_picked_source(self) -> None:
        kind = self.source_picker.currentData()
        if kind == "video":
            self.choose_video()
        elif kind == "folder":
            self.choose_folder()
        elif kind.isdigit():
            w, h = (int(x) for x in self.resolution.currentText().split("x"))
            self.use_camera(int(kind), w, h)
        else:
            self.use_source(kind)

    def choose_video(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Play a video file", "", VIDEO_FILTER)
        if f:
            self.use_source(f)

    def choose_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Use a folder of photos as the source")
        if d:
            self.use_source(d)

    def set_paused(self, paused: bool) -> None:
        self.pause.setText("Resume" if paused else "Pause")
        if self.worker is not None:
            self.worker.set_paused(paused or self.mode == "photo")

    def _on_opened(self, name: str) -> None:
        if self.sender() is not self.worker:  # from a worker stopped since
            return
        self.source_name.setText(name)
        spec = self.source_spec
        if spec is not None and not is_camera(spec):  # a file or folder: shown (and re-openable) in the picker
            i = self.source_picker.findData(spec)
            if i < 0:
                self.source_picker.insertItem(0, f"{Path(spec).name} ({'folder' if Path(spec).is_dir() else 'video'})", spec)
                i = 0
            self.source_picker.setCurrentIndex(i)
        self.statusBar().showMessage(f"source: {name}", 3000)

    def _on_frame(self) -> None:
        if self.worker is None:
            return
        item = self.worker.take()
        if item is None or self.mode != "live":
            return
        self.last = item
        if not self._detector_noted and self.pipeline.detector_note:
            self._detector_noted = True
            self.provider_label.setToolTip(f"{self.provider_label.toolTip()}\ndetector: {self.pipeline.detector_note}")
        self.view.show_frame(item.frame, item.faces)
        self.fps_label.setText(rate_text(item.fps, item.source_fps))
        self.latency_label.setText(f"{item.latency_ms:.0f} ms/frame")
        if self.enrol_dialog is not None:
            faces = [fr.face for fr in item.faces]
            if all(f.embedding is not None for f in faces):
                self.enrol_dialog.offer(item.frame, faces)

    def _on_failed(self, message: str) -> None:
        if self.sender() is not self.worker:  # from a worker stopped since (e.g. before a Retry)
            return
        self.source_error = message
        self.fps_label.setText("-- fps")
        if self.mode == "live":
            self.view.show_message(f"{message}\n\nMatching photos and the people library still work.")
        self.statusBar().showMessage(message, 10000)
        if self.enrol_dialog is not None:
            self.enrol_dialog.no_camera(message)
        self._update_notice()

    def _update_notice(self) -> None:
        """What to do next: after an error, Retry (and for a camera, a video or photo folder
        instead); with an empty gallery, add the first person."""
        empty = self._gallery_size() == 0
        err = self.source_error
        stale = self._needs_reembed()
        if stale:
            text = ("Your gallery was made with another face model. Rebuild it for this model: the "
                    "stored faces are embedded again, and nobody has to be enrolled again.")
        elif err is not None:
            text = f"{err}"
            if is_camera(self.source_spec):
                text += "\nNo camera? Open a video file or a folder of photos instead."
        elif empty:
            text = "Your gallery is empty. Add your first person: their face is then named in the live view."
        else:
            text = ""
        self.notice_text.setText(text)
        self.offer_reembed.setVisible(stale)
        self.retry.setVisible(err is not None and not stale)
        self.offer_video.setVisible(err is not None and is_camera(self.source_spec))
        self.offer_folder.setVisible(err is not None and is_camera(self.source_spec))
        self.offer_enrol.setVisible(empty)
        self.notice.setVisible(bool(text))

    # ------------------------------------------------------------------ photo mode
    def match_photos(self, paths: list[Path]) -> None:
        """Photo mode: match photos in the background; the results stay until "Back to live"."""
        if self.photo_job is not None:
            self.photo_job.stop()
        paths = [Path(p) for p in paths]
        if len(paths) == 1 and paths[0].is_dir():
            paths = sorted(p for p in paths[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            error_box(self, "there are no photos to match in that folder")
            return
        self.mode = "photo"
        if self.worker is not None:
            self.worker.set_paused(True)
        self.photos = [None] * len(paths)
        self.photo_index = 0
        self.photo_bar.setVisible(True)
        self.mode_label.setText("photo mode")
        self.fps_label.setText("-- fps")
        self.busy.setVisible(True)
        self.view.show_message(f"matching {paths[0].name} ...")
        self._show_photo_label()
        job = PhotoJob(self.pipeline, paths)
        job.photoReady.connect(self._on_photo)
        job.photoFailed.connect(self._on_photo_failed)
        job.finished.connect(self._on_photos_done)
        job.failed.connect(self._on_photos_failed)
        self.photo_job = job
        job.start()

    def match_photo(self, path: Path) -> None:
        """Photo mode for one photo (see :meth:`match_photos`)."""
        self.match_photos([Path(path)])

    def _on_photo(self, i: int) -> None:
        if self.photo_job is None or self.sender() is not self.photo_job:
            return
        self.photos[i] = self.photo_job.results[i]
        if i == self.photo_index:
            self.show_photo(i)
        self._show_photo_label()

    def _on_photo_failed(self, i: int, message: str) -> None:
        if self.sender() is not self.photo_job:
            return
        self.photos[i] = message
        if i == self.photo_index:
            self.show_photo(i)
        self._show_photo_label()

    def _on_photos_done(self) -> None:
        if self.sender() is self.photo_job:
            self.busy.setVisible(False)
            self._show_photo_label()

    def _on_photos_failed(self, message: str) -> None:
        if self.sender() is self.photo_job:
            self.busy.setVisible(False)
            self.view.show_message(f"{message}\n\nPress Back to live, or match other photos.")

    def _show_photo_label(self) -> None:
        if self.photo_job is None:
            return
        n = len(self.photos)
        done = sum(p is not None for p in self.photos)
        item = self.photos[self.photo_index] if self.photos else None
        name = self.photo_job.paths[self.photo_index].name if n else ""
        if isinstance(item, FrameResult):
            k = len(item.faces)
            what = f"{k} face(s)" if k else "no face found"
        elif isinstance(item, str):
            what = "not usable"
        else:
            what = "matching ..."
        progress = "" if done == n else f" (matched {done} of {n})"
        self.photo_label.setText(f"Photo {self.photo_index + 1} of {n}: {name}: {what}{progress}")
        self.prev_photo.setEnabled(self.photo_index > 0)
        self.next_photo.setEnabled(self.photo_index < n - 1)

    def show_photo(self, i: int) -> None:
        if not self.photos or not 0 <= i < len(self.photos):
            return
        self.photo_index = i
        item = self.photos[i]
        if isinstance(item, FrameResult):
            self.last = item
            self.view.show_frame(item.frame, item.faces)
            self.latency_label.setText(f"{item.latency_ms:.0f} ms/photo")
        elif isinstance(item, str):
            self.view.show_message(item)
        else:
            self.view.show_message("matching ...")
        self._show_photo_label()

    def go_live(self) -> None:
        """Leave photo mode: stop matching photos and resume the live view."""
        if self.photo_job is not None:
            self.photo_job.stop()
            self.photo_job = None
        self.mode = "live"
        self.photos = []
        self.photo_bar.setVisible(False)
        self.busy.setVisible(False)
        self.mode_label.setText("live")
        if self.source_error:
            self.view.show_message(f"{self.source_error}\n\nMatching photos and the people library still work.")
        else:
            self.view.show_message("")
        if self.worker is not None:
            self.worker.set_paused(self.pause.isChecked())

    def match_photo_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Match photos", "", IMAGE_FILTER)
        if files:
            self.match_photos([Path(f) for f in files])

    # ------------------------------------------------------------------ faces in the view
    def face_menu(self, i: int, where: QPointF | None = None) -> QMenu:
        """The menu of a clicked face: "Not X" for a named face, the candidates for any."""
        fr = self.view.faces[i]
        menu = QMenu(self)
        m = shown_match(fr)
        if m is None:
            return menu
        if m.decision is Decision.MATCH and m.person:
            menu.addAction(f"Not {m.person}", lambda: self.reject(i))
        if m.candidates:
            menu.addAction("Who could this be?..." if m.decision is not Decision.MATCH else "Details...",
                           lambda: self.open_candidates(i))
        if where is not None and not menu.isEmpty():
            menu.popup(where.toPoint())
        return menu

    def reject(self, i: int) -> None:
        """"Not X" for face ``i`` of the view: a negative sample for the named person."""
        fr = self.view.faces[i]
        m = shown_match(fr)
        if m is None or m.person is None:
            return
        try:
            reject_face(self.pipeline, fr.face, m.person)
        except FaceappError as exc:
            error_box(self, exc)
            return
        self.statusBar().showMessage(f"noted: that face is not {m.person}", 5000)

    def open_candidates(self, i: int) -> CandidatesDialog:
        dlg = CandidatesDialog(self.pipeline, self.view.faces[i], self)
        dlg.finished.connect(self.refresh_gallery_size)
        dlg.show()
        return dlg

    # ------------------------------------------------------------------ actions
    def snapshot(self, path: Path) -> Path:
        if self.last is None:
            raise FaceappError("no frame to save yet")
        from PIL import Image

        Image.fromarray(self.last.frame).save(path)
        return path

    def snapshot_dialog(self) -> None:
        name = time.strftime("faceapp-%Y%m%d-%H%M%S.png")
        f, _ = QFileDialog.getSaveFileName(self, "Save snapshot", name, "PNG (*.png);;JPEG (*.jpg)")
        if f:
            try:
                self.snapshot(Path(f))
            except (FaceappError, OSError) as exc:
                error_box(self, exc)

    def open_enrolment(self) -> EnrolDialog:
        dlg = EnrolDialog(self.pipeline, self)
        self.enrol_dialog = dlg
        if self.worker is not None:
            self.worker.set_embed_all(True)
        if self.source_error is not None:
            dlg.no_camera(self.source_error)
        dlg.finished.connect(self._enrolment_closed)
        dlg.show()
        return dlg

    def _enrolment_closed(self) -> None:
        self.enrol_dialog = None
        if self.worker is not None:
            self.worker.set_embed_all(False)
        self.refresh_gallery_size()

    def open_people(self) -> PeopleDialog:
        dlg = PeopleDialog(self.pipeline, self)
        dlg.finished.connect(self.refresh_gallery_size)
        dlg.show()
        return dlg

    def open_inbox(self) -> InboxDialog | None:
        if self.inbox is None:
            error_box(self, "the unknown-faces inbox is off; turn it on in Settings (faces are kept only "
                            "for the days you choose)")
            return None
        dlg = InboxDialog(self.pipeline, self.inbox, self)
        dlg.finished.connect(self.refresh_gallery_size)
        dlg.show()
        return dlg

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.settings, self.pipeline, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            try:
                changes = dlg.changes()
            except SettingsError as exc:
                error_box(self, exc)
                return
            self.apply_settings(changes)

    def apply_settings(self, changes: dict[str, Any]) -> bool:
        """Check the changed settings with a new pipeline (model loads, gallery opens); only
        then switch to it and save the changes. Returns whether they were applied."""
        if not changes:
            return True
        try:
            candidate = dataclasses.replace(self.settings, **changes)
            new = Pipeline(candidate, interactive=True)
            try:
                _ = new.embedder, new.gallery, new.model_id
                len(new.gallery)
            except BaseException:
                new.close()
                raise
        except FaceappError as exc:
            error_box(self, f"settings not changed: {for_gui(exc)}")
            return False
        self.stop_source()
        if self.photo_job is not None:
            self.go_live()
        old, self.pipeline = self.pipeline, new
        old.close()
        if not self.change_settings(**changes):
            return False
        self.pipeline.settings = self.settings
        self._load_models()
        self.start_source()
        return True

    def _needs_reembed(self) -> bool:
        try:
            return needs_reembed(self.pipeline)
        except FaceappError:
            return False

    def rebuild_gallery(self) -> ReembedDialog:
        """Re-embed the gallery's stored faces with this model, with a progress bar."""
        self.stop_source()  # matching waits until the gallery speaks this model
        dlg = ReembedDialog(self.pipeline, self)
        dlg.finished.connect(lambda _code: self._rebuilt(dlg))
        dlg.start()
        dlg.open()
        return dlg

    def _rebuilt(self, dlg: ReembedDialog) -> None:
        self.statusBar().showMessage(dlg.summary(), 15000)
        self.source_error = None
        self.refresh_gallery_size()
        self.start_source()

    def _gallery_size(self) -> int | None:
        try:
            return len(self.pipeline.gallery)
        except FaceappError:
            return None

    def refresh_gallery_size(self) -> None:
        n = self._gallery_size()
        self.gallery_label.setText("gallery: error" if n is None else f"gallery: {n} people")
        self._update_notice()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.save_pending()
        if self.photo_job is not None:
            self.photo_job.stop()
        self.stop_source()  # joins the worker before the pipeline closes
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None
        self.pipeline.close()
        super().closeEvent(event)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """This run's command-line flags (never saved)."""
    ap = argparse.ArgumentParser(prog="faceapp", description="faceapp: live face matching from the webcam.")
    ap.add_argument("--source", help="camera index, video file or folder of images (default: the settings' camera)")
    ap.add_argument("--gallery", type=gallery_arg,
                    help="gallery folder or PostgreSQL address for this run (not saved)")
    ap.add_argument("--model", type=Path, help="embedder ONNX file for this run (not saved)")
    ap.add_argument("--provider", choices=list(PROVIDERS), help="for this run (not saved)")
    ap.add_argument("--config", type=Path, help="settings file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="faceapp: %(message)s")
    try:
        layers = SettingsLayers(args.config, flags={"gallery": args.gallery, "model": args.model,
                                                    "provider": args.provider})
    except FaceappError as exc:
        print(f"faceapp: error: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow(layers, source=args.source)
    win.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
