"""Out-of-distribution score: how unlike the training spectra a spectrum is.

Three terms, each measured on the network's input (per-pixel standardised flux, 0 where
there is no data; :func:`apogee_net.network.model.model_input`):

- ``m``: the Mahalanobis distance of the penultimate-layer features (the input of the last
  linear layer, dropout off) to those of the training spectra (Lee et al. 2018, NeurIPS,
  "A simple unified framework for detecting out-of-distribution samples", §2), with the
  covariance of the features approximated by its :data:`N_COMPONENTS` leading principal
  components plus an isotropic rest (the features outnumber the fitted spectra);
- ``p``: the fraction of the pixels with data whose standardised flux exceeds
  :data:`Z_BOUND` in absolute value (standardised with the training spectra's per-pixel
  mean and std even when the network input is only centred, as the LAMOST network's is:
  the std is then kept in the statistics, ``pixel_std``);
- ``q``: the fraction of the pixels covered by the training spectra that have no data.

Each term is divided by its :data:`QUANTILE` quantile on the dev split, their maximum by the
same quantile of that maximum: ``ood_score = max(m/s_m, p/s_p, q/s_q) / t``, so that about
1 − QUANTILE = 1 % of dev spectra score above 1 and get the ``OOD`` flag.

The same dev pass records ``dev_scatter``, the standard deviation of (plain prediction −
label) per label on dev, which sets how far past the training label range a prediction may
lie before it is flagged OUT_OF_RANGE (:func:`range_tolerance`).

Spectrum-level terms were tried for the LAMOST toy simulator (issue 12; benchmarks/README.md)
and left out because none separated the real LAMOST spectra from the simulated dev spectra
at a 1 % dev threshold: the Mahalanobis distance of the standardised input pixels
themselves (PCA + isotropic rest), the χ² of the PCA reconstruction in noise units, its
largest 8–128-pixel window, and the χ² of the spectrum against a quadratic Cannon model at
the network's own labels. Fitted at the end
of training (:func:`fit_ood`, on the augmented training and dev spectra when training
augments) and stored in the model's ``meta["ood"]``.

Pixels with data that no training spectrum covered (the real DR17 chips reach ~100 pixels
beyond the ASPCAP ranges simulated spectra fill) are set to no data before prediction
(:func:`restrict_to_coverage`): the network never learnt them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from apogee_net.network.model import Preprocess
from apogee_net.spectra.pixels import valid_pixels
from yso_labels.core.scaling import Standardiser

log = logging.getLogger(__name__)

#: |standardised flux| above this counts towards ``p``.
Z_BOUND = 5.0
#: Quantile of the dev scores that sets the threshold (1 % of dev spectra flagged).
QUANTILE = 0.99
#: Principal components of the feature covariance kept for the Mahalanobis distance.
N_COMPONENTS = 32
#: At most this many training spectra are used to fit the feature distribution.
MAX_FIT = 2000
#: Floors of the per-term scales (p, q), so a dev set without any outlier pixel or dead
#: pixel does not make every single one an outlier.
MIN_SCALE_P, MIN_SCALE_Q = 1e-3, 0.02
#: OUT_OF_RANGE tolerance in units of the dev scatter (:func:`range_tolerance`).
RANGE_SIGMAS = 2.0


def coverage(flux_scaler: Standardiser) -> np.ndarray:
    """Pixels (npix,) with data in the training spectra: a pixel never covered has the
    standardiser's empty-column values, mean 0 and std 1 (:class:`yso_labels.core.scaling.Moments`),
    which no pixel with (median-scaled, positive) flux has."""
    return ~((flux_scaler.mean == 0) & (flux_scaler.std == 1))


def restrict_to_coverage(flux: np.ndarray, error: np.ndarray,
                         covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``flux``, ``error`` (n, npix) with NaN at pixels outside ``covered``."""
    flux = np.array(flux, dtype=np.float32)
    error = np.array(error, dtype=np.float32)
    flux[:, ~covered] = np.nan
    error[:, ~covered] = np.nan
    return flux, error


