"""``apogee-net``: the command line of stage 2 (thin; one library call per subcommand).

Each submodule registers its subcommands with ``register(subparsers)``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from yso_labels.cli import build_parser, run

#: Submodules that register ``apogee-net`` subcommands.
SUBCOMMAND_MODULES = (
    "apogee_net.cli.data",      # simulate ingest
    "apogee_net.cli.core",      # train predict
    "apogee_net.cli.science",   # adapt evaluate
    "apogee_net.cli.published", # import-model export-model
    "apogee_net.cli.lamost",    # lamost ingest|train|predict
    "apogee_net.cli.ysos",      # ysos select|report
    "apogee_net.cli.demo",      # demo
)


def main(argv: Sequence[str] | None = None) -> int:
    # the commands only write PNG files: no display needed (the library itself leaves the
    # user's matplotlib backend alone, so notebooks keep theirs)
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser("apogee-net", "APOGEE Net (Olney et al. 2020) and the LAMOST Bayesian "
                          "CNN (Li et al.): spectra to stellar labels with uncertainties.",
                          SUBCOMMAND_MODULES)
    return run(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
