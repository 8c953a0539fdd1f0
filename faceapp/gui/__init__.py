"""The PySide6 desktop app: a thin face over :mod:`faceapp.pipeline` and the gallery.

The only package of faceapp that imports Qt. It holds no thresholds, decisions or file
formats of its own: decisions come from the pipeline, enrolment rules from
:mod:`faceapp.enrol`, settings from :mod:`faceapp.config`.
"""
