"""Photometric labels for M dwarfs (Olney et al. 2020 §2.3.1).

Three relations, each a pure vectorised function of magnitudes (mag), with two named
coefficient sets:

``released`` (default)
    What the authors ran to make their released training labels: Hejazi A1 = −14.2959,
    Mann's r−J/[Fe/H] form, Veyette c = −1.335e−3. Reproduces their published labels.
``paper``
    As printed in Olney et al. 2020 eqs. 1–3 (Hejazi A1 = −14.259, Mann's r−J/J−H form,
    Veyette c = −1.334e−3), with the factor 3500 restored: Mann's polynomial gives Teff/3500.

Inputs: SDSS-like g, r; 2MASS J, H, K(s); Gaia parallax in mas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from astropy.table import Table, hstack

from yso_labels.core.sanity import implausible, missing_magnitudes
from yso_labels.core.tables import duplicated
from yso_labels.regions import in_excluded_field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoefficientSet:
    """Coefficients of the three M-dwarf relations and where they come from."""

    name: str
    hejazi: tuple[float, ...]
    mann_color: str  # "jh": polynomial in r−J plus J−H terms; "feh": plus a [Fe/H] term
    mann: tuple[float, ...]
    veyette: tuple[float, float, float, float]
    citation: str


COEFFICIENTS: dict[str, CoefficientSet] = {
    "released": CoefficientSet(
        name="released",
        hejazi=(-14.2959, 0.0519, 29.5926, -0.0529, -17.6762, 0.7032),
        mann_color="feh",
        mann=(2.532, -1.319, 0.4449, -0.07151, 0.004333, 0.05629),
        veyette=(7.912, -0.1880, -1.335e-3, 1.313e-7),
        citation=("Coefficients used for the released labels of Olney et al. 2020 "
                  "(Hejazi et al. 2015 AJ 149 140; Mann et al. 2015 ApJ 804 64, r-J with [Fe/H] "
                  "form; Veyette et al. 2017 ApJ 851 26)"),
    ),
    "paper": CoefficientSet(
        name="paper",
        hejazi=(-14.259, 0.0519, 29.5926, -0.0529, -17.6762, 0.7032),
        mann_color="jh",
        mann=(2.151, -1.092, 0.3767, -0.06292, 0.003950, 0.1697, -0.03106),
        veyette=(7.912, -0.1880, -1.334e-3, 1.313e-7),
        citation=("Olney et al. 2020 eqs. 1-3 as printed (Mann et al. 2015 r-J with J-H form), "
                  "Teff/3500 factor of Mann et al. 2015 restored"),
    ),
}

#: Validity ranges of the relations (flag, do not drop). Olney et al. 2020 §2.3.1.
VALIDITY = {
    "hejazi": {"g_k": (3.3, 8.46), "j_k": (0.71, 1.01), "fe_h": (-0.73, 0.3)},
    "mann": {"abs_k": (4.6, 9.8), "teff": (2700.0, 4100.0), "fe_h": (-0.6, 0.5)},
    "veyette": {"teff": (3200.0, 4100.0), "fe_h": (-0.7, 0.3)},
}
#: Selection of bona fide low-mass main-sequence stars (Olney et al. 2020 §2.3.1).
SELECTION = {"j_k": (0.7, 1.05), "g_k": (3.37, 8.46), "abs_k": (5.0, 10.0), "plx_snr_min": 3.0}


def coefficient_set(name: str) -> CoefficientSet:
    """Look up a coefficient set by name (``released`` or ``paper``)."""
    try:
        return COEFFICIENTS[name]
    except KeyError:
        raise ValueError(f"unknown coefficient set {name!r}; use one of "
                         f"{', '.join(COEFFICIENTS)}") from None


def hejazi_feh(g, J, K, coefficients: str = "released") -> np.ndarray:
    """[Fe/H] (dex) from g−K and J−K (mag). Hejazi et al. 2015; Olney et al. 2020 eq. 1.

    [Fe/H] = A1 + A2(g−K) + A3(J−K) + A4(g−K)² + A5(J−K)² + A6(g−K)(J−K).
    """
    a = coefficient_set(coefficients).hejazi
    gk = np.asarray(g, float) - np.asarray(K, float)
    jk = np.asarray(J, float) - np.asarray(K, float)
    return a[0] + a[1] * gk + a[2] * jk + a[3] * gk**2 + a[4] * jk**2 + a[5] * gk * jk


def mann_teff(r, J, H=None, fe_h=None, coefficients: str = "released") -> np.ndarray:
    """Teff (K) from r−J (mag). Mann et al. 2015 Table 2; Olney et al. 2020 eq. 2.

    ``released``: Teff/3500 = 2.532 − 1.319X + 0.4449X² − 0.07151X³ + 0.004333X⁴
    + 0.05629[Fe/H], X = r−J (needs ``fe_h``).
    ``paper``: Teff/3500 = B0 + B1X + … + B4X⁴ + B5(J−H) + B6(J−H)² (needs ``H``).
    """
    cs = coefficient_set(coefficients)
    x = np.asarray(r, float) - np.asarray(J, float)
    b = cs.mann
    poly = b[0] + b[1] * x + b[2] * x**2 + b[3] * x**3 + b[4] * x**4
    if cs.mann_color == "feh":
        if fe_h is None:
            raise ValueError(f"coefficient set {cs.name!r}: Mann Teff needs [Fe/H]")
        poly = poly + b[5] * np.asarray(fe_h, float)
    else:
        if H is None:
            raise ValueError(f"coefficient set {cs.name!r}: Mann Teff needs H")
        jh = np.asarray(J, float) - np.asarray(H, float)
        poly = poly + b[5] * jh + b[6] * jh**2
    return 3500.0 * poly


def veyette_logg(teff, fe_h, coefficients: str = "released") -> np.ndarray:
    """log g (dex, cgs) from Teff (K) and [Fe/H] (dex). Veyette et al. 2017; Olney et al.
    2020 eq. 3: log g = 7.912 − 0.1880[Fe/H] + c·Teff + 1.313e−7·Teff².
    """
    c0, c1, c2, c3 = coefficient_set(coefficients).veyette
    teff = np.asarray(teff, float)
    return c0 + c1 * np.asarray(fe_h, float) + c2 * teff + c3 * teff**2


def absolute_magnitude(mag, parallax_mas) -> np.ndarray:
    """M = m + 5 log10(ϖ / mas) − 10 (mag); NaN for non-positive parallax."""
    plx = np.asarray(parallax_mas, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(mag, float) + 5.0 * np.log10(np.where(plx > 0, plx, np.nan)) - 10.0


def _within(x, lo, hi, inclusive: bool = False) -> np.ndarray:
    x = np.asarray(x, float)
    return (x >= lo) & (x <= hi) if inclusive else (x > lo) & (x < hi)


def mdwarf_labels(g, r, J, H, K, parallax=None, coefficients: str = "released") -> Table:
    """Teff (K), log g (dex), [Fe/H] (dex) and validity flags for M dwarfs.

    Returns a Table with ``teff, logg, fe_h``, ``bad_photometry`` (an input magnitude that is
    non-finite or a missing-value code such as 99 or −99, see
    :func:`yso_labels.core.sanity.missing_magnitudes`: labels NaN), ``implausible_labels``
    (colours so far outside the relations that a label leaves its sanity range,
    :data:`yso_labels.core.sanity.LABEL_RANGES`: labels NaN), and ``hejazi_valid``,
    ``mann_valid``, ``veyette_valid`` (inside each relation's calibrated range; Mann's M_K
    test needs ``parallax`` in mas).
    """
    mags = [np.asarray(m, float) for m in (g, r, J, H, K)]
    bad = np.any([missing_magnitudes(m) for m in mags], axis=0)  # NaN, 99, -99, ...
    g, r, J, H, K = (np.where(bad, np.nan, m) for m in mags)
    fe_h = hejazi_feh(g, J, K, coefficients)
    teff = mann_teff(r, J, H=H, fe_h=fe_h, coefficients=coefficients)
    logg = veyette_logg(teff, fe_h, coefficients)
    # colours far outside the relations' domain push the polynomials to impossible labels
    wild = (implausible(teff, "teff") | implausible(logg, "logg")
            | implausible(fe_h, "fe_h"))
    teff, logg, fe_h = (np.where(wild, np.nan, x) for x in (teff, logg, fe_h))

    vh, vm, vv = VALIDITY["hejazi"], VALIDITY["mann"], VALIDITY["veyette"]
    hejazi_ok = (_within(g - K, *vh["g_k"], inclusive=True)
                 & _within(J - K, *vh["j_k"], inclusive=True)
                 & _within(fe_h, *vh["fe_h"], inclusive=True))
    mann_ok = _within(teff, *vm["teff"]) & _within(fe_h, *vm["fe_h"])
    if parallax is not None:
        mann_ok &= _within(absolute_magnitude(K, parallax), *vm["abs_k"])
    veyette_ok = _within(teff, *vv["teff"]) & _within(fe_h, *vv["fe_h"])
    return Table({
        "teff": teff, "logg": logg, "fe_h": fe_h, "bad_photometry": bad,
        "implausible_labels": wild,
        "hejazi_valid": hejazi_ok, "mann_valid": mann_ok, "veyette_valid": veyette_ok,
    })


def select_mdwarfs(g, J, K, parallax, parallax_error, ra=None, dec=None) -> np.ndarray:
    """Bona fide low-mass main-sequence stars (Olney et al. 2020 §2.3.1).

    0.7 < J−K < 1.05, 3.37 < g−K < 8.46, 5 < M_K < 10 (M_K from the parallax in mas),
    ϖ/σ_ϖ > 3, and, when ``ra``/``dec`` (deg) are given, not in the fields of the Orion
    Complex, NGC 1333, IC 348, NGC 2264 or the Pleiades (those go to the YSO procedure).
    """
    g, J, K = (np.atleast_1d(np.asarray(m, float)) for m in (g, J, K))
    plx = np.atleast_1d(np.asarray(parallax, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        plx_snr = plx / np.asarray(parallax_error, float)
    keep = (_within(J - K, *SELECTION["j_k"]) & _within(g - K, *SELECTION["g_k"])
            & _within(absolute_magnitude(K, plx), *SELECTION["abs_k"])
            & (plx_snr > SELECTION["plx_snr_min"]))
    if ra is not None and dec is not None:
        keep &= ~in_excluded_field(ra, dec)
    return keep


def mdwarf_table(table: Table, coefficients: str = "released", select: bool = False) -> Table:
    """Add ``teff logg fe_h`` and flag columns to a photometry table (``g r J H K``, and
    ``parallax parallax_error`` in mas for ``select``); with ``select``, keep only bona fide
    M dwarfs outside the star-forming fields (Olney et al. 2020 §2.3.1)."""
    if "apogee_id" in table.colnames:
        dups = duplicated(table["apogee_id"])
        if dups:
            log.warning("%d duplicated APOGEE IDs in the input (e.g. %s)", len(dups),
                        ", ".join(dups[:5]))
    plx = table["parallax"] if "parallax" in table.colnames else None
    labels = mdwarf_labels(table["g"], table["r"], table["J"], table["H"], table["K"],
                           parallax=plx, coefficients=coefficients)
    out = hstack([table, labels], metadata_conflicts="silent")
    if select:
        has_pos = "ra" in table.colnames and "dec" in table.colnames
        if not has_pos:
            log.warning("no ra/dec columns: the star-forming-field exclusion is not applied")
        keep = select_mdwarfs(table["g"], table["J"], table["K"], table["parallax"],
                              table["parallax_error"],
                              ra=table["ra"] if has_pos else None,
                              dec=table["dec"] if has_pos else None)
        keep &= ~np.asarray(out["bad_photometry"]) & ~np.asarray(out["implausible_labels"])
        log.info("selection: %d of %d stars are bona fide M dwarfs", keep.sum(), len(out))
        out = out[keep]
    return out
