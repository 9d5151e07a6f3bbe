"""``apogee-net adapt`` (stratified adaptation) and ``apogee-net evaluate`` (Tables 2–3,
σ calibration, figures)."""

from __future__ import annotations

from yso_labels.core.guards import nonneg_int, pos_int
from yso_labels.core.runtime import device_arg


def _cmd_adapt(args) -> None:
    from apogee_net.network.adapt import adapt, format_test_report

    log = adapt(args.run, args.out, fraction=args.fraction, seed=args.seed, store=args.store,
                labels=args.labels, max_rounds=args.max_rounds,
                round_patience=args.round_patience, max_epochs=args.max_epochs,
                patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                device=args.device, arch=args.arch, photometry=args.photometry,
                majority_tolerance=args.majority_tolerance)
    kept = [int(r["round"]) for r in log if r["kept"] and r["round"] > 0]
    guarded = [int(r["round"]) for r in log if r["guard"]]
    print(f"{len(log) - 1} round(s), decided on dev; kept rounds {kept or 'none'}; majority "
          f"guard (payne dev loss +{100 * args.majority_tolerance:.0f} % at most) rejected "
          f"rounds {guarded or 'none'}")
    print(format_test_report(log.meta["test_report"], log.meta["label_names"]))
    print(f"model in {args.out}/model.pt; round log adapt_log.csv, test report adapt_report.csv")


def _cmd_evaluate(args) -> None:
    from apogee_net.evaluation.report import evaluate_model, format_report

    summary = evaluate_model(args.model, args.store, args.labels, args.out,
                             realizations=args.realizations, seed=args.seed, device=args.device,
                             apply_calibration=args.apply_calibration, arch=args.arch,
                             photometry=args.photometry, calibration=args.calibration,
                             folds=args.folds)
    print(format_report(summary))
    print(f"report and figures in {args.out}")


def register(sub) -> None:
    from apogee_net.cli.core import add_arch_options

    p = sub.add_parser("adapt", help="stratified adaptation for YSOs and M dwarfs "
                       "(Olney et al. 2020 sec. 3.4)")
    p.add_argument("--run", required=True, help="run directory (or model.pt) of a trained model")
    p.add_argument("--out", required=True, help="directory for the adapted model")
    p.add_argument("--fraction", type=float, default=0.05,
                   help="fraction of Payne training stars drawn each round (default 0.05)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--store", help="HDF5 store (default: the one the run was trained on)")
    p.add_argument("--labels", help="label table (default: the one the run was trained on)")
    p.add_argument("--max-rounds", type=pos_int, default=20)
    p.add_argument("--patience", type=pos_int, default=8,
                   help="epochs without a better dev loss within a round (default 8)")
    p.add_argument("--batch-size", type=pos_int, default=32)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.02 x the run's)")
    p.add_argument("--round-patience", type=pos_int, default=2,
                   help="rounds without YSO/M-dwarf improvement before stopping")
    p.add_argument("--max-epochs", type=pos_int, default=30, help="epochs per round at most")
    p.add_argument("--majority-tolerance", type=float, default=0.05,
                   help="reject a round that raises the Payne dev loss by more than this "
                   "fraction of the input model's (default 0.05)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto, cpu or cuda")
    add_arch_options(p)
    p.set_defaults(func=_cmd_adapt)

    p = sub.add_parser("evaluate", help="Tables 2-3, uncertainty calibration and figures")
    p.add_argument("--model", required=True, help="model checkpoint (RUN/model.pt)")
    p.add_argument("--store", required=True, help="HDF5 store with the spectra")
    p.add_argument("--labels", required=True, help="label table with split and source")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--realizations", type=nonneg_int, default=100,
                   help="perturbed realizations per spectrum (default 100)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--device", type=device_arg, default="auto")
    p.add_argument("--apply-calibration", action="store_true",
                   help="store the per-group sigma scale factors in the model checkpoint")
    p.add_argument("--calibration", choices=("crossfit", "cal"), default="crossfit",
                   help="crossfit (default): factors from the 'cal' and 'test' splits, each "
                   "test star judged with factors fitted without it (K folds); cal: factors "
                   "from 'cal' only")
    p.add_argument("--folds", type=pos_int, default=5, help="cross-fitting folds (default 5)")
    add_arch_options(p)
    p.set_defaults(func=_cmd_evaluate)
