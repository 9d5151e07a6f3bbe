"""Baselines a spectral CNN must beat, fitted on the same inputs and split.

- :func:`ridge_baseline`: ridge regression of the labels on the standardised pixels, the
  penalty chosen on the dev split.
- :class:`QuadraticCannon`: a data-driven model of The Cannon type (Ness et al. 2015, ApJ
  808, 16, §2): each pixel's flux is a quadratic polynomial in the labels,
  ``f_jn = θ_j · v(ℓ_n) + e_jn`` with ``e_jn ~ N(0, σ_jn² + s_j²)``; the training step fits
  ``θ_j`` and the intrinsic scatter ``s_j`` pixel by pixel (§2.2, eq. 4), the test step
  finds the labels of each spectrum by non-linear least squares (§2.3, eq. 5).

Both work on arrays: ``flux``/``error`` ``(n, npix)`` in any common unit (e.g. the
median-scaled flux of :func:`apogee_net.network.model.scale_flux`), NaN or non-positive
error where a pixel has no data; ``labels`` ``(n, k)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Ridge penalties tried by :func:`ridge_baseline` (the dev split picks one).
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def ridge_baseline(x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray,
                   y_dev: np.ndarray, alphas: Sequence[float] = RIDGE_ALPHAS):
    """Ridge regression ``y ≈ x β + b`` (sklearn ``Ridge``) with the penalty ``alpha`` of
    ``alphas`` that gives the lowest mean standardised dev MSE over the labels. Returns the
    fitted model (``.predict(x)``, attribute ``alpha``)."""
    from sklearn.linear_model import Ridge

    scale = np.std(y_train, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    best, best_loss = None, np.inf
    for alpha in alphas:
        model = Ridge(alpha=float(alpha)).fit(x_train, y_train)
        loss = float(np.mean(((model.predict(x_dev) - y_dev) / scale) ** 2))
        if loss < best_loss:
            best, best_loss = model, loss
    return best


def quadratic_terms(z: np.ndarray) -> np.ndarray:
    """Vectorizer ``v(z) = [1, z_1 … z_k, z_a z_b (a ≤ b)]`` of Ness et al. (2015) eq. 3
    for scaled labels ``z`` (n, k) → (n, 1 + k + k(k+1)/2)."""
    z = np.atleast_2d(z)
    a, b = np.triu_indices(z.shape[1])
    return np.concatenate([np.ones((len(z), 1)), z, z[:, a] * z[:, b]], axis=1)


def quadratic_jacobian(z: np.ndarray) -> np.ndarray:
    """``∂v/∂z`` of :func:`quadratic_terms`: (n, n_terms, k)."""
    z = np.atleast_2d(z)
    n, k = z.shape
    a, b = np.triu_indices(k)
    jac = np.zeros((n, 1 + k + len(a), k))
    jac[:, 1:1 + k] = np.eye(k)
    rows = np.arange(1 + k, 1 + k + len(a))
    jac[:, rows, a] += z[:, b]
    jac[:, rows, b] += z[:, a]
    return jac


def _inverse_variance(flux: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux with 0 and ivar 1/σ² with 0 where a pixel has no data (non-finite flux or
    error, non-positive error)."""
    flux = np.asarray(flux, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    if flux.shape != error.shape:
        raise ValueError(f"flux {flux.shape} and error {error.shape} differ in shape")
    with np.errstate(invalid="ignore", divide="ignore"):
        good = np.isfinite(flux) & np.isfinite(error) & (error > 0)
        ivar = np.where(good, 1.0 / np.where(good, error, 1.0) ** 2, 0.0)
    return np.where(good, flux, 0.0), ivar


@dataclass
class QuadraticCannon:
    """A quadratic-in-labels Cannon (Ness et al. 2015): ``theta`` (npix, n_terms) spectral
    model coefficients, ``s2`` (npix,) intrinsic variance, labels scaled as
    ``z = (ℓ − offset) / scale`` (training mean and std) before :func:`quadratic_terms`."""

    theta: np.ndarray
    s2: np.ndarray
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, flux: np.ndarray, error: np.ndarray, labels: np.ndarray,
            n_iter: int = 2) -> QuadraticCannon:
        """Training step (Ness et al. 2015 §2.2): per pixel, weighted linear least squares
        ``θ_j = argmin Σ_n (f_jn − θ·v_n)² / (σ_jn² + s_j²)``, alternated ``n_iter`` times
        with the moment estimate ``s_j² = max(0, mean_n[r_jn² − σ_jn²])`` of the scatter
        (an approximation to the likelihood maximisation of eq. 4)."""
        labels = np.asarray(labels, dtype=np.float64)
        f, ivar = _inverse_variance(flux, error)
        if labels.ndim != 2 or len(labels) != len(f):
            raise ValueError(f"labels must be (n, k) with n = {len(f)}, got {labels.shape}")
        offset, scale = labels.mean(0), labels.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        v = quadratic_terms((labels - offset) / scale)
        if len(v) < v.shape[1]:
            raise ValueError(f"QuadraticCannon needs at least {v.shape[1]} training spectra, "
                             f"got {len(v)}")
        npix = f.shape[1]
        s2 = np.zeros(npix)
        with np.errstate(divide="ignore"):
            var = np.where(ivar > 0, 1.0 / np.where(ivar > 0, ivar, 1.0), np.inf)
        q = v.shape[1]
        vv = (v[:, :, None] * v[:, None, :]).reshape(len(v), q * q)
        good = np.isfinite(var)
        for _ in range(max(1, n_iter)):
            w = np.where(good, 1.0 / (np.where(good, var, 1.0) + s2), 0.0)  # (n, npix)
            # normal equations per pixel: (Vᵀ W_j V) θ_j = Vᵀ W_j f_j
            a = (vv.T @ w).T.reshape(npix, q, q)
            rhs = (v.T @ (w * f)).T
            used = w.sum(0) > 0
            theta = np.zeros((npix, q))
            ridge = 1e-12 * np.trace(a[used], axis1=1, axis2=2)[:, None, None] * np.eye(q)
            theta[used] = np.linalg.solve(a[used] + ridge, rhs[used][..., None])[..., 0]
            resid2 = (f - v @ theta.T) ** 2
            extra = np.where(good, resid2 - np.where(good, var, 0.0), 0.0).sum(0)
            s2 = np.maximum(0.0, extra / np.maximum(good.sum(0), 1))
        return cls(theta, s2, offset, scale)

    def model_flux(self, labels: np.ndarray) -> np.ndarray:
        """Model spectra ``θ · v(z)`` (n, npix) for physical labels (n, k)."""
        z = (np.atleast_2d(labels) - self.offset) / self.scale
        return quadratic_terms(z) @ self.theta.T

    def predict(self, flux: np.ndarray, error: np.ndarray, n_iter: int = 30,
                return_chi2: bool = False):
        """Test step (Ness et al. 2015 §2.3, eq. 5): labels minimising
        ``χ² = Σ_j (f_j − θ_j·v(z))² / (σ_j² + s_j²)`` for each spectrum, by
        Levenberg–Marquardt from two starts (the training mean, and the linear terms of
        the least-squares ``v`` for that spectrum, as in Casey et al. 2016's ``thecannon``),
        keeping the lower χ². Returns labels (n, k) (and χ² (n,) with ``return_chi2``)."""
        f, ivar = _inverse_variance(flux, error)
        with np.errstate(divide="ignore"):
            w = np.where(ivar > 0, 1.0 / (1.0 / np.where(ivar > 0, ivar, 1.0) + self.s2), 0.0)
        k, q = len(self.offset), self.theta.shape[1]
        # χ²(z) = fᵀWf − 2 v(z)ᵀ b + v(z)ᵀ A v(z) with A = θᵀWθ, b = θᵀWf per spectrum, so
        # every iteration works in the n_terms-dimensional space
        tt = (self.theta[:, :, None] * self.theta[:, None, :]).reshape(len(self.theta), q * q)
        a = (w @ tt).reshape(len(f), q, q)
        b = (w * f) @ self.theta
        c = np.einsum("nj,nj->n", w, f * f)
        # start 2: least-squares v per spectrum, its linear terms are z
        reg = 1e-9 * np.trace(a, axis1=1, axis2=2)[:, None, None] * np.eye(q)
        v_ls = np.linalg.solve(a + reg, b[..., None])[..., 0]
        starts = [np.zeros((len(f), k)), np.clip(v_ls[:, 1:1 + k], -4, 4)]
        best_z, best_chi2 = None, None
        for z0 in starts:
            z, chi2 = _levenberg_marquardt(a, b, c, z0, n_iter)
            if best_z is None:
                best_z, best_chi2 = z, chi2
            else:
                better = chi2 < best_chi2
                best_z[better], best_chi2[better] = z[better], chi2[better]
        labels = best_z * self.scale + self.offset
        return (labels, best_chi2) if return_chi2 else labels


