"""Luminosity and log g from Gaia G + parallax (yso_labels.luminosity) and the LUM_DISAGREE
check of ``apogee-net lamost predict`` (apogee_net.lamost.lumcheck)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from apogee_net.lamost.lumcheck import (
    A_G_UNKNOWN,
    MASS_RANGE,
    logg_interval,
    lum_check,
    match_photometry,
    read_photometry,
)
from tests.conftest import shared_file
from yso_labels.core.tables import TableError
from yso_labels.luminosity import bolometric_correction_g, log_luminosity, logg_from_luminosity

PARSEC = ("isochrones", "parsec_v1.2S_solar_1-500Myr_gaiaedr3_2mass.csv.gz")


def test_the_sun_at_ten_parsecs():
    """BC_G(5772 K) = a0 = 0.06 mag (Andrae et al. 2018 Table 8), so the Sun's M_G is
    4.74 − 0.06 = 4.68 mag; at 10 pc (100 mas) it has log L = 0 and log g = 4.438."""
    assert bolometric_correction_g(5772.0) == pytest.approx(0.06)
    assert np.isnan(bolometric_correction_g([3200.0, 8100.0])).all()
    log_l = log_luminosity(4.68, 100.0, 5772.0)
    assert log_l == pytest.approx(0.0, abs=1e-12)
    assert logg_from_luminosity(5772.0, log_l, 1.0) == pytest.approx(4.438)
    # 1 mag of extinction makes the star 10^0.4 brighter
    assert log_luminosity(4.68, 100.0, 5772.0, a_g=1.0) == pytest.approx(0.4)


def _parsec():
    path = shared_file(*PARSEC)
    grid = Table.read(str(path), format="ascii.csv")
    t, logg = np.asarray(grid["Teff"], float), np.asarray(grid["logg"], float)
    keep = (t >= 3300) & (t <= 8000) & (logg >= 0.5)  # BC_G's range; no dusty AGB tips
    return grid[keep]


def test_parsec_models_log_g_from_their_absolute_g():
    """Independent reference: PARSEC v1.2S models (their own bolometric corrections). From
    each model's absolute G, Teff and mass the relations give its log g; measured: median
    0.009 dex, 99th percentile 0.017 dex at 4000-8000 K, at most 0.050 dex over 18,144
    models (bounds at ~2x)."""
    grid = _parsec()
    teff = np.asarray(grid["Teff"], float)
    log_l = log_luminosity(grid["gaia_gmag"], 100.0, teff)  # absolute G: 10 pc
    diff = np.abs(logg_from_luminosity(teff, log_l, grid["mass"]) - grid["logg"])
    assert len(grid) > 15000
    assert np.median(diff) < 0.02 and diff.max() < 0.1
    assert np.percentile(diff[teff >= 4000], 99) < 0.035


def _cmd_models():
    """The native CMD 3.4 PARSEC file (log age 7-9): Teff (K), current mass, log g, G."""
    path = shared_file("isochrones", "cmd3.4_parsec_Z0.0161_gaiaedr3.dat")
    names = [line for line in open(path) if line.startswith("# Zini")][-1][1:].split()
    d = np.genfromtxt(path, comments="#", names=names)
    return 10 ** d["logTe"], d["Mass"], d["logg"], d["Gmag"]


def test_interval_separates_a_k_dwarf_from_a_k_giant():
    """PARSEC models (CMD 3.4 file): a K dwarf put at 100 pc and the least massive K giant
    (log age 9, 2.1 M☉) at 2 kpc, with Gaia-like parallax errors: each interval contains
    the model's own log g and excludes the other's by > 1 dex."""
    teff, mass, logg, gmag = _cmd_models()
    k = np.abs(teff - 4500) < 200
    dwarf = np.flatnonzero(k & (logg > 4.5))[0]
    cand = np.flatnonzero(k & (logg > 1.5) & (logg < 3.0))
    giant = cand[np.argmin(mass[cand])]
    rows = [dwarf, giant]
    plx = np.array([10.0, 0.5])
    low, high = logg_interval(teff[rows], gmag[rows] + 10 - 5 * np.log10(plx), plx,
                              np.array([0.02, 0.03]))
    own = logg[rows]
    assert np.all((low <= own) & (own <= high)), (low, own, high)
    assert high[1] < own[0] - 1 and low[0] > own[1] + 1


def test_interval_rules():
    teff, g, plx = np.full(4, 4500.0), np.full(4, 12.0), np.full(4, 5.0)
    err = np.array([0.02, 0.02, 0.02, 1.5])  # last: parallax/sigma 3.3 < 5
    low, high = logg_interval(teff, g, plx, err, a_g=np.array([np.nan, 0.0, 0.5, np.nan]))
    assert np.isnan(low[3]) and np.isnan(high[3])
    # the mass range spans log10(3 / 0.3) = 1 dex; unknown A_G widens the low end
    # (plus the parallax: log g scales as 2 log10(parallax))
    span = np.log10(MASS_RANGE[1] / MASS_RANGE[0]) + 2 * np.log10(5.04 / 4.96)
    assert high[1] - low[1] == pytest.approx(span, abs=1e-9)
    assert low[0] == pytest.approx(low[1] - 0.4 * A_G_UNKNOWN, abs=0.01) and high[0] == high[1]
    assert low[2] == pytest.approx(low[1] - 0.2, abs=0.01)  # A_G 0.5 mag: 0.2 dex brighter


def test_match_and_check_rows():
    phot = Table({"ra": [10.0, 20.0, np.nan], "dec": [0.0, 0.0, 0.0], "G": [12.0, 12.0, 12.0],
                  "parallax": [5.0, 5.0, 5.0], "parallax_error": [0.02, 0.02, 0.02]})
    ra = np.array([10.0 + 0.5 / 3600, 20.0 + 2.0 / 3600, 30.0, np.nan])
    dec = np.zeros(4)
    np.testing.assert_array_equal(match_photometry(ra, dec, phot), [0, -1, -1, -1])
    teff = np.full(4, 4500.0)
    low, high, bad = lum_check(teff, np.array([2.0, 2.0, 2.0, 2.0]), ra, dec, phot)
    assert np.isfinite(low[0]) and np.isnan(low[1:]).all()
    assert bad.tolist() == [True, False, False, False]  # a K dwarf's luminosity, giant log g
    _, _, ok = lum_check(teff[:1], np.array([0.5 * (low[0] + high[0])]), ra[:1], dec[:1], phot)
    assert not ok[0]
    assert not lum_check(teff, np.full(4, 2.0), ra, dec, None)[2].any()


def test_missing_column_names_the_file(tmp_path):
    path = tmp_path / "phot.csv"
    Table({"ra": [1.0], "dec": [2.0], "G": [12.0], "parallax": [5.0]}).write(path)
    with pytest.raises(TableError, match=r"phot\.csv.*parallax_error"):
        read_photometry(path)
