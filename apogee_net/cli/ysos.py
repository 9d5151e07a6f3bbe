"""``apogee-net ysos select`` and ``apogee-net ysos report`` (Olney et al. 2020 §4)."""

from __future__ import annotations

from apogee_net.options import YsoReportOptions, YsoSelectOptions
from yso_labels.core.options import add_dataclass_arguments, from_namespace

CATALOG_HELP = ("prediction catalogue (FITS/CSV) with teff (K), logg (dex), ra, dec (deg); "
                "optional teff_err, logg_err, snr, flags")


def _cmd_select(args) -> None:
    from apogee_net.yso.report import select_file

    summary = select_file(args.catalog, args.out, from_namespace(YsoSelectOptions, args))
    print(f"{summary['message']}; wrote {summary['candidates']}")
    for note in summary["notes"]:
        print(f"note: {note}")


def _cmd_report(args) -> None:
    from apogee_net.yso.report import report

    summary = report(args.catalog, args.out, from_namespace(YsoReportOptions, args))
    print(summary["message"])
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"wrote {len(summary['files'])} files to {args.out}")


def register(sub) -> None:
    p = sub.add_parser("ysos", help="YSO candidates, log g ages, sky maps, impostors "
                       "(Olney et al. 2020 §4)")
    ysub = p.add_subparsers(dest="ysos_command", required=True, metavar="ACTION")

    s = ysub.add_parser("select", help="write the YSO candidates of a prediction catalogue")
    s.add_argument("catalog", help=CATALOG_HELP)
    add_dataclass_arguments(s, YsoSelectOptions)
    s.add_argument("--out", required=True, help="candidates table (.fits, .csv or .ecsv)")
    s.set_defaults(func=_cmd_select)

    r = ysub.add_parser("report", help="candidates, counts per age bin and region, impostor "
                        "fraction, and PNG figures")
    r.add_argument("catalog", help=CATALOG_HELP)
    add_dataclass_arguments(r, YsoReportOptions)
    r.add_argument("--out", required=True, help="output directory")
    r.set_defaults(func=_cmd_report)
