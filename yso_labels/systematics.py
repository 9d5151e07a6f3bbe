"""Model-family systematics: the same photometry labelled with each isochrone family.

Ages and masses of pre-main-sequence stars depend on the stellar models: magnetic
Dartmouth models (Feiden 2016 A&A 593 A99, §4–5) make young low-mass stars cooler and
larger at fixed mass and age, so the same star in the HR/Kiel diagram reads older (about
twice, for M stars of a few Myr) and more massive than with non-magnetic models. This
module labels one photometry table with several photometric-CNN checkpoints, each
trained on another family (:mod:`yso_labels.families`, recorded in the checkpoint), and
summarises the differences star by star:

- :func:`label_with_families`: one prediction table per family.
- :func:`family_differences`: per star and per pair of families (later − earlier in the
  order given) Δ log age (dex), Δ mass (M☉), Δ Teff (K), Δ log g (dex); stars flagged out
  of domain by either model are kept but marked (``ood``).
- :func:`summarise`: median and 16th/84th percentiles of each Δ per pair, for all stars
  and split at Teff = 4000 K (M-type vs hotter, by the mean Teff of the pair), over the
  stars in domain for both models.
- :func:`systematics_figure`: Δ against Teff, one panel per quantity.
- :func:`run_compare`: all of it written to a directory (CLI ``yso-labels photcnn
  compare``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.table import Table

from yso_labels.core.options import resolve_options
from yso_labels.options import PhotcnnCompareOptions

#: Quantities compared: name → (prediction column, transform, unit).
QUANTITIES = {"log_age": ("age_myr", lambda v: np.log10(v) + 6.0, "dex"),
              "mass": ("mass", lambda v: v, "Msun"),
              "teff": ("teff", lambda v: v, "K"),
              "logg": ("logg", lambda v: v, "dex")}
#: Teff (K) separating M-type stars from hotter ones in :func:`summarise`.
M_TEFF = 4000.0


def label_with_families(table, models: Sequence[str | os.PathLike], device: str = "cpu",
                        allow_missing: bool = False) -> dict[str, Table]:
    """Predict ``table`` with every checkpoint of ``models``; keys: the family recorded in
    each checkpoint (``meta['models']``). Two checkpoints of the same family raise."""
    from yso_labels.core.checkpoint import load_checkpoint
    from yso_labels.photcnn import PhotCNN, predict_photcnn

    out: dict[str, Table] = {}
    for path in models:
        _, ckpt = load_checkpoint(path, expect=PhotCNN)
        family = str(ckpt["meta"].get("models") or "user grid")
        if family in out:
            raise ValueError(f"two models of the same family {family!r} ({path}); give one "
                             f"checkpoint per isochrone family")
        out[family] = predict_photcnn(path, table, device=device, allow_missing=allow_missing)
    if len(out) < 2:
        raise ValueError("comparing families needs checkpoints of at least two families")
    return out


def family_differences(preds: Mapping[str, Table], id_column: str = "apogee_id") -> Table:
    """Per star: each family's labels (``<q>_<family>``, ``ood_<family>``) and, per pair
    (a, b) in the order of ``preds``, ``d_<q>_<b>_minus_<a>`` (units of
    :data:`QUANTITIES`), ``teff_mean_<b>_minus_<a>`` (K) and ``ood_<b>_minus_<a>``."""
    families = list(preds)
    n = {len(t) for t in preds.values()}
    if len(n) != 1:
        raise ValueError(f"prediction tables differ in length: {n}")
    out = Table()
    first = preds[families[0]]
    if id_column in first.colnames:
        out[id_column] = first[id_column]
    values: dict[tuple[str, str], np.ndarray] = {}
    for fam, t in preds.items():
        for q, (col, f, _) in QUANTITIES.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                values[fam, q] = f(np.asarray(t[col], float))
            out[f"{q}_{fam}"] = values[fam, q]
        out[f"ood_{fam}"] = np.asarray(t["out_of_domain"], bool)
    for a, b in itertools.combinations(families, 2):
        tag = f"{b}_minus_{a}"
        for q in QUANTITIES:
            out[f"d_{q}_{tag}"] = values[b, q] - values[a, q]
        out[f"teff_mean_{tag}"] = 0.5 * (values[a, "teff"] + values[b, "teff"])
        out[f"ood_{tag}"] = out[f"ood_{a}"] | out[f"ood_{b}"]
    out.meta["FAMILIES"] = " ".join(families)
    return out


def pairs(diffs: Table) -> list[tuple[str, str]]:
    """(earlier, later) family pairs of a :func:`family_differences` table."""
    return list(itertools.combinations(str(diffs.meta["FAMILIES"]).split(), 2))


def summarise(diffs: Table) -> Table:
    """Median and 16th/84th percentiles of each Δ per pair and Teff subset (stars in
    domain for both models, finite Δ); ``age_ratio`` = 10^median Δ log age."""
    rows = []
    for a, b in pairs(diffs):
        tag = f"{b}_minus_{a}"
        teff = np.asarray(diffs[f"teff_mean_{tag}"], float)
        ok = ~np.asarray(diffs[f"ood_{tag}"], bool)
        subsets = {"all": ok, f"Teff < {M_TEFF:.0f} K": ok & (teff < M_TEFF),
                   f"Teff >= {M_TEFF:.0f} K": ok & (teff >= M_TEFF)}
        for name, sel in subsets.items():
            row = {"pair": f"{b} - {a}", "stars": name, "n": int(sel.sum()),
                   "n_out_of_domain": int((~ok).sum())}
            for q in QUANTITIES:
                d = np.asarray(diffs[f"d_{q}_{tag}"], float)[sel]
                d = d[np.isfinite(d)]
                p16, p50, p84 = (np.percentile(d, [16, 50, 84]) if len(d)
                                 else (np.nan, np.nan, np.nan))
                row[f"d_{q}_median"] = p50
                row[f"d_{q}_p16"] = p16
                row[f"d_{q}_p84"] = p84
            row["age_ratio"] = 10 ** row["d_log_age_median"]
            rows.append(row)
    out = Table(rows=rows)
    out.meta["UNITS"] = ", ".join(f"d_{q} {u}" for q, (_, _, u) in QUANTITIES.items())
    return out


def systematics_figure(diffs: Table, title: str = ""):
    """Δ log age, Δ mass, Δ Teff, Δ log g against the pair's mean Teff, one colour per
    pair; stars out of domain for either model are left out."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharex=True)
    labels = {"log_age": r"$\Delta\log$ age (dex)", "mass": r"$\Delta$ mass (M$_\odot$)",
              "teff": r"$\Delta T_{\rm eff}$ (K)", "logg": r"$\Delta\log g$ (dex)"}
    for (a, b), color in zip(pairs(diffs), ("C0", "C1", "C2", "C3", "C4", "C5"),
                             strict=False):
        tag = f"{b}_minus_{a}"
        ok = ~np.asarray(diffs[f"ood_{tag}"], bool)
        t = np.asarray(diffs[f"teff_mean_{tag}"], float)[ok]
        for ax, q in zip(axes.ravel(), QUANTITIES, strict=True):
            d = np.asarray(diffs[f"d_{q}_{tag}"], float)[ok]
            ax.plot(t, d, ".", ms=3, alpha=0.6, color=color,
                    label=f"{b} − {a} (median {np.nanmedian(d):+.3g})")
    for ax, q in zip(axes.ravel(), QUANTITIES, strict=True):
        ax.axhline(0, color="0.5", lw=0.8)
        ax.axvline(M_TEFF, color="0.7", lw=0.6, ls=":")
        ax.set_ylabel(labels[q])
        ax.legend(fontsize=6.5, loc="best")
    for ax in axes[1]:
        ax.set_xlabel(r"mean $T_{\rm eff}$ of the pair (K)")
        ax.invert_xaxis()
    fig.suptitle(title or "photometric-CNN labels: differences between isochrone families",
                 fontsize=10)
    fig.tight_layout()
    return fig


