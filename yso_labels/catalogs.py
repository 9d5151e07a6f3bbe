"""Photometry and astrometry of APOGEE targets from the Gaia archive.

One ADQL query per chunk of targets (uploaded as ``TAP_UPLOAD.targets``) joins Gaia DR3
(or DR2) to 2MASS PSC, AllWISE and SDSS or Pan-STARRS1 through the archive's best-neighbour
tables (Marrese et al. 2019, A&A 621, A144). Two routes:

``2mass_id``
    The APOGEE ID ``2Mhhmmssss+ddmmsss`` is a 2MASS PSC designation: the 2MASS source is
    found by that designation (within 1 arcsec of the position it encodes), and the Gaia
    source by the best-neighbour table, keeping the 2MASS designation as the join key.
    ``match_sep`` is the archive's Gaia–2MASS ``angular_distance`` (arcsec).
``position``
    Rows with only ra/dec (or an ``AP…`` APOGEE ID, which encodes a position but no 2MASS
    source): the nearest Gaia source within ``radius`` arcsec after moving it back to the
    input ``epoch`` with its proper motion; 2MASS, AllWISE and g, r follow from that
    Gaia source's best neighbours. ``match_sep`` is that distance (arcsec).

Output columns follow :data:`yso_labels.core.tables.PHOTOMETRY_COLUMNS` (magnitudes in mag,
parallax in mas) plus ``radius`` (R☉) and ``logl`` (log10 L/L☉) from Gaia's FLAME (DR3
``gaiadr3.astrophysical_parameters`` ``radius_flame``, ``lum_flame``; DR2 ``radius_val``,
``lum_val``), the r* and log L the YSO photometric CNN uses, ``*_error`` columns,
``source_id`` (−1 when none), ``match_sep``, ``match``, ``id_status`` and
``tmass_ph_qual``. A magnitude without an uncertainty (a 2MASS or AllWISE upper limit) or
with a −9999-style null is NaN. The M-dwarf relations were
calibrated on SDSS g, r; with ``gr_source="panstarrs"`` the header says so.
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np
from astropy import units as u
from astropy.coordinates import angular_separation
from astropy.table import Table, vstack
from tqdm.auto import tqdm

from yso_labels.catalog_cache import (
    DEFAULT_CACHE,
    GAIA_TAP_URL,
    GaiaArchive,
    QueryCache,
    with_retries,
)
from yso_labels.core.options import resolve_options
from yso_labels.core.tables import (
    DEX,
    TableError,
    float_column,
    provenance,
    read_table,
    write_table,
)
from yso_labels.options import FetchOptions

log = logging.getLogger(__name__)

#: Gaia releases: tables, reference epoch and G/BP/RP zero-point uncertainties (mag).
#: DR3 σ0 from Riello et al. 2021 (A&A 649, A3; Gaia EDR3 passband release); DR2: the
#: zero-point term is left out (flux term only).
RELEASES: dict[str, dict] = {
    "dr3": {"name": "Gaia DR3", "gaia": "gaiadr3.gaia_source",
            "tmass_xm": "gaiadr3.tmass_psc_xsc_best_neighbour",
            "tmass_key": "tm.designation = xm.original_ext_source_id",
            "allwise_xm": "gaiadr3.allwise_best_neighbour",
            "sigma0": {"G": 0.0027553202, "BP": 0.0027901700, "RP": 0.0037793818},
            "flame": ("ap.radius_flame, ap.lum_flame",
                      "LEFT OUTER JOIN gaiadr3.astrophysical_parameters AS ap "
                      "ON ap.source_id = gs.source_id\n"),
            "flame_label": "Gaia DR3 FLAME radius_flame, lum_flame "
                           "(gaiadr3.astrophysical_parameters; Creevey et al. 2023)"},
    "dr2": {"name": "Gaia DR2", "gaia": "gaiadr2.gaia_source",
            "tmass_xm": "gaiadr2.tmass_best_neighbour",
            "tmass_key": "tm.tmass_oid = xm.tmass_oid",
            "allwise_xm": "gaiadr2.allwise_best_neighbour",
            "sigma0": {"G": 0.0, "BP": 0.0, "RP": 0.0},
            "flame": ("gs.radius_val AS radius_flame, gs.lum_val AS lum_flame", ""),
            "flame_label": "Gaia DR2 FLAME radius_val, lum_val (gaiadr2.gaia_source; "
                           "Andrae et al. 2018)"},
}
#: Sources of g and r per release: best-neighbour table, photometry table, join and columns.
GR_SOURCES: dict[str, dict[str, dict]] = {
    "sdss": {
        "dr3": {"xm": "gaiadr3.sdssdr13_best_neighbour", "table": "external.sdssdr13_photoprimary",
                "key": "gr.objid = grx.original_ext_source_id",
                "cols": ("psfmag_g", "psfmagerr_g", "psfmag_r", "psfmagerr_r"),
                "label": "SDSS DR13 PSF magnitudes (SDSS system)"},
        "dr2": {"xm": "gaiadr2.sdssdr9_best_neighbour", "table": "gaiadr1.sdssdr9_original_valid",
                "key": "gr.sdssdr9_oid = grx.sdssdr9_oid",
                "cols": ("g_mag", "g_mag_error", "r_mag", "r_mag_error"),
                "label": "SDSS DR9 magnitudes (SDSS system)"}},
    "panstarrs": {
        rel: {"xm": f"gaia{rel}.panstarrs1_best_neighbour",
              "table": "gaiadr2.panstarrs1_original_valid",
              "key": "gr.obj_id = grx.original_ext_source_id",
              "cols": ("g_mean_psf_mag", "g_mean_psf_mag_error",
                       "r_mean_psf_mag", "r_mean_psf_mag_error"),
              "label": "Pan-STARRS1 mean PSF magnitudes (PS1 system, NOT SDSS: the "
                       "M-dwarf relations were calibrated on SDSS g, r)"}
        for rel in ("dr3", "dr2")},
}
#: Radius (arcsec) around the position encoded in a 2MASS designation: the designation
#: truncates RA to 0.01 s (≤0.15") and Dec to 0.1".
ID_RADIUS = 1.0
#: Window (arcsec) for Gaia counterparts of a 2MASS source: 10" over the ~16 yr between the
#: 2MASS and Gaia epochs allows proper motions up to ~0.6"/yr.
PM_WINDOW = 10.0
#: Output bands: (output name, result column, result error column or None for Gaia).
BANDS = (("G", "phot_g_mean_mag", None), ("BP", "phot_bp_mean_mag", None),
         ("RP", "phot_rp_mean_mag", None), ("J", "j_m", "j_msigcom"), ("H", "h_m", "h_msigcom"),
         ("K", "ks_m", "ks_msigcom"), ("W1", "w1mpro", "w1mpro_error"),
         ("W2", "w2mpro", "w2mpro_error"), ("W3", "w3mpro", "w3mpro_error"),
         ("g", "gr_g", "gr_g_error"), ("r", "gr_r", "gr_r_error"))

_ID_RE = re.compile(r"^(2M|AP)(\d{2})(\d{2})(\d{4})([+-])(\d{2})(\d{2})(\d{3})$")


def parse_apogee_id(apogee_id) -> tuple[str, float, float, str]:
    """``(tmass_designation, ra, dec, problem)`` for one APOGEE ID.

    ``2Mhhmmssss±ddmmsss`` (a 2MASS PSC designation; ``2MASS J`` prefix accepted) gives the
    designation and the position it encodes, ICRS degrees: ra = 15 (h + m/60 + s/3600),
    dec = ±(d + m/60 + s/3600) (Skrutskie et al. 2006, designations truncate, not round).
    ``AP…`` IDs (targets without a 2MASS source) give the position only. ``problem`` is
    "" when the ID parses, else says what is wrong (the other fields are then "" and NaN).
    """
    text = apogee_id.decode() if isinstance(apogee_id, bytes) else str(apogee_id)
    text = text.strip()
    if text.upper().startswith("2MASS J"):
        text = "2M" + text[7:].strip()
    if text in ("", "--", "nan", "None"):
        return "", np.nan, np.nan, "no APOGEE ID"
    m = _ID_RE.match(text)
    if not m:
        return "", np.nan, np.nan, (f"malformed APOGEE ID {text!r} (expected "
                                    "2Mhhmmssss+ddmmsss or APhhmmssss+ddmmsss)")
    prefix, hh, mm, ss, sign, dd, dm, ds = m.groups()
    h, m_ra, s_ra = int(hh), int(mm), int(ss) / 100.0
    d, m_dec, s_dec = int(dd), int(dm), int(ds) / 10.0
    if h > 23 or m_ra > 59 or s_ra >= 60 or m_dec > 59 or s_dec >= 60 or \
            d + m_dec / 60 + s_dec / 3600 > 90:
        return "", np.nan, np.nan, f"APOGEE ID {text!r} encodes an impossible position"
    ra = 15.0 * (h + m_ra / 60.0 + s_ra / 3600.0)
    dec = (1.0 if sign == "+" else -1.0) * (d + m_dec / 60.0 + s_dec / 3600.0)
    return (text[2:] if prefix == "2M" else ""), ra, dec, ""


def plan_targets(table: Table) -> Table:
    """One row per input row: ``row_id apogee_id ra dec tmass_id route id_status``.

    ``route`` is ``2mass_id`` (a 2MASS designation), ``position`` (usable ra/dec, from the
    table or encoded in an ``AP`` ID) or ``none``. Input ra/dec (deg) win over those encoded
    in the ID for the output position; the designation is always the 2MASS join key.
    """
    n = len(table)
    ids = [""] * n
    if "apogee_id" in table.colnames:
        col = table["apogee_id"]
        ids = ["" if m else (v.decode() if isinstance(v, bytes) else str(v)).strip()
               for v, m in zip(col, _isnull(col), strict=True)]
    ra_in = float_column(table["ra"]) if "ra" in table.colnames else np.full(n, np.nan)
    dec_in = float_column(table["dec"]) if "dec" in table.colnames else np.full(n, np.nan)
    pos_ok = np.isfinite(ra_in) & np.isfinite(dec_in) & (ra_in >= 0) & (ra_in < 360) \
        & (np.abs(dec_in) <= 90)
    plan = Table({"row_id": np.arange(n, dtype=np.int64), "apogee_id": ids,
                  "ra": np.where(pos_ok, ra_in, np.nan), "dec": np.where(pos_ok, dec_in, np.nan),
                  "id_ra": np.full(n, np.nan), "id_dec": np.full(n, np.nan),
                  "tmass_id": np.full(n, "", dtype="U20"), "route": np.full(n, "none", "U8"),
                  "id_status": np.full(n, "ok", dtype=object)})
    for i, text in enumerate(ids):
        has_id = text != ""
        tmass, ra, dec, problem = parse_apogee_id(text) if has_id else ("", np.nan, np.nan, "")
        plan["id_ra"][i], plan["id_dec"][i] = ra, dec
        if tmass:
            plan["tmass_id"][i], plan["route"][i] = tmass, "2mass_id"
        elif np.isfinite(ra) or pos_ok[i]:
            plan["route"][i] = "position"
        if not pos_ok[i] and np.isfinite(ra):
            plan["ra"][i], plan["dec"][i] = ra, dec
        if problem:
            plan["id_status"][i] = problem + ("; looked up by position" if pos_ok[i] else "")
        elif not has_id and not pos_ok[i]:
            plan["id_status"][i] = "neither an APOGEE ID nor a valid ra/dec"
    plan["id_status"] = plan["id_status"].astype(str)
    return plan


def build_adql(route: str, gaia_release: str = "dr3", gr_source: str = "sdss",
               radius: float = 2.0) -> str:
    """ADQL for one route (``2mass_id`` or ``position``) against ``TAP_UPLOAD.targets``
    (columns ``row_id``, ``ra``, ``dec`` in deg, and ``tmass_id`` for ``2mass_id``)."""
    rel, gr = RELEASES[gaia_release], GR_SOURCES[gr_source][gaia_release]
    g, g_err, r, r_err = gr["cols"]
    circle = "CIRCLE('ICRS', {c}.ra, {c}.dec, {deg!r})"
    gaia_cols = ("gs.source_id, gs.ra AS gaia_ra, gs.dec AS gaia_dec, gs.ref_epoch, gs.pmra, "
                 "gs.pmdec, gs.parallax, gs.parallax_error, gs.phot_g_mean_mag, "
                 "gs.phot_g_mean_flux_over_error, gs.phot_bp_mean_mag, "
                 "gs.phot_bp_mean_flux_over_error, gs.phot_rp_mean_mag, "
                 "gs.phot_rp_mean_flux_over_error, " + rel["flame"][0])
    select = (f"SELECT u.row_id, {gaia_cols},\n  tm.designation AS tmass_designation, "
              "tm.ph_qual AS tmass_ph_qual, tm.j_m, tm.j_msigcom, tm.h_m, tm.h_msigcom, tm.ks_m, "
              "tm.ks_msigcom, xm.angular_distance AS xm_sep,\n  aw.w1mpro, aw.w1mpro_error, "
              "aw.w2mpro, aw.w2mpro_error, aw.w3mpro, aw.w3mpro_error,\n"
              f"  gr.{g} AS gr_g, gr.{g_err} AS gr_g_error, "
              f"gr.{r} AS gr_r, gr.{r_err} AS gr_r_error")
    in_gaia = f"1 = CONTAINS(POINT('ICRS', gs.ra, gs.dec), {circle})"
    in_tmass = f"1 = CONTAINS(POINT('ICRS', tm.ra, tm.dec), {circle})"
    if route == "2mass_id":
        joins = (f"JOIN gaiadr1.tmass_original_valid AS tm ON "
                 f"{in_tmass.format(c='u', deg=ID_RADIUS / 3600)}\n"
                 f"LEFT OUTER JOIN {rel['gaia']} AS gs ON "
                 f"{in_gaia.format(c='u', deg=PM_WINDOW / 3600)}\n"
                 f"LEFT OUTER JOIN {rel['tmass_xm']} AS xm "
                 f"ON xm.source_id = gs.source_id AND {rel['tmass_key']}\n")
        gaia_id, where = "xm.source_id", "\nWHERE tm.designation = u.tmass_id"
    elif route == "position":
        joins = (f"JOIN {rel['gaia']} AS gs ON {in_gaia.format(c='u', deg=radius / 3600)}\n"
                 f"LEFT OUTER JOIN {rel['tmass_xm']} AS xm ON xm.source_id = gs.source_id\n"
                 f"LEFT OUTER JOIN gaiadr1.tmass_original_valid AS tm ON "
                 f"{in_tmass.format(c='gs', deg=PM_WINDOW / 3600)} AND {rel['tmass_key']}\n")
        gaia_id, where = "gs.source_id", ""
    else:
        raise ValueError(f"unknown route {route!r} (expected '2mass_id' or 'position')")
    return (f"{select}\nFROM TAP_UPLOAD.targets AS u\n{joins}{rel['flame'][1]}"
            f"LEFT OUTER JOIN {rel['allwise_xm']} AS awx ON awx.source_id = {gaia_id}\n"
            "LEFT OUTER JOIN gaiadr1.allwise_original_valid AS aw "
            "ON aw.allwise_oid = awx.allwise_oid\n"
            f"LEFT OUTER JOIN {gr['xm']} AS grx ON grx.source_id = {gaia_id}\n"
            f"LEFT OUTER JOIN {gr['table']} AS gr ON {gr['key']}{where}")


def gaia_mag_error(flux_over_error, sigma0: float = 0.0) -> np.ndarray:
    """Gaia magnitude uncertainty (mag): sqrt((2.5/ln 10 / (F/σ_F))² + σ0²), with σ0 the
    passband zero-point uncertainty (Riello et al. 2021, A&A 649, A3; Gaia EDR3 docs)."""
    foe = float_column(flux_over_error)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.hypot(2.5 / np.log(10.0) / foe, sigma0)
    return np.where(foe > 0, err, np.nan)


def propagate(ra, dec, pmra, pmdec, dt_yr) -> tuple[np.ndarray, np.ndarray]:
    """Positions (deg) moved by their proper motion over ``dt_yr`` years.

    Rigorous space motion on the sphere (astropy ``SkyCoord.apply_space_motion``, ERFA
    ``pmsafe``; no parallax or radial velocity: straight-line motion in the tangent
    direction), right near the poles where ra + μα*Δt / cos δ is not. ``pmra`` is
    μα* = μα cos δ and ``pmdec`` μδ, in mas/yr as in Gaia. A missing proper motion leaves
    the position unchanged.
    """
    import warnings

    from astropy.coordinates import SkyCoord

    ra, dec = float_column(ra), float_column(dec)
    dt = np.broadcast_to(np.nan_to_num(float_column(dt_yr)), ra.shape)
    pmra = np.broadcast_to(np.nan_to_num(float_column(pmra)), ra.shape)
    pmdec = np.broadcast_to(np.nan_to_num(float_column(pmdec)), ra.shape)
    out_ra, out_dec = ra.copy(), dec.copy()
    ok = np.isfinite(ra) & np.isfinite(dec) & ((pmra != 0) | (pmdec != 0)) & (dt != 0)
    if ok.any():
        with warnings.catch_warnings():  # ERFA: "distance overridden" (no parallax given)
            warnings.simplefilter("ignore")
            start = SkyCoord(ra=ra[ok] * u.deg, dec=dec[ok] * u.deg,
                             pm_ra_cosdec=pmra[ok] * u.mas / u.yr,
                             pm_dec=pmdec[ok] * u.mas / u.yr, frame="icrs")
            moved = start.apply_space_motion(dt=dt[ok] * u.yr)
        out_ra[ok], out_dec[ok] = moved.ra.deg, moved.dec.deg
    return out_ra % 360.0, out_dec


def assemble_photometry(plan: Table, id_rows: Table | None, pos_rows: Table | None,
                        gaia_release: str = "dr3", epoch: float = 2000.0) -> Table:
    """One output row per planned target from the archive's result rows (see module doc)."""
    n = len(plan)
    best = np.full(n, -1)
    sep = np.full(n, np.nan)
    ncand = np.zeros(n, dtype=int)
    match = np.full(n, "none", dtype="U10")
    rows = _merge_results(id_rows, pos_rows)
    if rows is not None and len(rows):
        rid = np.asarray(rows["row_id"], dtype=np.int64)
        has_gaia = ~_isnull(rows["source_id"])
        xm_sep = float_column(rows["xm_sep"])
        ra_ep, dec_ep = propagate(rows["gaia_ra"], rows["gaia_dec"], rows["pmra"],
                                  rows["pmdec"], epoch - float_column(rows["ref_epoch"]))
        route = np.asarray(plan["route"])[rid]
        pos_sep = angular_separation(ra_ep * u.deg, dec_ep * u.deg,
                                     float_column(plan["ra"])[rid] * u.deg,
                                     float_column(plan["dec"])[rid] * u.deg).to_value(u.arcsec)
        # a 2mass_id row's Gaia candidates are those whose best neighbour is that 2MASS source
        cand = np.where(route == "2mass_id", np.isfinite(xm_sep), has_gaia)
        score = np.nan_to_num(np.where(route == "2mass_id", xm_sep, pos_sep), nan=np.inf)
        for i in np.unique(rid):
            mine = np.flatnonzero(rid == i)
            good = mine[cand[mine]]
            ncand[i] = len(good)
            if len(good):
                best[i] = good[np.argmin(score[good])]
                sep[i] = score[best[i]]
                match[i] = plan["route"][i]
            else:  # a 2MASS source without a Gaia counterpart: keep its 2MASS photometry
                best[i] = mine[0]
                match[i] = "2mass_only" if plan["route"][i] == "2mass_id" else "none"
    out = Table({"apogee_id": plan["apogee_id"], "ra": plan["ra"], "dec": plan["dec"]})
    out["ra"].unit = out["dec"].unit = u.deg
    picked = best >= 0
    gaia_ok = picked & np.isin(match, ("2mass_id", "position"))

    def take(name: str, ok: np.ndarray = picked) -> np.ndarray:
        vals = np.full(n, np.nan)
        if rows is not None and ok.any():
            vals[ok] = float_column(rows[name])[best[ok]]
        return vals

    sigma0 = RELEASES[gaia_release]["sigma0"]
    for name, col, err_col in BANDS:
        ok = gaia_ok if err_col is None or name in ("W1", "W2", "W3", "g", "r") else picked
        mag = take(col, ok)
        if err_col is None:
            err = gaia_mag_error(take(col.replace("_mag", "_flux_over_error"), ok), sigma0[name])
        else:
            err = take(err_col, ok)
        bad = ~np.isfinite(err) | (err < 0) | (np.abs(mag) > 50)  # upper limits and nulls
        out[name] = np.where(bad, np.nan, mag)
        out[f"{name}_error"] = np.where(bad, np.nan, err)
        out[name].unit = out[f"{name}_error"].unit = u.mag
    out["parallax"] = take("parallax", gaia_ok)
    out["parallax_error"] = take("parallax_error", gaia_ok)
    out["parallax"].unit = out["parallax_error"].unit = u.mas
    # Gaia FLAME radius (R☉) and log10 luminosity (L☉): the r*, log L inputs of the YSO
    # photometric CNN (Olney et al. 2020 §2.4); NaN where FLAME gave none
    out["radius"] = take("radius_flame", gaia_ok)
    with np.errstate(divide="ignore", invalid="ignore"):
        lum = take("lum_flame", gaia_ok)
        out["logl"] = np.where(lum > 0, np.log10(lum), np.nan)
    out["radius"].unit = u.R_sun
    out["logl"].unit = DEX  # log10(L / L_sun)
    src = np.full(n, -1, dtype=np.int64)
    if rows is not None and gaia_ok.any():
        src[gaia_ok] = np.asarray(rows["source_id"].filled(-1), dtype=np.int64)[best[gaia_ok]]
    out["source_id"] = src
    out["match_sep"] = np.where(gaia_ok, sep, np.nan)
    out["match_sep"].unit = u.arcsec
    out["n_candidates"] = ncand
    out["match"] = match
    out["tmass_id"] = _strings(rows, "tmass_designation", best, picked, n)
    out["tmass_ph_qual"] = _strings(rows, "tmass_ph_qual", best, picked, n)
    status = np.asarray(plan["id_status"], dtype=object)
    status[(plan["route"] == "2mass_id") & ~picked] = \
        "2MASS designation not found in the 2MASS PSC"
    out["id_status"] = status.astype(str)
    return out


