"""faceapp: private, local face matching.

The pipeline is detect -> align -> embed -> gallery -> match; :class:`faceapp.pipeline.Pipeline`
runs it. Importing this package loads no model and no heavy library.
"""

__version__ = "0.1.0"
