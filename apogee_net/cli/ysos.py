"""``apogee-net ysos select`` and ``apogee-net ysos report`` (Olney et al. 2020 §4)."""

from __future__ import annotations

import argparse

from apogee_net.yso import report as ysos_report
from apogee_net.yso import selection as ysos
from yso_labels.families import models_arg


def _vertex(text: str) -> tuple[float, float]:
    try:
        teff, logg = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"vertex {text!r}: expected TEFF,LOGG such as "
                                         "2200,4.4") from exc
    return teff, logg


def _cut_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="prediction catalogue (FITS/CSV) with teff (K), logg (dex), "
                   "ra, dec (deg); optional teff_err, logg_err, snr, flags")
    p.add_argument("--vertices", type=_vertex, nargs="+", metavar="TEFF,LOGG",
                   help="vertices of the convex (Teff, log g) selection polygon; default the "
                   "triangle of Olney et al. 2020: 2200,4.4 4500,3.9 3200,1.7")
    p.add_argument("--max-teff-err", type=float, help="reject teff_err above this (K)")
    p.add_argument("--max-logg-err", type=float, help="reject logg_err above this (dex)")
    p.add_argument("--min-snr", type=float, help="reject snr below this")
    p.add_argument("--bad-flags", type=lambda s: int(s, 0), default=ysos.ALL_FLAGS,
                   help="reject stars with any of these bits of flags set (default -1: any "
                   "bit; 0 keeps flagged stars; hex like 0x3 accepted). Bits of apogee-net "
                   "predict: 1 LOW_SNR, 2 BAD_PIXELS, 4 OUT_OF_RANGE, 8 UNREADABLE")
    p.add_argument("--regions", help="table of star-forming regions (name, complex, ra, dec, "
                   "radius in deg) instead of the packaged one")
    p.add_argument("--no-sky", dest="sky", action="store_false",
                   help="the catalogue has no ra/dec: skip regions, impostors and sky maps")


def _cuts(args) -> dict:
    return {"vertices": args.vertices, "max_teff_err": args.max_teff_err,
            "max_logg_err": args.max_logg_err, "min_snr": args.min_snr,
            "bad_flags": args.bad_flags, "regions": args.regions, "sky": args.sky}


def _cmd_select(args) -> None:
    summary = ysos_report.select_file(args.catalog, args.out, **_cuts(args))
    print(f"{summary['message']}; wrote {summary['candidates']}")
    for note in summary["notes"]:
        print(f"note: {note}")


def _cmd_report(args) -> None:
    summary = ysos_report.report(args.catalog, args.out, group_column=args.group_column,
                          isochrones=args.isochrones, kde_bandwidth=args.kde_bandwidth,
                          models=args.models,
                          **_cuts(args))
    print(summary["message"])
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"wrote {len(summary['files'])} files to {args.out}")


def register(sub) -> None:
    p = sub.add_parser("ysos", help="YSO candidates, log g ages, sky maps, impostors "
                       "(Olney et al. 2020 §4)")
    ysub = p.add_subparsers(dest="ysos_command", required=True, metavar="ACTION")

    s = ysub.add_parser("select", help="write the YSO candidates of a prediction catalogue")
    _cut_options(s)
    s.add_argument("--out", required=True, help="candidates table (.fits, .csv or .ecsv)")
    s.set_defaults(func=_cmd_select)

    r = ysub.add_parser("report", help="candidates, counts per age bin and region, impostor "
                        "fraction, and PNG figures")
    _cut_options(r)
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--group-column", help="catalogue column whose values group the log g KDE "
                   "(e.g. disk-bearing vs diskless); default the region complex")
    r.add_argument("--isochrones", help="PARSEC grid or CMD file for the Kiel diagram "
                   "(default the packaged PARSEC v1.2S grid)")
    r.add_argument("--models", type=models_arg, default=None,
                   help="isochrone family of the Kiel diagram: parsec (default), "
                        "dsep-magnetic, dsep-standard or mist:PATH; not with --isochrones")
    r.add_argument("--kde-bandwidth", type=float, default=0.1,
                   help="Gaussian sigma of the log g KDE in dex (default 0.1, as Fig. 9)")
    r.set_defaults(func=_cmd_report)

