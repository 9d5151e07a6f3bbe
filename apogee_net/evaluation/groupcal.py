"""σ calibration per star group (Olney et al. 2020 §3.5, Table 3).

The perturbation σ of §3.5 is scaled by one factor per label so that 68.27 % of the
residuals fall within ±1σ (:func:`apogee_net.evaluation.metrics.sigma_scale`). The paper's
Table 3 shows
YSOs and M dwarfs with 2–3× the giants' scatter, so one pooled factor (dominated by the Payne
giants) under-covers the rare groups. Here the factors are fitted **per group** (the label
table's ``source``: ``payne``, ``mstar``, ``yso`` and any other value), on the **calibration
split** ``cal``: stars carved from the dev split by :func:`yso_labels.merge.assign_split`
that neither early stopping nor the adaptation rounds ever saw. The test split then judges
them.

At prediction time a star's group is unknown. :func:`assign_group` takes it from the
*predicted* labels with the rules that define the groups (Olney et al. 2020):

- ``yso``: inside the YSO triangle of §4.1 (:data:`apogee_net.yso.selection.YSO_TRIANGLE`);
- ``mstar``: outside the Payne trust region of §2.2 (Teff ≤ 4000 K and log g ≥ 3.5 dex),
  where the M-dwarf relations supply the labels;
- ``payne``: everything else (and stars without finite Teff/log g).

A group with fewer than :data:`MIN_CAL_STARS` calibration stars, or a star assigned to a
group without factors, gets the pooled factor of all calibration stars (``all``).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from apogee_net.evaluation.metrics import coverage, sigma_scale
from apogee_net.yso.selection import in_polygon
from yso_labels.payne import TRUST_LOGG_MAX, TRUST_TEFF_MIN

#: Groups assigned from predicted labels (order = priority: YSO > M dwarf > Payne).
RULE_GROUPS = ("yso", "mstar", "payne")
#: Fewer calibration stars than this in a group: the pooled factor is used for it.
MIN_CAL_STARS = 10
POOLED = "all"
#: Short description of :func:`assign_group` for catalogue headers.
GROUP_RULE = (f"group from predicted labels: yso if in YSO triangle (Olney+2020 sec4.1), "
              f"mstar if Teff<={TRUST_TEFF_MIN:.0f} K and logg>={TRUST_LOGG_MAX} "
              f"(outside Payne trust region sec2.2), else payne")


def assign_group(teff, logg) -> np.ndarray:
    """Group of each star (``yso``/``mstar``/``payne``) from Teff [K] and log g [dex] by the
    rules of the module docstring."""
    teff = np.atleast_1d(np.asarray(teff, float))
    logg = np.atleast_1d(np.asarray(logg, float))
    group = np.full(teff.shape, "payne", dtype="<U5")
    with np.errstate(invalid="ignore"):
        group[(teff <= TRUST_TEFF_MIN) & (logg >= TRUST_LOGG_MAX)] = "mstar"
    group[in_polygon(teff, logg)] = "yso"
    return group


def fit_group_scales(pred, label, sigma, source, label_names, split: str = "cal",
                     min_stars: int = MIN_CAL_STARS) -> dict:
    """Per-group σ factors fitted on the rows given (the calibration split).

    ``pred``, ``label``, ``sigma``: (n, k) in physical units; ``source``: (n,) group of each
    row. Returns the record stored in a checkpoint's ``sigma_scale`` meta: ``{"split": split,
    "method": ..., "rule": GROUP_RULE, "groups": {group: {label: factor}}, "n": {group: n},
    "pooled_for": [groups with too few stars, given the pooled factor]}``.
    """
    pred, label, sigma = (np.asarray(a, float) for a in (pred, label, sigma))
    source = np.asarray(source).astype(str)
    if not len(source):
        raise ValueError("no calibration stars: cannot fit σ factors")
    pooled = sigma_scale(pred, label, sigma)
    groups = {POOLED: dict(zip(label_names, map(float, pooled), strict=True))}
    counts = {POOLED: int(len(source))}
    pooled_for = []
    for g in sorted(set(source)):
        sel = source == g
        counts[g] = int(sel.sum())
        if sel.sum() < min_stars:
            pooled_for.append(g)
            groups[g] = dict(groups[POOLED])
            continue
        k = sigma_scale(pred[sel], label[sel], sigma[sel])
        groups[g] = dict(zip(label_names, map(float, k), strict=True))
    return {"split": split, "method": "68.27th percentile of |z| per group and label",
            "rule": GROUP_RULE, "min_stars": min_stars, "groups": groups, "n": counts,
            "pooled_for": pooled_for}


def row_scales(record, label_names, groups) -> np.ndarray:
    """(n, k) factors for stars of ``groups`` from a ``sigma_scale`` record: per-group
    (:func:`fit_group_scales`), or a legacy flat ``{label: factor}`` applied to every star,
    or None/empty (all 1)."""
    groups = np.asarray(groups).astype(str)
    out = np.ones((len(groups), len(label_names)))
    if not record:
        return out
    if "groups" not in record:  # one factor per label for every star
        return out * np.array([float(record.get(n, 1.0)) for n in label_names])
    table = record["groups"]
    fallback = table.get(POOLED, {})
    for g in np.unique(groups):
        factors = table.get(g, fallback)
        out[groups == g] = [float(factors.get(n, 1.0)) for n in label_names]
    return out


def coverage_rows(pred, label, sigma, source, assigned, record, label_names,
                  split: str) -> list[dict]:
    """1σ/2σ coverage per group (``source``) and label on the rows given, before scaling,
    after scaling with the factor of the group assigned from the predicted labels (what
    ``apogee-net predict`` applies: ``cov1_after``) and with the factor of the star's true
    group (``cov1_true_group``). A row ``label = "all"`` pools the labels of each group."""
    pred, label, sigma = (np.asarray(a, float) for a in (pred, label, sigma))
    source = np.asarray(source).astype(str)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (pred - label) / sigma
        z_pred = z / row_scales(record, label_names, assigned)
        z_true = z / row_scales(record, label_names, source)
    rows = []
    for g in ["Full", *sorted(set(source))]:
        sel = np.ones(len(source), bool) if g == "Full" else source == g
        for j, name in [*enumerate(label_names), (slice(None), POOLED)]:
            c1, c2 = coverage(z[sel][:, j])
            a1, a2 = coverage(z_pred[sel][:, j])
            t1, _ = coverage(z_true[sel][:, j])
            k = record["groups"].get(g, record["groups"][POOLED]) if g != "Full" else \
                record["groups"][POOLED]
            rows.append({"split": split, "group": g, "label": name, "n": int(sel.sum()),
                         "scale": float(k[name]) if name != POOLED else np.nan,
                         "cov1_before": c1, "cov1_after": a1, "cov1_true_group": t1,
                         "cov2_before": c2, "cov2_after": a2,
                         "assigned_ok": float(np.mean(np.asarray(assigned)[sel] == g))
                         if g != "Full" and sel.any() else np.nan})
    return rows


def coverage_table(rows: list[dict]) -> Table:
    """:func:`coverage_rows` as a Table."""
    return Table(rows=rows)
