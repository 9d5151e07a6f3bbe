"""``apogee-net train`` and ``apogee-net predict`` (Olney et al. 2020 §3)."""

from __future__ import annotations

from yso_labels.cli import device_arg
from yso_labels.core.guards import nonneg_int, pos_int

#: Training options whose default is the library's (``train_apogee_net``) when not given.
RECIPE_OPTIONS = ("max_epochs", "batch_size", "lr", "patience", "dropout", "schedule",
                  "warmup", "weight_decay", "optimizer", "noise_augment", "linear_skip")


def _cmd_train(args) -> None:
    from apogee_net.network.train import train_apogee_net

    recipe = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
    result = train_apogee_net(
        args.store, args.labels, args.out, device=args.device, seed=args.seed,
        resume=args.resume, amp=args.amp, workers=args.workers, flux_norm=args.flux_norm,
        arch=args.arch, photometry=args.photometry, augment=args.augment,
        pixmask_bits=args.pixmask_bits, restart=args.restart, **recipe)
    print_fit(result)


def print_fit(result) -> None:
    """One line on the best model of a :func:`yso_labels.core.training.fit` result."""
    if result.model_path is not None:
        print(f"best model (epoch {result.best_epoch}, dev loss {result.best_loss:.5g}): "
              f"{result.model_path}")


def add_arch_options(p, default: str | None = None) -> None:
    """``--arch`` and ``--photometry`` (APOGEE Net II) of train, adapt, predict, evaluate."""
    p.add_argument("--arch", choices=("apogeenet1", "apogeenet2"), default=default,
                   help="APOGEE Net I (Olney et al. 2020) or II (Sprague et al. 2022: "
                   "+ Gaia/2MASS photometry, log Teff, hot stars)" + (
                       f" (default {default})" if default else
                       "; checked against the model (default: whatever it holds)"))
    p.add_argument("--photometry", metavar="TABLE",
                   help="apogeenet2: table with apogee_id, parallax, G, BP, RP, J, H, K (the "
                   "output of `yso-labels fetch-photometry` works as is; default: the label "
                   "table's own columns). Missing values: published fill, flag NO_PHOTOMETRY")


def _cmd_predict(args) -> int:
    from apogee_net.inference.predict import predict_catalog

    path = predict_catalog(args.model, args.inputs, args.out, realizations=args.realizations,
                           device=args.device, batch_size=args.batch_size, seed=args.seed,
                           chunk_size=args.chunk_size, workers=args.workers, hot=args.hot,
                           visits=args.visits, arch=args.arch, photometry=args.photometry,
                           pixmask_bits=args.pixmask_bits, restart=args.restart)
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
    # the recipe's defaults are train_apogee_net's (benchmarks/README.md, issue 14)
    p.add_argument("--max-epochs", type=pos_int, default=None,
                   help="epoch budget (the cosine schedule spans it; default 30)")
    p.add_argument("--batch-size", type=pos_int, default=None,
                   help="global batch (default 32; paper: 128)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (1e-3)")
    p.add_argument("--patience", type=pos_int, default=None,
                   help="epochs without a better dev loss before stopping (default 10; "
                   "paper: 5)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default=None,
                   help="learning rate: warm-up then cosine decay (default), or constant "
                   "(the paper's)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up epochs (default 1)")
    p.add_argument("--weight-decay", type=float, default=None, help="(default 0)")
    p.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default=None,
                   help="(default adam)")
    p.add_argument("--noise-augment", type=float, default=None,
                   help="add a fresh draw of this many times each spectrum's own error "
                   "every epoch (default 1; 0: off)")
    p.add_argument("--dropout", type=float, default=None,
                   help="FC dropout (default 0; paper: 0.1)")
    p.add_argument("--linear-skip", action="store_true", default=None,
                   help="an architecture option outside the paper: a ridge regression on the "
                   "pixels added to the network's output, the network trained on its "
                   "cross-fitted residuals (apogeenet1 only)")
    add_arch_options(p, default="apogeenet1")
    p.add_argument("--flux-norm", choices=("median", "none"), default="median",
                   help="divide each spectrum by its median before the per-pixel "
                   "standardisation (default), or not (the paper's raw flux)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--resume", action="store_true", help="continue RUNDIR/last.pt (refused "
                   "unless the store, labels and options are those it was trained with)")
    p.add_argument("--restart", action="store_true",
                   help="start a new run in RUNDIR, replacing what it holds")
    p.add_argument("--augment", default="default", metavar="default|none|FILE.npz",
                   help="draw real-instrument systematics (response, sky, telluric, "
                   "persistence, bad pixels, error relation) onto the training spectra: "
                   "'default' (learnt from real DR17 apStar files), a file made by "
                   "scripts/learn_apstar_systematics.py, or 'none'")
    p.add_argument("--pixmask-bits", default=None, metavar="BITS",
                   help="apStar PIXMASK bits treated as no data, e.g. '0,1,12' or "
                   "'default' or 'none' (default: those the store was ingested with)")
    p.add_argument("--amp", action="store_true", help="mixed precision (GPU only)")
    p.add_argument("--workers", type=nonneg_int, default=0, help="data loader processes")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="labels with uncertainties for stores or apStar files",
                       description="Predict log g, Teff, [Fe/H] and their uncertainties "
                       "(perturbed realizations, Olney et al. 2020 §3.5) into a FITS "
                       "catalogue; resumable (OUT.parts/).")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="stores (.h5), apStar files or directories of them")
    p.add_argument("--model", required=True, help="RUNDIR/model.pt")
    p.add_argument("--out", required=True, metavar="CATALOG.fits")
    add_arch_options(p)
    p.add_argument("--hot", choices=("flag", "drop"), default="flag",
                   help="stars hotter than 6700 K (left out of the paper's table): flag "
                   "(default, bit 16) or drop")
    p.add_argument("--realizations", type=nonneg_int, default=100,
                   help="perturbed copies per spectrum (paper: 100; 0: no uncertainties)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=pos_int, default=None,
                   help="rows per forward pass (default 32 on CPU, 2048 on GPU)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--chunk-size", type=pos_int, default=1024,
                   help="spectra per resumable part")
    p.add_argument("--restart", action="store_true",
                   help="discard the finished parts of an interrupted run (OUT.parts/)")
    p.add_argument("--workers", type=nonneg_int, default=4, help="threads reading apStar files")
    p.add_argument("--visits", action="store_true",
                   help="also one row per visit of each apStar file (columns visit, mjd; "
                   "visit 0 is the combined spectrum)")
    p.add_argument("--pixmask-bits", default=None, metavar="BITS",
                   help="apStar PIXMASK bits treated as no data (default: the model's)")
    p.set_defaults(func=_cmd_predict)
