"""LAMOST preprocessing: The Cannon's continuum (The Cannon 0.7.3 test vector), flux-conserving
resampling with ivar propagation, rest frame, cosmic rays, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from apogee_net.lamost.io import find_lamost_files, log_linear_wavelength, read_lamost
from apogee_net.lamost.preprocess import (
    LamostDataError,
    cosmic_ray_mask,
    gaussian_continuum,
    good_pixels,
    lamost_grid,
    normalise,
    pixel_edges,
    prepare_spectrum,
    resample,
    rest_frame,
)

# The Cannon 0.7.3 (Ho et al. 2017) on the LAMOST log-linear grid
REF_PIXELS = [0, 110, 1000, 2000, 3908]
REF_CONT = [700.44511318, 700.77699507, 866.71354960, 1259.17870635, 716.31250105]


def _facts_vector():
    wl = log_linear_wavelength(3.5682, 1e-4, 3909)
    f = 1000 * (1 + 0.3 * np.sin(wl / 800)) * (1 - 0.2 * np.exp(-0.5 * ((wl - 5175) / 3) ** 2))
    ivar = np.full(wl.size, 1e-3)
    ivar[100:120] = 0
    return wl, f, ivar


def _dense(wl, f, ivar, L=50.0):
    w = np.exp(-0.5 * (wl[:, None] - wl[None, :]) ** 2 / L**2)
    return (w @ (ivar * f)) / (w @ ivar)


def test_continuum_reproduces_the_cannon_reference_values():
    wl, f, ivar = _facts_vector()
    cont = gaussian_continuum(wl, f, ivar, L=50.0)
    np.testing.assert_allclose(cont[REF_PIXELS], REF_CONT, rtol=1e-6)


def test_continuum_on_the_uniform_grid_equals_the_dense_sum():
    grid = lamost_grid()
    rng = np.random.default_rng(3)
    f = 500 + 200 * np.cos(grid / 600) + rng.normal(0, 5, grid.size)
    ivar = rng.uniform(0.5, 2, grid.size)
    ivar[rng.random(grid.size) < 0.05] = 0
    cont = gaussian_continuum(grid, f, ivar)
    np.testing.assert_allclose(cont, _dense(grid, f, ivar), rtol=1e-10)
    # the windowed non-uniform path agrees with the convolution on the same grid
    jitter = grid + np.r_[0, 1e-7 * rng.random(grid.size - 1)]
    np.testing.assert_allclose(gaussian_continuum(jitter, f, ivar), cont, rtol=1e-9)
    # batches of spectra are the rows computed one by one
    batch = gaussian_continuum(grid, np.vstack([f, 2 * f]), np.vstack([ivar, ivar]))
    np.testing.assert_allclose(batch, [cont, 2 * cont], rtol=1e-12)


def test_continuum_without_cutoff_is_the_dense_sum_on_the_log_grid():
    wl, f, ivar = _facts_vector()
    np.testing.assert_allclose(gaussian_continuum(wl, f, ivar, cutoff=np.inf),
                               _dense(wl, f, ivar), rtol=1e-12)


def test_continuum_zero_without_data_and_normalised_flux_one_there():
    grid = lamost_grid()
    f = np.full(grid.size, 10.0)
    ivar = np.zeros(grid.size)
    ivar[:100] = 1.0
    cont = gaussian_continuum(grid, f, ivar)
    assert np.all(cont[:500] == pytest.approx(10.0)) and np.all(cont[-100:] == 0)
    norm, niv = normalise(f, ivar, cont)
    assert np.all(norm[-100:] == 1.0) and np.all(niv[-100:] == 0)
    np.testing.assert_allclose(niv[:100], 100.0)  # ivar · cont²


def test_resampling_conserves_flux_exactly():
    rng = np.random.default_rng(0)
    wl = log_linear_wavelength(3.5682, 1e-4, 3909)
    f = rng.uniform(50, 150, wl.size)
    ivar = np.ones(wl.size)
    grid = lamost_grid()
    new_f, new_iv = resample(wl, f, ivar, grid)
    e_in, e_out = pixel_edges(wl), pixel_edges(grid)
    # ∫ f dλ of the input over [e_out[0], e_out[-1]]: piecewise-constant pixels
    lo, hi = e_out[0], e_out[-1]
    overlap = np.clip(np.minimum(e_in[1:], hi) - np.maximum(e_in[:-1], lo), 0, None)
    expected = np.sum(f * overlap)
    assert np.sum(new_f * np.diff(e_out)) == pytest.approx(expected, rel=1e-12)
    assert np.all(new_iv > 0)


def test_resampling_propagates_inverse_variance():
    wl = np.arange(1000.0, 1100.0, 0.5)            # 0.5 Å pixels
    f = np.full(wl.size, 3.0)
    ivar = np.full(wl.size, 4.0)                    # σ = 0.5
    grid = np.arange(1010.25, 1080.0, 1.0)          # 1 Å pixels = two input pixels each
    new_f, new_iv = resample(wl, f, ivar, grid)
    np.testing.assert_allclose(new_f, 3.0)
    np.testing.assert_allclose(new_iv, 8.0)         # mean of two: σ² / 2
    up_f, up_iv = resample(grid, new_f, new_iv, np.arange(1019.875, 1050.0, 0.25))
    np.testing.assert_allclose(up_iv, 8.0)          # each inside one pixel: unchanged
    np.testing.assert_allclose(up_f, 3.0)
    ivar_gap = ivar.copy()
    ivar_gap[40:60] = 0                             # a gap of 10 Å: no data there
    _, gap_iv = resample(wl, f, ivar_gap, grid)
    assert np.all(gap_iv[(grid > 1020.5) & (grid < 1029.5)] == 0)


def test_rest_frame_conserves_integrated_flux():
    wl = np.linspace(5000, 6000, 1001)
    f = np.full(wl.size, 2.0)
    rest_wl, rest_f, rest_iv = rest_frame(wl, f, np.ones(wl.size), 0.01)
    np.testing.assert_allclose(rest_wl, wl / 1.01)
    assert np.trapezoid(rest_f, rest_wl) == pytest.approx(np.trapezoid(f, wl))
    np.testing.assert_allclose(rest_iv, 1 / 1.01**2)
    with pytest.raises(LamostDataError, match="redshift"):
        rest_frame(wl, f, np.ones(wl.size), np.nan)


def test_cosmic_rays_found_and_emission_lines_kept():
    rng = np.random.default_rng(1)
    n = 3000
    idx = np.arange(n)
    f = 100 + rng.normal(0, 1, n)
    ivar = np.ones(n)
    # an emission line with the LAMOST line-spread function (σ ≈ 1 px), 30 σ high
    f += 30 * np.exp(-0.5 * ((idx - 1500.3) / 1.0) ** 2)
    hits = [400, 1000, 2200]
    f[hits] += [15, 40, 10]  # detection needs ℓ1 > 5 σ_ℓ1 ≈ 6.1 σ
    mask, n_hits = cosmic_ray_mask(f, ivar, grow=0)
    assert n_hits == 3 and set(np.flatnonzero(mask)) == set(hits)
    grown, _ = cosmic_ray_mask(f, ivar, grow=1)
    assert grown[[399, 401, 999, 1001]].all()


def test_few_cosmic_rays_on_real_spectra(shared_data):
    for path in find_lamost_files(shared_data / "lamost" / "formats"):
        sp = read_lamost(path)
        _, n_hits = cosmic_ray_mask(sp.flux, sp.ivar, good_pixels(sp.flux, sp.ivar, sp.andmask))
        assert n_hits <= 10, path


def test_prepared_featureless_spectrum_is_flat():
    wl = log_linear_wavelength(3.5682, 1e-4, 3909)
    cont = 1000 * (1 + 0.4 * np.sin(wl / 900))
    prep = prepare_spectrum(wl, cont, np.full(wl.size, 1.0), 0.001, reject_cosmics=False)
    inner = slice(200, -200)  # the smoothing continuum is biased within ~L of the edges
    np.testing.assert_allclose(prep.flux[inner], 1.0, atol=2e-3)
    assert prep.valid_fraction == 1.0 and prep.error[100] == pytest.approx(
        1 / np.sqrt(prep.ivar[100]))


def test_bad_spectra_raise_clear_errors():
    wl = log_linear_wavelength(3.5682, 1e-4, 3909)
    f = np.full(wl.size, 100.0)
    with pytest.raises(LamostDataError, match="no redshift"):
        prepare_spectrum(wl, f, np.ones(wl.size), np.nan, what="star X")
    with pytest.raises(LamostDataError, match="star X: no valid pixel"):
        prepare_spectrum(wl, f, np.zeros(wl.size), 0.0, what="star X")
    with pytest.raises(LamostDataError, match="no valid pixel in 4000–8500"):
        prepare_spectrum(wl + 9000, f, np.ones(wl.size), 0.0)
    ivar = np.ones(wl.size)
    ivar[wl > 5000] = 0
    with pytest.raises(LamostDataError, match="valid pixels"):
        prepare_spectrum(wl, f, ivar, 0.0)
    rng = np.random.default_rng(0)
    spiky = f + rng.normal(0, 1, wl.size)
    spiky[np.arange(600, 3000, 60)] += 50
    with pytest.raises(LamostDataError, match="cosmic-ray pixels"):
        prepare_spectrum(wl, spiky, ivar * 0 + 1, 0.0, max_cosmic=20)
