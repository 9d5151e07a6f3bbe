"""MIST v1.2 ``.iso.cmd`` files (user-downloaded) as an isochrone family.

No MIST file can be downloaded here: the tests write small files in the documented format
(header lines, one block per age with ``# number of EEPs, cols`` and the column-name line
``# EEP log10_isochrone_age_yr initial_mass star_mass log_Teff log_g log_L [Fe/H]_init
[Fe/H] <bands> phase``) from PARSEC values, and read them back.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from astropy.table import Table

from yso_labels.families import check_models, load_models
from yso_labels.isochrones import interpolate, load_isochrones
from yso_labels.mist import MistFormatError, read_mist_cmd
from yso_labels.synthetic import default_bands, synth

UBVRI = ["Bessell_U", "Bessell_B", "Bessell_V", "2MASS_J", "2MASS_H", "2MASS_Ks",
         "Gaia_G_DR2Rev", "Gaia_G_EDR3", "Gaia_BP_EDR3", "Gaia_RP_EDR3"]
TOOLKIT = {"2MASS_J": "J", "2MASS_H": "H", "2MASS_Ks": "K", "Gaia_G_EDR3": "G",
           "Gaia_BP_EDR3": "BP", "Gaia_RP_EDR3": "RP", "WISE_W1": "W1", "WISE_W2": "W2",
           "WISE_W3": "W3"}
LOG_AGES = (6.0, 7.0, 8.0)
MASSES = np.geomspace(0.1, 2.0, 25)


@cache
def _parsec() -> Table:
    return load_isochrones()


def write_mist(path, bands, log_ages=LOG_AGES, masses=MASSES, drop_last_row=False):
    """A MIST v1.2 .iso.cmd file with PARSEC values (bands not in the PARSEC grid get
    G + 1 mag); returns the table of what was written (one row per EEP)."""
    grid = _parsec()
    lines = ["# MIST version number  = 1.2", "# MESA revision number =     7503",
             "# photometric system   = UBV(RI)c + 2MASS + Gaia (DR2/MAW/EDR3) (test file)",
             "# " + "-" * 86, "#  Yinit        Zinit   [Fe/H]   [a/Fe]  v/vcrit",
             "#  0.2703  1.42857E-02    0.00     0.00     0.40", "# " + "-" * 86,
             f"# number of isochrones =  {len(log_ages)}", "# " + "-" * 86]
    names = ["EEP", "log10_isochrone_age_yr", "initial_mass", "star_mass", "log_Teff",
             "log_g", "log_L", "[Fe/H]_init", "[Fe/H]", *bands, "phase"]
    written = []
    for la in log_ages:
        iso = interpolate(grid, la, masses, columns=["teff", "logg", "logl", "G", "J", "H",
                                                     "K", "BP", "RP"])
        lines += [f"# number of EEPs, cols =   {len(masses)}    {len(names)}",
                  "# " + "".join(f"{i + 1:>20d}" for i in range(len(names))),
                  "# " + " ".join(names)]
        for i, m in enumerate(masses):
            if drop_last_row and la == log_ages[-1] and i == len(masses) - 1:
                continue
            mags = {b: float(iso[TOOLKIT[b]][i]) if TOOLKIT.get(b) in iso.colnames
                    else float(iso["G"][i]) + 1.0 for b in bands}
            row = {"EEP": 200 + i, "log10_isochrone_age_yr": la, "initial_mass": m,
                   "star_mass": m * 0.999, "log_Teff": np.log10(iso["teff"][i]),
                   "log_g": float(iso["logg"][i]), "log_L": float(iso["logl"][i]),
                   "[Fe/H]_init": 0.0, "[Fe/H]": -0.01, **mags, "phase": -1.0}
            written.append(row)
            lines.append("  " + " ".join(f"{row[n]:.10g}" for n in names))
        lines += ["", ""]
    path.write_text("\n".join(lines) + "\n")
    return Table(rows=written)


def test_mist_file_reads_back_to_standard_columns(tmp_path):
    path = tmp_path / "MIST_v1.2_test_UBVRIplus.iso.cmd"
    written = write_mist(path, UBVRI)
    raw = read_mist_cmd(path)
    assert len(raw) == len(LOG_AGES) * len(MASSES)
    np.testing.assert_allclose(raw["G"], written["Gaia_G_EDR3"], rtol=1e-8)
    assert "Gaia_G_DR2Rev" not in raw.colnames and "G_DR2" not in raw.colnames
    grid = load_isochrones(path)
    assert grid.meta["GRID"].startswith("MIST v1.2")
    assert grid.meta["BANDS"] == "G BP RP J H K"
    np.testing.assert_allclose(grid["teff"], 10 ** np.asarray(written["log_Teff"]), rtol=1e-8)
    # radius from log g and the current mass: R = sqrt(G M / g) (IAU 2015 B3 nominal values)
    g_si = 10 ** (np.asarray(written["log_g"]) - 2)
    r = np.sqrt(1.3271244e20 * np.asarray(written["star_mass"]) / g_si) / 6.957e8
    np.testing.assert_allclose(grid["radius"], r, rtol=1e-8)
    node = interpolate(grid, 7.0, MASSES[10], columns=["teff", "logg", "K"])
    row = written[(written["log10_isochrone_age_yr"] == 7.0)][10]
    assert node["logg"][0] == pytest.approx(row["log_g"], abs=1e-8)
    assert node["K"][0] == pytest.approx(row["2MASS_Ks"], abs=1e-8)
    assert set(grid["phase"]) == {-1}


def test_mist_family_runs_synth_end_to_end(tmp_path):
    a = tmp_path / "ubvri.iso.cmd"
    b = tmp_path / "wise.iso.cmd"
    write_mist(a, UBVRI)
    write_mist(b, ["WISE_W1", "WISE_W2", "WISE_W3", "WISE_W4"])
    family = check_models(f"mist:{a},{b}")
    grid = load_models(family)
    assert default_bands(grid) == ("G", "BP", "RP", "J", "H", "K", "W1", "W2", "W3")
    out = synth(150, seed=4, out=tmp_path / "s.fits", models=f"mist:{a}")
    t = Table.read(out)
    assert t.meta["MODELS"] == f"mist:{a}"
    assert "MIST v1.2" in t.meta["GRID"]
    assert np.all(t["G"] < 19)


def test_broken_mist_files_name_the_problem(tmp_path):
    path = tmp_path / "short.iso.cmd"
    write_mist(path, UBVRI, drop_last_row=True)
    with pytest.raises(MistFormatError, match="announces 25 EEPs but has 24 rows"):
        read_mist_cmd(path)
    text = (tmp_path / "short.iso.cmd").read_text().splitlines()
    bad = next(i for i, line in enumerate(text) if line and not line.startswith("#"))
    text[bad] += " 1.0"
    (tmp_path / "wide.iso.cmd").write_text("\n".join(text))
    with pytest.raises(MistFormatError, match=f"line {bad + 1}: 21 fields, expected 20"):
        read_mist_cmd(tmp_path / "wide.iso.cmd")
    with pytest.raises(ValueError, match="mist:PATH"):
        check_models("mist:")
