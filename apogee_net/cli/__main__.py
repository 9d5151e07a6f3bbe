"""``python -m apogee_net.cli``: same as the console script."""

import sys

from apogee_net.cli import main

sys.exit(main())
