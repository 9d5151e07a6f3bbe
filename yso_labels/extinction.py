"""Band extinction that depends on the star: A_band(Teff, A_V) from a published law.

For a broad band the extinction in magnitudes is not A_V times one number: it is the
attenuation of the star's photon flux through the filter,

    A_band = −2.5 log10[ ∫ T(λ) λ F_λ(Teff) 10^(−0.4 A_V k(λ)) dλ / ∫ T(λ) λ F_λ(Teff) dλ ]

(photon-counting detectors; T the filter response, F_λ a blackbody B_λ(Teff), k(λ) = A_λ/A_V
of the Gordon et al. 2023 ApJ 950 86 "G23" Milky Way curve at R_V = 3.1, from
``dust_extinction``). A_band/A_V therefore falls for cooler stars (their flux sits at the
red, less extinguished, edge of the band) and with A_V itself (the blue edge is
extinguished first); as A_V → 0 it tends to ∫ T λ F_λ k / ∫ T λ F_λ.

The ratio is tabulated once on a (Teff, A_V) grid in ``data/extinction_law.csv`` (made by
``scripts/make_extinction_table.py`` from the Gaia EDR3 (Riello et al. 2021), 2MASS (Cohen
et al. 2003) and SDSS filter curves shipped with the PyPI package ``stelpar``) and
interpolated bilinearly in (log10 Teff, A_V), clipped at the grid edges. Bands without a
filter curve there (WISE W1–W3) keep the constant G23 value at their effective wavelength
(:func:`extinction_coefficients`).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np
from astropy.table import Table

#: The law and R_V of the tabulated coefficients.
LAW = "G23"
RV = 3.1
TABLE_FILE = "data/extinction_law.csv"
MODES = ("law", "fixed")
#: Planck's second radiation constant hc/k (µm K), CODATA 2018.
C2_UM_K = 14387.7688


def _trapz(y, x) -> float:
    """Trapezoid rule ∫ y dx."""
    y, x = np.asarray(y, float), np.asarray(x, float)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def blackbody_flambda(wavelength_um, teff) -> np.ndarray:
    """Planck B_λ(T) up to a constant factor: λ⁻⁵ / (exp(hc/λkT) − 1); λ in µm, T in K."""
    lam = np.asarray(wavelength_um, float)
    return lam ** -5 / np.expm1(C2_UM_K / (lam * float(teff)))


def law_a_over_av(wavelength_um, rv: float = RV) -> np.ndarray:
    """A_λ/A_V of the G23 curve (Gordon et al. 2023) at ``wavelength_um`` (µm)."""
    import astropy.units as u
    from dust_extinction.parameter_averages import G23

    return np.asarray(G23(Rv=rv)(np.asarray(wavelength_um, float) * u.micron), float)


def band_a_over_av(wavelength_um, response, teff: float, av: float,
                   rv: float = RV) -> float:
    """A_band/A_V of a blackbody of ``teff`` (K) behind ``av`` (mag) through ``response``.

    Formula in the module docstring (trapezoid rule on the filter's own wavelengths, µm).
    ``av`` = 0 gives the limit ∫ T λ B_λ k / ∫ T λ B_λ.
    """
    lam = np.asarray(wavelength_um, float)
    w = np.asarray(response, float) * lam * blackbody_flambda(lam, teff)
    k = law_a_over_av(lam, rv)
    if av <= 0:
        return float(_trapz(w * k, lam) / _trapz(w, lam))
    ratio = _trapz(w * 10 ** (-0.4 * av * k), lam) / _trapz(w, lam)
    return float(-2.5 * np.log10(ratio) / av)


# ------------------------------------------- constant coefficients (--extinction fixed)

@lru_cache(maxsize=1)
def _extinction_table() -> Table:
    ref = importlib.resources.files("yso_labels").joinpath("data/extinction.csv")
    with importlib.resources.as_file(ref) as path:
        return Table.read(path, format="ascii.csv", comment="#")


def extinction_coefficients(bands: Sequence[str]) -> dict[str, float]:
    """A_band/A_V for ``bands`` from ``data/extinction.csv`` (sources listed there).

    Bands without a tabulated value are computed with ``dust_extinction``'s G23 curve
    (Gordon et al. 2023, R_V = 3.1) at the tabulated effective wavelength.
    """
    table = _extinction_table()
    rows = {str(r["band"]): r for r in table}
    out = {}
    for band in bands:
        if band not in rows:
            raise ValueError(f"no extinction coefficient or effective wavelength for band "
                             f"{band!r} in yso_labels/data/extinction.csv")
        value = rows[band]["a_over_av"]
        if np.ma.is_masked(value) or not np.isfinite(float(value)):
            out[band] = g23_a_over_av(float(rows[band]["lambda_eff"]))
        else:
            out[band] = float(value)
    return out


def extinction_sources(bands: Sequence[str]) -> dict[str, str]:
    """Citation of each band's A_band/A_V (column ``source`` of ``data/extinction.csv``)."""
    rows = {str(r["band"]): str(r["source"]) for r in _extinction_table()}
    return {b: rows.get(b, "?") for b in bands}


def g23_a_over_av(wavelength_um: float, rv: float = 3.1) -> float:
    """A_λ/A_V of the Gordon et al. 2023 (G23) Milky Way curve at ``wavelength_um`` (µm)."""
    import astropy.units as u
    from dust_extinction.parameter_averages import G23

    return float(G23(Rv=rv)(wavelength_um * u.micron))


@lru_cache(maxsize=1)
def _table() -> Table:
    ref = importlib.resources.files("yso_labels").joinpath(TABLE_FILE)
    with importlib.resources.as_file(ref) as path:
        return Table.read(path, format="ascii.csv", comment="#")


def law_bands() -> tuple[str, ...]:
    """Bands tabulated in ``data/extinction_law.csv``."""
    return tuple(c for c in _table().colnames if c not in ("teff", "av"))


@cache
def _grid(band: str):
    t = _table()
    teffs = np.unique(np.asarray(t["teff"], float))
    avs = np.unique(np.asarray(t["av"], float))
    order = np.lexsort((np.asarray(t["av"]), np.asarray(t["teff"])))
    values = np.asarray(t[band], float)[order].reshape(len(teffs), len(avs))
    return np.log10(teffs), avs, values


def a_over_av(band: str, teff, av) -> np.ndarray:
    """A_band/A_V at (Teff [K], A_V [mag]), vectorised; bilinear in (log Teff, A_V) in the
    tabulated G23 grid, clipped at its edges (the table spans the synthetic populations'
    Teff and 0 ≤ A_V ≤ 20)."""
    if band not in law_bands():
        raise ValueError(f"band {band!r} has no filter curve in {TABLE_FILE} (has "
                         f"{', '.join(law_bands())})")
    lt, avs, values = _grid(band)
    x = np.clip(np.log10(np.asarray(teff, float)), lt[0], lt[-1])
    y = np.clip(np.asarray(av, float), avs[0], avs[-1])
    x, y = np.broadcast_arrays(x, y)
    i = np.clip(np.searchsorted(lt, x, side="right") - 1, 0, len(lt) - 2)
    j = np.clip(np.searchsorted(avs, y, side="right") - 1, 0, len(avs) - 2)
    fx = (x - lt[i]) / (lt[i + 1] - lt[i])
    fy = (y - avs[j]) / (avs[j + 1] - avs[j])
    return ((1 - fx) * (1 - fy) * values[i, j] + fx * (1 - fy) * values[i + 1, j]
            + (1 - fx) * fy * values[i, j + 1] + fx * fy * values[i + 1, j + 1])


def band_ratios(bands: Sequence[str], teff, av, mode: str = "law") -> dict:
    """A_band/A_V per band (arrays) for stars of ``teff`` (K) behind ``av`` (mag).

    ``mode="law"``: the tabulated G23 ratio where the band has a filter curve, else the
    constant of :func:`extinction_coefficients` (WISE); ``"fixed"``:
    those constants for every band (the toolkit's behaviour before issue 17).
    """
    if mode not in MODES:
        raise ValueError(f"extinction must be one of {', '.join(MODES)}, got {mode!r}")
    fixed = extinction_coefficients(bands)
    shape = np.broadcast(np.asarray(teff, float), np.asarray(av, float)).shape
    return {b: (a_over_av(b, teff, av) if mode == "law" and b in law_bands()
                else np.full(shape, fixed[b])) for b in bands}


def describe(bands: Sequence[str], mode: str) -> str:
    """One header line saying where each band's A_band/A_V comes from."""
    if mode == "fixed":
        return "fixed A_band/A_V (yso_labels/data/extinction.csv)"
    law = [b for b in bands if b in law_bands()]
    rest = [b for b in bands if b not in law_bands()]
    text = f"{LAW} R_V={RV} blackbody(Teff) through filters, A_V-dependent ({' '.join(law)})"
    return text + (f"; constant G23 at lambda_eff ({' '.join(rest)})" if rest else "")
