"""User-downloaded MIST isochrones (``.iso.cmd`` files) as a standard isochrone grid.

MIST (MESA Isochrones and Stellar Tracks; Choi et al. 2016 ApJ 823 102, Dotter 2016 ApJS
222 8) v1.2 synthetic-photometry isochrone files, as written by the MIST web interpolator
or the packaged tables (https://waps.cfa.harvard.edu/MIST/), look like::

    # MIST version number  = 1.2
    # MESA revision number =     7503
    # photometric system   = UBV(RI)c + 2MASS + Kepler + Hipparcos + Gaia (DR2/MAW/EDR3) + Tess
    # --------------------------------------------------------------------------------------
    #  Yinit        Zinit   [Fe/H]   [a/Fe]  v/vcrit
    #  0.2703  1.42857E-02    0.00     0.00     0.40
    # --------------------------------------------------------------------------------------
    # number of isochrones =    107
    # ...
    # number of EEPs, cols =   1461    29
    #    1     2    ...
    #  EEP log10_isochrone_age_yr initial_mass star_mass log_Teff log_g log_L [Fe/H]_init
    #      [Fe/H] Bessell_U ... 2MASS_J 2MASS_H 2MASS_Ks ... Gaia_G_EDR3 Gaia_BP_EDR3
    #      Gaia_RP_EDR3 ... phase
    <num_eeps rows>
    <blank lines, then the next age block>

(one header line of column names per age block). :func:`read_mist_cmd` reads every block,
checks each against its ``number of EEPs, cols`` line, and returns the standard columns of
:mod:`yso_labels.isochrones` (``log_age``, ``mass_ini``, ``teff`` = 10^log_Teff, ``logg``,
``logl``, ``radius`` from log g and the current mass, ``mh`` = ``[Fe/H]_init``, ``phase``:
MIST's −1 PMS, 0 MS, 2 RGB, ...) plus the bands it has under the toolkit's names: Gaia EDR3
``G BP RP``, 2MASS ``J H K``, WISE ``W1 W2 W3``, SDSS ``g r``. Gaia DR2 magnitudes
(``Gaia_*_DR2Rev``) are not mapped: the toolkit's Gaia bands are EDR3/DR3. Files of several
photometric systems (e.g. ``UBVRIplus`` and ``WISE`` for the same ages) are joined as CMD
files are (:func:`yso_labels.isochrones.load_isochrones` with a list).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from astropy.table import Table

#: MIST column → toolkit band.
MIST_BANDS = {"Gaia_G_EDR3": "G", "Gaia_BP_EDR3": "BP", "Gaia_RP_EDR3": "RP",
              "2MASS_J": "J", "2MASS_H": "H", "2MASS_Ks": "K",
              "WISE_W1": "W1", "WISE_W2": "W2", "WISE_W3": "W3",
              "SDSS_g": "g", "SDSS_r": "r"}
#: MIST physical columns → standard raw names read by :func:`isochrones.standardize`.
MIST_COLUMNS = {"log10_isochrone_age_yr": "log_age", "initial_mass": "mass_ini",
                "star_mass": "mass_act", "log_Teff": "log_teff", "log_g": "logg",
                "log_L": "logl", "[Fe/H]_init": "mh", "phase": "phase"}
REQUIRED = ("log10_isochrone_age_yr", "initial_mass", "star_mass", "log_Teff", "log_g")


class MistFormatError(ValueError):
    """A file is not a readable MIST ``.iso.cmd`` file (names the file and line)."""


def is_mist_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts like a MIST isochrone file (``# MIST version number``)."""
    try:
        with open(path, errors="replace") as fh:
            head = fh.read(300)
    except OSError:
        return False
    return head.lstrip().startswith("# MIST version number")


