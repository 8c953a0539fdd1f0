"""The PySide6 desktop app: a thin face over :mod:`faceapp.pipeline` and the gallery.

The only package of faceapp that imports Qt. It holds no thresholds, decisions or file
formats of its own: decisions come from the pipeline, enrolment and sample-quality rules
from :mod:`faceapp.recognise.enrol`, unknown-face grouping from :mod:`faceapp.recognise.inbox`, settings from
:mod:`faceapp.config`. Importing this package does not import Qt, so that :func:`main`
can say how to install it.
"""

from __future__ import annotations

import sys

GUI_MISSING = ("faceapp: the desktop app needs Qt, which is not installed; "
               "install it with: pip install 'faceapp[gui]' (the faceapp-cli command works without it)")


def main(argv: list[str] | None = None) -> int:
    """The ``faceapp`` command: the desktop app, or a one-line hint when Qt is missing."""
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError:
        print(GUI_MISSING, file=sys.stderr)
        return 2
    from faceapp.gui.start import main as app_main

    return app_main(argv)
