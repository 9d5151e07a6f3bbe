"""Payne labels for APOGEE DR14 (Ting et al. 2019, ApJ 879 69) and the region where Olney et
al. 2020 (§2.2) trust them: Teff > 4000 K or log g < 3.5.

The catalogue comes as FITS or as the whitespace text format whose header is::

    APOGEE_ID RA[deg] Dec[deg] Teff[K] Logg vmic[km/s] CH NH OH MgH AlH SiH SH KH CaH TiH
    CrH MnH FeH NiH CuH C12C13 vmac[km/s] chi2_R quality_flag

``FeH`` is [Fe/H] (dex); ``quality_flag`` is ``good`` for stars the Payne authors trust.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from astropy.table import Table

from yso_labels.core.tables import TableError, duplicated, read_table

log = logging.getLogger(__name__)

#: Standard name -> accepted catalogue names (case-insensitive), text format first.
PAYNE_COLUMNS = {
    "apogee_id": ("APOGEE_ID",),
    "ra": ("RA[deg]", "RA"),
    "dec": ("Dec[deg]", "DEC"),
    "teff": ("Teff[K]", "TEFF"),
    "logg": ("Logg", "LOGG"),
    "fe_h": ("FeH", "FE_H", "M_H"),
    "quality_flag": ("quality_flag", "QUALITY_FLAG"),
}
#: Trust region of Olney et al. 2020 §2.2: Teff (K) above, or log g (dex) below.
TRUST_TEFF_MIN = 4000.0
TRUST_LOGG_MAX = 3.5
#: quality_flag values that mean a good fit (text ``good``; 0 in integer-coded copies).
GOOD_QUALITY = ("good", "0")


def read_payne(path: str | os.PathLike) -> Table:
    """Read a Payne catalogue into standard columns ``apogee_id ra dec teff logg fe_h
    quality_flag`` (deg, deg, K, dex, dex). Errors name the file and the missing columns."""
    raw = read_table(path, what="Payne catalogue")
    lower = {c.lower(): c for c in raw.colnames}
    out = Table()
    missing = []
    for std, names in PAYNE_COLUMNS.items():
        found = next((lower[n.lower()] for n in names if n.lower() in lower), None)
        if found is None:
            if std != "quality_flag":
                missing.append(f"{std} (one of {', '.join(names)})")
            continue
        out[std] = raw[found]
    if missing:
        raise TableError(f"Payne catalogue {path}: missing column(s) {'; '.join(missing)}")
    out["apogee_id"] = np.char.strip(np.asarray(out["apogee_id"]).astype(str))
    for col in ("ra", "dec", "teff", "logg", "fe_h"):
        out[col] = np.asarray(out[col], dtype=float)
    dups = duplicated(out["apogee_id"])
    if dups:
        log.warning("Payne catalogue %s: %d duplicated APOGEE IDs (e.g. %s)", path, len(dups),
                    ", ".join(dups[:5]))
    out.meta["payne_catalogue"] = str(path)
    return out


def trusted(teff, logg, quality_flag=None) -> np.ndarray:
    """Where Payne labels are trusted (Olney et al. 2020 §2.2): Teff > 4000 K or
    log g < 3.5 dex, finite labels, and a good ``quality_flag`` when given."""
    teff = np.asarray(teff, float)
    logg = np.asarray(logg, float)
    keep = ((teff > TRUST_TEFF_MIN) | (logg < TRUST_LOGG_MAX)) & np.isfinite(teff) \
        & np.isfinite(logg)
    if quality_flag is not None:
        flag = np.char.lower(np.char.strip(np.asarray(quality_flag).astype(str)))
        keep &= np.isin(flag, GOOD_QUALITY)
    return keep


def payne_labels(table: Table, use_quality_flag: bool = True) -> Table:
    """Rows of a Payne table (see :func:`read_payne`) inside the trust region."""
    flag = table["quality_flag"] if use_quality_flag and "quality_flag" in table.colnames \
        else None
    keep = trusted(table["teff"], table["logg"], flag) & np.isfinite(np.asarray(table["fe_h"],
                                                                                 float))
    log.info("Payne: %d of %d stars in the trust region (Teff > %g K or log g < %g)%s",
             keep.sum(), len(table), TRUST_TEFF_MIN, TRUST_LOGG_MAX,
             " with a good quality flag" if flag is not None else "")
    return table[keep]