def _chi2(a, b, c, z):
    v = quadratic_terms(z)
    return c - 2 * np.einsum("nq,nq->n", v, b) + np.einsum("nq,nqr,nr->n", v, a, v)


def _levenberg_marquardt(a, b, c, z, n_iter):
    """Batched Levenberg–Marquardt over scaled labels ``z`` (n, k) for the χ² of
    :func:`_chi2`: ``JᵀWJ = Dᵀ A D`` and ``JᵀW r = Dᵀ (b − A v)`` with ``D = ∂v/∂z``."""
    z = z.copy()
    lam = np.full(len(z), 1e-3)
    chi2 = _chi2(a, b, c, z)
    eye = np.eye(z.shape[1])
    for _ in range(n_iter):
        v, d = quadratic_terms(z), quadratic_jacobian(z)
        jtj = np.einsum("nqk,nqr,nrl->nkl", d, a, d)
        jtr = np.einsum("nqk,nq->nk", d, b - np.einsum("nqr,nr->nq", a, v))
        damp = lam[:, None, None] * (jtj * eye + 1e-12 * eye)
        trial = z + np.linalg.solve(jtj + damp, jtr[..., None])[..., 0]
        chi2_new = _chi2(a, b, c, trial)
        ok = chi2_new < chi2
        z[ok], chi2[ok] = trial[ok], chi2_new[ok]
        lam = np.where(ok, lam / 10, lam * 10)
    return z, chi2


