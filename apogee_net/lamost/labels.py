"""Training labels of the LAMOST Bayesian CNN (Li et al. §2.2.1–2.2.2).

* :func:`label_ranges`: the package table ``apogee_net/data/lamost_label_ranges.csv`` (14
  labels, allStar columns, uncertainty limits, Table 1 effective ranges, Table 2
  recommended ranges, the paper's test MAE and mean σ).
* :func:`treat_labels`: from an APOGEE DR17 allStar-like table, set a single label (and its
  uncertainty) to NaN when it is missing, its uncertainty exceeds the limit (0.20 dex for
  [α/M], C, N, O, Mg, Al, Si, Ca; 0.05 dex for Mn, Ni) or it lies outside the effective
  range; never drop the star.
* :func:`weight_table` / :func:`apply_weights` / :func:`feh_weights`: the [Fe/H] sample
  weights of §2.2.2.
* :func:`crossmatch_sky` / :func:`crossmatch_lamost_apogee`: LAMOST spectra ↔ APOGEE
  stars by position (astropy ``match_to_catalog_sky``) or by an ID column.
* :func:`recommended_flags`: predictions outside the Table 2 ranges.
"""

from __future__ import annotations

import logging
from importlib import resources

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from yso_labels.core.tables import TableError, check_columns

log = logging.getLogger(__name__)

__all__ = ["LABELS", "CORE_LABELS", "label_ranges", "treat_labels", "from_dr12_columns",
           "weight_table",
           "apply_weights", "feh_weights", "SkyIndex", "crossmatch_sky", "crossmatch_lamost_apogee",
           "recommended_flags", "WEIGHT_STANDARD"]

#: Label order of the network (Li et al. abstract): Teff (K), the rest in dex.
LABELS = ("teff", "logg", "fe_h", "m_h", "alpha_m", "c_fe", "n_fe", "o_fe", "mg_fe",
          "al_fe", "si_fe", "ca_fe", "mn_fe", "ni_fe")
#: Labels Li et al. wanted complete (§2.2.1: "we still want the four parameters ... to be
#: complete").
CORE_LABELS = ("teff", "logg", "fe_h", "m_h")
#: Li et al. §2.2.2: mean stars per 0.1-dex bin for −1.4 < [Fe/H] < −0.9 in their set.
WEIGHT_STANDARD = 410.0
MISSING_SENTINELS = (-9999.0, -999.0)


def label_ranges() -> Table:
    """The per-label table of Li et al.'s limits and ranges (see the CSV's header)."""
    path = resources.files("apogee_net") / "data" / "lamost_label_ranges.csv"
    with resources.as_file(path) as p:
        table = Table.read(p, format="ascii.csv", comment="#")
    for col in ("err_max", "eff_min", "eff_max", "rec_min", "rec_max", "mae_paper",
                "sigma_paper"):
        table[col] = np.asarray(table[col].filled(np.nan) if hasattr(table[col], "filled")
                                else table[col], dtype=float)
    table.add_index("label")
    if tuple(table["label"]) != LABELS:
        raise RuntimeError("lamost_label_ranges.csv does not list the labels in LABELS order")
    return table


def _column(table: Table, names: tuple[str, ...]):
    for name in names:
        if name in table.colnames:
            return name
    return None


def _as_float(col) -> np.ndarray:
    values = np.asarray(col.filled(np.nan) if hasattr(col, "filled") else col, dtype=float)
    values = values.copy()
    values[np.isin(values, MISSING_SENTINELS) | ~np.isfinite(values)] = np.nan
    return values