def penultimate_layer(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model`` (its input are the penultimate features)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear layer for OOD features")
    return linears[-1]


def label_head(out: torch.Tensor, prep: Preprocess) -> torch.Tensor:
    """The standardised label columns of a network output: all of them, or, for a network
    with a value and a log-variance head per label (the LAMOST Bayesian CNN, output
    (n, 2k)), the first k."""
    scaler = prep.label_scaler
    k = None if scaler is None else int(np.asarray(scaler.mean).size)
    return out[:, :k] if k and out.shape[1] == 2 * k else out


@torch.no_grad()
def forward_terms(model: nn.Module, prep: Preprocess, flux, error, covered: np.ndarray,
                  batch_size: int = 64, pixel_std: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One plain forward pass (dropout off, MC dropout too: ``model.eval()``) of spectra
    ``(n, npix)``: labels in physical units (n, k), penultimate features (n, d), ``p`` and
    ``q`` (n,) of the module doc. Works for any network whose last ``nn.Linear`` reads the
    penultimate features (APOGEE Net; the LAMOST Bayesian CNN, whose value and log-variance
    heads read the same features). ``pixel_std`` (npix,): divides the network input for
    ``p`` when that input is centred but not scaled (default: the input is standardised)."""
    device = next(model.parameters()).device
    scale = None if pixel_std is None else torch.as_tensor(
        np.asarray(pixel_std, np.float32), device=device)
    layer = penultimate_layer(model)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    cov = torch.as_tensor(covered, device=device)
    labels, feats, ps, qs = [], [], [], []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(flux), batch_size):
            f = torch.as_tensor(np.asarray(flux[start:start + batch_size], np.float32),
                                device=device)
            e = torch.as_tensor(np.asarray(error[start:start + batch_size], np.float32),
                                device=device)
            x = prep.inputs(f, e)
            captured.clear()
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            labels.append(prep.labels(label_head(out, prep).double()).cpu().numpy())
            feats.append(captured[-1].double().cpu().numpy())
            valid = valid_pixels(f, e) & cov
            z = x[:, 0] if scale is None else x[:, 0] / scale
            n_valid = valid.sum(1).clamp(min=1)
            ps.append(((z.abs() > Z_BOUND) & valid).sum(1).double().div(n_valid).cpu().numpy())
            qs.append((1.0 - valid.sum(1).double() / max(int(cov.sum()), 1)).cpu().numpy())
    finally:
        hook.remove()
        model.train(was_training)
    return (np.concatenate(labels), np.concatenate(feats), np.concatenate(ps),
            np.concatenate(qs))


def fit_features(features: np.ndarray, n_components: int = N_COMPONENTS) -> dict:
    """Mean, leading principal axes and variances, and the isotropic rest variance of
    training ``features`` (n, d), for :func:`mahalanobis`."""
    feats = np.asarray(features, float)
    mean = feats.mean(axis=0)
    centred = feats - mean
    k = int(max(1, min(n_components, len(feats) // 4, feats.shape[1] - 1)))
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    var = sing ** 2 / max(len(feats) - 1, 1)
    total = var.sum()
    rest = (total - var[:k].sum()) / max(feats.shape[1] - k, 1)
    floor = 1e-6 * max(total / feats.shape[1], 1e-12)
    return {"mean": mean.tolist(), "axes": vt[:k].tolist(),
            "variances": np.maximum(var[:k], floor).tolist(), "rest": float(max(rest, floor))}


def mahalanobis(features: np.ndarray, stats: dict) -> np.ndarray:
    """Mahalanobis distance (n,) of ``features`` under :func:`fit_features`'s model."""
    d = np.asarray(features, float) - np.asarray(stats["mean"])
    axes = np.asarray(stats["axes"])
    proj = d @ axes.T
    rest = (d ** 2).sum(1) - (proj ** 2).sum(1)
    d2 = (proj ** 2 / np.asarray(stats["variances"])).sum(1) + np.maximum(rest, 0) / stats["rest"]
    return np.sqrt(d2)


def combine(m: np.ndarray, p: np.ndarray, q: np.ndarray, stats: dict) -> np.ndarray:
    """``max(m/s_m, p/s_p, q/s_q) / t`` (module docstring)."""
    s_m, s_p, s_q = stats["scales"]
    return np.maximum.reduce([np.asarray(m) / s_m, np.asarray(p) / s_p,
                              np.asarray(q) / s_q]) / stats["threshold"]


def dev_scatter(pred: np.ndarray, target: np.ndarray) -> list[float]:
    """Standard deviation (per label, physical units; NaN targets skipped) of plain
    prediction − label on dev."""
    with np.errstate(invalid="ignore"):
        resid = np.asarray(pred, float) - np.asarray(target, float)
        return [float(np.nanstd(c)) if np.isfinite(c).sum() > 1 else float("nan")
                for c in resid.T]


def range_tolerance(stats: dict | None, n_labels: int) -> np.ndarray:
    """How far (n_labels,; physical units) a prediction may lie beyond the training label
    range before it is flagged OUT_OF_RANGE: :data:`RANGE_SIGMAS` × the dev scatter
    (``stats["dev_scatter"]``), 0 when the model has none.

    Why: a star whose true label sits at the edge of the training labels is predicted with
    the network's scatter around it, so about half of such stars land outside the range by
    a fraction of that scatter; a strict range check flags them (3–5 % of simulated test
    spectra with the toolkit's defaults, all at the edges), although their labels are as
    good as any. Beyond the range by more than 2 dev σ, a star at the edge lands in ~2 %
    (one-sided Gaussian tail) of cases, so what is flagged is an extrapolation. The dev
    scatter, not the row's own σ, is used: the row's σ is least trustworthy exactly for the
    spectra the flag is for, and a plain prediction has none. Labels outside the physically
    possible range are flagged UNPHYSICAL whatever this tolerance."""
    scatter = (stats or {}).get("dev_scatter")
    if not scatter or len(scatter) != n_labels:
        return np.zeros(n_labels)
    return RANGE_SIGMAS * np.nan_to_num(np.asarray(scatter, float), nan=0.0)


def fit_ood(model: nn.Module, prep: Preprocess, train_batches: Iterable[dict],
            dev_batches: Iterable[dict], quantile: float = QUANTILE,
            pixel_std: np.ndarray | None = None) -> dict:
    """The ``meta["ood"]`` of a trained model: feature statistics from ``train_batches``,
    scales and threshold from ``dev_batches`` (iterables of dicts with ``flux`` and
    ``error`` arrays, e.g. augmented DataLoader batches). ``pixel_std``: the training
    spectra's per-pixel flux std when the network input is centred only (stored)."""
    covered = coverage(prep.flux_scaler)

    def run(batches, limit=None):
        labels, feats, ps, qs, targets, n = [], [], [], [], [], 0
        for b in batches:
            y, f, p, q = forward_terms(model, prep, np.asarray(b["flux"]),
                                       np.asarray(b["error"]), covered, pixel_std=pixel_std)
            labels.append(y)
            feats.append(f)
            ps.append(p)
            qs.append(q)
            if "target" in b:  # physical labels (LAMOST: labels, then their errors)
                targets.append(np.asarray(b["target"], float)[:, :y.shape[1]])
            n += len(f)
            if limit and n >= limit:
                break
        return (np.concatenate(feats), np.concatenate(ps), np.concatenate(qs),
                np.concatenate(labels), np.concatenate(targets) if targets else None)

    feats, _, _, _, _ = run(train_batches, MAX_FIT)
    stats = fit_features(feats)
    dev_f, dev_p, dev_q, dev_y, dev_t = run(dev_batches)
    dev_m = mahalanobis(dev_f, stats)
    scales = [float(np.quantile(dev_m, quantile)),
              float(max(np.quantile(dev_p, quantile), MIN_SCALE_P)),
              float(max(np.quantile(dev_q, quantile), MIN_SCALE_Q))]
    stats.update(scales=scales, threshold=1.0)
    stats["threshold"] = float(np.quantile(combine(dev_m, dev_p, dev_q, stats), quantile))
    if dev_t is not None:
        stats["dev_scatter"] = dev_scatter(dev_y, dev_t)
    if pixel_std is not None:
        stats["pixel_std"] = np.asarray(pixel_std, float).tolist()
    stats.update(z_bound=Z_BOUND, quantile=quantile, n_fit=int(len(feats)),
                 n_dev=int(len(dev_m)), method="Lee et al. 2018 Mahalanobis on penultimate "
                 f"features (PCA {len(stats['axes'])} + isotropic rest), |z|>{Z_BOUND} pixel "
                 "fraction, dead-pixel fraction; each / dev quantile, max / dev quantile")
    frac = float(np.mean(combine(dev_m, dev_p, dev_q, stats) > 1.0))
    log.info("OOD score fitted on %d training and %d dev spectra: %.2f %% of dev above 1",
             len(feats), len(dev_m), 100 * frac)
    return stats


def score_spectra(model: nn.Module, prep: Preprocess, stats: dict | None, flux, error,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Plain labels (n, k) and ``ood_score`` (n,; NaN when the model has no OOD statistics)
    of spectra already restricted to the training coverage."""
    covered = coverage(prep.flux_scaler)
    labels, feats, p, q = forward_terms(model, prep, flux, error, covered, batch_size,
                                        (stats or {}).get("pixel_std"))
    if not stats:
        return labels, np.full(len(labels), np.nan)
    return labels, combine(mahalanobis(feats, stats), p, q, stats)


def attach_ood(path, model: nn.Module, prep: Preprocess, train_set, dev_set,
               batch_size: int = 64, seed: int = 0, pixel_std: np.ndarray | None = None
               ) -> dict:
    """Fit the OOD statistics of ``model`` (holding the weights saved in ``path``) on
    ``train_set`` (a seeded subset of at most :data:`MAX_FIT`) and ``dev_set``, and store
    them in the checkpoint ``path`` (``meta["ood"]``, rewritten atomically)."""
    from torch.utils.data import DataLoader, Subset

    from yso_labels.core.checkpoint import read_checkpoint, save_checkpoint
    from yso_labels.core.training import collate

    if dev_set is None or len(dev_set) == 0:
        log.warning("no dev spectra: %s gets no OOD statistics (ood_score NaN)", path)
        return {}
    pick = np.random.default_rng(seed).permutation(len(train_set))[:MAX_FIT]
    subset = Subset(train_set, np.sort(pick).tolist())
    loader = lambda ds: DataLoader(ds, batch_size=batch_size, shuffle=False,  # noqa: E731
                                   collate_fn=collate)
    stats = fit_ood(model, prep, loader(subset), loader(dev_set), pixel_std=pixel_std)
    ckpt = read_checkpoint(path)
    save_checkpoint(path, model, ckpt["arch_kwargs"], {**ckpt["meta"], "ood": stats},
                    ckpt.get("training"))
    return stats
