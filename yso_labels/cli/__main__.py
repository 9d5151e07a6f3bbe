"""``python -m yso_labels.cli``: same as the console script."""

import sys

from yso_labels.cli import main

sys.exit(main())
