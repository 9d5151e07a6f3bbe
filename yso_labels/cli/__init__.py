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
    """argparse type of every ``--device`` option: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``,
    checked before any work (a CUDA device on a machine without one is refused)."""
    from yso_labels.core.runtime import device_arg as check

    return check(text)


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
        guard_outputs(args)
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


#: Exit status of a run that finished but could not use most of its inputs.
EXIT_MOST_FAILED = 3


def failure_status(what: str, n_failed: int, n_total: int, unit: str = "inputs") -> int:
    """Summary line (stderr) when inputs failed; :data:`EXIT_MOST_FAILED` when more than half
    of the ``n_total`` inputs failed, else 0."""
    if n_failed <= 0:
        return 0
    most = 2 * n_failed > n_total
    print(f"{what}: {n_failed} of {n_total} {unit} failed"
          + (f"; most inputs failed (exit status {EXIT_MOST_FAILED})" if most else ""),
          file=sys.stderr)
    return EXIT_MOST_FAILED if most else 0


#: Argument names (``dest``) of the paths a command writes; every other path-valued
#: argument is an input of the command.
OUTPUT_DESTS = ("out", "output", "out_dir")


def guard_outputs(args: argparse.Namespace) -> None:
    """The one output guard of every command: no output may equal an input or lie inside
    an input folder (:func:`yso_labels.core.guards.check_outputs`)."""
    from yso_labels.core.guards import check_outputs

    values = vars(args)
    outputs = [values[k] for k in OUTPUT_DESTS if values.get(k) is not None]
    inputs = [v for k, v in values.items() if k not in OUTPUT_DESTS and k != "func"]
    flat = []
    for v in inputs:
        flat.extend(v if isinstance(v, (list, tuple)) else [v])
    check_outputs(outputs, [v for v in flat if isinstance(v, str)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("yso-labels", "Training labels for APOGEE Net: M dwarfs (photometric "
                          "relations), YSOs (PARSEC-trained CNN), Payne, merged.",
                          SUBCOMMAND_MODULES)
    return run(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