def read_mist_cmd(path: str | os.PathLike) -> Table:
    """Read a MIST ``.iso.cmd`` file into one raw table with standard column names.

    Returns the rows of all age blocks, columns renamed by :data:`MIST_COLUMNS` and
    :data:`MIST_BANDS` (other bands dropped); ``meta``: ``MIST_VERSION``, ``SYSTEM``,
    ``FEH`` (header [Fe/H]), ``VVCRIT``. Raises :class:`MistFormatError` naming the line
    where a block's row count or width disagrees with its header.
    """
    path = Path(path)
    meta: dict = {}
    blocks: list[tuple[list[str], list[list[str]], int, int, int]] = []
    names: list[str] | None = None
    expect: tuple[int, int, int] | None = None   # (n_eeps, n_cols, line number)
    abundance_names: list[str] | None = None
    with open(path, errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                body = text[1:].strip()
                if body.startswith("MIST version number"):
                    meta["MIST_VERSION"] = body.split("=", 1)[1].strip()
                elif body.startswith("photometric system"):
                    meta["SYSTEM"] = body.split("=", 1)[1].strip()
                elif body.startswith("Yinit"):
                    abundance_names = body.split()
                elif abundance_names is not None and "FEH" not in meta and \
                        re.match(r"^[-+0-9.]", body):
                    values = dict(zip(abundance_names, body.split(), strict=False))
                    meta["FEH"] = float(values.get("[Fe/H]", "nan"))
                    meta["VVCRIT"] = float(values.get("v/vcrit", "nan"))
                elif body.startswith("number of EEPs"):
                    m = re.search(r"=\s*(\d+)\s+(\d+)", body)
                    if not m:
                        raise MistFormatError(f"MIST file {path} line {lineno}: cannot read "
                                              f"'number of EEPs, cols = N M'")
                    expect = (int(m.group(1)), int(m.group(2)), lineno)
                elif body.split()[:2] == ["EEP", "log10_isochrone_age_yr"]:
                    names = body.split()
                    if expect is None:
                        raise MistFormatError(f"MIST file {path} line {lineno}: column "
                                              f"names before a 'number of EEPs' line")
                    if len(names) != expect[1]:
                        raise MistFormatError(
                            f"MIST file {path} line {lineno}: {len(names)} column names, "
                            f"the block header (line {expect[2]}) says {expect[1]}")
                    blocks.append((names, [], expect[0], expect[2], lineno))
                continue
            if not blocks:
                raise MistFormatError(f"MIST file {path} line {lineno}: data before the "
                                      f"first '# EEP log10_isochrone_age_yr ...' header")
            fields = text.split()
            if len(fields) != len(blocks[-1][0]):
                raise MistFormatError(f"MIST file {path} line {lineno}: {len(fields)} "
                                      f"fields, expected {len(blocks[-1][0])}")
            blocks[-1][1].append(fields)
    if not blocks:
        raise MistFormatError(f"MIST file {path}: no age block ('# number of EEPs, cols' "
                              f"and '# EEP log10_isochrone_age_yr ...' lines)")
    for names, rows, n_eeps, at, _ in blocks:
        if len(rows) != n_eeps:
            raise MistFormatError(f"MIST file {path}: the block of line {at} announces "
                                  f"{n_eeps} EEPs but has {len(rows)} rows (truncated file?)")
        if names != blocks[0][0]:
            raise MistFormatError(f"MIST file {path}: the block of line {at} has other "
                                  f"columns than the first block")
    names = blocks[0][0]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise MistFormatError(f"MIST file {path}: no column(s) {', '.join(missing)}")
    try:
        data = np.array([r for b in blocks for r in b[1]], dtype=float)
    except ValueError as err:
        raise MistFormatError(f"MIST file {path}: a non-numeric value ({err})") from None
    raw = Table()
    for i, name in enumerate(names):
        if name in MIST_COLUMNS:
            raw[MIST_COLUMNS[name]] = data[:, i]
        elif name in MIST_BANDS:
            raw[MIST_BANDS[name]] = data[:, i]
    if "phase" in raw.colnames:
        raw["phase"] = raw["phase"].astype(int)
    raw.meta.update(meta)
    return raw
