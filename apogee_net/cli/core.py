"""``apogee-net train`` and ``apogee-net predict`` (Olney et al. 2020 §3)."""

from __future__ import annotations

from apogee_net.options import ApogeeTrainOptions, PredictOptions
from yso_labels.core.options import add_dataclass_arguments, from_namespace


def _cmd_train(args) -> None:
    from apogee_net.network.train import train_apogee_net

    result = train_apogee_net(args.store, args.labels, args.out,
                              from_namespace(ApogeeTrainOptions, args))
    print_fit(result)


def print_fit(result) -> None:
    """One line on the best model of a :func:`yso_labels.core.training.fit` result."""
    if result.model_path is not None:
        print(f"best model (epoch {result.best_epoch}, dev loss {result.best_loss:.5g}): "
              f"{result.model_path}")


def _cmd_predict(args) -> int:
    from apogee_net.inference.predict import predict_catalog

    path = predict_catalog(args.model, args.inputs, args.out,
                           from_namespace(PredictOptions, args))
    print(f"wrote {path}")
    return unreadable_status("predict", path)


def unreadable_status(what: str, path) -> int:
    """Exit status of a prediction (:func:`yso_labels.cli.failure_status` over the rows
    flagged UNREADABLE), with a summary line when some inputs could not be read."""
    from astropy.io import fits

    from apogee_net.inference.predict import flag_value
    from yso_labels.cli import failure_status

    with fits.open(path) as hdul:
        flags = hdul[1].data["flags"] if len(hdul) > 1 and hdul[1].data is not None else []
    n_bad = int(((flags & flag_value("UNREADABLE")) != 0).sum()) if len(flags) else 0
    return failure_status(what, n_bad, len(flags), "spectra (unreadable: flag UNREADABLE)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train APOGEE Net on a spectra store and a label table",
                       description="Train the 12-layer CNN of Olney et al. (2020) with early "
                       "stopping on the dev split; writes RUNDIR/model.pt (best), last.pt "
                       "(resume) and train_log.csv. Under torchrun: data parallel.")
    p.add_argument("--store", required=True, help="HDF5 store made by `apogee-net ingest`")
    p.add_argument("--labels", required=True,
                   help="label table: apogee_id, logg, teff, fe_h, source, split")
    p.add_argument("--out", required=True, metavar="RUNDIR", help="run directory")
    add_dataclass_arguments(p, ApogeeTrainOptions)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="labels with uncertainties for stores or apStar files",
                       description="Predict log g, Teff, [Fe/H] and their uncertainties "
                       "(perturbed realizations, Olney et al. 2020 §3.5) into a FITS "
                       "catalogue; resumable (OUT.parts/).")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="stores (.h5), apStar files or directories of them")
    p.add_argument("--model", required=True, help="RUNDIR/model.pt")
    p.add_argument("--out", required=True, metavar="CATALOG.fits")
    add_dataclass_arguments(p, PredictOptions)
    p.set_defaults(func=_cmd_predict)
