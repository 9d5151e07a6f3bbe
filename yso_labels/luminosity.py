"""Luminosity and surface gravity of a star from its Gaia G magnitude and parallax.

Three relations, each a small function over arrays:

* :func:`bolometric_correction_g`: BC_G(Teff) of Andrae et al. (2018, A&A 616, A8), eq. 7 and
  Table 8 (the Gaia DR2 FLAME bolometric correction; Gaia DR2 documentation, chapter 8, FLAME), a
  fourth-order polynomial in Teff − 5772 K with one coefficient set for 4000–8000 K and one
  for 3300–4000 K; NaN outside 3300–8000 K.
* :func:`log_luminosity`: log10 L/L☉ = (M_bol,☉ − M_bol)/2.5 with M_bol = M_G − A_G + BC_G and
  M_bol,☉ = 4.74 mag (IAU 2015 Resolution B2), M_G from the parallax
  (:func:`yso_labels.mdwarf.absolute_magnitude`).
* :func:`logg_from_luminosity`: g = G M / R² with L = 4π R² σ Teff⁴, i.e. log g = log g☉ +
  log10(M/M☉) + 4 log10(Teff/Teff☉) − log10(L/L☉), with the IAU 2015 Resolution B3 nominal
  solar values Teff☉ = 5772 K and log g☉ = 4.438 (cgs).

Checked against PARSEC v1.2S (the isochrones in ``../shared/data/isochrones``): from each
model's absolute G, Teff and mass these give its log g to within 0.05 dex for every point with
3300–8000 K and log g ≥ 0.5 (median 0.009 dex; ``tests/test_lamost_lumcheck.py``).
"""

from __future__ import annotations

import numpy as np

from yso_labels.mdwarf import absolute_magnitude

__all__ = ["BC_G", "MBOL_SUN", "TEFF_SUN", "LOGG_SUN", "bolometric_correction_g",
           "log_luminosity", "logg_from_luminosity"]

#: Andrae et al. (2018) Table 8: (Teff range in K, coefficients a0…a4 of (Teff − 5772 K)^i).
BC_G = (
    ((4000.0, 8000.0), (6.000e-02, 6.731e-05, -6.647e-08, 2.859e-11, -7.197e-15)),
    ((3300.0, 4000.0), (1.749e+00, 1.977e-03, 3.737e-07, -8.966e-11, -4.183e-14)),
)
#: Solar bolometric magnitude (mag), IAU 2015 Resolution B2.
MBOL_SUN = 4.74
#: Nominal solar effective temperature (K), IAU 2015 Resolution B3.
TEFF_SUN = 5772.0
#: Nominal solar log g (cgs): G M☉ / R☉² with the IAU 2015 B3 nominal values.
LOGG_SUN = 4.438


def bolometric_correction_g(teff) -> np.ndarray:
    """BC_G (mag) at ``teff`` (K): Andrae et al. (2018) eq. 7, Table 8; NaN outside
    3300–8000 K."""
    teff = np.asarray(teff, float)
    out = np.full(teff.shape, np.nan)
    x = teff - TEFF_SUN
    for (lo, hi), coeffs in BC_G:
        sel = (teff >= lo) & (teff <= hi) & np.isnan(out)
        out[sel] = np.polynomial.polynomial.polyval(x[sel], coeffs)
    return out


def log_luminosity(g_mag, parallax_mas, teff, a_g=0.0) -> np.ndarray:
    """log10 L/L☉ from Gaia G (mag), parallax (mas), Teff (K, for BC_G) and the G-band
    extinction A_G (mag); NaN where the parallax is not positive or Teff is outside BC_G's
    range."""
    m_bol = absolute_magnitude(g_mag, parallax_mas) - np.asarray(a_g, float) \
        + bolometric_correction_g(teff)
    return (MBOL_SUN - m_bol) / 2.5


def logg_from_luminosity(teff, log_l, mass) -> np.ndarray:
    """log g (cgs) of a star of ``mass`` (M☉), ``teff`` (K) and ``log_l`` (log10 L/L☉)."""
    return (LOGG_SUN + np.log10(np.asarray(mass, float))
            + 4.0 * np.log10(np.asarray(teff, float) / TEFF_SUN) - np.asarray(log_l, float))
