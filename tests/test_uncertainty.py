"""Perturbation uncertainties (Olney et al. 2020 §3.5): σ capping, mean/σ behaviour, and the
batched implementation against a one-realization-at-a-time reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apogee_net.inference.uncertainty import (
    forward_realizations,
    perturbation_sigma,
    perturbed_predict,
)
from apogee_net.network.model import APOGEENet, Preprocess
from apogee_net.testing.reference import naive_perturbed_predict
from yso_labels.core.scaling import Standardiser

torch.set_num_threads(1)
NPIX = 256


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = APOGEENet(npix=NPIX).eval()
    rng = np.random.default_rng(0)
    lam = np.linspace(0, 1, NPIX)
    base = 100 * (1 + 0.3 * lam) * (1 - 0.5 * np.exp(-0.5 * ((lam[None] - rng.uniform(
        0, 1, (20, 1))) / 0.01) ** 2)).prod(0)
    # the spectrum sits ~1σ away from the scaler's mean (not at the ReLU kink of zero input)
    prep = Preprocess(Standardiser(0.95 * base + rng.normal(0, 3, NPIX), np.full(NPIX, 5.0)),
                      Standardiser([2.88, 4716.9, -0.22], [1.16, 733.0, 0.30]))
    return model, base.astype(np.float32), prep


def test_sigma_capped_at_five_times_mean_error_dead_pixels_zero():
    error = torch.tensor([[1.0] * 20 + [100.0, float("nan")]])
    valid = torch.isfinite(error)
    sigma = perturbation_sigma(error, valid)
    cap = 5 * 120 / 21  # 5 × mean error over the 21 valid pixels
    np.testing.assert_allclose(sigma[0, :20].numpy(), 1.0)
    assert sigma[0, 20].item() == pytest.approx(cap, rel=1e-6)
    assert sigma[0, 21].item() == 0.0


def test_zero_noise_gives_zero_sigma(setup):
    model, base, prep = setup
    flux = np.stack([base, 2 * base])
    error = np.full_like(flux, 1e-12)  # far below float32 resolution of the flux
    mean, std = perturbed_predict(model, flux, error, prep, n_realizations=20)
    plain, nan = perturbed_predict(model, flux, error, prep, n_realizations=0)
    assert np.all(std == 0)
    np.testing.assert_allclose(mean, plain, rtol=1e-6)
    assert np.all(np.isnan(nan))


def test_sigma_grows_as_snr_falls(setup):
    model, base, prep = setup
    snrs = np.array([400.0, 100.0, 25.0])
    flux = np.repeat(base[None], 3, axis=0)
    error = flux / snrs[:, None]
    # same noise pattern (same key) scaled by 1/SNR
    _, std = perturbed_predict(model, flux, error, prep, n_realizations=200, seed=1,
                               keys=[0, 0, 0])
    assert np.all(np.diff(std, axis=0) > 0)  # σ grows as SNR falls, every label
    # a 16× larger noise gives a several times larger σ (not exactly 16×: max pooling
    # and ReLU switch under noise, so the response is not linear)
    assert np.all(std[2] / std[0] > 3)


def test_mean_close_to_plain_prediction_at_high_snr(setup):
    model, base, prep = setup
    flux, error = base[None], base[None] / 500.0
    mean, std = perturbed_predict(model, flux, error, prep, n_realizations=100)
    plain, _ = perturbed_predict(model, flux, error, prep, n_realizations=0)
    # |mean − plain| within the Monte-Carlo error of the mean (4σ/√N) plus 1 % of σ
    assert np.all(np.abs(mean - plain) < 4 * std / np.sqrt(100) + 0.01 * std)
    assert np.all(std > 0)


def test_batched_equals_naive_and_is_independent_of_chunking(setup):
    model, base, prep = setup
    rng = np.random.default_rng(5)
    flux = base[None] * rng.uniform(0.8, 1.2, (5, 1)).astype(np.float32)
    error = flux / 50.0
    flux[2, 10:40] = np.nan  # dead pixels: left unperturbed, zero input
    error[2, 10:40] = np.nan
    ref_m, ref_s = naive_perturbed_predict(model, flux, error, prep, n_realizations=12, seed=3)
    for chunk_rows in (7, 30, 1000):
        m, s = perturbed_predict(model, flux, error, prep, n_realizations=12, seed=3,
                                 chunk_rows=chunk_rows)
        np.testing.assert_allclose(m, ref_m, rtol=1e-5)
        np.testing.assert_allclose(s, ref_s, rtol=1e-4, atol=1e-6 * np.abs(ref_m).max())
    # a star's numbers depend on its key, not on the other stars of its chunk
    sub_m, sub_s = perturbed_predict(model, flux[3:], error[3:], prep, n_realizations=12,
                                     seed=3, keys=[3, 4])
    np.testing.assert_allclose(sub_m, ref_m[3:], rtol=1e-5)
    assert np.all(np.isfinite(ref_m)) and np.all(ref_s > 0)
    other, _ = perturbed_predict(model, flux, error, prep, n_realizations=12, seed=4)
    assert not np.allclose(other, ref_m)


def test_forward_realizations_shapes():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x = torch.arange(12.0).reshape(3, 1, 4)
    out = forward_realizations(model, lambda a, b: x[a:b].repeat_interleave(5, 0), 3, 5,
                               chunk_rows=4)
    assert out.shape == (3, 5, 2)
    torch.testing.assert_close(out[:, 0], model(x).detach())
    assert torch.all(out.std(dim=1) == 0)
    with pytest.raises(ValueError, match="at least one"):
        forward_realizations(model, lambda a, b: x, 3, 0)


def test_forward_realizations_tuple_outputs():
    class Two(torch.nn.Module):
        def forward(self, x):
            return x[:, 0, :2], x[:, 0, 2:] * 2

    x = torch.arange(12.0).reshape(3, 1, 4)
    value, other = forward_realizations(Two(), lambda a, b: x[a:b].repeat_interleave(2, 0),
                                        3, 2, chunk_rows=3)
    assert value.shape == other.shape == (3, 2, 2)
    torch.testing.assert_close(other[:, 1], 2 * x[:, 0, 2:])


class _Linear(torch.nn.Module):
    """out = W · x on the (n, 1, npix) input: σ_out² = Σ W² σ_pixel² exactly."""

    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, x):
        return x[:, 0] @ self.weight.T


def test_sigma_matches_the_analytic_linear_response():
    """Independent reference (no code shared with the module): for a linear network and an
    identity standardisation, the §3.5 perturbation gives per realization W·(f + ε), ε_i ~
    N(0, min(err_i, 5·mean err)), so E[std²] over N draws (ddof 0) = (N−1)/N · Σ_i W_i² σ_i².
    Fails if σ_pixel were err² or uncapped, if dead pixels were perturbed, or if the
    standard deviation were taken with ddof 1 (a factor N/(N−1) = 1.5 at N = 3)."""
    rng = np.random.default_rng(3)
    npix, n_stars, n_real = 64, 3000, 3
    weight = rng.normal(size=(2, npix))
    flux = 1.0 + 0.1 * rng.random(npix)
    err = rng.uniform(0.2, 0.4, npix)  # err² is 2.5-5x smaller than err
    err[5] = 30.0  # far above 5 × the mean error: capped
    err[9] = np.nan  # dead pixel: never perturbed
    valid = np.isfinite(err)
    sig = np.minimum(err[valid], 5 * err[valid].mean())
    assert sig.max() < err[5]  # the cap binds
    expect_var = (weight[:, valid] ** 2 * sig**2).sum(axis=1)
    prep = Preprocess(Standardiser(np.zeros(npix), np.ones(npix)),
                      Standardiser(np.zeros(2), np.ones(2)), "none")
    model = _Linear(weight)
    f = np.repeat(flux[None], n_stars, 0).astype(np.float32)
    e = np.repeat(err[None], n_stars, 0).astype(np.float32)
    mean, std = perturbed_predict(model, f, e, prep, n_realizations=n_real, seed=7,
                                  chunk_rows=3000)
    ratio = (std**2).mean(axis=0) / ((n_real - 1) / n_real * expect_var)
    # MC error of the mean of 3000 std² values (χ²₂/2 spread): ~1.8 %; 2x that
    np.testing.assert_allclose(ratio, 1.0, atol=0.05)
    # the mean over realizations is unbiased: W·f within 4 standard errors
    plain = weight[:, valid] @ flux[valid]
    se = np.sqrt(expect_var / n_real / n_stars)
    assert np.all(np.abs(mean.mean(axis=0) - plain) < 4 * se)
