"""Options as dataclasses (issue 18): the command line generated from each command's options
class agrees with it (every option field is an option with the same flag and default, every
other option of the command is a path), and a command-line run records the same options in
its output header as the library called with the dataclass or with keyword arguments."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
from astropy.io import fits

from apogee_net import options as net_options
from apogee_net.cli import SUBCOMMAND_MODULES, main
from yso_labels.cli import build_parser
from yso_labels.core.options import (
    TrainOptions,
    cli_fields,
    flag_of,
    from_namespace,
    resolve_options,
)

#: (subcommand path, options class, the command's path arguments: not options).
COMMANDS = [
    (("train",), net_options.ApogeeTrainOptions, {"store", "labels", "out"}),
    (("predict",), net_options.PredictOptions, {"inputs", "model", "out"}),
    (("ingest",), net_options.IngestOptions, {"inputs", "out"}),
    (("lamost", "ingest"), net_options.LamostIngestOptions, {"inputs", "out"}),
    (("lamost", "train"), net_options.LamostTrainOptions, {"store", "labels", "out"}),
    (("lamost", "predict"), net_options.LamostPredictOptions, {"inputs", "model", "out"}),
]


def _subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser("apogee-net", "", SUBCOMMAND_MODULES)
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("path,cls,paths", COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS])
def test_generated_parser_agrees_with_the_dataclass(path, cls, paths):
    parser = _subparser(path)
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    fields = cli_fields(cls)
    assert fields, f"{cls.__name__} declares no option"
    for f in fields:
        act = actions.get(f.name)
        assert act is not None, f"{' '.join(path)}: field {f.name} is no option"
        assert act.option_strings == [flag_of(f)]
        assert act.default == f.default, f"{f.name}: {act.default!r} != {f.default!r}"
        if f.metadata["choices"]:
            assert tuple(act.choices) == tuple(f.metadata["choices"])
    # every other argument of the command is one of its paths, not a forgotten option
    assert set(actions) - {f.name for f in fields} == paths
    # parsing only the required paths gives the dataclass's defaults
    argv = [*path, *(["IN"] if "inputs" in paths else [])]
    for action in parser._actions:
        if action.required and action.option_strings:
            argv += [action.option_strings[0], "X"]
    full = build_parser("apogee-net", "", SUBCOMMAND_MODULES)
    assert from_namespace(cls, full.parse_args(argv)) == cls()


def test_switches_and_renamed_flags():
    full = build_parser("apogee-net", "", SUBCOMMAND_MODULES)
    ns = full.parse_args(["lamost", "ingest", "IN", "--out", "s.h5", "--keep-cosmics",
                          "--no-progress", "--L", "30"])
    opts = from_namespace(net_options.LamostIngestOptions, ns)
    assert (opts.reject_cosmics, opts.progress, opts.L) == (False, False, 30.0)
    ns = full.parse_args(["lamost", "train", "--store", "s", "--labels", "l", "--out", "o",
                          "--filters", "2,4,6", "--weight-standard", "auto"])
    opts = from_namespace(net_options.LamostTrainOptions, ns)
    assert opts.filters == (2, 4, 6) and opts.weight_standard == "auto"


def test_resolve_options_keywords_override_and_unknown_refused():
    base = net_options.PredictOptions(realizations=7, seed=3)
    assert resolve_options(net_options.PredictOptions, base, {"seed": 5}) == \
        net_options.PredictOptions(realizations=7, seed=5)
    assert base.seed == 3  # the caller's options are not changed
    assert resolve_options(net_options.PredictOptions, None, {}) == net_options.PredictOptions()
    with pytest.raises(TypeError, match="realisations"):
        resolve_options(net_options.PredictOptions, None, {"realisations": 3})


def test_command_training_options_are_the_loops():
    """The training commands extend the loop's options: same names, validated alike, and
    APOGEE Net's warm-up is cut to leave an epoch after it."""
    for cls in (net_options.ApogeeTrainOptions, net_options.LamostTrainOptions):
        assert {f.name for f in dataclasses.fields(TrainOptions)} <= \
            {f.name for f in dataclasses.fields(cls)}
        with pytest.raises(ValueError, match="lr=-1"):
            cls(lr=-1)
    assert net_options.ApogeeTrainOptions(max_epochs=1).warmup == 0.0


def _options_header(path) -> dict:
    with fits.open(path) as hdul:
        return json.loads(hdul[1].header["OPTIONS"])


def test_cli_and_library_record_the_same_options(tiny_run, tmp_path):
    from astropy.table import Table

    from apogee_net.inference.predict import predict_catalog

    run_dir, _ = tiny_run
    model, store = run_dir / "run" / "model.pt", run_dir / "s.h5"
    code = main(["predict", str(store), "--model", str(model), "--out",
                 str(tmp_path / "cli.fits"), "--realizations", "3", "--seed", "2",
                 "--device", "cpu", "--chunk-size", "50", "--hot", "drop"])
    assert code == 0
    opts = net_options.PredictOptions(realizations=3, seed=2, device="cpu", chunk_size=50,
                                      hot="drop", progress=False)
    predict_catalog(model, [store], tmp_path / "lib.fits", opts)
    predict_catalog(model, [store], tmp_path / "kw.fits", realizations=3, seed=2,
                    device="cpu", chunk_size=50, hot="drop", progress=False)
    cli, lib, kw = (_options_header(tmp_path / f"{n}.fits") for n in ("cli", "lib", "kw"))
    assert cli == lib == kw
    assert (cli["realizations"], cli["seed"], cli["chunk_size"], cli["hot"]) == (3, 2, 50,
                                                                                 "drop")
    a, b = Table.read(tmp_path / "cli.fits"), Table.read(tmp_path / "kw.fits")
    assert a.colnames == b.colnames and (a["teff_err"] == b["teff_err"]).all()
