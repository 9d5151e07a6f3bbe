"""``apogee-net lamost ingest|labels|train|predict``: the LAMOST Bayesian CNN (Li et al.)."""

from __future__ import annotations

from apogee_net.options import (
    LamostIngestOptions,
    LamostLabelsOptions,
    LamostPredictOptions,
    LamostTrainOptions,
)
from yso_labels.cli import failure_status
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

    path = build_training_labels(args.allstar, args.store, args.out,
                                 from_namespace(LamostLabelsOptions, args))
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
    add_dataclass_arguments(p, LamostLabelsOptions)
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
