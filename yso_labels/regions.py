"""Star-forming regions and young clusters: one table for the M-dwarf field exclusion
(Olney et al. 2020 §2.3.1) and the YSO impostor flags (§4.1).

The table lives in ``yso_labels/data/star_forming_regions.csv`` (centres in ICRS degrees,
matching radii in degrees); pass your own Table with the same columns to override it.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

REGION_COLUMNS = ("name", "complex", "ra", "dec", "radius", "mdwarf_exclude")


def default_regions() -> Table:
    """The packaged table of star-forming regions (columns :data:`REGION_COLUMNS`)."""
    with resources.files("yso_labels").joinpath("data/star_forming_regions.csv").open() as fh:
        table = Table.read(fh.read(), format="ascii.csv", comment="#")
    table["mdwarf_exclude"] = np.asarray(
        [str(v).strip().lower() == "true" for v in table["mdwarf_exclude"]])
    return table


def nearest_region(ra, dec, regions: Table | None = None):
    """Nearest region to each position and whether the position lies inside it.

    Parameters: ``ra``, ``dec`` in degrees (ICRS), arrays of equal length.
    Returns ``(name, separation_deg, inside)``: the name of the region whose centre is
    nearest *in units of its radius*, the angular separation to that centre (deg), and
    whether the separation is within the region's radius. Non-finite positions get name
    ``""``, separation NaN and ``inside`` False.
    """
    regions = default_regions() if regions is None else regions
    ra = np.atleast_1d(np.asarray(ra, dtype=float))
    dec = np.atleast_1d(np.asarray(dec, dtype=float))
    good = np.isfinite(ra) & np.isfinite(dec)
    names = np.full(ra.shape, "", dtype=object)
    sep_best = np.full(ra.shape, np.nan)
    inside = np.zeros(ra.shape, dtype=bool)
    if good.any() and len(regions):
        stars = SkyCoord(ra[good] * u.deg, dec[good] * u.deg)
        centres = SkyCoord(np.asarray(regions["ra"], float) * u.deg,
                           np.asarray(regions["dec"], float) * u.deg)
        sep = stars[:, None].separation(centres[None, :]).deg  # (n_star, n_region)
        scaled = sep / np.asarray(regions["radius"], float)[None, :]
        best = np.argmin(scaled, axis=1)
        rows = np.arange(len(best))
        names[good] = np.asarray(regions["name"])[best]
        sep_best[good] = sep[rows, best]
        inside[good] = scaled[rows, best] <= 1.0
    return names.astype(str), sep_best, inside


def in_excluded_field(ra, dec, regions: Table | None = None) -> np.ndarray:
    """True where a position lies in a field that Olney et al. 2020 (§2.3.1) send to the YSO
    procedure (Orion Complex, NGC 1333, IC 348, NGC 2264, Pleiades). ``ra``, ``dec`` in deg.
    """
    regions = default_regions() if regions is None else regions
    excluded = regions[np.asarray(regions["mdwarf_exclude"], bool)]
    return nearest_region(ra, dec, excluded)[2]
