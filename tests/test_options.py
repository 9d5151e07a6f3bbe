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
from yso_labels import options as stage1_options
from yso_labels.cli import SUBCOMMAND_MODULES as STAGE1_MODULES
from yso_labels.cli import build_parser
from yso_labels.core.options import (
    TrainOptions,
    cli_fields,
    flag_of,
    from_namespace,
    resolve_options,
)

#: (program, subcommand path, options class, the command's arguments that are not options:
#: the paths it reads and writes, and synth's n and seed).
COMMANDS = [
    ("apogee-net", ("simulate",), net_options.SimulateOptions, {"labels_table", "out_dir"}),
    ("apogee-net", ("ingest",), net_options.IngestOptions, {"inputs", "out"}),
    ("apogee-net", ("train",), net_options.ApogeeTrainOptions, {"store", "labels", "out"}),
    ("apogee-net", ("predict",), net_options.PredictOptions, {"inputs", "model", "out"}),
    ("apogee-net", ("adapt",), net_options.AdaptOptions, {"run", "out"}),
    ("apogee-net", ("evaluate",), net_options.EvaluateOptions,
     {"model", "store", "labels", "out"}),
    ("apogee-net", ("lamost", "ingest"), net_options.LamostIngestOptions, {"inputs", "out"}),
    ("apogee-net", ("lamost", "labels"), net_options.LamostLabelsOptions,
     {"allstar", "store", "out"}),
    ("apogee-net", ("lamost", "train"), net_options.LamostTrainOptions,
     {"store", "labels", "out"}),
    ("apogee-net", ("lamost", "predict"), net_options.LamostPredictOptions,
     {"inputs", "model", "out"}),
    ("apogee-net", ("ysos", "select"), net_options.YsoSelectOptions, {"catalog", "out"}),
    ("apogee-net", ("ysos", "report"), net_options.YsoReportOptions, {"catalog", "out"}),
    ("apogee-net", ("demo",), net_options.DemoOptions, {"out"}),
    ("yso-labels", ("mdwarf",), stage1_options.MdwarfOptions, {"input", "output"}),
    ("yso-labels", ("merge",), stage1_options.MergeOptions, {"payne", "out"}),
    ("yso-labels", ("fetch-photometry",), stage1_options.FetchOptions, {"input", "output"}),
    ("yso-labels", ("synth",), stage1_options.SynthOptions, {"n", "seed", "out"}),
    ("yso-labels", ("photcnn", "train"), stage1_options.PhotcnnTrainOptions,
     {"train_table", "out"}),
    ("yso-labels", ("photcnn", "predict"), stage1_options.PhotcnnPredictOptions,
     {"model_path", "input", "output"}),
    ("yso-labels", ("photcnn", "evaluate"), stage1_options.PhotcnnEvaluateOptions,
     {"model_path", "test_table"}),
    ("yso-labels", ("photcnn", "compare"), stage1_options.PhotcnnCompareOptions,
     {"models", "input", "out"}),
]


def _parser(prog: str) -> argparse.ArgumentParser:
    return build_parser(prog, "", SUBCOMMAND_MODULES if prog == "apogee-net" else STAGE1_MODULES)


def _subparser(prog: str, path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = _parser(prog)
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("prog,path,cls,args", COMMANDS,
                         ids=[" ".join((c[0], *c[1])) for c in COMMANDS])
def test_generated_parser_agrees_with_the_dataclass(prog, path, cls, args):
    parser = _subparser(prog, path)
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
    # every other argument of the command is one it declares itself, not a forgotten option
    assert set(actions) - {f.name for f in fields} == args
    # parsing only the required arguments gives the dataclass's defaults
    argv = list(path)
    for action in parser._actions:
        if not action.option_strings:
            argv.append("X")  # a positional path
        elif action.required:
            argv += [action.option_strings[0], "1"]
    assert from_namespace(cls, _parser(prog).parse_args(argv)) == cls()


def test_switches_and_renamed_flags():
    full = _parser("apogee-net")
    ns = full.parse_args(["lamost", "ingest", "IN", "--out", "s.h5", "--keep-cosmics",
                          "--no-progress", "--L", "30"])
    opts = from_namespace(net_options.LamostIngestOptions, ns)
    assert (opts.reject_cosmics, opts.progress, opts.L) == (False, False, 30.0)
    ns = full.parse_args(["lamost", "train", "--store", "s", "--labels", "l", "--out", "o",
                          "--filters", "2,4,6", "--weight-standard", "auto"])
    opts = from_namespace(net_options.LamostTrainOptions, ns)
    assert opts.filters == (2, 4, 6) and opts.weight_standard == "auto"
    ns = _parser("yso-labels").parse_args(["merge", "--payne", "p", "--out", "o",
                                           "--ignore-quality-flag"])
    assert from_namespace(stage1_options.MergeOptions, ns).use_quality_flag is False


def test_spelled_out_values_are_the_librarys():
    """Choices and defaults the options modules spell out (they import no science module
    that takes them) are those of the library's own constants."""
    from apogee_net.evaluation.groupcal import CROSSFIT_FOLDS
    from apogee_net.lamost.labels import WEIGHT_STANDARD
    from apogee_net.lamost.mc import DEFAULT_PASSES
    from apogee_net.yso.selection import ALL_FLAGS
    from yso_labels.catalogs import GR_SOURCES, RELEASES

    assert set(stage1_options.GAIA_RELEASES) == set(RELEASES)
    assert set(stage1_options.GR_SOURCE_NAMES) == set(GR_SOURCES)
    assert net_options.EvaluateOptions().folds == CROSSFIT_FOLDS
    assert net_options.LamostTrainOptions().weight_standard == WEIGHT_STANDARD
    assert net_options.LamostLabelsOptions().weight_standard == WEIGHT_STANDARD
    assert net_options.LamostPredictOptions().passes == DEFAULT_PASSES
    assert net_options.YsoSelectOptions().bad_flags == ALL_FLAGS


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
