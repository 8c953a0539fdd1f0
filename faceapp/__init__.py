"""faceapp: private, local face matching.

The pipeline is detect -> align -> embed -> gallery -> match; :class:`faceapp.pipeline.Pipeline`
runs it. Importing this package loads no model and no heavy library.

Nothing faceapp runs may use the network. onnxruntime (1.32 on Linux) sends usage
telemetry over HTTPS and keeps a device id under ``~/.cache/Microsoft`` unless
``ORT_DISABLE_TELEMETRY`` is set when it is first imported, so it is set here, before
any faceapp module can import onnxruntime. A program that imports onnxruntime itself
must import faceapp first (or set the variable) for this to hold.
"""

import os as _os

_os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
