#!/usr/bin/env python
"""YSO report: candidates, log g age bins, regions, impostors and figures (Olney et al. 2020
§4, Figs. 6-9). Same as ``apogee-net ysos report CATALOG --out DIR [options]``.
"""

import sys

from apogee_net.cli import main

if __name__ == "__main__":
    sys.exit(main(["ysos", "report", *sys.argv[1:]]))
