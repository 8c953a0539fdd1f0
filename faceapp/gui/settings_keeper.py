"""The main window's settings: the layers in force, what the user changed (saved, and only
that), and a problem of the settings file resolved by going back to the default."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from faceapp.config import Settings, SettingsLayers
from faceapp.errors import SettingsError
from faceapp.gui.messages import for_gui
from faceapp.gui.widgets import error_box
from faceapp.pipeline import Pipeline

SAVE_DELAY_MS = 400
THRESHOLDS = ("threshold", "uncertain_band", "min_face_size", "min_detection_confidence")


def layers_for(settings: Settings | SettingsLayers | None, settings_path: Path | None) -> SettingsLayers:
    """Settings handed in by a caller are this run's values, like flags: never saved unless
    the user changes them in the app."""
    if isinstance(settings, SettingsLayers):
        return settings
    base = Settings()
    flags = {} if settings is None else {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)
                                         if getattr(settings, f.name) != getattr(base, f.name)}
    return SettingsLayers(settings_path, flags=flags, lenient=True)


class SettingsKeeper(QObject):
    """Keeps the window's settings layers and saves what the user changes.

    Args:
        layers: the settings layers.
        pipeline: gives the pipeline in use, which is handed the settings in force after each change.
        parent: the window (warnings open over it).

    Signals:
        messageShown(str, int): a line for the status bar and how long to show it (ms).
        fixed(): a settings-file problem was resolved.
    """

    messageShown = Signal(str, int)
    fixed = Signal()

    def __init__(self, layers: SettingsLayers, pipeline: Callable[[], Pipeline], parent: QWidget) -> None:
        super().__init__(parent)
        self.layers = layers
        self._pipeline = pipeline
        self._parent = parent
        self._pending: dict[str, Any] = {}
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_pending)

    @property
    def settings(self) -> Settings:
        """The settings in force: model defaults < saved < this run's flags and changes."""
        return self.layers.effective

    def moved(self, **change: Any) -> None:
        """A control moved: in force now, saved (only this key) once the user stops moving it."""
        self._pending.update(change)
        pipeline = self._pipeline()
        pipeline.settings = dataclasses.replace(pipeline.settings, **change)  # the worker's next frame
        self._save_timer.start()

    def save_pending(self) -> None:
        """Save what the user changed in the controls (and nothing else)."""
        self._save_timer.stop()
        changes, self._pending = self._pending, {}
        if changes:
            self.change(**changes)

    def change(self, **changes: Any) -> bool:
        """Validate and save settings the user changed; say why in the status bar when refused."""
        try:
            self.layers.change(**changes)
        except (SettingsError, OSError) as exc:
            self.messageShown.emit(f"settings not saved: {for_gui(exc)}", 8000)
            return False
        self._pipeline().settings = self.settings
        return True

    def reset_thresholds(self) -> None:
        """The thresholds back to the model's defaults (saved)."""
        self._pending.clear()
        self.change(**dict.fromkeys(THRESHOLDS))

    def fix_problem(self) -> None:
        """Resolve the first settings-file problem by going back to the default."""
        if not self.layers.problems:
            return
        try:
            aside = self.layers.forget(self.layers.problems[0])
        except OSError as exc:
            error_box(self._parent, f"the settings file cannot be changed: {exc}")
            return
        if aside is not None:
            self.messageShown.emit(f"default settings in force; the old file is kept as {aside}", 15000)
        self.fixed.emit()
