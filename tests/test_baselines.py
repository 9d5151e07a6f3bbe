"""Baselines: the quadratic Cannon recovers a known quadratic model exactly (coefficients,
intrinsic scatter and labels), its Jacobian matches finite differences, and the ridge
baseline picks its penalty on the dev split."""

from __future__ import annotations

import numpy as np
import pytest

from apogee_net.evaluation.baselines import (
    QuadraticCannon,
    quadratic_jacobian,
    quadratic_terms,
    ridge_baseline,
)


def labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(1, 5, n), rng.uniform(3500, 6000, n),
                            rng.uniform(-1, 0.4, n)])


def known_model(npix: int = 400, seed: int = 0) -> QuadraticCannon:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.05, (npix, 10))
    theta[:, 0] = 1.0
    return QuadraticCannon(theta, np.zeros(npix), np.array([3.0, 4750.0, -0.3]),
                           np.array([1.2, 720.0, 0.4]))


def test_quadratic_terms_and_jacobian():
    z = np.array([[2.0, 3.0, 5.0]])
    # [1, z1, z2, z3, z1², z1z2, z1z3, z2², z2z3, z3²]
    assert quadratic_terms(z)[0].tolist() == [1, 2, 3, 5, 4, 6, 10, 9, 15, 25]
    rng = np.random.default_rng(3)
    z = rng.normal(size=(5, 3))
    eps = 1e-6
    numeric = np.stack([(quadratic_terms(z + eps * e) - quadratic_terms(z - eps * e)) / (2 * eps)
                        for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(quadratic_jacobian(z), numeric, atol=1e-8)


def test_exact_recovery_of_a_known_quadratic_model():
    truth = known_model()
    lab = labels(200, 1)
    flux = truth.model_flux(lab)
    error = np.full_like(flux, 0.01)
    error[:, :7] = np.nan  # pixels without data are ignored
    flux[:, :7] = np.nan
    fitted = QuadraticCannon.fit(flux, error, lab)
    # the label scaling is the training mean/std, so compare model spectra, not θ
    test = labels(50, 2)
    np.testing.assert_allclose(fitted.model_flux(test)[:, 7:], truth.model_flux(test)[:, 7:],
                               atol=1e-9)
    assert np.all(fitted.s2 < 1e-12)
    found = fitted.predict(truth.model_flux(test), np.full((50, 400), 0.01))
    assert np.all(np.abs(found - test) < [1e-6, 1e-3, 1e-6])


def test_noise_scatter_and_label_errors():
    truth = known_model(600, seed=4)
    rng = np.random.default_rng(5)
    lab = labels(1500, 6)
    s = np.where(np.arange(600) < 300, 0.0, 0.02)  # intrinsic scatter on half the pixels
    sigma = 0.01
    flux = truth.model_flux(lab) + rng.normal(0, 1, (1500, 600)) * np.hypot(sigma, s)
    fitted = QuadraticCannon.fit(flux, np.full_like(flux, sigma), lab)
    assert np.median(np.sqrt(fitted.s2[300:])) == pytest.approx(0.02, rel=0.1)
    assert np.median(np.sqrt(fitted.s2[:300])) < 0.003
    test = labels(300, 7)
    noisy = truth.model_flux(test) + rng.normal(0, sigma, (300, 600))
    found = fitted.predict(noisy, np.full_like(noisy, sigma))
    # Cramér–Rao bound of the true model (Fisher matrix Jᵀ W J at the true labels)
    z = (test - truth.offset) / truth.scale
    jac = np.einsum("jq,nqk->njk", truth.theta, quadratic_jacobian(z))
    w = 1 / (sigma ** 2 + s ** 2)
    fisher = np.einsum("njk,j,njl->nkl", jac, w, jac)
    bound = np.sqrt(np.mean([np.diag(np.linalg.inv(f)) for f in fisher], axis=0)) * truth.scale
    err = np.std(found - test, axis=0)
    assert np.all(err < 1.3 * bound) and np.all(err > 0.7 * bound)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="differ in shape"):
        QuadraticCannon.fit(np.ones((20, 5)), np.ones((20, 4)), labels(20, 0))
    with pytest.raises(ValueError, match="at least 10"):
        QuadraticCannon.fit(np.ones((5, 4)), np.ones((5, 4)), labels(5, 0))


def test_ridge_penalty_chosen_on_dev():
    rng = np.random.default_rng(0)
    beta = rng.normal(size=(50, 2))
    x = rng.normal(size=(400, 50))
    y = x @ beta
    # noiseless: the weakest penalty wins; many noisy features: a strong one
    assert ridge_baseline(x[:300], y[:300], x[300:], y[300:]).alpha == 0.1
    xn = rng.normal(size=(400, 300))
    yn = xn[:, :1] @ np.ones((1, 2)) + rng.normal(0, 3, (400, 2))
    assert ridge_baseline(xn[:100], yn[:100], xn[100:], yn[100:]).alpha >= 100
