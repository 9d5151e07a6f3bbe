"""Synthetic young stars from PARSEC isochrones, observed as Gaia/2MASS/WISE would see them.

Olney et al. 2020 §2.4: initial mass uniform in 0.08–3 M☉, age uniform in 1–100 Myr, A_V
uniform in 0–20 mag, distance uniform in 50–1000 pc, [Fe/H] = 0, no noise. Magnitudes too
faint to be detected are set to the limiting magnitude; G is required (stars fainter
than G = 19 are not in the sample: they are drawn again). Stellar radius r* and log L are
"reported" as Gaia DR2 does only if r* > 0.5 R☉, log L > −1.54 and M_G < 10; otherwise
both are set to those limits (0.5 R☉, −1.54). M_G is the isochrone's absolute G (no
extinction): r* and log L "were drawn from the isochrone".

The same rules (:func:`apply_limits`, :func:`report_radius_logl`) are applied by
:mod:`yso_labels.photcnn` to real photometry before prediction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from astropy.table import Table

from yso_labels.core.guards import check_memory, positive_int
from yso_labels.core.options import resolve_options
from yso_labels.core.runtime import seed_everything
from yso_labels.extinction import (  # noqa: F401  (re-exported: the constants moved)
    band_ratios,
    describe,
    extinction_coefficients,
    extinction_sources,
    g23_a_over_av,
)
from yso_labels.isochrones import (
    GridError,
    interpolate,
    load_isochrones,
    mass_coverage,
    require_bands,
)
from yso_labels.options import SynthOptions

log = logging.getLogger(__name__)

#: Sampling ranges of the paper (uniform): initial mass (M☉), age (Myr), A_V (mag), d (pc).
PAPER_RANGES = {"mass": (0.08, 3.0), "age_myr": (1.0, 100.0), "av": (0.0, 20.0),
                "distance": (50.0, 1000.0)}
#: The paper's nine bands, and the six of the packaged grid (no WISE there).
PAPER_BANDS = ("G", "BP", "RP", "J", "H", "K", "W1", "W2", "W3")
GAIA_2MASS_BANDS = ("G", "BP", "RP", "J", "H", "K")
#: Detection limits (apparent mag): fainter values are set to the limit (Olney 2020 §2.4).
#: SDSS g, r: the survey's 95 % completeness for point sources (York et al. 2000 AJ 120
#: 1579, Table 1), for models of samples without Gaia photometry (``bands`` without G).
LIMITS = {"G": 19.0, "BP": 20.5, "RP": 17.5, "J": 17.0, "H": 16.0, "K": 16.0,
          "W1": 16.0, "W2": 16.0, "W3": 13.5, "g": 22.2, "r": 22.2}
#: Gaia DR2-like reporting of r* (R☉) and log L (L☉): reported only above these limits
#: and for M_G below ``abs_g_max``; otherwise set to the limits.
#: Peak memory per synthetic star of :func:`draw_population` (bytes; measured 1.6 kB
#: for the nine bands, with margin): the cap of ``n``.
BYTES_PER_STAR = 2048
REPORT_RULES = {"radius_min": 0.5, "logl_min": -1.54, "abs_g_max": 10.0}
#: Output columns holding the true parameters of each synthetic star.
TRUTH_COLUMNS = ("mass_true", "age_myr_true", "log_age_true", "av_true", "teff_true",
                 "logg_true", "radius_true", "logl_true")


# ---------------------------------------------------------------------- observing rules

def distance_modulus(distance_pc) -> np.ndarray:
    """μ = 5 log10(d / 10 pc) (mag)."""
    return 5.0 * np.log10(np.asarray(distance_pc, float) / 10.0)


def observe(absmag, av, distance_pc, a_over_av: float) -> np.ndarray:
    """Apparent magnitude m = M + μ(d) + A_V·(A_band/A_V) (mag)."""
    return np.asarray(absmag, float) + distance_modulus(distance_pc) + \
        np.asarray(av, float) * a_over_av


def apply_limits(mag, band: str, limits: dict[str, float] | None = None) -> np.ndarray:
    """Set magnitudes fainter than the band's limit, or missing (NaN), to the limit."""
    lim = (limits or LIMITS)[band]
    m = np.asarray(mag, float)
    return np.where(np.isfinite(m) & (m < lim), m, lim)


def report_radius_logl(radius, logl, abs_g, rules: dict[str, float] | None = None):
    """Gaia DR2-like reporting: ``(radius, logl, reported)``; unreported rows get the limits.

    Reported only where r* > 0.5 R☉, log L > −1.54 and M_G < 10 (and all are finite).
    """
    rules = rules or REPORT_RULES
    r = np.asarray(radius, float)
    lum = np.asarray(logl, float)
    mg = np.asarray(abs_g, float)
    with np.errstate(invalid="ignore"):
        reported = (r > rules["radius_min"]) & (lum > rules["logl_min"]) & \
            (mg < rules["abs_g_max"])
    return (np.where(reported, r, rules["radius_min"]),
            np.where(reported, lum, rules["logl_min"]), reported)