def _scores(pred: np.ndarray, target: np.ndarray, names: Sequence[str]) -> dict:
    """Per-label n, bias, scatter (std of prediction − label) and RMSE, as
    :func:`apogee_net.network.train.score`."""
    diff = pred - target
    return {name: {"n": int(np.isfinite(diff[:, j]).sum()),
                   "bias": float(np.nanmean(diff[:, j])),
                   "scatter": float(np.nanstd(diff[:, j])),
                   "rmse": float(np.sqrt(np.nanmean(diff[:, j] ** 2)))}
            for j, name in enumerate(names)}


def store_baselines(store, labels, prep, label_columns: Sequence[str] = ("logg", "teff", "fe_h"),
                    methods: Sequence[str] = ("ridge", "cannon")) -> dict:
    """Fit the baselines on the ``train`` split of a store and label table (as
    :func:`apogee_net.network.train.train_apogee_net` takes them) and score them on ``test``.

    ``prep``: the :class:`apogee_net.network.model.Preprocess` of the CNN (its flux scaling and
    per-pixel standardisation, fitted on the same training split). Ridge regresses the
    labels on the standardised pixels (penalty chosen on ``dev``); the Cannon models the
    flux after ``prep``'s per-spectrum scaling, with the errors scaled alike. Returns
    ``{method: {"seconds": fit time (s), "n_train": …, label: {n, bias, scatter, rmse}}}``.
    """
    import time

    import torch

    from apogee_net.network.model import scale_flux
    from apogee_net.spectra.dataset import join_labels, read_rows
    from apogee_net.spectra.store import open_store

    rows, joined, _ = join_labels(store, labels, label_columns=label_columns)
    split = np.array([str(s).strip().lower() for s in joined["split"]])
    target = np.column_stack([np.asarray(joined[c], float) for c in label_columns])
    data = {}
    with open_store(store) as h5:
        for name in ("train", "dev", "test"):
            sel = np.flatnonzero(split == name)
            flux = torch.from_numpy(read_rows(h5["flux"], rows[sel]).astype(np.float32))
            error = torch.from_numpy(read_rows(h5["error"], rows[sel]).astype(np.float32))
            scaled = scale_flux(flux, error, prep.flux_norm)
            factor = scale_flux(flux, error, "none").nanmedian(1, keepdim=True).values
            if prep.flux_norm == "none":
                factor = torch.ones_like(factor)
            data[name] = {"x": prep.inputs(flux, error)[:, 0].numpy(),
                          "flux": scaled.numpy(), "error": (error / factor).numpy(),
                          "y": target[sel]}
    if len(data["train"]["y"]) == 0 or len(data["test"]["y"]) == 0:
        raise ValueError("store_baselines needs train and test stars")
    out = {}
    for method in methods:
        t0 = time.perf_counter()
        if method == "ridge":
            dev = data["dev"] if len(data["dev"]["y"]) else data["train"]
            model = ridge_baseline(data["train"]["x"], data["train"]["y"], dev["x"], dev["y"])
            extra = {"alpha": float(model.alpha)}
            seconds = time.perf_counter() - t0
            pred = model.predict(data["test"]["x"])
        elif method == "cannon":
            model = QuadraticCannon.fit(data["train"]["flux"], data["train"]["error"],
                                        data["train"]["y"])
            extra = {}
            seconds = time.perf_counter() - t0
            pred = model.predict(data["test"]["flux"], data["test"]["error"])
        else:
            raise ValueError(f"unknown baseline {method!r}; choose ridge or cannon")
        out[method] = {"seconds": seconds, "n_train": len(data["train"]["y"]), **extra,
                       **_scores(pred, data["test"]["y"], label_columns)}
    return out
