"""The threshold controls of the main window."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QPushButton, QSlider, QSpinBox, QWidget

from faceapp.config import LIMITS, Settings
from faceapp.recognise.match import Thresholds


class ThresholdPanel(QGroupBox):
    """Match threshold, uncertain band, minimum face size and detection confidence.

    Ranges come from :data:`faceapp.config.LIMITS`, so every value in force can be shown.

    Signals:
        changed(dict): the user moved a control; setting name -> new value.
        resetRequested(): "Reset to model defaults".
    """

    changed = Signal(dict)
    resetRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Thresholds", parent)
        self.model_default = 0.0
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(*(round(100 * v) for v in LIMITS["threshold"]))
        self.threshold_label = QLabel()
        self.band = QDoubleSpinBox()
        self.band.setRange(*LIMITS["uncertain_band"])
        self.band.setSingleStep(0.01)
        self.min_face = QSpinBox()
        self.min_face.setRange(*(int(v) for v in LIMITS["min_face_size"]))
        self.min_face.setSuffix(" px")
        self.confidence = QDoubleSpinBox()
        self.confidence.setRange(*LIMITS["min_detection_confidence"])
        self.confidence.setSingleStep(0.05)
        reset = QPushButton("Reset to model defaults")
        reset.clicked.connect(self.resetRequested)
        self.threshold.valueChanged.connect(lambda v: self._moved(threshold=v / 100.0))
        self.band.valueChanged.connect(lambda v: self._moved(uncertain_band=float(v)))
        self.min_face.valueChanged.connect(lambda v: self._moved(min_face_size=float(v)))
        self.confidence.valueChanged.connect(lambda v: self._moved(min_detection_confidence=float(v)))
        form = QFormLayout(self)
        form.addRow("Match threshold", self.threshold)
        form.addRow("", self.threshold_label)
        form.addRow("Uncertain band", self.band)
        form.addRow("Min face size", self.min_face)
        form.addRow("Detection confidence", self.confidence)
        form.addRow(reset)

    def show_values(self, thresholds: Thresholds, settings: Settings, model_default: float) -> None:
        """Show the values in force without reporting them as changes."""
        self.model_default = model_default
        widgets = (self.threshold, self.band, self.min_face, self.confidence)
        for w in widgets:
            w.blockSignals(True)
        self.threshold.setValue(round(thresholds.match * 100))
        self.band.setValue(thresholds.uncertain_band)
        self.min_face.setValue(int(settings.min_face_size))
        self.confidence.setValue(settings.min_detection_confidence)
        for w in widgets:
            w.blockSignals(False)
        self._show_threshold(thresholds.match)

    def _show_threshold(self, value: float) -> None:
        self.threshold_label.setText(f"{value:.2f} (model default {self.model_default:.2f})")

    def _moved(self, **change: Any) -> None:
        if "threshold" in change:
            self._show_threshold(change["threshold"])
        self.changed.emit(change)