def treat_labels(table: Table, ranges: Table | None = None, id_column: str = "APOGEE_ID",
                 labels: tuple[str, ...] = LABELS, where: str = "label table") -> Table:
    """Li et al. §2.2.1 label treatment of an allStar-like table; one output row per input row.

    Input columns: ``id_column``, and per label its allStar name (``TEFF``, ``FE_H``, …) or
    the toolkit name (``teff``, ``fe_h``, …), with the uncertainty in ``<name>_ERR`` /
    ``<name>_err``. Missing values may be NaN, masked or −9999. A label without an
    uncertainty column keeps σ_known = 0 and no uncertainty limit can be applied (warned).

    Output: ``apogee_id``, ``<label>``, ``<label>_err`` for each label (NaN when treated),
    ``n_labels`` (labels left) and ``core_complete`` (Teff, log g, [Fe/H], [M/H] all left).
    ``meta["TREATED"]`` counts per label the values removed for being missing, over the
    uncertainty limit, and outside the effective range. Rows whose labels all end NaN are
    kept (flagged by ``n_labels == 0``) and logged.
    """
    ranges = label_ranges() if ranges is None else ranges
    check_columns(table, [id_column], where)
    out = Table()
    out["apogee_id"] = np.asarray(table[id_column]).astype(str)
    counts = {}
    absent = []
    for name in labels:
        row = ranges.loc[name]
        col = _column(table, (str(row["allstar"]), name))
        if col is None:
            absent.append(f"{row['allstar']} (or {name})")
            continue
        value = _as_float(table[col])
        ecol = _column(table, (f"{col}_ERR", f"{col}_err", f"{name}_err"))
        if ecol is None:
            err = np.zeros(len(table))
            if np.isfinite(row["err_max"]):
                log.warning("%s: no uncertainty column for %s; σ_known = 0 and the %.2f dex "
                            "limit is not applied", where, col, row["err_max"])
        else:
            err = _as_float(table[ecol])
        missing = ~np.isfinite(value)
        with np.errstate(invalid="ignore"):
            too_uncertain = ~missing & (err > row["err_max"]) if np.isfinite(row["err_max"]) \
                else np.zeros(len(value), bool)
            outside = ~missing & ~too_uncertain & ((value < row["eff_min"])
                                                   | (value > row["eff_max"]))
        drop = missing | too_uncertain | outside
        value[drop] = np.nan
        err = np.where(drop, np.nan, np.where(np.isfinite(err), err, 0.0))
        out[name] = value
        out[f"{name}_err"] = err
        counts[name] = {"missing": int(missing.sum()), "err_over_limit": int(too_uncertain.sum()),
                        "outside_range": int(outside.sum()), "kept": int((~drop).sum())}
    if absent:
        raise TableError(f"{where}: missing label column(s) {', '.join(absent)}")
    values = np.column_stack([out[n] for n in labels])
    out["n_labels"] = np.isfinite(values).sum(axis=1)
    out["core_complete"] = np.all(np.isfinite(np.column_stack(
        [out[n] for n in CORE_LABELS if n in labels])), axis=1)
    empty = int((out["n_labels"] == 0).sum())
    if empty:
        log.warning("%s: %d star(s) have no label left after the treatment (kept, "
                    "n_labels = 0; they cannot be trained on)", where, empty)
    out.meta["TREATED"] = counts
    return out


def from_dr12_columns(table: Table) -> Table:
    """An APOGEE DR12-style table (``PARAM_M_H``, ``PARAM_ALPHA_M``, ``X_H``) with the DR17
    column names :func:`treat_labels` reads: ``M_H``, ``ALPHA_M`` and ``X_FE = X_H − FE_H``
    (dex; −9999/NaN propagate as missing), uncertainties ``X_FE_ERR = X_H_ERR`` (the [Fe/H]
    error is not added: both come from one fit and are strongly correlated)."""
    out = table.copy(copy_data=False)
    fe = _as_float(table["FE_H"]) if "FE_H" in table.colnames else None
    for src, dst in (("PARAM_M_H", "M_H"), ("PARAM_ALPHA_M", "ALPHA_M")):
        for suffix in ("", "_ERR"):
            if src + suffix in table.colnames and dst + suffix not in table.colnames:
                out[dst + suffix] = _as_float(table[src + suffix])
    for name in LABELS[5:]:
        elem = name.split("_")[0].upper()
        if f"{elem}_H" in table.colnames and fe is not None and f"{elem}_FE" not in out.colnames:
            out[f"{elem}_FE"] = _as_float(table[f"{elem}_H"]) - fe
            if f"{elem}_H_ERR" in table.colnames:
                out[f"{elem}_FE_ERR"] = _as_float(table[f"{elem}_H_ERR"])
    return out


