"""The ``faceapp`` command: its flags, the settings it starts with, and the window."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from faceapp.config import PROVIDERS, SettingsLayers, gallery_arg
from faceapp.errors import FaceappError
from faceapp.gui.app import MainWindow


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


def startup_layers(args: argparse.Namespace) -> SettingsLayers:
    """The settings the window starts with. A problem of the saved file never stops the app:
    the window opens with the defaults for what is wrong and says how to fix it.

    Raises:
        SettingsError: a command-line flag is invalid (the person who typed it sees stderr).
    """
    return SettingsLayers(args.config, flags={"gallery": args.gallery, "model": args.model,
                                              "provider": args.provider}, lenient=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="faceapp: %(message)s")
    try:
        layers = startup_layers(args)
    except FaceappError as exc:
        print(f"faceapp: error: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow(layers, source=args.source)
    win.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
