"""``yso-labels synth`` and ``yso-labels photcnn train|predict|evaluate`` (Olney 2020 §2.4)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from yso_labels.core.guards import nonneg_int, pos_int
from yso_labels.core.options import add_dataclass_arguments, from_namespace
from yso_labels.options import (
    PhotcnnCompareOptions,
    PhotcnnEvaluateOptions,
    PhotcnnPredictOptions,
    PhotcnnTrainOptions,
    SynthOptions,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="draw synthetic young stars from isochrones (PARSEC or DSEP)",
        description="Synthetic stars (mass 0.08-3 Msun, age 1-100 Myr, A_V 0-20, distance "
                    "50-1000 pc, uniform) observed with detection limits; the paper's nine "
                    "bands when the grid has WISE, else the six Gaia+2MASS bands.")
    p.add_argument("--n", type=pos_int, required=True, help="number of stars (all with G < 19)")
    p.add_argument("--seed", type=nonneg_int, required=True)
    p.add_argument("--out", required=True, help="output table (.fits, .csv, .ecsv)")
    add_dataclass_arguments(p, SynthOptions)
    p.set_defaults(func=_synth)

    pc = subparsers.add_parser("photcnn", help="photometric CNN for YSO labels")
    sub = pc.add_subparsers(dest="photcnn_command", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train on a synthetic table")
    t.add_argument("--train", dest="train_table", required=True, help="table from `synth`")
    t.add_argument("--out", required=True, help="model checkpoint to write")
    add_dataclass_arguments(t, PhotcnnTrainOptions)
    t.set_defaults(func=_train)

    r = sub.add_parser("predict", help="predict teff logg age_myr mass av")
    r.add_argument("--model", dest="model_path", required=True)
    r.add_argument("input", help="photometry table (G required; distance or parallax)")
    r.add_argument("output", help="output table; feeds `yso-labels merge --yso`")
    add_dataclass_arguments(r, PhotcnnPredictOptions)
    r.set_defaults(func=_predict)

    e = sub.add_parser("evaluate", help="bias and scatter on a synthetic test table (JSON)")
    e.add_argument("--model", dest="model_path", required=True)
    e.add_argument("--test", dest="test_table", required=True)
    add_dataclass_arguments(e, PhotcnnEvaluateOptions)
    e.set_defaults(func=_evaluate)

    c = sub.add_parser("compare", help="label one photometry table with models of several "
                       "isochrone families; table and figure of the differences")
    c.add_argument("--model", dest="models", action="append", required=True,
                   help="checkpoint trained on one family (repeat, one per family)")
    c.add_argument("input", help="photometry table (as for predict)")
    c.add_argument("out", help="output directory")
    add_dataclass_arguments(c, PhotcnnCompareOptions)
    c.set_defaults(func=_compare)


def _synth(args: argparse.Namespace) -> int:
    from yso_labels.synthetic import synth

    options = from_namespace(SynthOptions, args)
    isochrones = options.isochrones  # one file: as given; several CMD files: joined
    options = dataclasses.replace(
        options, isochrones=isochrones[0] if isochrones and len(isochrones) == 1 else isochrones,
        k_excess=tuple(options.k_excess) if options.k_excess else None)
    print(synth(args.n, args.seed, args.out, options))
    return 0


def _train(args: argparse.Namespace) -> int:
    from yso_labels.photcnn import train_photcnn

    meta = train_photcnn(args.train_table, args.out, from_namespace(PhotcnnTrainOptions, args))
    print(json.dumps({"model": args.out, "best_epoch": meta["best_epoch"],
                      "epochs_run": meta["epochs_run"], "dev_loss": meta["dev_loss"],
                      "train_seconds": meta["train_seconds"]}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from yso_labels.photcnn import run_predict

    print(run_predict(args.model_path, args.input, args.output,
                      from_namespace(PhotcnnPredictOptions, args)))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from yso_labels.photcnn import evaluate_photcnn

    print(json.dumps(evaluate_photcnn(args.model_path, args.test_table,
                                      from_namespace(PhotcnnEvaluateOptions, args)), indent=2))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from yso_labels.systematics import run_compare

    files = run_compare(args.models, args.input, args.out,
                        from_namespace(PhotcnnCompareOptions, args))
    print(json.dumps({k: str(v) for k, v in files.items()}))
    return 0
