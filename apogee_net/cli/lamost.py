"""``apogee-net lamost ingest|labels|train|predict``: the LAMOST Bayesian CNN (Li et al.)."""

from __future__ import annotations

from apogee_net.options import (
    LamostIngestOptions,
    LamostPredictOptions,
    LamostTrainOptions,
    standard_arg,
)
from yso_labels.cli import failure_status
from yso_labels.core.guards import nonneg_int
from yso_labels.core.options import add_dataclass_arguments, from_namespace


def _cmd_ingest(args) -> int:
    from apogee_net.lamost.ingest import ingest_lamost

    report = ingest_lamost(args.inputs, args.out, from_namespace(LamostIngestOptions, args))
    print(f"lamost ingest: {report['n_ingested']} new, {report['n_already_stored']} already "
          f"stored, {report['n_failed']} skipped; {report['n_rows']} rows in {report['out']}")
    for failure in report["failures"][:20]:
        print(f"skipped: {failure['file']}: {failure['reason']}")
    return failure_status("lamost ingest", report["n_failed"],
                          report["n_failed"] + report["n_ingested"], "new input files")


def _cmd_labels(args) -> None:
    from apogee_net.lamost.training import build_training_labels

    path = build_training_labels(args.allstar, args.store, args.out, how=args.how,
                                 max_sep=args.max_sep, lamost_key=args.lamost_key,
                                 id_table=args.id_table, apogee_key=args.apogee_key,
                                 require_core=not args.keep_incomplete,
                                 weights=args.weights, weight_standard=args.weight_standard,
                                 uncovered_weight=args.uncovered_weight, seed=args.seed,
                                 quality_cuts=args.quality_cuts, duplicates=args.duplicates)
    print(f"wrote {path}")


def _cmd_train(args) -> None:
    from apogee_net.cli.core import print_fit
    from apogee_net.lamost.training import train_lamost

    result = train_lamost(args.store, args.labels, args.out,
                          from_namespace(LamostTrainOptions, args))
    print_fit(result)


def _cmd_predict(args) -> int:
    from apogee_net.cli.core import unreadable_status
    from apogee_net.lamost.predict import predict_lamost

    path = predict_lamost(args.model, args.inputs, args.out,
                          from_namespace(LamostPredictOptions, args))
    print(f"wrote {path}")
    return unreadable_status("lamost predict", path)


def register(sub) -> None:
    lamost = sub.add_parser("lamost", help="LAMOST low-resolution spectra: Bayesian CNN of "
                            "Li et al. (ingest, labels, train, predict)",
                            description="The LAMOST backend: 14 labels with MC-dropout "
                            "uncertainties from LAMOST LRS spectra (Li et al.).")
    cmds = lamost.add_subparsers(dest="lamost_command", required=True, metavar="STEP")

    p = cmds.add_parser("ingest", help="LAMOST FITS files into an HDF5 store",
                        description="Read LAMOST LRS FITS (DR1-DR8 image or DR9+ COADD "
                        "layout, gzipped or not), mask cosmic rays, shift to the rest frame, "
                        "rebin to 4000-8500 A at 1 A and normalise by The Cannon's Gaussian-"
                        "smoothing continuum; resumable.")
    p.add_argument("inputs", nargs="+", metavar="SPECTRA", help="FITS files, folders, globs")
    p.add_argument("--out", required=True, metavar="STORE.h5")
    add_dataclass_arguments(p, LamostIngestOptions)
    p.set_defaults(func=_cmd_ingest)

    p = cmds.add_parser("labels", help="training label table: cross-match, label treatment, "
                        "splits, [Fe/H] weights",
                        description="Cross-match a LAMOST store with an APOGEE allStar-like "
                        "table, set single labels to NaN (uncertainty limits, Table 1 ranges; "
                        "Li et al. 2.2.1), split 81/9/10 and add the 2.2.2 [Fe/H] weights.")
    p.add_argument("--allstar", required=True, help="allStar-like FITS/CSV table")
    p.add_argument("--store", required=True, help="LAMOST store from `lamost ingest`")
    p.add_argument("--out", required=True, metavar="LABELS.fits")
    p.add_argument("--how", choices=("position", "id"), default="position")
    p.add_argument("--max-sep", type=float, default=3.0, help="arcsec (default 3)")
    p.add_argument("--id-table", help="--how id: table with spec_id (LAMOST OBSID) and the "
                   "APOGEE ID column named by --lamost-key")
    p.add_argument("--lamost-key", help="--how id: the APOGEE ID column of --id-table")
    p.add_argument("--apogee-key", default="APOGEE_ID")
    p.add_argument("--keep-incomplete", action="store_true",
                   help="keep stars without Teff, log g, [Fe/H] or [M/H] (paper: dropped)")
    p.add_argument("--weights", choices=("feh", "none"), default="feh")
    p.add_argument("--weight-standard", type=standard_arg, default=410.0,
                   help="stars per bin of the weight standard (paper: 410) or 'auto'")
    p.add_argument("--uncovered-weight", choices=("error", "one"), default="error",
                   help="stars outside the weight table: stop (default) or weight 1")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the split")
    p.add_argument("--quality-cuts", choices=("default", "none"), default="default",
                   help="drop APOGEE rows with ASPCAPFLAG STAR_BAD, STARFLAG BAD_PIXELS, "
                   "COMMISSIONING, VERY_BRIGHT_NEIGHBOR, LOW_SNR or EXTRATARG COMMISSIONING "
                   "(default), or none")
    p.add_argument("--duplicates", choices=("best-snr", "keep"), default="best-snr",
                   help="APOGEE IDs with several rows: keep the highest-S/N row (default) "
                   "or all")
    p.set_defaults(func=_cmd_labels)

    p = cmds.add_parser("train", help="train the Bayesian CNN",
                        description="Train Li et al.'s Bayesian CNN with the robust loss "
                        "(missing labels left out, label errors in the variance) and the "
                        "table's [Fe/H] weights; early stopping; resumable.")
    p.add_argument("--store", required=True)
    p.add_argument("--labels", required=True, help="table from `apogee-net lamost labels`")
    p.add_argument("--out", required=True, metavar="RUNDIR")
    add_dataclass_arguments(p, LamostTrainOptions)
    p.set_defaults(func=_cmd_train)

    p = cmds.add_parser("predict", help="MC-dropout catalogue",
                        description="Labels, total/model/predictive sigma and recommended-"
                        "range flags for LAMOST stores or FITS files; resumable (OUT.parts/).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="stores, FITS files, folders")
    p.add_argument("--model", required=True, help="RUNDIR/model.pt")
    p.add_argument("--out", required=True, metavar="CATALOG.fits")
    add_dataclass_arguments(p, LamostPredictOptions)
    p.set_defaults(func=_cmd_predict)