def query_photometry(targets: Table, gaia_release: str = "dr3", gr_source: str = "sdss",
                     cache: str | os.PathLike | None = DEFAULT_CACHE, chunk_size: int = 2000,
                     timeout: float = 60.0, retries: int = 4, backoff: float = 2.0,
                     radius: float = 2.0, epoch: float = 2000.0, url: str = GAIA_TAP_URL,
                     archive: GaiaArchive | None = None) -> Table:
    """Photometry for a table with ``apogee_id`` and/or ``ra``, ``dec`` (deg), in input order.

    Chunks of ``chunk_size`` targets go to the archive one query at a time; results are
    cached in ``cache`` (None: no cache), transient failures retried ``retries`` times with
    delays ``backoff·2^k`` s. Raises :class:`~yso_labels.catalog_cache.CatalogError` (an
    ``OSError``) when the archive cannot be reached or fails; chunks fetched before the
    failure stay in the cache, so rerunning resumes.
    """
    if gaia_release not in RELEASES:
        raise ValueError(f"gaia_release {gaia_release!r}: expected one of {sorted(RELEASES)}")
    if gr_source not in GR_SOURCES:
        raise ValueError(f"gr_source {gr_source!r}: expected one of {sorted(GR_SOURCES)}")
    if chunk_size < 1 or radius <= 0 or retries < 0:
        raise ValueError("chunk_size must be >= 1, radius > 0 arcsec and retries >= 0")
    plan = plan_targets(targets)
    bad = plan[plan["id_status"] != "ok"]
    if len(bad):
        shown = "; ".join(f"row {r['row_id'] + 1}: {r['id_status']}" for r in bad[:10])
        log.warning("%d of %d rows have unusable IDs (listed in column id_status): %s%s",
                    len(bad), len(plan), shown, " ..." if len(bad) > 10 else "")
    if not np.any(plan["route"] != "none"):
        raise ValueError("no row has a valid APOGEE ID or ra/dec; nothing to query")
    archive = archive or GaiaArchive(url=url, timeout=timeout)
    store = QueryCache(cache)
    jobs = []
    for route in ("2mass_id", "position"):
        sel = plan[plan["route"] == route]
        adql = build_adql(route, gaia_release, gr_source, radius)
        for start in range(0, len(sel), chunk_size):
            part = sel[start:start + chunk_size]
            upload = Table({"row_id": part["row_id"],
                            "ra": part["id_ra"] if route == "2mass_id" else part["ra"],
                            "dec": part["id_dec"] if route == "2mass_id" else part["dec"]})
            if route == "2mass_id":
                upload["tmass_id"] = np.asarray(part["tmass_id"], dtype="S")
            jobs.append((route, adql, upload))
    results: dict[str, list[Table]] = {"2mass_id": [], "position": []}
    checked, n_cached = False, 0
    for k, (route, adql, upload) in enumerate(tqdm(jobs, desc="Gaia archive", unit="chunk",
                                                   disable=None)):
        key = store.key(archive.url, adql, upload)
        result = store.get(key)
        if result is None:
            if not checked:
                archive.check_reachable()
                checked = True
            result = with_retries(lambda a=adql, t=upload: archive.query(a, t),
                                  what=f"Gaia archive query (chunk {k + 1} of {len(jobs)})",
                                  retries=retries, backoff=backoff)
            store.put(key, result)
        else:
            n_cached += 1
        results[route].append(result)
    log.info("%d chunks: %d from the cache, %d fetched", len(jobs), n_cached,
             len(jobs) - n_cached)
    out = assemble_photometry(plan, _stack(results["2mass_id"]), _stack(results["position"]),
                              gaia_release=gaia_release, epoch=epoch)
    out.meta["n_cached"] = n_cached
    return out


