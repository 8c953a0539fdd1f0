"""``python -m faceapp.cli``: the same program as the ``faceapp-cli`` command."""

import sys

from faceapp.cli import main

sys.exit(main())
