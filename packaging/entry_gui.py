import sys

from faceapp.gui.start import main

sys.exit(main())
