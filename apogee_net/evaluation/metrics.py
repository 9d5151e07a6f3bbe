"""Per-group accuracy tables and uncertainty calibration (Olney et al. 2020 §3.4–3.5).

- :func:`mse_table`: Table 2 of the paper, the standardised MSE (label residuals divided by
  the training-label standard deviation, squared, averaged over labels and stars) per group
  (``Full``, ``MStar``, ``YSO`` …) and split.
- :func:`scatter_table`: Table 3, the standard deviation of prediction − label per label,
  group and split, in physical units (dex, K, dex), with the bias beside it.
- :func:`calibration`: the distribution of z = (prediction − label)/σ per label, the factor
  by which σ must be scaled to give z unit spread (robust: the 68.27th percentile of |z|;
  and the unit-variance ``sqrt(mean(z²))``), and the coverage of the 1σ and 2σ intervals
  before and after scaling (a Gaussian gives 0.683 and 0.954).

All functions take arrays or astropy Tables and return Tables; figures live in
:mod:`apogee_net.evaluation.plots`.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

#: Group names of the paper's tables for the label table's ``source`` values.
GROUP_NAMES = {"payne": "Payne", "mstar": "MStar", "yso": "YSO"}
SPLITS = ("train", "dev", "cal", "test")
#: Gaussian coverage of ±1σ and ±2σ intervals.
GAUSS_COVERAGE = (0.6826894921, 0.9544997361)


def _groups(source) -> dict[str, np.ndarray]:
    source = np.asarray(source).astype(str)
    groups = {"Full": np.ones(len(source), bool)}
    for key, name in GROUP_NAMES.items():
        sel = source == key
        if sel.any():
            groups[name] = sel
    return groups


def mse_table(pred: np.ndarray, label: np.ndarray, label_std, source, split) -> Table:
    """Standardised MSE per group and split (Olney et al. 2020 Table 2).

    ``pred``, ``label``: (n, n_labels) in physical units; ``label_std``: (n_labels,) the
    training-split standard deviation used to standardise the targets.
    """
    z = (np.asarray(pred, float) - np.asarray(label, float)) / np.asarray(label_std, float)
    split = np.asarray(split).astype(str)
    rows = []
    for group, gsel in _groups(source).items():
        row = {"group": group}
        for s in SPLITS:
            sel = gsel & (split == s)
            row[s] = float(np.nanmean(z[sel] ** 2)) if sel.any() else np.nan
            row[f"n_{s}"] = int(sel.sum())
        rows.append(row)
    return Table(rows=rows)


def scatter_table(pred: np.ndarray, label: np.ndarray, label_names, source, split) -> Table:
    """Scatter (std of prediction − label) and bias per label, group and split, physical
    units (Olney et al. 2020 Table 3)."""
    resid = np.asarray(pred, float) - np.asarray(label, float)
    split = np.asarray(split).astype(str)
    rows = []
    for group, gsel in _groups(source).items():
        for j, name in enumerate(label_names):
            row = {"group": group, "label": name}
            for s in SPLITS:
                r = resid[gsel & (split == s), j]
                r = r[np.isfinite(r)]
                row[s] = float(np.std(r)) if len(r) > 1 else np.nan
                row[f"bias_{s}"] = float(np.mean(r)) if len(r) else np.nan
            rows.append(row)
    return Table(rows=rows)


def coverage(z: np.ndarray) -> tuple[float, float]:
    """Fractions of |z| ≤ 1 and |z| ≤ 2 over finite z."""
    z = np.asarray(z, float)
    z = z[np.isfinite(z)]
    if not len(z):
        return np.nan, np.nan
    return float(np.mean(np.abs(z) <= 1)), float(np.mean(np.abs(z) <= 2))


def sigma_scale(pred, label, sigma, method: str = "robust") -> np.ndarray:
    """Per-label factor k by which σ must be scaled so that z = (pred − label)/(kσ) has unit
    spread. ``pred``, ``label``, ``sigma``: (n, n_labels); finite z only.

    ``rms``: k = sqrt(mean z²), unit variance. ``robust`` (default): k = the 68.27th
    percentile of |z|, so that 68.27 % of |z/k| ≤ 1; equal to ``rms`` for Gaussian z, and not
    inflated by the heavy tails of real residuals (outliers, label errors), which make the
    ``rms`` factor over-cover the 1σ interval.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(pred, float) - np.asarray(label, float)) / np.asarray(sigma, float)
    z = np.where(np.isfinite(z), z, np.nan)
    if method == "rms":
        return np.sqrt(np.nanmean(z**2, axis=0))
    if method == "robust":
        return np.nanpercentile(np.abs(z), 100 * GAUSS_COVERAGE[0], axis=0)
    raise ValueError(f"method must be 'robust' or 'rms', got {method!r}")


def calibration(pred, label, sigma, label_names, scale=None, method: str = "robust") -> Table:
    """Calibration of σ per label: scale factor, z statistics and coverage before/after.

    ``scale``: factors to apply (default: :func:`sigma_scale` with ``method`` on these
    data, i.e. fit on the rows given; pass the dev-split factors to judge them on the test
    split). The unit-variance factor ``scale_rms`` is reported beside it.
    """
    pred, label, sigma = (np.asarray(a, float) for a in (pred, label, sigma))
    fitted = sigma_scale(pred, label, sigma, method)
    rms = sigma_scale(pred, label, sigma, "rms")
    scale = fitted if scale is None else np.asarray(scale, float)
    rows = []
    for j, name in enumerate(label_names):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (pred[:, j] - label[:, j]) / sigma[:, j]
        c1, c2 = coverage(z)
        a1, a2 = coverage(z / scale[j])
        zf = z[np.isfinite(z)]
        rows.append({"label": name, "n": len(zf), "z_mean": float(np.mean(zf)) if len(zf)
                     else np.nan, "z_std": float(np.std(zf)) if len(zf) else np.nan,
                     "scale": float(scale[j]), "scale_fit": float(fitted[j]),
                     "scale_rms": float(rms[j]),
                     "cov1_before": c1, "cov2_before": c2, "cov1_after": a1, "cov2_after": a2})
    return Table(rows=rows)
