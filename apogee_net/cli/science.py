"""``apogee-net adapt`` (stratified adaptation) and ``apogee-net evaluate`` (Tables 2–3,
σ calibration, figures)."""

from __future__ import annotations

from apogee_net.options import AdaptOptions, EvaluateOptions
from yso_labels.core.options import add_dataclass_arguments, from_namespace


def _cmd_adapt(args) -> None:
    from apogee_net.network.adapt import adapt, format_test_report

    log = adapt(args.run, args.out, from_namespace(AdaptOptions, args))
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
                             from_namespace(EvaluateOptions, args))
    print(format_report(summary))
    print(f"report and figures in {args.out}")


def register(sub) -> None:
    p = sub.add_parser("adapt", help="stratified adaptation for YSOs and M dwarfs "
                       "(Olney et al. 2020 sec. 3.4)")
    p.add_argument("--run", required=True, help="run directory (or model.pt) of a trained model")
    p.add_argument("--out", required=True, help="directory for the adapted model")
    add_dataclass_arguments(p, AdaptOptions)
    p.set_defaults(func=_cmd_adapt)

    p = sub.add_parser("evaluate", help="Tables 2-3, uncertainty calibration and figures")
    p.add_argument("--model", required=True, help="model checkpoint (RUN/model.pt)")
    p.add_argument("--store", required=True, help="HDF5 store with the spectra")
    p.add_argument("--labels", required=True, help="label table with split and source")
    p.add_argument("--out", required=True, help="output directory")
    add_dataclass_arguments(p, EvaluateOptions)
    p.set_defaults(func=_cmd_evaluate)
