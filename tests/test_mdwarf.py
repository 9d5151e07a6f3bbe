"""M-dwarf relations (Olney et al. 2020 §2.3.1) against the published labels."""

import numpy as np
import pytest
from astropy.table import Table

from tests.conftest import shared_file
from yso_labels import mdwarf


@pytest.fixture(scope="module")
def published():
    path = shared_file("mdwarf", "mdwarf_labels_olney2020_subset.csv")
    return Table.read(path, format="ascii.csv")


def _labels(t, coefficients="released"):
    return mdwarf.mdwarf_labels(t["g"], t["r"], t["J_app"], t["H_app"], t["K_app"],
                                parallax=t["parallax"], coefficients=coefficients)


def test_released_reproduces_published_labels(published):
    out = _labels(published)
    assert len(published) == 400
    assert np.max(np.abs(out["teff"] - published["T_eff"])) < 0.05
    assert np.max(np.abs(out["logg"] - published["log_g"])) < 1e-4
    assert np.max(np.abs(out["fe_h"] - published["Fe_H"])) < 1e-4


def test_paper_set_differs_as_documented(published):
    rel, pap = _labels(published), _labels(published, "paper")
    # Hejazi A1 differs by exactly 0.0369 dex
    assert np.allclose(pap["fe_h"] - rel["fe_h"], -14.259 + 14.2959, atol=1e-9)
    # Mann's printed J-H form, with the factor 3500 restored, gives M-dwarf temperatures
    assert 2700 < np.median(pap["teff"]) < 4100
    assert abs(np.median(pap["teff"] - rel["teff"])) < 150


def test_relations_at_hand_computed_point():
    # g-K = 5, J-K = 0.85, r-J = 3, [Fe/H] from Hejazi (released):
    feh = -14.2959 + 0.0519 * 5 + 29.5926 * 0.85 - 0.0529 * 25 - 17.6762 * 0.85**2 \
        + 0.7032 * 5 * 0.85
    assert mdwarf.hejazi_feh(5.0 + 10, 0.85 + 10, 10.0) == pytest.approx(feh)
    teff = 3500 * (2.532 - 1.319 * 3 + 0.4449 * 9 - 0.07151 * 27 + 0.004333 * 81
                   + 0.05629 * feh)
    assert mdwarf.mann_teff(13.0, 10.0, fe_h=feh) == pytest.approx(teff)
    teff_paper = 3500 * (2.151 - 1.092 * 3 + 0.3767 * 9 - 0.06292 * 27 + 0.003950 * 81
                         + 0.1697 * 0.5 - 0.03106 * 0.25)
    assert mdwarf.mann_teff(13.0, 10.0, H=9.5, coefficients="paper") == pytest.approx(teff_paper)
    assert mdwarf.veyette_logg(3500.0, 0.0, "paper") == pytest.approx(
        7.912 - 1.334e-3 * 3500 + 1.313e-7 * 3500**2)


def test_nonfinite_magnitudes_give_nan_and_flag():
    out = mdwarf.mdwarf_labels([17.0, np.nan], [15.8, 15.8], [12.7, 12.7], [12.0, 12.0],
                               [11.8, 11.8])
    assert out["bad_photometry"].tolist() == [False, True]
    assert np.isfinite(out["teff"][0]) and np.isnan(out["teff"][1])
    assert np.isnan(out["logg"][1]) and np.isnan(out["fe_h"][1])


def test_validity_flags_edges():
    # J-K = 1.02 is outside Hejazi's 0.71-1.01 range
    out = mdwarf.mdwarf_labels([17.0, 17.0], [15.8, 15.8], [12.7, 12.82], [12.0, 12.0],
                               [11.8, 11.8])
    assert out["hejazi_valid"].tolist() == [True, False]


def test_selection_cuts_and_fields():
    # a bona fide dwarf at 20 pc: K=8.5 -> M_K = 8.5 + 5 log10(50) - 10 = 6.99
    base = dict(g=13.9, J=9.35, K=8.5, parallax=50.0, parallax_error=0.1)
    def sel(**kw):
        d = {**base, **kw}
        return bool(mdwarf.select_mdwarfs(d["g"], d["J"], d["K"], d["parallax"],
                                          d["parallax_error"], d.get("ra"), d.get("dec"))[0])
    assert sel()
    assert not sel(J=9.15)               # J-K = 0.65 < 0.7
    assert not sel(g=11.8)               # g-K = 3.3 < 3.37
    assert not sel(parallax_error=20.0)  # parallax/sigma = 2.5 < 3
    assert not sel(parallax=5.0)         # M_K = 2.0: a giant or distant
    assert sel(ra=10.0, dec=40.0)
    assert not sel(ra=83.82, dec=-5.39)  # ONC
    assert not sel(ra=56.75, dec=24.12)  # Pleiades


def test_unknown_coefficient_set():
    with pytest.raises(ValueError, match="released"):
        mdwarf.hejazi_feh(15, 10, 9, coefficients="nope")