def read_targets(path: str | os.PathLike) -> Table:
    """A target list: a table with ``apogee_id`` and/or ``ra``, ``dec`` (any case), or a
    one-column list of APOGEE IDs without a header."""
    table = read_table(path, what="target list")
    lower = {c.lower(): c for c in table.colnames}
    for want, names in (("apogee_id", ("apogee_id", "ap_id")), ("ra", ("ra",)),
                        ("dec", ("dec",))):
        found = next((lower[n] for n in names if n in lower), None)
        if found and found != want and want not in table.colnames:
            table.rename_column(found, want)
    if "apogee_id" not in table.colnames and len(table.colnames) == 1 \
            and not parse_apogee_id(table.colnames[0])[3]:
        first = table.colnames[0]  # a bare list: the first ID was read as the header
        ids = [first] + [str(v) for v in table[first]]
        table = Table({"apogee_id": ids})
    if "apogee_id" not in table.colnames and not {"ra", "dec"} <= set(table.colnames):
        raise TableError(f"target list {path}: needs a column apogee_id or columns ra, dec; "
                         f"it has {', '.join(table.colnames) or 'no columns'}")
    return table


def fetch_photometry(input: str | os.PathLike, output: str | os.PathLike,
                     options: FetchOptions | None = None, **kwargs) -> Table:
    """Library function behind ``yso-labels fetch-photometry``: read the target list, query
    the archive (:func:`query_photometry`), write ``output`` atomically with provenance.
    The options are :class:`yso_labels.options.FetchOptions`, given as ``options`` or as
    keyword arguments of the same names; ``cache``: a folder, or None or ``'none'`` for
    none."""
    o = resolve_options(FetchOptions, options, kwargs)
    cache = None if o.cache is None or str(o.cache).strip().lower() in ("", "none") \
        else o.cache
    targets = read_targets(input)
    out = query_photometry(targets, gaia_release=o.gaia_release, gr_source=o.gr_source,
                           cache=cache, chunk_size=o.chunk_size, timeout=o.timeout,
                           retries=o.retries, radius=o.radius, epoch=o.epoch, url=o.url)
    rel, gr = RELEASES[o.gaia_release], GR_SOURCES[o.gr_source][o.gaia_release]
    recorded = {"input": os.path.abspath(input), "gaia_release": o.gaia_release,
                "gr_source": o.gr_source, "chunk_size": o.chunk_size, "radius": o.radius,
                "epoch": o.epoch, "url": o.url, "cache": str(cache) if cache else None}
    meta = provenance("fetch-photometry", recorded, GAIAREL=rel["name"],
                      RADLUM=rel["flame_label"],
                      XM2MASS=rel["tmass_xm"], XMWISE=rel["allwise_xm"],
                      GRSOURCE=f"{gr['table']} via {gr['xm']}", GRSYSTEM=gr["label"],
                      NINPUT=len(out), NGAIA=int(np.sum(out["source_id"] >= 0)),
                      NBADID=int(np.sum(out["id_status"] != "ok")))
    out.meta.pop("n_cached", None)
    write_table(out, output, meta)
    return out


def _isnull(col) -> np.ndarray:
    return np.asarray(np.ma.getmaskarray(col), dtype=bool)


def _strings(rows: Table | None, name: str, best: np.ndarray, ok: np.ndarray, n: int):
    vals = np.full(n, "", dtype=object)
    if rows is not None and ok.any():
        col = rows[name]
        text = [("" if m else (v.decode() if isinstance(v, bytes) else str(v)))
                for v, m in zip(col, _isnull(col), strict=True)]
        vals[ok] = np.asarray(text, dtype=object)[best[ok]]
    return vals.astype(str)


def _stack(tables: list[Table]) -> Table | None:
    return vstack(tables, metadata_conflicts="silent") if tables else None


def _merge_results(a: Table | None, b: Table | None) -> Table | None:
    """Both routes' result rows in one masked table (they share the column layout)."""
    parts = [Table(t, masked=True) for t in (a, b) if t is not None and len(t)]
    return vstack(parts, metadata_conflicts="silent") if parts else None
