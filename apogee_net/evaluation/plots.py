"""Evaluation figures (Olney et al. 2020 Fig. 3 and Fig. 4) as PNG files.

- :func:`plot_pred_vs_label`: prediction vs label and residual vs label per group (Fig. 4 left);
- :func:`plot_sigma_vs_snr`: reported uncertainty vs SNR per label (Fig. 4 right);
- :func:`plot_kiel`: Kiel diagram (Teff, log g) of the predictions coloured by group (Fig. 3).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from yso_labels.core.figures import save_figure

#: Axis titles and units per label name.
LABEL_AXES = {"logg": "log g [dex]", "teff": r"$T_{\rm eff}$ [K]", "fe_h": "[Fe/H] [dex]"}
GROUP_STYLE = {"payne": ("Payne", "tab:gray"), "mstar": ("M dwarfs", "tab:red"),
               "yso": ("YSOs", "tab:blue")}


def _groups(source):
    source = np.asarray(source).astype(str)
    for key, (name, color) in GROUP_STYLE.items():
        sel = source == key
        if sel.any():
            yield sel, name, color


def plot_pred_vs_label(pred, label, label_names, source, path) -> Path:
    """Prediction vs label (top row) and residual vs label (bottom row) for each label."""
    pred, label = np.asarray(pred, float), np.asarray(label, float)
    n = len(label_names)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 7.5), squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1]})
    for j, name in enumerate(label_names):
        top, bot = axes[0, j], axes[1, j]
        for sel, gname, color in _groups(source):
            top.scatter(label[sel, j], pred[sel, j], s=3, alpha=0.5, color=color, label=gname,
                        rasterized=True)
            bot.scatter(label[sel, j], pred[sel, j] - label[sel, j], s=3, alpha=0.5,
                        color=color, rasterized=True)
        finite = np.isfinite(label[:, j])
        if finite.any():
            lo, hi = np.nanpercentile(label[finite, j], [0.5, 99.5])
            top.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
        axis = LABEL_AXES.get(name, name)
        top.set_xlabel(f"label {axis}")
        top.set_ylabel(f"prediction {axis}")
        bot.axhline(0, color="k", lw=1, ls="--")
        bot.set_xlabel(f"label {axis}")
        bot.set_ylabel("prediction − label")
        if name == "teff":
            top.invert_xaxis()
            top.invert_yaxis()
            bot.invert_xaxis()
    axes[0, 0].legend(loc="best", markerscale=4, fontsize=8)
    fig.suptitle("APOGEE Net: predictions vs labels")
    return save_figure(fig, path, dpi=130)


def plot_sigma_vs_snr(sigma, snr, label_names, source, path) -> Path:
    """Reported (perturbation) uncertainty vs spectrum SNR for each label."""
    sigma, snr = np.asarray(sigma, float), np.asarray(snr, float)
    n = len(label_names)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for j, name in enumerate(label_names):
        ax = axes[0, j]
        for sel, gname, color in _groups(source):
            ax.scatter(snr[sel], sigma[sel, j], s=3, alpha=0.5, color=color, label=gname,
                       rasterized=True)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("SNR")
        ax.set_ylabel(f"σ {LABEL_AXES.get(name, name)}")
    axes[0, 0].legend(loc="best", markerscale=4, fontsize=8)
    fig.suptitle("Uncertainty vs SNR")
    return save_figure(fig, path, dpi=130)


def plot_kiel(teff, logg, source, path, title="APOGEE Net predictions") -> Path:
    """Kiel diagram: Teff (K, decreasing to the right) vs log g (dex, increasing down)."""
    teff, logg = np.asarray(teff, float), np.asarray(logg, float)
    fig, ax = plt.subplots(figsize=(6, 5))
    for sel, gname, color in _groups(source):
        ax.scatter(teff[sel], logg[sel], s=3, alpha=0.6, color=color, label=gname,
                   rasterized=True)
    ax.invert_xaxis()
    ax.invert_yaxis()
    ax.set_xlabel(LABEL_AXES["teff"])
    ax.set_ylabel(LABEL_AXES["logg"])
    ax.set_title(title)
    ax.legend(loc="best", markerscale=4, fontsize=8)
    return save_figure(fig, path, dpi=130)
