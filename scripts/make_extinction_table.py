"""Regenerate ``yso_labels/data/extinction_law.csv``: A_band/A_V(Teff, A_V), G23, R_V = 3.1.

Integrates a blackbody through the filter curves shipped with the PyPI package ``stelpar``
(``datafiles/Filter_Profiles``: Gaia EDR3 G/BP/RP, Riello et al. 2021 A&A 649 A3; 2MASS
J/H/Ks, Cohen et al. 2003 AJ 126 1090; SDSS g/r, Doi et al. 2010 AJ 139 1628) with
:func:`yso_labels.extinction.band_a_over_av`. Usage::

    python scripts/make_extinction_table.py [--out yso_labels/data/extinction_law.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from yso_labels.core.atomic import write_text
from yso_labels.extinction import LAW, RV, band_a_over_av
from yso_labels.families import stelpar_datafile

#: Band → (stelpar filter file, wavelength unit of its first column in µm).
FILTERS = {
    "G": ("GAIA_EDR3.G.dat", 1e-3), "BP": ("GAIA_EDR3.Gbp.dat", 1e-3),
    "RP": ("GAIA_EDR3.Grp.dat", 1e-3),
    "J": ("2MASS.J.dat", 1.0), "H": ("2MASS.H.dat", 1.0), "K": ("2MASS.Ks.dat", 1.0),
    "g": ("SDSS.g.dat", 1e-4), "r": ("SDSS.r.dat", 1e-4),
}
#: Grid: 2300–15000 K (log-spaced, 28 nodes), A_V 0–20 mag in steps of 1.
TEFFS = np.round(np.geomspace(2300.0, 15000.0, 28), 1)
AVS = np.arange(0.0, 20.01, 1.0)


def read_filter(band: str) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength µm, response) of a stelpar filter curve, sorted, response ≥ 0."""
    name, unit = FILTERS[band]
    data = np.loadtxt(stelpar_datafile(f"datafiles/Filter_Profiles/{name}"))
    order = np.argsort(data[:, 0])
    return data[order, 0] * unit, np.clip(data[order, 1], 0, None)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] /
                                         "yso_labels/data/extinction_law.csv"))
    args = ap.parse_args(argv)
    curves = {b: read_filter(b) for b in FILTERS}
    lines = [f"# A_band/A_V of a blackbody (Teff, K) behind A_V (mag): {LAW} (Gordon et al. "
             f"2023 ApJ 950 86), R_V = {RV},",
             "# photon-weighted over the stelpar Filter_Profiles (Gaia EDR3, 2MASS, SDSS). "
             "Made by scripts/make_extinction_table.py.",
             ",".join(["teff", "av", *FILTERS])]
    for teff in TEFFS:
        for av in AVS:
            vals = [band_a_over_av(*curves[b], teff=teff, av=av) for b in FILTERS]
            lines.append(",".join([f"{teff:.1f}", f"{av:.1f}", *(f"{v:.6f}" for v in vals)]))
    write_text(args.out, "\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
