#!/usr/bin/env python
"""Select YSO candidates from an APOGEE Net prediction catalogue (Olney et al. 2020 §4.1).

Same as ``apogee-net ysos select CATALOG --out CANDIDATES.fits [options]``.
"""

import sys

from apogee_net.cli import main

if __name__ == "__main__":
    sys.exit(main(["ysos", "select", *sys.argv[1:]]))