# --------------------------------------------------------------------------- weights
def weight_table(fe_h: np.ndarray, lo: float = -2.5, hi: float = 0.5, width: float = 0.1,
                 standard: float | str = WEIGHT_STANDARD, cap: float = 10.0,
                 poor_below: float = -1.4, plateau: tuple[float, float] = (-1.4, -0.9),
                 dense: tuple[float, float] = (-0.5, 0.1), dense_weight: float = 0.95
                 ) -> Table:
    """The [Fe/H] weight table of Li et al. §2.2.2 from the training set's [Fe/H] (dex).

    30 bins of 0.1 dex over [lo, hi] = [−2.5, 0.5] (last bin closed, as Table 1's range).
    A star with [Fe/H] < ``poor_below`` (−1.4) gets ``standard``/N_bin, capped at ``cap``
    (10); −0.5 < [Fe/H] < 0.1 gets
    ``dense_weight`` (0.95); any other star 1. ``standard``: 410 (the paper's value for
    its 76k-star set) or ``"auto"``: the mean count of the bins within ``plateau``
    (−1.4 to −0.9 dex), the paper's recipe applied to another training set.

    Returns a Table with one row per bin: ``lo, hi, count`` and the ``weight`` of the
    metal-poor rule (1 for bins at or above ``poor_below``); ``meta`` records the options.
    """
    fe_h = np.asarray(fe_h, dtype=float)
    nbins = int(round((hi - lo) / width))
    edges = np.round(lo + width * np.arange(nbins + 1), 10)
    finite = fe_h[np.isfinite(fe_h)]
    counts = np.histogram(finite, bins=edges)[0]
    centre = 0.5 * (edges[:-1] + edges[1:])
    if standard == "auto":
        in_plateau = (edges[:-1] >= plateau[0] - 1e-9) & (edges[1:] <= plateau[1] + 1e-9)
        if not counts[in_plateau].any():
            raise ValueError(f"weight standard 'auto': no training star with {plateau[0]} < "
                             f"[Fe/H] < {plateau[1]}")
        standard_value = float(counts[in_plateau].mean())
    else:
        standard_value = float(standard)
    with np.errstate(divide="ignore"):
        poor = np.where(counts > 0, np.minimum(standard_value / np.maximum(counts, 1), cap), cap)
    weight = np.where(centre < poor_below, poor, 1.0)
    table = Table({"lo": edges[:-1], "hi": edges[1:], "count": counts, "weight": weight})
    table.meta.update({"standard": standard_value, "cap": cap, "poor_below": poor_below,
                       "dense": list(dense), "dense_weight": dense_weight})
    return table


def apply_weights(fe_h: np.ndarray, table: Table, ids=None) -> np.ndarray:
    """Per-star weights from a :func:`weight_table`; raises when a star is not covered.

    A star is not covered when its [Fe/H] is NaN or outside the table's bins; the
    ``ValueError`` names up to ten of them (by ``ids`` when given, else row index).
    """
    fe_h = np.asarray(fe_h, dtype=float)
    lo, hi = float(table["lo"][0]), float(table["hi"][-1])
    bad = ~np.isfinite(fe_h) | (fe_h < lo) | (fe_h > hi)
    if bad.any():
        which = np.flatnonzero(bad)[:10]
        names = [f"{ids[i]} ([Fe/H]={fe_h[i]:.3g})" if ids is not None else
                 f"row {i} ([Fe/H]={fe_h[i]:.3g})" for i in which]
        raise ValueError(f"the [Fe/H] weight table covers {lo:g} ≤ [Fe/H] ≤ {hi:g}; "
                         f"{int(bad.sum())} star(s) are outside or have no [Fe/H]: "
                         f"{', '.join(names)}")
    idx = np.clip(np.searchsorted(np.asarray(table["hi"]), fe_h, side="right"), 0, len(table) - 1)
    weights = np.asarray(table["weight"], float)[idx]
    d_lo, d_hi = table.meta["dense"]
    dense = (fe_h > d_lo) & (fe_h < d_hi)
    weights = np.where(dense, table.meta["dense_weight"], weights)
    poor = fe_h < table.meta["poor_below"]
    return np.where(poor | dense, weights, 1.0)


def feh_weights(fe_h: np.ndarray, **options) -> np.ndarray:
    """Li et al. §2.2.2 weights of the stars ``fe_h`` with the table built from themselves."""
    return apply_weights(fe_h, weight_table(fe_h, **options))