# --------------------------------------------------------------------------- population

def default_bands(grid: Table) -> tuple[str, ...]:
    """The paper's nine bands when the grid has them, else those of them it has (the six
    Gaia + 2MASS bands for the packaged grid)."""
    return tuple(b for b in PAPER_BANDS if b in grid.colnames)


def _resolve_mass_range(grid: Table, mass_range, log_age_range) -> tuple[tuple, str]:
    lo, hi = mass_coverage(grid, log_age_range)
    if mass_range is not None:
        if mass_range[0] < lo - 1e-9 or mass_range[1] > hi + 1e-9:
            raise GridError(f"initial masses {mass_range[0]}-{mass_range[1]} M☉ outside the "
                            f"isochrone grid {grid.meta.get('SOURCE', '')} at these ages "
                            f"({lo:.4g}-{hi:.4g} M☉)")
        return tuple(map(float, mass_range)), ""
    want = PAPER_RANGES["mass"]
    got = (max(want[0], lo), min(want[1], hi))
    note = ""
    if got != want:
        note = (f"paper mass range {want[0]}-{want[1]} Msun clipped to the grid's "
                f"{got[0]:.4f}-{got[1]:.4f} Msun")
        log.warning(note)
    return got, note


def draw_population(n: int, seed: int, grid: Table | str | os.PathLike | None = None,
                    bands: Sequence[str] | None = None,
                    mass_range: tuple[float, float] | None = None,
                    age_myr_range: tuple[float, float] = PAPER_RANGES["age_myr"],
                    av_range: tuple[float, float] = PAPER_RANGES["av"],
                    distance_range: tuple[float, float] = PAPER_RANGES["distance"],
                    limits: dict[str, float] | None = None,
                    k_excess: tuple[float, float] | None = None,
                    extinction: str = "law") -> Table:
    """Draw ``n`` synthetic stars (Olney 2020 §2.4) with G detected; same seed, same table.

    ``grid``: a standard isochrone table, a path, or None (packaged PARSEC grid).
    ``bands``: default :func:`default_bands`; they may leave out G (e.g. ``g r J H K``
    for a sample with SDSS and 2MASS photometry only), but the stars are always the ones
    Gaia detects (G < 19, selected on the grid's G). ``mass_range`` default: the paper's 0.08–3 M☉
    within the grid's coverage (recorded in ``meta['NOTE']``); an explicit range outside
    the grid is an error. ``k_excess``: a uniform (min, max) K-band brightening (mag) added
    before the limits, mimicking the J−K excess of real YSOs (0.05–0.3 mag in the paper);
    drawn from its own random stream so the stars are those of the same seed without it.
    ``extinction``: ``"law"`` (A_band/A_V of each star from its Teff and A_V, G23 law
    through the filter curves, :mod:`yso_labels.extinction`) or ``"fixed"`` (one constant
    per band, ``data/extinction.csv``: the behaviour before issue 17).

    Columns: ``apogee_id``, observed bands (mag, limits applied), ``radius`` (R☉) and
    ``logl`` (reported or limits), ``distance`` (pc), ``parallax`` (mas), ``reported`` and
    the truth ``mass_true age_myr_true log_age_true av_true teff_true logg_true radius_true
    logl_true`` (+ ``k_excess``).
    """
    n = positive_int(n, "n")
    check_memory("n", n, BYTES_PER_STAR, what="for the synthetic stars")
    if not isinstance(grid, Table):
        grid = load_isochrones(grid)
    bands = tuple(bands) if bands else default_bands(grid)
    require_bands(grid, ["G", *bands])  # G selects the sample even when not an output
    limits = dict(LIMITS, **(limits or {}))
    unknown = [b for b in bands if b not in limits]
    if unknown:
        raise ValueError(f"no detection limit for band(s) {', '.join(unknown)}")
    band_ratios(bands, 5000.0, 1.0, extinction)  # validates the mode before drawing
    log_age_range = (np.log10(age_myr_range[0] * 1e6), np.log10(age_myr_range[1] * 1e6))
    mass_range, note = _resolve_mass_range(grid, mass_range, log_age_range)
    rng = seed_everything(seed)
    excess_rng = np.random.default_rng([seed, 1])
    parts, n_drawn = [], 0
    while sum(len(p["mass"]) for p in parts) < n:
        m = max(2 * (n - sum(len(p["mass"]) for p in parts)), 1000)
        n_drawn += m
        mass = rng.uniform(*mass_range, m)
        age = rng.uniform(*age_myr_range, m)
        av = rng.uniform(*av_range, m)
        dist = rng.uniform(*distance_range, m)
        la = np.log10(age * 1e6)
        phys = interpolate(grid, la, mass, outside="raise",
                           columns=["teff", "logg", "logl", "radius",
                                    *dict.fromkeys(["G", *bands])])
        k_g = band_ratios(["G"], phys["teff"], av, extinction)["G"]
        g_app = observe(phys["G"], av, dist, k_g)
        keep = g_app < limits["G"]
        parts.append({"mass": mass[keep], "age": age[keep], "la": la[keep], "av": av[keep],
                      "dist": dist[keep], "phys": phys[keep]})
    cat = {k: np.concatenate([p[k] for p in parts])[:n] for k in ("mass", "age", "la", "av",
                                                                    "dist")}
    phys = Table(np.concatenate([np.asarray(p["phys"].as_array()) for p in parts])[:n])
    n_kept = sum(len(p["mass"]) for p in parts)
    excess = excess_rng.uniform(*k_excess, n) if k_excess else np.zeros(n)

    out = Table()
    out["apogee_id"] = [f"synth-{seed}-{i:06d}" for i in range(n)]
    coeffs = band_ratios(bands, phys["teff"], cat["av"], extinction)
    for band in bands:
        m = observe(phys[band], cat["av"], cat["dist"], coeffs[band])
        if band == "K":
            m = m - excess
        out[band] = apply_limits(m, band, limits)
    r_rep, l_rep, reported = report_radius_logl(phys["radius"], phys["logl"], phys["G"])
    out["radius"] = r_rep
    out["logl"] = l_rep
    out["distance"] = cat["dist"]
    out["parallax"] = 1000.0 / cat["dist"]
    out["reported"] = reported
    out["mass_true"] = cat["mass"]
    out["age_myr_true"] = cat["age"]
    out["log_age_true"] = cat["la"]
    out["av_true"] = cat["av"]
    out["teff_true"] = np.asarray(phys["teff"])
    out["logg_true"] = np.asarray(phys["logg"])
    out["radius_true"] = np.asarray(phys["radius"])
    out["logl_true"] = np.asarray(phys["logl"])
    if k_excess:
        out["k_excess"] = excess
    band_note = ("the paper's nine bands" if tuple(bands) == PAPER_BANDS else
                 "six Gaia+2MASS bands (the grid has no WISE; the paper used nine)"
                 if tuple(bands) == GAIA_2MASS_BANDS else "user-chosen bands")
    out.meta.update({
        "MODELS": str(grid.meta.get("MODELS", "user grid")),
        "GRID": grid.meta.get("GRID", ""), "GRIDSRC": grid.meta.get("SOURCE", ""),
        "MH": grid.meta.get("MH", ""), "BANDS": " ".join(bands), "BANDNOTE": band_note,
        "SEED": int(seed), "N": int(n), "NDRAWN": int(n_drawn),
        "GFRAC": round(n_kept / n_drawn, 4),
        "MASSRNG": f"{mass_range[0]:.4f} {mass_range[1]:.4f}",
        "AGERNG": f"{age_myr_range[0]} {age_myr_range[1]}",
        "AVRNG": f"{av_range[0]} {av_range[1]}",
        "DISTRNG": f"{distance_range[0]} {distance_range[1]}",
        "LIMITS": " ".join(f"{b}<{limits[b]}" for b in bands),
        "EXTMODE": extinction, "EXTINCT": describe(bands, extinction) if extinction == "law"
        else " ".join(f"{b}={v:.5f}" for b, v in extinction_coefficients(bands).items()),
        "KEXCESS": f"{k_excess[0]} {k_excess[1]}" if k_excess else "none",
    })
    if note:
        out.meta["NOTE"] = note
    return out


