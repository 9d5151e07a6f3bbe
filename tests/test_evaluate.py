"""Evaluation tables and σ calibration (Olney et al. 2020 Tables 2–3, §3.5)."""

import numpy as np
import pytest

from apogee_net.evaluation.metrics import (
    GAUSS_COVERAGE,
    calibration,
    mse_table,
    scatter_table,
    sigma_scale,
)


def test_tables_on_known_residuals():
    rng = np.random.default_rng(0)
    n = 30000
    source = np.where(np.arange(n) % 10 == 0, "mstar", "payne")
    split = np.array(["train", "dev", "test"])[np.arange(n) % 3]
    label = np.column_stack([rng.uniform(1, 5, n), rng.uniform(3000, 6000, n),
                             rng.uniform(-1, 0.4, n)])
    noise = np.array([0.1, 100.0, 0.05])
    noise_rows = np.where(source[:, None] == "mstar", 2 * noise, noise)
    pred = label + rng.normal(size=(n, 3)) * noise_rows
    t3 = scatter_table(pred, label, ["logg", "teff", "fe_h"], source, split)
    row = {(r["group"], r["label"]): r for r in t3}
    assert row[("Payne", "teff")]["test"] == pytest.approx(100.0, rel=0.03)
    assert row[("MStar", "logg")]["dev"] == pytest.approx(0.2, rel=0.08)
    assert abs(row[("Full", "fe_h")]["bias_train"]) < 0.003
    std = np.array([1.0, 1000.0, 0.5])
    t2 = mse_table(pred, label, std, source, split)
    payne = t2[t2["group"] == "Payne"][0]
    expect = np.mean((noise / std) ** 2)
    assert payne["test"] == pytest.approx(expect, rel=0.05)
    assert t2[t2["group"] == "MStar"][0]["dev"] == pytest.approx(4 * expect, rel=0.1)


def test_calibration_recovers_factor_and_coverage():
    rng = np.random.default_rng(1)
    n = 50000
    sigma = rng.uniform(0.5, 2.0, size=(n, 2))
    pred = rng.normal(size=(n, 2)) * sigma * np.array([4.0, 1.0])  # label = 0
    label = np.zeros((n, 2))
    k = sigma_scale(pred, label, sigma)
    assert k == pytest.approx([4.0, 1.0], rel=0.02)
    assert sigma_scale(pred, label, sigma, "rms") == pytest.approx([4.0, 1.0], rel=0.02)
    # heavy tails: 5% outliers at 20 sigma inflate the rms factor, not the robust one
    out = pred.copy()
    out[:2500, 1] = 20 * sigma[:2500, 1]
    assert sigma_scale(out, label, sigma)[1] == pytest.approx(1.07, abs=0.05)
    assert sigma_scale(out, label, sigma, "rms")[1] > 4
    cal = calibration(pred, label, sigma, ["logg", "teff"])
    assert cal["cov1_before"][0] == pytest.approx(0.1974, abs=0.01)  # P(|z|<1/4)
    assert cal["cov1_after"][0] == pytest.approx(GAUSS_COVERAGE[0], abs=0.01)
    assert cal["cov2_after"][1] == pytest.approx(GAUSS_COVERAGE[1], abs=0.01)
    # factors fitted elsewhere can be judged on these rows
    fixed = calibration(pred, label, sigma, ["logg", "teff"], scale=[1.0, 1.0])
    assert fixed["cov1_after"][0] == pytest.approx(fixed["cov1_before"][0])