# --------------------------------------------------------------------------- cross-match
class SkyIndex:
    """Catalogue-2 positions (degrees, ICRS) prepared once for repeated nearest-neighbour
    matches: the finite rows as a SkyCoord, whose search tree astropy builds on the first
    match and keeps."""

    def __init__(self, ra, dec):
        ra, dec = np.asarray(ra, float), np.asarray(dec, float)
        self.rows = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
        self.coords = SkyCoord(ra[self.rows] * u.deg, dec[self.rows] * u.deg) \
            if self.rows.size else None

    def match(self, ra1, dec1, max_sep: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
        """``(index, separation)`` for each position: see :func:`crossmatch_sky`."""
        ra1, dec1 = np.asarray(ra1, float), np.asarray(dec1, float)
        ok1 = np.isfinite(ra1) & np.isfinite(dec1)
        index = np.full(ra1.size, -1, dtype=np.int64)
        sep = np.full(ra1.size, np.nan)
        if not ok1.any() or self.coords is None:
            return index, sep
        idx, d2d, _ = SkyCoord(ra1[ok1] * u.deg, dec1[ok1] * u.deg).match_to_catalog_sky(
            self.coords)
        arcsec = d2d.to_value(u.arcsec)
        good = arcsec <= max_sep
        index[np.flatnonzero(ok1)[good]] = self.rows[idx[good]]
        sep[ok1] = arcsec
        return index, sep


def crossmatch_sky(ra1, dec1, ra2, dec2, max_sep: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Nearest catalogue-2 star for each catalogue-1 position (degrees, ICRS).

    Returns ``(index, separation)``: index into catalogue 2 (−1 when the nearest is farther
    than ``max_sep`` arcsec or the position is not finite) and the separation in arcsec.
    """
    return SkyIndex(ra2, dec2).match(ra1, dec1, max_sep)


def crossmatch_lamost_apogee(lamost: Table, apogee: Table, how: str = "position",
                             max_sep: float = 3.0, lamost_id: str = "apogee_id",
                             lamost_key: str | None = None, apogee_key: str = "APOGEE_ID",
                             ra: tuple[str, str] = ("ra", "RA"),
                             dec: tuple[str, str] = ("dec", "DEC")) -> Table:
    """Rows of ``apogee`` for the spectra of ``lamost``, one output row per matched spectrum.

    ``how="position"``: nearest APOGEE star within ``max_sep`` arcsec (columns ``ra``/``dec``
    of each table, degrees); ``how="id"``: equal values of ``lamost_key`` and ``apogee_key``.
    Output: the APOGEE columns, with ``spec_id`` (the LAMOST spectrum's ``lamost_id``, the
    key of the spectra store) and ``match_sep`` (arcsec; NaN for ID matches). Several LAMOST
    spectra of one star each get a row.
    """
    check_columns(lamost, [lamost_id], "LAMOST table")
    if how == "position":
        check_columns(lamost, [ra[0], dec[0]], "LAMOST table")
        check_columns(apogee, [ra[1], dec[1]], "APOGEE table")
        idx, sep = crossmatch_sky(lamost[ra[0]], lamost[dec[0]], apogee[ra[1]], apogee[dec[1]],
                                  max_sep)
    elif how == "id":
        if lamost_key is None:
            raise ValueError("crossmatch by id needs lamost_key (the LAMOST table's column "
                             "holding the APOGEE identifier)")
        check_columns(lamost, [lamost_key], "LAMOST table")
        check_columns(apogee, [apogee_key], "APOGEE table")
        keys = {str(k).strip(): i for i, k in enumerate(apogee[apogee_key])}
        idx = np.array([keys.get(str(k).strip(), -1) for k in lamost[lamost_key]], np.int64)
        sep = np.full(len(lamost), np.nan)
    else:
        raise ValueError(f"crossmatch how must be 'position' or 'id', got {how!r}")
    hit = idx >= 0
    out = apogee[idx[hit]]
    out["spec_id"] = np.asarray(lamost[lamost_id]).astype(str)[hit]
    out["match_sep"] = sep[hit]
    log.info("cross-match (%s): %d of %d LAMOST spectra matched", how, int(hit.sum()), len(hit))
    return out


# --------------------------------------------------------------------------- flags
def recommended_flags(values: np.ndarray, labels=LABELS, ranges: Table | None = None
                      ) -> np.ndarray:
    """Boolean (n, k): prediction outside Li et al.'s recommended range (Table 2, §3.1–3.3)
    or not finite."""
    ranges = label_ranges() if ranges is None else ranges
    values = np.asarray(values, float)
    lo = np.array([ranges.loc[n]["rec_min"] for n in labels])
    hi = np.array([ranges.loc[n]["rec_max"] for n in labels])
    with np.errstate(invalid="ignore"):
        return ~((values >= lo) & (values <= hi))