def synth(n: int, seed: int, out: str | os.PathLike, options: SynthOptions | None = None,
          **kwargs):
    """Draw a population (:func:`draw_population`) and write it with provenance to ``out``.

    The options are :class:`yso_labels.options.SynthOptions`, given as ``options`` or as
    keyword arguments of the same names. ``isochrones``: None (the ``models`` family), a
    path, or a list of CMD files to join.
    ``models``: ``parsec`` (default), ``dsep-magnetic`` or ``dsep-standard``
    (:mod:`yso_labels.families`); not together with ``isochrones``. ``extinction``:
    ``law`` or ``fixed`` (see :func:`draw_population`).
    """
    from yso_labels.core.tables import provenance, write_table
    from yso_labels.families import DEFAULT_MODELS, check_models, load_models

    o = resolve_options(SynthOptions, options, kwargs)
    if o.isochrones is not None and o.models is not None:
        raise ValueError("give either isochrones (a user grid file) or models (a packaged "
                         "model family), not both")
    if o.isochrones is None:
        grid = load_models(check_models(o.models or DEFAULT_MODELS), mh=o.mh)
    else:
        grid = load_isochrones(o.isochrones, mh=o.mh)
    table = draw_population(n, seed, grid=grid, bands=o.bands, k_excess=o.k_excess,
                            extinction=o.extinction)
    meta = provenance("synth", {"n": n, "seed": seed, "isochrones": o.isochrones,
                                "bands": list(o.bands) if o.bands else None, "mh": o.mh,
                                "models": table.meta["MODELS"], "extinction": o.extinction,
                                "k_excess": o.k_excess},
                      **{k: v for k, v in table.meta.items()})
    table.meta.clear()
    return write_table(table, out, meta)
