"""The fixed linear path of APOGEE Net's ``linear_skip`` option (issue 14; outside Olney et
al. 2020): a ridge regression of the standardised labels on the standardised pixels, added to
the network's output, with the network trained on the ridge's *out-of-fold* residuals.

On noise-only emulated spectra a ridge regression on the pixels beats the plain network in
log g and [Fe/H] at 2,000 training stars, while the network wins Teff and the two err
differently (benchmarks/README.md). With ``linear_skip`` the model is
``ŷ(x) = x · βᵀ + b + CNN(x)``: ``β, b`` a ridge fit on the whole training split (penalty
chosen on dev, :func:`apogee_net.evaluation.baselines.ridge_baseline`), fixed during training.
A ridge with more pixels than stars nearly interpolates its own training set, so the residual
``y − ridge(x)`` on the training stars is far smaller than on new stars and a network trained
on it learns nothing that transfers (measured: the dev loss stayed at ridge's). The network is
therefore trained on the residuals of ``K``-fold cross-fitted ridge predictions (each star
predicted by a ridge fitted without its fold; stacked generalisation, Wolpert 1992, Neural
Networks 5, 241; Breiman 1996, Machine Learning 24, 49), which have the size of the residuals
on new stars. Since the model's output includes the full-data ridge, the training targets are
shifted by the per-star constant ``ridge_oof(x) − ridge_full(x)``
(:attr:`LinearPath.offsets`): the network then aims at ``y − ridge_oof(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Folds of the cross-fitted ridge predictions.
FOLDS = 5


@dataclass
class LinearPath:
    """Ridge coefficients ``coef`` (k, npix) and ``intercept`` (k,) in standardised label
    units, the penalty ``alpha``, per-training-star ``offsets`` (n, k): out-of-fold minus
    in-sample ridge prediction (standardised units), and which labels ``used`` the path."""

    coef: np.ndarray
    intercept: np.ndarray
    alpha: float
    offsets: np.ndarray
    folds: int
    used: list[bool]

    def describe(self) -> dict:
        """Checkpoint metadata of this path."""
        return {"method": "ridge on the standardised pixels, network trained on its "
                          f"{self.folds}-fold out-of-fold residuals (issue 14)",
                "alpha": self.alpha, "folds": self.folds, "labels_used": self.used}


def linear_labels(value, label_names) -> list[str]:
    """Labels given a linear path by the ``linear_skip`` option: ``True``/``"all"`` every
    label, ``False``/``None``/``"none"``/``""`` none, else label names (a sequence or a
    comma-separated string), each one of ``label_names``."""
    names = list(label_names)
    if value is None or value is False or str(value).strip().lower() in ("", "none", "false"):
        return []
    if value is True or str(value).strip().lower() in ("all", "true"):
        return names
    chosen = ([v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str)
              else [str(v) for v in value])
    bad = [v for v in chosen if v not in names]
    if bad:
        raise ValueError(f"linear_skip: {', '.join(bad)} not among the labels learnt "
                         f"({', '.join(names)}); give 'all' or some of them")
    return [n for n in names if n in chosen]


def fit_linear_path(x_train: np.ndarray, z_train: np.ndarray, x_dev: np.ndarray,
                    z_dev: np.ndarray, folds: int = FOLDS, seed: int = 0,
                    use=None) -> LinearPath:
    """Ridge of standardised labels ``z`` (n, k) on inputs ``x`` (n, npix), penalty chosen on
    the dev split; ``offsets`` from ``folds``-fold cross-fitting over a seeded random fold
    assignment (module docstring). Every label must be finite. ``use`` (k,) booleans: the
    labels given the path (default all); the others get a zero path and zero offsets."""
    from sklearn.linear_model import Ridge

    from apogee_net.evaluation.baselines import ridge_baseline

    for name, z in (("training", z_train), ("dev", z_dev)):
        if not np.all(np.isfinite(z)):
            raise ValueError(f"linear_skip needs every label of every {name} star "
                             f"({int((~np.isfinite(z)).any(1).sum())} have a missing one)")
    n = len(x_train)
    if n < 2 * folds:
        raise ValueError(f"linear_skip needs at least {2 * folds} training stars, got {n}")
    full = ridge_baseline(x_train, z_train, x_dev, z_dev)
    fold = np.random.default_rng(seed).permutation(n) % folds
    oof = np.empty_like(np.asarray(z_train, dtype=np.float64))
    for k in range(folds):
        out = fold == k
        oof[out] = Ridge(alpha=full.alpha).fit(x_train[~out], z_train[~out]).predict(
            x_train[out])
    keep = np.ones(z_train.shape[1], bool) if use is None else np.asarray(use, bool)
    return LinearPath(np.where(keep[:, None], full.coef_, 0).astype(np.float32),
                      np.where(keep, full.intercept_, 0).astype(np.float32),
                      float(full.alpha), np.where(keep, oof - full.predict(x_train), 0.0),
                      folds, [bool(k) for k in keep])


def read_inputs(store, rows, prep, transform=None, chunk: int = 512) -> np.ndarray:
    """Network inputs ``(n, npix)`` float32 of store ``rows`` (in that order) through
    ``prep`` (:class:`apogee_net.network.model.Preprocess`); ``transform(flux, error, rows)``
    (numpy) first, as in :func:`apogee_net.network.train.fit_flux_scaler`."""
    from apogee_net.spectra.dataset import read_rows
    from apogee_net.spectra.store import open_store

    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    out = None
    with open_store(store) as h5:
        for i in range(0, len(rows), chunk):
            where = order[i:i + chunk]
            sel = rows[where]  # sorted, as read_rows needs
            flux = read_rows(h5["flux"], sel).astype(np.float32, copy=False)
            error = read_rows(h5["error"], sel).astype(np.float32, copy=False)
            if transform is not None:
                flux, error = transform(flux, error, sel)
            x = prep.inputs(torch.from_numpy(np.asarray(flux)),
                            torch.from_numpy(np.asarray(error)))[:, 0].numpy()
            if out is None:
                out = np.empty((len(rows), x.shape[1]), np.float32)
            out[where] = x
    if out is None:
        raise ValueError("read_inputs: no rows")
    return out
