"""``yso-labels mdwarf`` and ``yso-labels merge``."""

from __future__ import annotations

import logging
import os

from astropy.table import Table

from yso_labels.cli import CLIError
from yso_labels.core.options import add_dataclass_arguments, from_namespace, resolve_options
from yso_labels.core.tables import provenance, read_table, write_table
from yso_labels.mdwarf import coefficient_set, mdwarf_table
from yso_labels.merge import merge_labels
from yso_labels.options import MdwarfOptions, MergeOptions
from yso_labels.payne import payne_labels, read_payne

log = logging.getLogger(__name__)


def run_mdwarf(input: str, output: str, options: MdwarfOptions | None = None,
               **kwargs) -> Table:
    """Library function behind ``yso-labels mdwarf``: read, label, write atomically; options
    :class:`yso_labels.options.MdwarfOptions` (or keywords of the same names)."""
    o = resolve_options(MdwarfOptions, options, kwargs)
    coefficients, select = o.coefficients, o.select
    required = ["g", "r", "J", "H", "K"] + (["parallax", "parallax_error"] if select else [])
    table = read_table(input, required=required, what="photometry")
    out = mdwarf_table(table, coefficients=coefficients, select=select)
    if len(out) == 0:
        raise CLIError(f"{input}: no stars left (empty input or nothing passes the selection)")
    cs = coefficient_set(coefficients)
    write_table(out, output, provenance(
        "mdwarf", {"input": os.path.abspath(input), "coefficients": coefficients,
                   "select": select}, COEFSET=cs.name, COEFCITE=cs.citation))
    return out


def run_merge(payne: str, out: str, options: MergeOptions | None = None, **kwargs) -> Table:
    """Library function behind ``yso-labels merge``; options
    :class:`yso_labels.options.MergeOptions` (or keywords of the same names)."""
    o = resolve_options(MergeOptions, options, kwargs)
    mstar, yso, seed, cal_fraction = o.mstar, o.yso, o.seed, o.cal_fraction
    use_quality_flag, keep_invalid = o.use_quality_flag, o.keep_invalid
    payne_tab = payne_labels(read_payne(payne), use_quality_flag=use_quality_flag)
    mstar_tab = read_table(mstar, ["apogee_id", "teff", "logg", "fe_h"], "M-dwarf labels") \
        if mstar else None
    yso_tab = read_table(yso, ["apogee_id", "teff", "logg"], "YSO labels") if yso else None
    merged = merge_labels(payne_tab, mstar_tab, yso_tab, seed=seed, cal_fraction=cal_fraction,
                          keep_invalid=keep_invalid)
    meta = provenance("merge", {"payne": payne, "mstar": mstar, "yso": yso, "seed": seed,
                                "use_quality_flag": use_quality_flag,
                                "cal_fraction": cal_fraction, "keep_invalid": keep_invalid})
    # keep the coefficient set / model that made the input labels
    if mstar_tab is not None and "COEFSET" in mstar_tab.meta:
        meta["MCOEFSET"] = mstar_tab.meta["COEFSET"]
    if yso_tab is not None and "MODEL" in yso_tab.meta:
        meta["YSOMODEL"] = yso_tab.meta["MODEL"]
    write_table(merged, out, meta)
    return merged


def _cmd_mdwarf(args) -> None:
    out = run_mdwarf(args.input, args.output, from_namespace(MdwarfOptions, args))
    print(f"wrote {len(out)} M-dwarf labels to {args.output}")


def _cmd_merge(args) -> None:
    merged = run_merge(args.payne, args.out, from_namespace(MergeOptions, args))
    counts = {s: int((merged["source"] == s).sum()) for s in ("payne", "mstar", "yso")}
    print(f"wrote {len(merged)} labels to {args.out}: {counts}")


def register(sub) -> None:
    p = sub.add_parser("mdwarf", help="M-dwarf Teff, log g, [Fe/H] from photometry "
                       "(Hejazi 2015, Mann 2015, Veyette 2017)")
    p.add_argument("input", help="FITS or CSV with columns g r J H K "
                   "(and parallax parallax_error in mas with --select)")
    p.add_argument("output", help="output table (.fits, .csv or .ecsv)")
    add_dataclass_arguments(p, MdwarfOptions)
    p.set_defaults(func=_cmd_mdwarf)

    p = sub.add_parser("merge", help="merge Payne, M-dwarf and YSO labels with splits")
    p.add_argument("--payne", required=True, help="Payne catalogue (FITS or text)")
    p.add_argument("--out", required=True, help="label table (.fits, or .csv)")
    add_dataclass_arguments(p, MergeOptions)
    p.set_defaults(func=_cmd_merge)
