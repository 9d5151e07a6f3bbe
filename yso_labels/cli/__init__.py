"""``yso-labels``: the command line of stage 1.

Each submodule of this package registers its subcommands with ``register(subparsers)``;
each subcommand is a few lines that call one library function with the same keywords.
:func:`run` is shared with ``apogee-net``: it turns expected failures into one line on
stderr and a non-zero exit code, without a traceback (:func:`expected_error`); anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from yso_labels import __version__

#: Submodules that register ``yso-labels`` subcommands.
SUBCOMMAND_MODULES = (
    "yso_labels.cli.labels",
    "yso_labels.cli.photcnn",
    "yso_labels.cli.catalogs",
)

log = logging.getLogger("yso_labels")


class CLIError(Exception):
    """An expected failure reported as one line and exit code ``code``."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def build_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v: debug); INFO is the default")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a subcommand module not written yet
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def device_arg(text: str) -> str:
    """argparse type of every ``--device`` option: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    from yso_labels.core.runtime import DEVICES

    if text in DEVICES or text.startswith("cuda:"):
        return text
    raise argparse.ArgumentTypeError(f"device must be one of {', '.join(DEVICES)} or cuda:N")


#: Where the toolkit's own code lives: a ``ValueError`` raised here is a message for the user.
_PACKAGE_DIRS = tuple(str(Path(__file__).resolve().parents[2] / name) for name in
                      ("yso_labels", "apogee_net"))
#: Failures of the user's files and of the network, reported as one line.
_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError, ConnectionError, TimeoutError)


def expected_error(exc: BaseException) -> bool:
    """True for a failure the user can act on: :class:`CLIError`; an error class of the
    toolkit (``TableError``, ``StoreError``, ``ApStarError``, ``CatalogError``, …); a
    ``ValueError`` raised by the toolkit's own code (its messages name the file, row or
    option); a missing or unwritable file; the network. A ``KeyError``, ``TypeError``, an
    ``OSError`` of another kind, or a ``ValueError`` from inside numpy/torch/astropy is a
    bug: the CLI lets it through with its traceback."""
    if isinstance(exc, (CLIError, *_FILE_ERRORS)):
        return True
    if type(exc).__module__.startswith(("yso_labels", "apogee_net")):
        return True
    if type(exc) is ValueError:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIRS)
    return False


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, call the chosen subcommand, map expected errors to exit codes."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose + 1, 2)],
        format="%(asctime)s %(name)s %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        result = args.func(args)
    except CLIError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        if not expected_error(exc):
            raise
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("yso-labels", "Training labels for APOGEE Net: M dwarfs (photometric "
                          "relations), YSOs (PARSEC-trained CNN), Payne, merged.",
                          SUBCOMMAND_MODULES)
    return run(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
