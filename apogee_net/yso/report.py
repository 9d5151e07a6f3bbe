"""YSO report files (Olney et al. 2020 §4): read a prediction catalogue, select the YSO
candidates (:mod:`apogee_net.yso.selection`), write them with provenance, and write the
report directory with counts and figures (:mod:`apogee_net.yso.maps`). The library calls
behind ``apogee-net ysos select`` and ``apogee-net ysos report``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from astropy.table import Table

from apogee_net.options import YsoReportOptions, YsoSelectOptions
from apogee_net.yso import maps
from apogee_net.yso.selection import (
    LABEL_REQUIRED,
    SKY_REQUIRED,
    candidates,
    check_vertices,
    region_table,
    select,
    summarize,
)
from yso_labels.core.atomic import write_json
from yso_labels.core.options import resolve_options
from yso_labels.core.tables import TableError, provenance, read_table
from yso_labels.core.tables import write_table as _write_table

log = logging.getLogger(__name__)


def read_catalogue(path: str | os.PathLike, sky: bool = True) -> Table:
    """A prediction catalogue with at least ``teff`` (K) and ``logg`` (dex), and ``ra``,
    ``dec`` (deg) when ``sky``; upper-case column names are accepted. TableError otherwise."""
    table = read_table(path, what="prediction catalogue")
    lower = {c.lower(): c for c in table.colnames}
    for name in (*LABEL_REQUIRED, *SKY_REQUIRED, "teff_err", "logg_err", "snr", "flags"):
        if name not in table.colnames and name in lower:
            table.rename_column(lower[name], name)
    where = f"prediction catalogue {path}"
    missing = [c for c in LABEL_REQUIRED if c not in table.colnames]
    if missing:
        raise TableError(f"{where}: missing column(s) {', '.join(missing)}; the YSO selection "
                         f"needs teff (K) and logg (dex); it has {', '.join(table.colnames)}")
    missing = [c for c in SKY_REQUIRED if c not in table.colnames]
    if sky and missing:
        raise TableError(f"{where}: missing column(s) {', '.join(missing)}; sky positions "
                         "(deg) are needed for region matching, impostor flags and sky maps "
                         "(use --no-sky to select without them)")
    return table


def _provenance(step: str, catalog, options: dict, upstream: dict) -> dict:
    meta = provenance(step, options, catalog=str(catalog),
                      ysosel="Olney et al. 2020 Sec. 4.1 (triangle), Sec. 4.2 (age bins)")
    for key, new in (("STEP", "CATSTEP"), ("OPTIONS", "CATOPTS"), ("VERSION", "CATVERS"),
                     ("DATE", "CATDATE")):  # keep the catalogue's own record
        if key in upstream:
            meta[new] = upstream[key]
    return meta


def _run(catalog, o: YsoSelectOptions) -> tuple[Table, Table, dict, dict]:
    table = read_catalogue(catalog, sky=o.sky)
    upstream = {k: v for k, v in table.meta.items() if isinstance(v, (str, int, float))}
    recorded = {"vertices": check_vertices(o.vertices).tolist(),
                "max_teff_err": o.max_teff_err, "max_logg_err": o.max_logg_err,
                "min_snr": o.min_snr, "bad_flags": o.bad_flags,
                "regions": "packaged" if o.regions is None else str(o.regions) if not
                isinstance(o.regions, Table) else "user table", "sky": o.sky}
    selected = select(table, vertices=o.vertices, max_teff_err=o.max_teff_err,
                      max_logg_err=o.max_logg_err, min_snr=o.min_snr, bad_flags=o.bad_flags)
    cands = candidates(selected, regions=o.regions, sky=o.sky)
    summary = {"catalogue": str(catalog), **summarize(selected, cands, regions=o.regions),
               "options": recorded}
    cands.meta = {k: v for k, v in cands.meta.items() if k != "yso_notes"}
    return selected, cands, summary, _provenance("ysos", catalog, recorded, upstream)


def _message(summary: dict) -> str:
    n = summary["n_candidates"]
    text = (f"{n} YSO candidate{'' if n == 1 else 's'} among {summary['n_catalogue']} stars "
            f"({summary['n_in_yso_region']} in the (Teff, log g) region)")
    if summary.get("impostor_fraction") is not None:
        text += (f"; {summary['n_impostors']} impostors outside every star-forming region "
                 f"(fraction {summary['impostor_fraction']:.3f})")
    return text


def select_file(catalog: str | os.PathLike, out: str | os.PathLike,
                options: YsoSelectOptions | None = None, **kwargs) -> dict:
    """Read a prediction catalogue, select YSO candidates, write them (FITS/CSV/ECSV with
    provenance) to ``out``, even when there are none; return the summary. The cuts are
    :class:`apogee_net.options.YsoSelectOptions`, given as ``options`` or as keyword
    arguments of the same names."""
    _, cands, summary, meta = _run(catalog, resolve_options(YsoSelectOptions, options, kwargs))
    summary["candidates"] = str(_write_table(cands, out, meta))
    summary["message"] = _message(summary)
    log.info(summary["message"])
    return summary


def report(catalog: str | os.PathLike, out: str | os.PathLike,
           options: YsoReportOptions | None = None, **kwargs) -> dict:
    """The YSO report of a prediction catalogue in directory ``out``: candidates
    (``yso_candidates.fits``), counts (``yso_summary.json``, ``yso_age_bins.csv``,
    ``yso_regions.csv``) and PNG figures (Kiel diagram with PARSEC isochrones, sky map with
    impostors, density maps per age bin, log g KDE per ``group_column`` group, default the
    region complex). ``models``: isochrone family of the Kiel diagram
    (:mod:`yso_labels.families`; recorded in the summary as ``isochrone_models``). Zero
    candidates is a result: every file is still written. The options are
    :class:`apogee_net.options.YsoReportOptions` (the cuts of :func:`select_file` and the
    figures'), given as ``options`` or as keyword arguments of the same names."""
    o = resolve_options(YsoReportOptions, options, kwargs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    selected, cands, summary, meta = _run(catalog, o)
    if o.group_column is not None and o.group_column not in cands.colnames:
        raise TableError(f"prediction catalogue {catalog}: no column {o.group_column!r} to "
                         f"group the log g KDE by; it has {', '.join(selected.colnames)}")
    files = {"candidates": _write_table(cands, out / "yso_candidates.fits", meta)}
    files["age_bins"] = _write_table(Table(rows=summary["age_bins"]), out / "yso_age_bins.csv",
                                     meta)
    if o.sky:
        files["regions"] = _write_table(Table(rows=summary["regions"]),
                                        out / "yso_regions.csv", meta)
    figures, notes = maps.report_figures(
        selected, cands, out, vertices=o.vertices,
        regions=region_table(o.regions) if o.sky else None, group_column=o.group_column,
        isochrones=o.isochrones, kde_bandwidth=o.kde_bandwidth, models=o.models)
    summary["isochrone_models"] = o.models or ("user grid" if o.isochrones is not None
                                             else "parsec")
    summary["notes"] += notes
    summary["files"] = {k: str(v) for k, v in {**files, **figures}.items()}
    summary["message"] = _message(summary)
    summary["files"]["summary"] = str(out / "yso_summary.json")
    summary["provenance"] = meta
    write_json(out / "yso_summary.json", summary, indent=2)
    log.info(summary["message"])
    return summary
