"""The main window and the ``faceapp`` entry point."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from faceapp.config import Settings, SettingsLayers
from faceapp.errors import FaceappError, SettingsError
from faceapp.gui.controls import ThresholdPanel
from faceapp.gui.dialogs import EnrolDialog, SettingsDialog
from faceapp.gui.inbox import InboxDialog
from faceapp.gui.messages import for_gui
from faceapp.gui.notice import NoticeBar, notice_for
from faceapp.gui.people import PeopleDialog
from faceapp.gui.photos import PhotoMode
from faceapp.gui.recent import RecentDialog
from faceapp.gui.reembed import ReembedDialog
from faceapp.gui.settings_keeper import SettingsKeeper, layers_for
from faceapp.gui.source import SourcePanel, is_camera
from faceapp.gui.status import ProblemLog, ProblemsButton, StatusBar
from faceapp.gui.unlock import LOCKED, GalleryUnlock, open_gallery
from faceapp.gui.upkeep import GalleryUpkeep
from faceapp.gui.view_actions import ViewActions
from faceapp.gui.widgets import VideoView, error_box, show_released
from faceapp.gui.worker import FrameResult, ProcessingWorker, rate_text
from faceapp.pipeline import Pipeline
from faceapp.recognise.inbox import UnknownInbox, add_unknowns
from faceapp.recognise.recent import RecentRecognitions
from faceapp.recognise.track import TrackResult
from faceapp.types import FaceResult
from faceapp.vision.capture import FrameSource, open_source
from faceapp.watch import EventRecorder

log = logging.getLogger(__name__)
RECENT_KEPT = 50  # decisions listed in "Recent recognitions"


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
        self.keeper = SettingsKeeper(layers_for(settings, settings_path), lambda: self.pipeline, self)
        self.source_spec = source
        self.pipeline = Pipeline(self.settings, interactive=True)
        self.worker: ProcessingWorker | None = None
        self.photo_mode = PhotoMode(lambda: self.pipeline, self)
        self.view = VideoView()
        self.faces = ViewActions(lambda: self.pipeline, self.view, lambda: (self.last, self.mode == "photo"), self)
        self.unlock = GalleryUnlock(lambda: self.pipeline, self)
        self.upkeep = GalleryUpkeep(lambda: self.pipeline, lambda: self.unlock.locked, self)
        self.inbox: UnknownInbox | None = None
        self.recent = RecentRecognitions(RECENT_KEPT)
        self._source_name = ""
        self.enrol_dialog: EnrolDialog | None = None
        self.last: FrameResult | None = None
        self.source_error: str | None = None
        self._detector_noted = False
        self.problems = ProblemLog(parent=self)  # every warning of the run, once each
        self._build()
        self._load_models()
        QTimer.singleShot(0, self.start_source)

    @property
    def settings(self) -> Settings:
        """The settings in force: model defaults < saved < this run's flags and changes."""
        return self.keeper.settings

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.view.faceClicked.connect(self.faces.face_menu)
        self.faces.galleryChanged.connect(self.refresh_gallery_size)
        self.faces.messageShown.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.unlock.unlocked.connect(self._unlocked)
        self.unlock.cancelled.connect(self.refresh_gallery_size)
        self.upkeep.changed.connect(self._update_notice)
        self.keeper.fixed.connect(self._update_notice)
        self.keeper.messageShown.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        self.upkeep.messageShown.connect(lambda text: self.statusBar().showMessage(text, 15000))
        self.notice = NoticeBar()  # first-run hints and errors, with what to do next
        self.notice.triggered.connect(self._notice_action)
        self.photo_mode.started.connect(self._photo_mode_started)
        self.photo_mode.ended.connect(self._photo_mode_ended)
        self.photo_mode.frameShown.connect(self._show_photo)
        self.photo_mode.messageShown.connect(self.view.show_message)
        left = QVBoxLayout()
        left.addWidget(self.notice)
        left.addWidget(self.photo_mode.bar)
        left.addWidget(self.view, 1)

        self.controls = ThresholdPanel()
        self.controls.changed.connect(lambda change: self.keeper.moved(**change))
        self.controls.resetRequested.connect(self.reset_thresholds)

        self.source = SourcePanel(self.settings.camera_index, f"{self.settings.camera_width}x{self.settings.camera_height}")
        self.source.cameraChosen.connect(self.use_camera)
        self.source.sourceChosen.connect(self.use_source)
        self.source.snapshotRequested.connect(self.faces.snapshot_dialog)
        self.source.pause.toggled.connect(self.set_paused)

        actions = QVBoxLayout()
        self.inbox_button = QPushButton("Unknown faces...")
        self.gallery_buttons: list[QPushButton] = []  # of no use while the gallery is locked
        for text, slot in (("Match photos...", self.photo_mode.match_dialog), ("Add person...", self.open_enrolment),
                           ("People...", self.open_people), ("Unknown faces...", self.open_inbox),
                           ("Recent recognitions...", self.open_recent),
                           ("Settings...", self.open_settings)):
            b = self.inbox_button if text == "Unknown faces..." else QPushButton(text)
            b.clicked.connect(slot)
            actions.addWidget(b)
            if text != "Settings...":
                self.gallery_buttons.append(b)
        side = QVBoxLayout()
        side.addWidget(self.source)
        side.addWidget(self.controls)
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
        self.setStatusBar(StatusBar())
        self.problems_button = ProblemsButton(self.problems)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.mode_label = QLabel("live")
        self.fps_label = QLabel("-- fps")
        self.latency_label = QLabel("-- ms")
        self.provider_label = QLabel("provider: --")
        self.gallery_label = QLabel("gallery: --")
        for w in (self.problems_button, self.busy, self.mode_label, self.fps_label, self.latency_label,
                  self.provider_label, self.gallery_label):
            self.statusBar().addPermanentWidget(w)
        self.photo_mode.busyChanged.connect(self.busy.setVisible)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut("Ctrl+Q")
        quit_action.triggered.connect(self.close)
        self.addAction(quit_action)

    def _load_models(self) -> None:
        try:
            emb = self.pipeline.embedder
            self.provider_label.setText(f"runtime: {emb.runtime_name}")
            self.provider_label.setToolTip(f"embedder: {emb.provider_note}")
            self._detector_noted = False  # the detector loads with the first frame; its runtime is added then
            self._sync_controls()
            if self.unlock.open():  # the passphrase is asked for; the rest waits for it
                self._show_locked()
            else:
                self._gallery_opened()
        except FaceappError as exc:
            self.view.show_message(for_gui(exc))
            QTimer.singleShot(0, lambda e=exc: error_box(self, e))

    def _unlocked(self) -> None:
        self._gallery_opened()
        self.start_source()

    def _gallery_opened(self) -> None:
        QTimer.singleShot(0, self.upkeep.find_damaged)  # reads every template: after the window is up
        self._open_inbox()
        self.refresh_gallery_size()

    def _show_locked(self) -> None:
        self.view.show_message(LOCKED)
        self.refresh_gallery_size()

    def _open_inbox(self) -> None:
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None
        s = self.settings
        why_off = "" if s.inbox else "Off: turn it on in Settings"
        if s.inbox:
            if self.upkeep.state().read_only:
                why_off = "Off: the gallery folder is read-only, so no unknown face can be kept"
            else:
                try:
                    self.inbox = UnknownInbox(s.gallery_dir(), retention_days=s.inbox_retention_days,
                                              join_threshold=self.pipeline.verify_threshold())
                except FaceappError as exc:
                    why_off = f"Off: {for_gui(exc)}"
        self.inbox_button.setEnabled(True)
        self.inbox_button.setToolTip(why_off)

    def reset_thresholds(self) -> None:
        self.keeper.reset_thresholds()
        self._sync_controls()

    def _sync_controls(self) -> None:
        self.controls.show_values(self.pipeline.thresholds(), self.settings, self.pipeline.embedder.thresholds.match)

    # ------------------------------------------------------------------ source
    def _make_source(self) -> FrameSource:
        s = self.settings
        spec = self.source_spec if self.source_spec is not None else str(s.camera_index)
        return open_source(spec, s.camera_width, s.camera_height, folder_fps=s.folder_fps)

    def start_source(self) -> None:
        """(Re)start the live view on the current source."""
        self.stop_source()
        self.source_error = None
        if self.unlock.locked:  # matching needs the gallery's key
            self._show_locked()
            return
        self.view.show_message("starting ...")
        if self.inbox is not None:
            self.inbox.new_source()
        self.recent.new_source()
        self.worker = ProcessingWorker(self.pipeline, self._make_source, on_result=self._on_results,
                                       record=self._event_recorder())
        self.worker.frameReady.connect(self._on_frame)
        self.worker.failed.connect(self._on_failed)
        self.worker.sourceOpened.connect(self._on_opened)
        self.worker.set_paused(self.source.pause.isChecked() or self.mode == "photo")
        self.worker.set_embed_all(self.enrol_dialog is not None and self.enrol_dialog.capturing)
        self.worker.start()
        self._update_notice()

    def stop_source(self) -> None:
        """Stop the live view; returns only when its thread has ended."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def _event_recorder(self) -> EventRecorder | None:
        """The gallery's event recorder when ``record_events`` is on and the gallery can keep events."""
        if not self.settings.record_events:
            return None
        try:
            return EventRecorder(self.pipeline.gallery.store, self.settings.event_retention_days)
        except FaceappError as exc:
            self.statusBar().showMessage(f"record_events is ignored: {for_gui(exc)}", 10000)
            return None

    def _on_results(self, faces: Sequence[FaceResult | TrackResult]) -> None:
        """Each live frame's faces, on the worker thread: recent recognitions and the inbox (not
        while enrolment captures: that face is being named)."""
        self.recent.note(faces, source=self._source_name)
        if self.inbox is not None and not (self.enrol_dialog is not None and self.enrol_dialog.capturing):
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
        self.keeper.change(camera_index=int(index), camera_width=width or s.camera_width,
                           camera_height=height or s.camera_height)
        self.use_source(str(index))

    def set_paused(self, paused: bool) -> None:
        if self.worker is not None:
            self.worker.set_paused(paused or self.mode == "photo")

    def _on_opened(self, name: str) -> None:
        if self.sender() is not self.worker:  # from a worker stopped since
            return
        self._source_name = name
        self.source.opened(name, self.source_spec)
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
            self.enrol_dialog.offer(item.frame, [fr.face for fr in item.faces], item.source)

    def _on_failed(self, message: str) -> None:
        if self.sender() is not self.worker:  # from a worker stopped since (e.g. before a Retry)
            return
        self.source_error = message
        self.fps_label.setText("-- fps")
        if self.mode == "live":
            self.view.show_message(f"{message}\n\n{self.upkeep.still_works()}")
        self.statusBar().showMessage(message, 10000)
        if self.enrol_dialog is not None:
            self.enrol_dialog.no_camera(message)
        self._update_notice()

    def _update_notice(self) -> None:
        """Show what to do next (see :func:`faceapp.gui.notice.notice_for`)."""
        g = self.upkeep.state()
        self.notice.show_notice(notice_for(
            problem=self.keeper.layers.problems[0] if self.keeper.layers.problems else None, stale=self.upkeep.stale(),
            source_error=self.source_error, camera=is_camera(self.source_spec), empty=g.people == 0,
            damaged=self.upkeep.damaged, gallery_problem=g.problem, read_only=g.read_only, locked=g.locked))
        for b in self.gallery_buttons:
            b.setEnabled(not g.locked)
            if g.locked:
                b.setToolTip("The gallery is locked: unlock it with its key's passphrase first")
            elif b is not self.inbox_button:
                b.setToolTip("")

    def _notice_action(self, action: str) -> None:
        {"fix_setting": self.keeper.fix_problem, "reembed": self.rebuild_gallery, "repair": self.upkeep.repair,
         "enrol": self.open_enrolment, "video": self.source.choose_video, "folder": self.source.choose_folder,
         "retry": self.start_source, "settings": self.open_settings, "unlock": self.unlock.ask}[action]()

    # ------------------------------------------------------------------ photo mode
    @property
    def mode(self) -> str:
        """``"photo"`` while photo mode shows results, else ``"live"``."""
        return "photo" if self.photo_mode.active else "live"

    def go_live(self) -> None:
        """Leave photo mode: stop matching photos and resume the live view."""
        self.photo_mode.stop()

    def _photo_mode_started(self) -> None:
        if self.worker is not None:
            self.worker.set_paused(True)
        self.mode_label.setText("photo mode")
        self.fps_label.setText("-- fps")

    def _photo_mode_ended(self) -> None:
        self.mode_label.setText("live")
        if self.source_error:
            self.view.show_message(f"{self.source_error}\n\n{self.upkeep.still_works()}")
        else:
            self.view.show_message("")
        if self.worker is not None:
            self.worker.set_paused(self.source.pause.isChecked())

    def _show_photo(self, item: FrameResult) -> None:
        self.last = item
        self.view.show_frame(item.frame, item.faces)
        self.latency_label.setText(f"{item.latency_ms:.0f} ms/photo")

    # ------------------------------------------------------------------ actions
    def open_enrolment(self) -> EnrolDialog:
        dlg = EnrolDialog(self.pipeline, self)
        self.enrol_dialog = dlg
        dlg.captureChanged.connect(self._enrol_capture)
        if self.source_error is not None:
            dlg.no_camera(self.source_error)
        dlg.finished.connect(self._enrolment_closed)
        return show_released(dlg)

    def _enrol_capture(self, on: bool) -> None:
        """Live capture for enrolment embeds every face of every frame, only while it runs."""
        if self.worker is not None:
            self.worker.set_embed_all(on)

    def _enrolment_closed(self) -> None:
        self.enrol_dialog = None
        if self.worker is not None:
            self.worker.set_embed_all(False)
        self.refresh_gallery_size()

    def open_people(self) -> PeopleDialog | None:
        """The people library; when the gallery cannot be read, its problem is shown instead."""
        try:
            dlg = PeopleDialog(self.pipeline, self)
        except FaceappError as exc:
            self.statusBar().showMessage(f"the people library cannot be shown: {for_gui(exc)}", 15000)
            self._update_notice()
            error_box(self, f"the people library cannot be shown: {for_gui(exc)}")
            return None
        dlg.finished.connect(self.refresh_gallery_size)
        return show_released(dlg)

    def open_inbox(self) -> InboxDialog | None:
        if self.inbox is None:
            error_box(self, "the unknown-faces inbox is off; turn it on in Settings (faces are kept only "
                            "for the days you choose)")
            return None
        dlg = InboxDialog(self.pipeline, self.inbox, self)
        dlg.finished.connect(self.refresh_gallery_size)
        return show_released(dlg)

    def open_recent(self) -> RecentDialog:
        """The live view's last decisions, to confirm or correct."""
        dlg = RecentDialog(self.pipeline, self.recent, self)
        dlg.finished.connect(self.refresh_gallery_size)
        return show_released(dlg)

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
                _ = new.embedder, new.model_id
                if open_gallery(new):  # else its key's passphrase is asked for once switched
                    len(new.gallery)
            except BaseException:
                new.close()
                raise
        except FaceappError as exc:
            error_box(self, f"settings not changed: {for_gui(exc)}")
            return False
        self.stop_source()
        if self.photo_mode.active:
            self.go_live()
        old, self.pipeline = self.pipeline, new
        old.close()
        if not self.keeper.change(**changes):
            return False
        self.pipeline.settings = self.settings
        self._load_models()
        self.start_source()
        return True

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

    def refresh_gallery_size(self) -> None:
        text, tip = self.upkeep.label()
        self.gallery_label.setText(text)
        self.gallery_label.setToolTip(tip)
        self._update_notice()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.keeper.save_pending()
        if self.photo_mode.job is not None:
            self.photo_mode.job.stop()
        self.stop_source()  # joins the worker before the pipeline closes
        if self.inbox is not None:
            self.inbox.close()
            self.inbox = None
        self.pipeline.close()
        self.problems.detach()
        super().closeEvent(event)
