#!/usr/bin/env python
"""Fetch Gaia, 2MASS, AllWISE and g, r photometry for APOGEE IDs (same as
``yso-labels fetch-photometry``; run with --help for the options).

    python scripts/fetch_photometry.py ids.csv phot.fits [--gaia-release dr3|dr2] [--cache DIR]
"""

import sys

from yso_labels.cli import build_parser, run


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser("fetch_photometry.py", __doc__.splitlines()[0],
                          ("yso_labels.cli.catalogs",))
    return run(parser, ["fetch-photometry", *argv])


if __name__ == "__main__":
    sys.exit(main())
