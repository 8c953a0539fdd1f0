"""Drawing frames and face results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QMouseEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QDialog, QLabel, QMessageBox, QSizePolicy, QWidget

from faceapp.errors import FaceappError
from faceapp.gui.messages import for_gui
from faceapp.recognise.track import TrackResult
from faceapp.types import Decision, FaceResult
from faceapp.vision.images import decode_crop

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff)"

COLOURS = {
    Decision.MATCH: QColor(40, 200, 80),
    Decision.AMBIGUOUS: QColor(240, 160, 20),
    Decision.UNCERTAIN: QColor(240, 160, 20),
    Decision.UNKNOWN: QColor(220, 50, 50),
}


def to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 ``(H, W, 3)`` array as a QImage that owns a copy of the pixels."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(rgb))


D = TypeVar("D", bound=QDialog)


def show_released(dlg: D) -> D:
    """Show a modeless dialog that Qt frees once it is closed (its parent would keep it otherwise)."""
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()
    return dlg


def error_box(parent: QWidget | None, exc: BaseException | str) -> None:
    """A warning with the error in the app's words."""
    QMessageBox.warning(parent, "faceapp", for_gui(exc))


def guarded(parent: QWidget | None, fn: Callable[..., object], *args: object, **kw: object) -> bool:
    """Run ``fn``; a :class:`~faceapp.errors.FaceappError` is shown in a warning. Returns whether it succeeded."""
    try:
        fn(*args, **kw)
    except FaceappError as exc:
        error_box(parent, exc)
        return False
    return True


def wrapped_label(text: str = "") -> QLabel:
    """A label whose text wraps."""
    label = QLabel(text)
    label.setWordWrap(True)
    return label


def thumb_icon(data: bytes | None) -> QIcon:
    """A stored JPEG face crop as an icon (empty when missing or damaged)."""
    if not data:
        return QIcon()
    try:
        return QIcon(to_pixmap(decode_crop(data)))
    except FaceappError:
        return QIcon()


CHECKING = QColor(150, 150, 150)


def label_for(fr: FaceResult | TrackResult) -> str:
    """The text over a face: a name only for a match; "Looks like A or B" when ambiguous;
    "..." while a tracked face's decision has not settled."""
    m = fr.match
    if m is None:
        return "..."
    if m.decision is Decision.MATCH and m.person:
        name = m.person
    elif m.decision is Decision.AMBIGUOUS and len(m.candidates) >= 2:
        name = f"Looks like {m.candidates[0].name} or {m.candidates[1].name}"
    elif m.decision is Decision.UNCERTAIN:
        name = "Not sure"
    else:
        name = "Unknown"
    return name if m.similarity is None else f"{name} {m.similarity:.2f}"


class VideoView(QWidget):
    """Shows a frame scaled to fit, with a box, name and similarity per face, or a message.

    Signals:
        faceClicked(int, QPointF): the user clicked face ``i`` of :attr:`faces` (its box or
            its label) at this global position.
    """

    faceClicked = Signal(int, QPointF)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._faces: list[FaceResult | TrackResult] = []
        self._boxes: list[tuple[tuple[float, float, float, float], str, QColor]] = []
        self._message = ""
        self._hit: list[QRectF] = []  # per box, its widget-space rectangle including the label

    def show_frame(self, rgb: np.ndarray, faces: Sequence[FaceResult | TrackResult]) -> None:
        """A frame with each face's match: box, name and similarity, coloured by decision."""
        boxes = [(fr.face.detection.box, label_for(fr), CHECKING if fr.match is None else COLOURS[fr.match.decision])
                 for fr in faces]
        self.show_boxes(rgb, boxes)
        self._faces = list(faces)

    def show_boxes(self, rgb: np.ndarray, boxes: list[tuple[tuple[float, float, float, float], str, QColor]]) -> None:
        """A frame with arbitrary labelled boxes (pixel x0, y0, x1, y1)."""
        self._image = to_qimage(rgb)
        self._boxes = list(boxes)
        self._faces = []
        self._message = ""
        self.update()

    def show_message(self, text: str) -> None:
        self._message = text
        self.update()

    @property
    def message(self) -> str:
        return self._message

    @property
    def faces(self) -> list[FaceResult | TrackResult]:
        return self._faces

    def face_at(self, x: float, y: float) -> int | None:
        """The index in :attr:`faces` of the face drawn at widget point ``(x, y)``, if any."""
        for i in range(min(len(self._hit), len(self._faces)) - 1, -1, -1):
            if self._hit[i].contains(QPointF(x, y)):
                return i
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        pos = event.position()
        i = self.face_at(pos.x(), pos.y())
        if i is not None:
            self.faceClicked.emit(i, event.globalPosition())
        super().mousePressEvent(event)

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        hits = []
        p.fillRect(self.rect(), QColor(25, 25, 25))
        if self._image is not None:
            iw, ih = self._image.width(), self._image.height()
            scale = min(self.width() / iw, self.height() / ih)
            ox, oy = (self.width() - iw * scale) / 2, (self.height() - ih * scale) / 2
            p.drawImage(QRectF(ox, oy, iw * scale, ih * scale), self._image)
            font = QFont()
            font.setPointSize(11)
            font.setBold(True)
            p.setFont(font)
            for (x0, y0, x1, y1), text, colour in self._boxes:
                p.setPen(QPen(colour, 3))
                rect = QRectF(ox + x0 * scale, oy + y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale)
                p.drawRect(rect)
                tw = p.fontMetrics().horizontalAdvance(text) + 8
                th = p.fontMetrics().height() + 4
                tag = QRectF(rect.left(), max(0.0, rect.top() - th), tw, th)
                p.fillRect(tag, colour)
                p.setPen(QColor(255, 255, 255))
                p.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)
                hits.append(rect.united(tag))
        self._hit = hits
        if self._message:
            p.setPen(QColor(255, 255, 255))
            font = QFont()
            font.setPointSize(12)
            p.setFont(font)
            p.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self._message)
        p.end()
