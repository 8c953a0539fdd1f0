import sys

from faceapp.gui.app import main

sys.exit(main())
