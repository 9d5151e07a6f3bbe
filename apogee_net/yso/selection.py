"""YSO science products of APOGEE Net (Olney et al. 2020 §4): selection in the (Teff, log g)
plane, log g as an age proxy, star-forming region matching and impostors.

Science functions take arrays or astropy Tables and return arrays or Tables; reading and
writing files is in :mod:`apogee_net.yso.report`, the figures in :mod:`apogee_net.yso.maps`. Units:
``teff`` in K, ``logg`` in dex (cgs), ``ra``/``dec`` in degrees (ICRS).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
from astropy.table import Table

from yso_labels.core.tables import TableError, check_columns, float_column, read_table
from yso_labels.regions import default_regions, nearest_region

log = logging.getLogger(__name__)

#: Olney et al. 2020 §4.1 (Fig. 7): YSO candidates lie inside the triangle with these
#: vertices, (Teff [K], log g [dex]). Override with any convex polygon.
YSO_TRIANGLE: tuple[tuple[float, float], ...] = ((2200.0, 4.4), (4500.0, 3.9), (3200.0, 1.7))

#: Olney et al. 2020 §4.2: five log g bins (dex) used as an age proxy, with the age range the
#: paper attaches to each (Myr; NaN = open end). A bin holds ``logg_min <= logg < logg_max``.
AGE_BINS: tuple[dict, ...] = (
    {"age_bin": 0, "logg_min": -math.inf, "logg_max": 3.6,
     "age_min_myr": math.nan, "age_max_myr": 1.0, "age_range": "<~1 Myr"},
    {"age_bin": 1, "logg_min": 3.6, "logg_max": 3.8,
     "age_min_myr": 1.0, "age_max_myr": 2.0, "age_range": "1-2 Myr"},
    {"age_bin": 2, "logg_min": 3.8, "logg_max": 4.0,
     "age_min_myr": 2.0, "age_max_myr": 3.0, "age_range": "2-3 Myr"},
    {"age_bin": 3, "logg_min": 4.0, "logg_max": 4.2,
     "age_min_myr": 3.0, "age_max_myr": 5.0, "age_range": "3-5 Myr"},
    {"age_bin": 4, "logg_min": 4.2, "logg_max": math.inf,
     "age_min_myr": 5.0, "age_max_myr": math.nan, "age_range": ">~5 Myr"},
)

#: Columns read from a prediction catalogue (``apogee_net.inference.predict``).
LABEL_REQUIRED = ("teff", "logg")
SKY_REQUIRED = ("ra", "dec")
#: ``bad_flags`` default: reject a star when any bit of ``flags`` is set.
ALL_FLAGS = -1


def age_bin_table(bins: Sequence[dict] | Table | None = None) -> Table:
    """The age bins as a Table (columns of :data:`AGE_BINS`), checked to be contiguous."""
    table = Table(rows=list(AGE_BINS)) if bins is None else (
        bins if isinstance(bins, Table) else Table(rows=list(bins)))
    check_columns(table, ("age_bin", "logg_min", "logg_max", "age_range"), "age bins")
    lo, hi = np.asarray(table["logg_min"], float), np.asarray(table["logg_max"], float)
    if np.any(hi <= lo) or np.any(lo[1:] != hi[:-1]):
        raise ValueError("age bins: logg_min/logg_max must increase and be contiguous "
                         f"(got {list(zip(lo.tolist(), hi.tolist(), strict=True))})")
    return table


def _cross(v: np.ndarray, teff: np.ndarray, logg: np.ndarray) -> np.ndarray:
    """Cross product of each polygon edge (v_i -> v_i+1) with (v_i -> point), for points
    (n,) against edges: (n, n_edge), in (Teff/1000 K, log g dex) units."""
    a = v / [1000.0, 1.0]
    b = np.roll(a, -1, axis=0)
    return ((b[:, 0] - a[:, 0]) * (logg[:, None] - a[:, 1])
            - (b[:, 1] - a[:, 1]) * (teff[:, None] / 1000.0 - a[:, 0]))


def check_vertices(vertices: Sequence[Sequence[float]] | None) -> np.ndarray:
    """``vertices`` (default :data:`YSO_TRIANGLE`) as an (n, 2) array of (Teff K, log g dex).

    Raises ValueError unless they form a non-degenerate convex polygon, in either orientation
    (every vertex strictly on the same side of every edge it is not on).
    """
    v = np.asarray(YSO_TRIANGLE if vertices is None else vertices, dtype=float)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3 or not np.all(np.isfinite(v)):
        raise ValueError("selection polygon: need at least 3 finite (teff, logg) vertices, "
                         f"got {np.asarray(vertices).tolist()}")
    cross = _cross(v, v[:, 0], v[:, 1])  # (vertex, edge)
    n = len(v)
    off_edge = ~(np.eye(n, dtype=bool) | np.roll(np.eye(n, dtype=bool), 1, axis=0))
    signs = np.sign(cross[off_edge])
    if not (np.all(signs > 0) or np.all(signs < 0)):
        raise ValueError(f"selection polygon {v.tolist()}: the (teff, logg) vertices must form "
                         "a convex polygon, in order, with no three in a line")
    return v


def in_polygon(teff, logg, vertices: Sequence[Sequence[float]] | None = None,
               tol: float = 1e-9) -> np.ndarray:
    """True where (``teff`` [K], ``logg`` [dex]) lies inside or on the convex polygon
    ``vertices`` (default the YSO triangle of Olney et al. 2020 §4.1). Non-finite -> False.

    A point is inside when it lies on the inner side of every edge (sign of the cross
    product), with a tolerance ``tol`` in (Teff/1000, log g) units so that edges count.
    """
    v = check_vertices(vertices)
    t = np.atleast_1d(np.asarray(teff, float))
    g = np.atleast_1d(np.asarray(logg, float))
    a = v / [1000.0, 1.0]
    b = np.roll(a, -1, axis=0)
    orient = np.sign(np.sum(a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]))  # +1 counter-clockwise
    with np.errstate(invalid="ignore"):
        inside = np.all(orient * _cross(v, t, g) >= -tol, axis=1)
    return inside & np.isfinite(t) & np.isfinite(g)


def _floats(table: Table, name: str, where: str = "catalogue") -> np.ndarray:
    """Column ``name`` as float64 with masked entries as NaN; TableError if not numeric."""
    col = table[name]
    try:
        return float_column(col)
    except (TypeError, ValueError) as exc:
        raise TableError(f"{where}: column {name} must be numeric (got {col.dtype})") from exc


def quality_cuts(table: Table, *, max_teff_err: float | None = None,
                 max_logg_err: float | None = None, min_snr: float | None = None,
                 bad_flags: int = ALL_FLAGS) -> tuple[dict[str, np.ndarray], list[str]]:
    """Stars rejected by each cut, as ``({cut: bool mask (True = rejected)}, notes)``.

    ``max_teff_err`` (K), ``max_logg_err`` (dex): reject larger or unknown uncertainties
    (Olney et al. 2020 Fig. 5 used 100 K and 0.1 dex for their valid sample);
    ``min_snr``: reject lower SNR; ``bad_flags``: reject stars with any of these bits of
    ``flags`` set (default every bit, as the paper removed SNR ~ 0 and unphysical results;
    bits of ``apogee_net.inference.predict.FLAGS``: 1 LOW_SNR, 2 BAD_PIXELS, 4 OUT_OF_RANGE,
    8 UNREADABLE; 0 keeps flagged stars). ``None`` switches a cut off.
    """
    cuts: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for cut, column, limit, sign in (("teff_err", "teff_err", max_teff_err, 1),
                                     ("logg_err", "logg_err", max_logg_err, 1),
                                     ("snr", "snr", min_snr, -1)):
        if limit is None:
            continue
        check_columns(table, (column,), f"catalogue (needed by the {cut} cut)")
        values = _floats(table, column)
        with np.errstate(invalid="ignore"):
            cuts[cut] = ~(sign * values <= sign * float(limit))  # NaN -> rejected
    if bad_flags:
        if "flags" in table.colnames:
            flags = np.ma.filled(np.ma.asarray(table["flags"]), 0)
            if not np.issubdtype(np.asarray(flags).dtype, np.integer):
                raise TableError(f"catalogue: column flags must be an integer bit field "
                                 f"(got {table['flags'].dtype})")
            cuts["flags"] = (np.asarray(flags, np.int64) & int(bad_flags)) != 0
        else:
            notes.append("no flags column: flag cut not applied")
    return cuts, notes


def select(catalog: Table, *, vertices: Sequence[Sequence[float]] | None = None,
           max_teff_err: float | None = None, max_logg_err: float | None = None,
           min_snr: float | None = None, bad_flags: int = ALL_FLAGS) -> Table:
    """Olney et al. 2020 §4.1 YSO selection on a prediction catalogue.

    Returns a copy of ``catalog`` with ``in_yso_region`` (inside the (Teff, log g) polygon,
    default :data:`YSO_TRIANGLE`), ``quality_ok`` (passes :func:`quality_cuts`) and
    ``yso_candidate`` (both). ``meta['yso_notes']`` says which cuts could not be applied.
    """
    check_columns(catalog, LABEL_REQUIRED, "catalogue")
    out = catalog.copy()
    out["in_yso_region"] = in_polygon(_floats(catalog, "teff"), _floats(catalog, "logg"),
                                      vertices)
    cuts, notes = quality_cuts(catalog, max_teff_err=max_teff_err, max_logg_err=max_logg_err,
                               min_snr=min_snr, bad_flags=bad_flags)
    rejected = np.zeros(len(catalog), bool)
    for mask in cuts.values():
        rejected |= mask
    out["quality_ok"] = ~rejected
    out["yso_candidate"] = out["in_yso_region"] & out["quality_ok"]
    out.meta["yso_notes"] = "; ".join(notes)
    return out


def age_bins(table: Table, bins: Sequence[dict] | Table | None = None) -> Table:
    """Copy of ``table`` with ``age_bin`` (index into :data:`AGE_BINS`, -1 where log g is not
    finite) and ``age_range`` (text), from log g (dex) as in Olney et al. 2020 §4.2."""
    bins = age_bin_table(bins)
    check_columns(table, ("logg",), "catalogue")
    logg = _floats(table, "logg")
    edges = np.asarray(bins["logg_max"], float)[:-1]
    index = np.digitize(logg, edges)  # logg_min <= logg < logg_max
    lo = float(bins["logg_min"][0])
    good = np.isfinite(logg) & (logg >= lo) & (logg < float(bins["logg_max"][-1]))
    index = np.where(good, index, 0)
    out = table.copy()
    out["age_bin"] = np.where(good, np.asarray(bins["age_bin"], np.int16)[index], -1)
    labels = np.asarray(bins["age_range"]).astype(str)
    out["age_range"] = np.where(good, labels[index], "")
    return out


def region_table(regions: Table | str | os.PathLike | None) -> Table:
    if regions is None:
        return default_regions()
    if isinstance(regions, Table):
        table = regions
    else:
        table = read_table(regions, what="regions table")
    check_columns(table, ("name", "ra", "dec", "radius"), "regions table")
    if "complex" not in table.colnames:
        table = table.copy()
        table["complex"] = table["name"]
    return table


def match_regions(table: Table, regions: Table | str | os.PathLike | None = None) -> Table:
    """Copy of ``table`` with the nearest star-forming region (``region``, ``region_complex``,
    ``region_sep_deg`` in deg; nearest in units of the region radius) and ``impostor``: True
    when a star with a finite position lies outside every region (Olney et al. 2020 §4.1)."""
    regions = region_table(regions)
    check_columns(table, SKY_REQUIRED, "catalogue (sky positions are needed to match regions)")
    ra, dec = _floats(table, "ra"), _floats(table, "dec")
    names, sep, inside = nearest_region(ra, dec, regions)
    complexes = dict(zip(np.asarray(regions["name"]).astype(str),
                         np.asarray(regions["complex"]).astype(str), strict=True))
    out = table.copy()
    out["region"] = names
    out["region_complex"] = np.asarray([complexes.get(n, "") for n in names], dtype=str)
    out["region_sep_deg"] = sep
    out["impostor"] = ~inside & np.isfinite(ra) & np.isfinite(dec)
    return out


def impostor_fraction(candidates: Table) -> float:
    """Impostors / candidates with a finite sky position (NaN when there are none)."""
    has_pos = np.isfinite(_floats(candidates, "ra")) & np.isfinite(_floats(candidates, "dec"))
    n = int(has_pos.sum())
    return float(np.sum(np.asarray(candidates["impostor"]) & has_pos) / n) if n else math.nan


def candidates(selected: Table, *, regions: Table | str | os.PathLike | None = None,
               bins: Sequence[dict] | Table | None = None, sky: bool = True) -> Table:
    """The ``yso_candidate`` rows of :func:`select`'s output with their age bins and (when
    ``sky``) nearest region and impostor flag."""
    cands = age_bins(selected[np.asarray(selected["yso_candidate"], bool)], bins)
    return match_regions(cands, regions) if sky else cands


def summarize(selected: Table, cands: Table, *,
              regions: Table | str | os.PathLike | None = None,
              bins: Sequence[dict] | Table | None = None) -> dict:
    """Counts for a report: catalogue, triangle, cuts, candidates per age bin and per region,
    impostors and their fraction (``None`` when there is nothing to divide by)."""
    bins = age_bin_table(bins)
    teff, logg = _floats(selected, "teff"), _floats(selected, "logg")
    in_region = np.asarray(selected["in_yso_region"], bool)
    summary: dict = {
        "n_catalogue": len(selected),
        "n_with_teff_logg": int(np.sum(np.isfinite(teff) & np.isfinite(logg))),
        "n_in_yso_region": int(in_region.sum()),
        "n_in_yso_region_failing_cuts": int(np.sum(in_region
                                                   & ~np.asarray(selected["quality_ok"]))),
        "n_candidates": len(cands),
        "age_bins": [],
    }
    for row in bins:
        summary["age_bins"].append({
            "age_bin": int(row["age_bin"]), "age_range": str(row["age_range"]),
            "logg_min": _json_float(row["logg_min"]), "logg_max": _json_float(row["logg_max"]),
            "n": int(np.sum(np.asarray(cands["age_bin"]) == row["age_bin"]))})
    if "impostor" in cands.colnames:
        regions = region_table(regions)
        imp = np.asarray(cands["impostor"], bool)
        member = np.asarray(cands["region"]).astype(str)
        summary["regions"] = [
            {"region": str(r["name"]), "complex": str(r["complex"]),
             "n": int(np.sum((member == str(r["name"])) & ~imp)),
             **{f"n_bin{int(b)}": int(np.sum((member == str(r["name"])) & ~imp
                                             & (np.asarray(cands["age_bin"]) == b)))
                for b in bins["age_bin"]}}
            for r in regions]
        summary["n_impostors"] = int(imp.sum())
        summary["n_without_position"] = int(np.sum(~np.isfinite(_floats(cands, "ra"))
                                                   | ~np.isfinite(_floats(cands, "dec"))))
        summary["impostor_fraction"] = _json_float(impostor_fraction(cands))
    notes = [n for n in str(selected.meta.get("yso_notes", "")).split("; ") if n]
    if not len(cands):
        notes.append("no star passes the selection: zero YSO candidates")
    summary["notes"] = notes
    return summary


def _json_float(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
