"""Gaia parallax as a check on the network's log g (catalogue flag LUM_DISAGREE).

A network trained on simulated LAMOST spectra can call a K dwarf a giant with a confident σ
and a Teff that agrees with the spectral class (issue 12: 4 of the 60 real DR1 spectra). The
spectrum alone cannot tell; the parallax can. A K dwarf has M_G ≈ 6–8, a K giant −1 to +2.
:func:`logg_interval` turns a star's Gaia G, parallax and the network's Teff into the log g
interval allowed by its luminosity (:mod:`yso_labels.luminosity`) over:

* masses :data:`MASS_RANGE` (0.3–3 M☉: M dwarfs to intermediate-mass giants; 1 dex of log g);
* the parallax ± :data:`N_SIGMA` of its error;
* the G-band extinction: the table's ``a_g`` when given, else 0 to :data:`A_G_UNKNOWN` mag
  (more extinction: a brighter star, a lower log g).

:func:`lum_check` flags a row whose log g lies outside that interval. Without a match within
:data:`MATCH_RADIUS`, with parallax/σ below :data:`MIN_PARALLAX_SNR`, or Teff outside
BC_G's 3300–8000 K, the interval is NaN and there is no flag.

The photometry table (FITS/CSV/ECSV) needs ``ra``, ``dec`` (deg), ``G`` (mag), ``parallax``
and ``parallax_error`` (mas), the columns ``yso-labels fetch-photometry`` writes from the
Gaia archive (:mod:`yso_labels.catalogs`); ``a_g`` (mag) is optional. Parallaxes are used as
given: no zero-point correction (Lindegren et al. 2021 give −0.02 to −0.04 mas, negligible
against the 2σ allowance for the stars the check is for).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from apogee_net.lamost.labels import SkyIndex
from yso_labels.core.tables import float_column, read_table
from yso_labels.luminosity import log_luminosity, logg_from_luminosity

__all__ = ["MASS_RANGE", "N_SIGMA", "A_G_UNKNOWN", "MIN_PARALLAX_SNR", "MATCH_RADIUS",
           "REQUIRED", "RULE", "Photometry", "read_photometry", "match_photometry",
           "logg_interval", "lum_check"]

#: Stellar masses allowed (M☉).
MASS_RANGE = (0.3, 3.0)
#: Parallax allowance in units of its error.
N_SIGMA = 2.0
#: G-band extinction allowed (mag) when the table has no ``a_g``.
A_G_UNKNOWN = 1.0
#: Parallax signal-to-noise below which no interval is given.
MIN_PARALLAX_SNR = 5.0
#: Cross-match radius (arcsec) between the spectrum's position and the photometry.
MATCH_RADIUS = 1.0
#: Columns the photometry table must have.
REQUIRED = ("ra", "dec", "G", "parallax", "parallax_error")
#: One line for the catalogue header.
RULE = (f"log g allowed by Gaia G + parallax (BC_G Andrae+2018, IAU 2015 solar values) for "
        f"M {MASS_RANGE[0]:g}-{MASS_RANGE[1]:g} Msun, parallax +-{N_SIGMA:g} sigma, "
        f"A_G = a_g or 0-{A_G_UNKNOWN:g} mag; parallax/sigma >= {MIN_PARALLAX_SNR:g}; "
        f"match {MATCH_RADIUS:g} arcsec")


@dataclass(frozen=True)
class Photometry:
    """A photometry table with its positions indexed once (a survey run matches every chunk
    of spectra against the same table)."""

    table: Table
    index: SkyIndex

    @classmethod
    def of(cls, table: Table | Photometry) -> Photometry:
        """``table`` with its positions indexed (a :class:`Photometry` is returned as is)."""
        if isinstance(table, Photometry):
            return table
        return cls(table, SkyIndex(float_column(table["ra"]), float_column(table["dec"])))


def read_photometry(path) -> Table:
    """The photometry table at ``path``; a :class:`~yso_labels.core.tables.TableError` names
    the file and the missing columns."""
    return read_table(path, required=REQUIRED, what="photometry table (lamost predict)")


def match_photometry(ra, dec, phot: Table | Photometry,
                     radius: float = MATCH_RADIUS) -> np.ndarray:
    """Row of ``phot`` nearest each (``ra``, ``dec``) (deg) within ``radius`` arcsec; −1 where
    none (or a position is not finite)."""
    return Photometry.of(phot).index.match(ra, dec, radius)[0]


def logg_interval(teff, g_mag, parallax, parallax_error, a_g=None) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """(low, high) log g (cgs) allowed by the luminosity (module doc); NaN where the parallax
    is below :data:`MIN_PARALLAX_SNR` σ or Teff is outside 3300–8000 K. ``a_g`` None or NaN:
    0 to :data:`A_G_UNKNOWN` mag."""
    plx, err = np.asarray(parallax, float), np.asarray(parallax_error, float)
    a_g = np.full(plx.shape, np.nan) if a_g is None else np.asarray(a_g, float)
    known = np.isfinite(a_g)
    a_lo = np.where(known, a_g, 0.0)
    a_hi = np.where(known, a_g, A_G_UNKNOWN)
    # brightest (far, much extinction) -> lowest log g with the lowest mass, and vice versa
    # (a parallax <= 0 gives NaN: yso_labels.mdwarf.absolute_magnitude)
    far = plx - N_SIGMA * err
    low = logg_from_luminosity(teff, log_luminosity(g_mag, far, teff, a_hi), MASS_RANGE[0])
    high = logg_from_luminosity(teff, log_luminosity(g_mag, plx + N_SIGMA * err, teff, a_lo),
                                MASS_RANGE[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        good = plx / err >= MIN_PARALLAX_SNR
    return np.where(good, low, np.nan), np.where(good, high, np.nan)


def lum_check(teff, logg, ra, dec, phot: Table | Photometry | None) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (``low``, ``high``) log g allowed by the matched photometry (NaN without)
    and ``disagree`` (finite network ``logg`` outside it)."""
    n = np.asarray(teff).size
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    if phot is not None:
        phot = Photometry.of(phot)
        idx = match_photometry(ra, dec, phot)
        hit = idx >= 0
        if hit.any():
            rows = phot.table[idx[hit]]
            a_g = float_column(rows["a_g"]) if "a_g" in rows.colnames else None
            low[hit], high[hit] = logg_interval(
                np.asarray(teff, float)[hit], float_column(rows["G"]),
                float_column(rows["parallax"]), float_column(rows["parallax_error"]), a_g)
    logg = np.asarray(logg, float)
    with np.errstate(invalid="ignore"):
        disagree = np.isfinite(logg) & np.isfinite(low) & ((logg < low) | (logg > high))
    return low, high, disagree