def run_compare(models: Sequence[str | os.PathLike], input, out: str | os.PathLike,
                options: PhotcnnCompareOptions | None = None, **kwargs) -> dict[str, Path]:
    """Label ``input`` with each checkpoint of ``models`` and write to directory ``out``:
    ``family_systematics.csv`` (per star), ``family_systematics_summary.csv`` and
    ``family_systematics.png``; headers record the toolkit version, options and the
    checkpoints' families. Options: :class:`yso_labels.options.PhotcnnCompareOptions` (or
    keywords of the same names)."""
    from yso_labels.core.figures import save_figure
    from yso_labels.core.tables import provenance, write_table

    o = resolve_options(PhotcnnCompareOptions, options, kwargs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preds = label_with_families(input, models, device=o.device, allow_missing=o.allow_missing)
    diffs = family_differences(preds)
    summary = summarise(diffs)
    figure = save_figure(systematics_figure(diffs, title=Path(str(input)).name),
                         out / "family_systematics.png")
    meta = provenance("photcnn compare", {"models": [str(m) for m in models],
                                          "input": str(input),
                                          "allow_missing": o.allow_missing},
                      families=" ".join(preds), units=summary.meta["UNITS"])
    diffs.meta.clear()
    summary.meta.clear()
    return {"stars": write_table(diffs, out / "family_systematics.csv", meta),
            "summary": write_table(summary, out / "family_systematics_summary.csv", meta),
            "figure": figure}
