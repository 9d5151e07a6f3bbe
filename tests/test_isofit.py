"""The chi-square isochrone fit (the CNN's baseline) with law-based extinction."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from yso_labels.extinction import band_ratios
from yso_labels.families import load_models
from yso_labels.isofit import _ratios_at, chi2_fit, model_mesh
from yso_labels.synthetic import LIMITS, distance_modulus

BANDS = ["G", "BP", "RP", "J", "H", "K"]
MESH = {"log_age_step": 0.1, "n_mass": 40}


@pytest.fixture(scope="module")
def parsec():
    return load_models("parsec")


def _stars_at_nodes(grid, nodes, avs, distance=60.0, mode="law"):
    """Photometry of mesh models ``nodes`` behind ``avs`` (mag) at ``distance`` (pc),
    reddened with the law's A_band/A_V at each model's Teff and A_V (no noise)."""
    mesh = model_mesh(grid, BANDS, **MESH)
    teff = np.asarray(mesh["teff"], float)[nodes]
    k = band_ratios(BANDS, teff, np.asarray(avs, float), mode)
    t = Table()
    for b in BANDS:
        t[b] = np.asarray(mesh[b], float)[nodes] + distance_modulus(distance) + avs * k[b]
    t["distance"] = np.full(len(nodes), distance)
    return mesh, t


def test_law_fit_recovers_av_exactly_at_mesh_nodes(parsec):
    """Stars that are mesh models reddened by the law: the fit returns their model and A_V
    (the Gauss-Newton solution of the non-linear A_band(A_V)); fixed ratios miss A_V."""
    mesh = model_mesh(parsec, BANDS, **MESH)
    la, mass = np.asarray(mesh["log_age"]), np.asarray(mesh["mass_ini"])
    nodes = np.array([np.argmin(np.abs(la - 6.5) + np.abs(mass - m)) for m in (0.3, 0.8, 1.5)])
    avs = np.array([3.0, 9.0, 12.0])
    mesh, obs = _stars_at_nodes(parsec, nodes, avs)
    assert all((obs[b] < LIMITS[b] - 0.5).all() for b in BANDS)  # all detected
    fit = chi2_fit(obs, grid=parsec, **MESH)
    np.testing.assert_allclose(fit["av"], avs, atol=2e-3)
    np.testing.assert_allclose(fit["mass"], mass[nodes], rtol=1e-6)
    np.testing.assert_allclose(np.log10(fit["age_myr"]) + 6, la[nodes], atol=1e-6)
    assert np.all(fit["chi2"] < 1e-2)
    assert fit.meta["MODELS"] == "parsec" and fit.meta["EXTMODE"] == "law"
    fixed = chi2_fit(obs, grid=parsec, extinction="fixed", **MESH)
    assert np.max(np.abs(fixed["av"] - avs)) > 0.2


def test_ratio_interpolation_and_its_derivative():
    """A_band/A_V between the A_V nodes is linear with the slope returned (finite
    differences), and equals the node values at the nodes."""
    rng = np.random.default_rng(0)
    k_nodes = rng.uniform(0.5, 1.0, (3, 2, 21)).astype(np.float32)
    av = np.array([[0.0, 4.0, 19.99], [7.25, 13.5, 2.5]], np.float32)
    k, dk = _ratios_at(k_nodes, av)
    assert k.shape == (2, 3, 2)
    np.testing.assert_allclose(k[0, 0], k_nodes[0, :, 0])
    np.testing.assert_allclose(k[0, 1], k_nodes[1, :, 4])
    np.testing.assert_allclose(k[1, 0], 0.75 * k_nodes[0, :, 7] + 0.25 * k_nodes[0, :, 8],
                               rtol=1e-6)
    h = 1e-2
    kp, _ = _ratios_at(k_nodes, av + h)
    np.testing.assert_allclose(dk[1], ((kp - k) / h)[1], rtol=1e-3, atol=1e-4)


def test_family_is_checked_and_recorded(parsec):
    obs = Table({"G": [12.0], "BP": [13.0], "RP": [11.0], "J": [10.0], "H": [9.5],
                 "K": [9.3], "distance": [140.0]})
    with pytest.raises(ValueError, match="dsep-magnetic"):
        chi2_fit(obs, grid=parsec, models="dsep-magnetic", **MESH)
