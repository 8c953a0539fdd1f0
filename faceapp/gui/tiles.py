"""Pieces the face library's dialogs share: face tiles, their layout, dates, a stored face."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QSize
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QListWidget, QPushButton, QVBoxLayout, QWidget

from faceapp.errors import FaceappError
from faceapp.pipeline import Pipeline

LOW_QUALITY = QColor(220, 50, 50)


def when(t: float | None) -> str:
    return "never" if not t else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def tile_list(cell_height: int) -> QListWidget:
    """A wrapping grid of 96-pixel face tiles with a caption under each."""
    grid = QListWidget()
    grid.setViewMode(QListWidget.ViewMode.IconMode)
    grid.setResizeMode(QListWidget.ResizeMode.Adjust)
    grid.setMovement(QListWidget.Movement.Static)
    grid.setIconSize(QSize(96, 96))
    grid.setGridSize(QSize(150, cell_height))
    grid.setWordWrap(True)
    return grid


def tile_dialog_layout(dlg: QDialog, header: QWidget, tiles: QWidget, buttons: list[QPushButton]) -> None:
    """Header, tiles (or a table), a row of buttons and Close, top to bottom."""
    row = QHBoxLayout()
    for b in buttons:
        row.addWidget(b)
    row.addStretch(1)
    close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    close.rejected.connect(dlg.reject)
    lay = QVBoxLayout(dlg)
    lay.addWidget(header)
    lay.addWidget(tiles, 1)
    lay.addLayout(row)
    lay.addWidget(close)


def first_crop(pipeline: Pipeline, name: str) -> bytes | None:
    """One stored face crop (JPEG) of ``name``, or ``None``."""
    try:
        return next((s.crop for s in pipeline.gallery.samples(name) if s.crop), None)
    except FaceappError:
        return None
