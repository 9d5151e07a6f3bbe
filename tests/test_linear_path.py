"""APOGEE Net's ``linear_skip`` option (issue 14): the fixed ridge path and its cross-fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apogee_net.network.linear_path import fit_linear_path
from apogee_net.network.model import APOGEENet


def _data(n, npix=64, seed=0):
    """Spectra-like inputs: 3 latent labels spread over all pixels, plus noise."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 3))
    loadings = np.random.default_rng(99).normal(size=(3, npix))
    x = (u @ loadings + 0.5 * rng.normal(size=(n, npix))).astype(np.float32)
    return x, np.column_stack([u[:, 0], u[:, 1] + 0.3 * u[:, 2] ** 2])


def test_offsets_are_out_of_fold_minus_in_sample():
    from sklearn.linear_model import Ridge

    x, z = _data(60)
    xd, zd = _data(30, seed=1)
    path = fit_linear_path(x, z, xd, zd, folds=3, seed=4)
    full = Ridge(alpha=path.alpha).fit(x, z)
    np.testing.assert_allclose(path.coef, full.coef_, rtol=1e-5, atol=1e-6)
    # straight-line reference: the same seeded fold assignment, one ridge per fold
    fold = np.random.default_rng(4).permutation(60) % 3
    oof = np.zeros_like(z)
    for k in range(3):
        oof[fold == k] = Ridge(alpha=path.alpha).fit(x[fold != k], z[fold != k]).predict(
            x[fold == k])
    np.testing.assert_allclose(path.offsets, oof - full.predict(x), atol=1e-6)
    # the point of the cross-fitting: out-of-fold residuals are larger than in-sample ones
    # when a ridge has about as many pixels as stars (here 1.36×)
    assert np.std(z - oof) > 1.2 * np.std(z - full.predict(x))


def test_missing_labels_and_tiny_sets_refused():
    x, z = _data(60)
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="every label of every training star"):
        fit_linear_path(x, bad, x, z)
    with pytest.raises(ValueError, match="at least 10 training stars"):
        fit_linear_path(x[:8], z[:8], x, z)


def test_model_adds_the_fixed_linear_path():
    torch.manual_seed(0)
    plain = APOGEENet(n_targets=2, npix=128, dropout=0.0)
    torch.manual_seed(0)
    skip = APOGEENet(n_targets=2, npix=128, dropout=0.0, linear_skip=True)
    x = torch.randn(5, 1, 128)
    torch.testing.assert_close(skip(x), plain(x))  # same layers, path zero at the start
    coef, icpt = torch.randn(2, 128), torch.tensor([0.5, -1.0])
    skip.set_linear(coef, icpt)
    torch.testing.assert_close(skip(x) - plain(x), x[:, 0] @ coef.T + icpt)
    assert not any(p.requires_grad for p in skip.skip.parameters())
    assert skip.arch_kwargs["linear_skip"] is True and "linear_skip" not in plain.arch_kwargs
    with pytest.raises(ValueError, match="no linear_skip"):
        plain.set_linear(coef, icpt)


def test_labels_chosen_for_the_path():
    from apogee_net.network.linear_path import linear_labels

    names = ("logg", "teff", "fe_h")
    assert linear_labels(True, names) == list(names) == linear_labels("all", names)
    for off in (None, False, "none", ""):
        assert linear_labels(off, names) == []
    assert linear_labels("fe_h, logg", names) == ["logg", "fe_h"]
    assert linear_labels(["teff"], names) == ["teff"]
    with pytest.raises(ValueError, match="vsini not among the labels learnt"):
        linear_labels("logg,vsini", names)
    x, z = _data(60)
    path = fit_linear_path(x, z, *_data(30, seed=1), folds=3, use=[False, True])
    assert not path.coef[0].any() and path.intercept[0] == 0 and not path.offsets[:, 0].any()
    full = fit_linear_path(x, z, *_data(30, seed=1), folds=3)
    np.testing.assert_array_equal(path.coef[1], full.coef[1])
    np.testing.assert_array_equal(path.offsets[:, 1], full.offsets[:, 1])
    assert path.describe()["labels_used"] == [False, True]
