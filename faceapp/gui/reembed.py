"""Rebuilding the gallery for a new face model, with a progress bar (see :mod:`faceapp.gallery.reembed`)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from faceapp.gallery.reembed import ReembedReport, reembed
from faceapp.gui.worker import BackgroundThread
from faceapp.pipeline import Pipeline
from faceapp.vision.images import decode_crop


def needs_reembed(pipeline: Pipeline) -> bool:
    """The gallery holds templates of a model other than the pipeline's."""
    state = pipeline.gallery.store.state()
    return state.model_id is not None and state.model_id != pipeline.model_id and pipeline.gallery.count_templates() > 0


class ReembedJob(BackgroundThread):
    """Runs :func:`faceapp.gallery.reembed.reembed` on a worker thread.

    Signals:
        progress(int, int): crops done, crops in all.
    """

    progress = Signal(int, int)

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.report: ReembedReport | None = None

    def run(self) -> None:
        self.report = reembed(self.pipeline.gallery, self.pipeline.model_id, self.pipeline.embedder.embed,
                              decode_crop, progress=lambda done, total: self.progress.emit(done, total))


class ReembedDialog(QProgressDialog):
    """A modal progress bar over a :class:`ReembedJob`; it closes when the job ends.

    An interrupted rebuild (the app closed, an error) resumes where it stopped the next time.
    """

    def __init__(self, pipeline: Pipeline, parent: QWidget | None = None) -> None:
        super().__init__("Rebuilding the gallery for the new face model...", "", 0, 0, parent)
        self.setWindowTitle("Rebuild gallery")
        self.setCancelButton(None)  # type: ignore[arg-type]  # stopping half-way is safe but pointless
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setMinimumDuration(0)
        # Closed by the job's end only: a full bar must not hide the dialog before the
        # gallery has switched models and the app has been told.
        self.setAutoClose(False)
        self.setAutoReset(False)
        self.error: str | None = None
        self.job = ReembedJob(pipeline)
        self.job.progress.connect(self._progress)
        self.job.failed.connect(self._failed)
        self.job.finished.connect(self._done)

    def start(self) -> None:
        self.job.start()

    def _progress(self, done: int, total: int) -> None:
        self.setMaximum(max(total, 1))
        self.setValue(done)
        self.setLabelText(f"Rebuilding the gallery for the new face model: {done} of {total} faces")

    def _failed(self, message: str) -> None:
        self.error = message
        self.job.stop()
        self.done(1)

    def _done(self) -> None:
        self.job.stop()
        self.done(0)

    def summary(self) -> str:
        """One line for the status bar: what was rebuilt and who needs enrolling again."""
        if self.error is not None:
            return f"The gallery could not be rebuilt: {self.error}"
        report = self.job.report
        if report is None:
            return "The gallery was not rebuilt."
        text = f"Gallery rebuilt for the new model: {report.embedded} face(s)."
        if report.without_crop:
            text += " Enrol again (no stored face): " + ", ".join(report.without_crop)
        return text
