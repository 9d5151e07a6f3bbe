"""σ calibration per star group (Olney et al. 2020 §3.5, Table 3).

The perturbation σ of §3.5 is scaled by one factor per label so that 68.27 % of the
residuals fall within ±1σ (:func:`apogee_net.evaluation.metrics.sigma_scale`: the 68.27th
percentile of |z|, z = (prediction − label)/σ). The paper's Table 3 shows YSOs and M dwarfs
with 2–3× the giants' scatter, so one pooled factor (dominated by the Payne giants)
under-covers the rare groups: the factors are fitted **per group**.

**Which group.** A new star's group is unknown when ``apogee-net predict`` scales its σ, so
the groups are defined by one rule on the *predicted* Teff and log g, :func:`assign_group`,
and the SAME rule groups the calibration stars: the factor a star receives was always fitted
on stars that the rule put in its group (a true YSO predicted outside the YSO triangle is
calibrated and scaled with the stars it was predicted among). The rule (Olney et al. 2020):

- ``yso``: inside the YSO triangle of §4.1 (:data:`apogee_net.yso.selection.YSO_TRIANGLE`);
- ``mstar``: Teff ≤ 4000 K and log g ≥ 3.5 dex (outside the Payne trust region of §2.2,
  where the M-dwarf relations supply the labels);
- ``dwarf``: other log g ≥ 3.5 dex (FGK dwarfs: the same log g boundary of §2.2);
- ``giant``: log g < 3.5 dex; stars without finite Teff/log g get the pooled factor ``all``.

Factors fitted per *known* label-table ``source`` (``payne``, ``mstar``, ``yso``) are
stored beside (``source_groups``): they apply where a star's group is known, e.g. the
stars of a label table (``apogee-net predict --groups labels.fits``; ``sigma_group``
``known:yso``), and ``evaluate`` judges the ``source`` groups with them. A true YSO that
the network places among the dwarfs is scaled with the dwarfs' factor when its group is
unknown: no factor chosen from the predicted labels can tell it from them.

**Which stars.** Only stars that no model selection saw: the calibration split ``cal``
(carved from dev by :func:`yso_labels.merge.assign_split`), or, with ``method="crossfit"``
(default), ``cal`` together with ``test`` by K-fold cross-fitting (cross-conformal
calibration, Vovk 2015, Ann. Math. Artif. Intell. 74, 9; the CV+ of Barber et al. 2021,
Ann. Statist. 49, 486): the stars are split into K folds stratified by group, the coverage of
each fold is judged with factors fitted on the other K − 1 folds only, and the factors stored
for ``predict`` are fitted on all of them. Every test star is thus judged by factors fitted
without it, on 1 + (K − 1)/K × n_test/n_cal times more stars than ``cal`` alone.

**Small groups.** A group with fewer than ``min_stars`` stars takes the pooled factor; a
larger one is shrunk towards it in log: ln k = (n ln k_g + n₀ ln k_all)/(n + n₀), with the
pseudo-count n₀ = ``shrink`` (default :data:`SHRINK_STARS`).
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.table import Table

from apogee_net.evaluation.metrics import GAUSS_COVERAGE, coverage
from apogee_net.yso.selection import in_polygon
from yso_labels.payne import TRUST_LOGG_MAX, TRUST_TEFF_MIN

#: Groups assigned from predicted labels (order = priority: YSO > M dwarf > dwarf > giant).
RULE_GROUPS = ("yso", "mstar", "dwarf", "giant")
#: Fewer calibration stars than this in a group: the pooled factor is used for it.
MIN_CAL_STARS = 10
#: Pseudo-count n₀ of the shrinkage towards the pooled factor.
SHRINK_STARS = 5
#: Folds of the cross-fitting.
CROSSFIT_FOLDS = 5
POOLED = "all"
#: Coverage a calibrated 1σ interval should reach, and the band the evaluation checks.
TARGET = GAUSS_COVERAGE[0]
BAND = (0.63, 0.73)
#: Short description of :func:`assign_group` for catalogue headers.
GROUP_RULE = (f"group from predicted labels: yso if in YSO triangle (Olney+2020 sec4.1), "
              f"mstar if Teff<={TRUST_TEFF_MIN:.0f} K and logg>={TRUST_LOGG_MAX}, dwarf if "
              f"other logg>={TRUST_LOGG_MAX}, else giant (Payne trust region sec2.2)")
#: Records written before the dwarf/giant split grouped both as ``payne``.
_LEGACY = {"dwarf": "payne", "giant": "payne"}


def assign_group(teff, logg) -> np.ndarray:
    """Group of each star (``yso``/``mstar``/``dwarf``/``giant``, or ``all`` without finite
    values) from Teff [K] and log g [dex] by the rules of the module docstring."""
    teff = np.atleast_1d(np.asarray(teff, float))
    logg = np.atleast_1d(np.asarray(logg, float))
    group = np.full(teff.shape, "giant", dtype="<U5")
    with np.errstate(invalid="ignore"):
        group[logg >= TRUST_LOGG_MAX] = "dwarf"
        group[(teff <= TRUST_TEFF_MIN) & (logg >= TRUST_LOGG_MAX)] = "mstar"
    group[in_polygon(teff, logg)] = "yso"
    group[~(np.isfinite(teff) & np.isfinite(logg))] = POOLED
    return group


#: ``sigma_group`` of a star scaled with its known group's factor: this prefix + the group.
KNOWN_PREFIX = "known:"


def read_known_groups(path) -> dict[str, str]:
    """``{apogee_id: source}`` from a table with columns ``apogee_id`` and ``source`` (the
    label table of ``yso-labels merge``)."""
    from yso_labels.core.tables import read_table

    table = read_table(path, required=["apogee_id", "source"], what="known-group table")
    return {str(i).strip(): str(g).strip() for i, g in zip(table["apogee_id"],
                                                            table["source"], strict=True)}


def catalogue_scales(record, label_names, assigned, known=None) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """σ factors ``(n, k)`` and the ``sigma_group`` ``(n,)`` a catalogue writes: the factor
    of the star's rule group ``assigned``, or, where ``known`` (n,) names a group that the
    record has ``source_groups`` factors for, that known group's factor (``known:<group>``).
    """
    assigned = np.asarray(assigned).astype(str)
    factors = row_scales(record, label_names, assigned)
    names = assigned.astype(object)
    fitted = set((record or {}).get("source_groups", {}))
    if known is not None and fitted:
        known = np.asarray(known).astype(str)
        use = np.isin(known, sorted(fitted))
        if use.any():
            factors[use] = row_scales(record, label_names, known[use], key="source_groups")
            names[use] = [KNOWN_PREFIX + g for g in known[use]]
    return factors, names.astype(str)


def _zscores(pred, label, sigma) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(pred, float) - np.asarray(label, float)) / np.asarray(sigma, float)
    return np.where(np.isfinite(z), z, np.nan)


def _q(z) -> np.ndarray:
    """68.27th percentile of |z| per column (NaN ignored; 1 for a column without data)."""
    if not len(z):
        return np.ones(z.shape[1])
    with warnings.catch_warnings():     # an all-NaN column: "All-NaN slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        k = np.nanpercentile(np.abs(z), 100 * TARGET, axis=0)
    return np.where(np.isfinite(k) & (k > 0), k, 1.0)


def group_factors(z, groups, min_stars: int = MIN_CAL_STARS,
                  shrink: float = SHRINK_STARS) -> tuple[dict, dict, list]:
    """Per-group factors from z-scores (n, k): ``({group: (k,) array}, {group: n},
    [groups given the pooled factor])``, ``all`` = pooled; shrinkage as in the module
    docstring."""
    groups = np.asarray(groups).astype(str)
    pooled = _q(z)
    table, counts, pooled_for = {POOLED: pooled}, {POOLED: int(len(groups))}, []
    for g in sorted(map(str, set(groups) - {POOLED})):
        sel = groups == g
        n = int(sel.sum())
        counts[g] = n
        if n < min_stars:
            pooled_for.append(g)
            table[g] = pooled
            continue
        table[g] = np.exp((n * np.log(_q(z[sel])) + shrink * np.log(pooled)) / (n + shrink))
    return table, counts, pooled_for


def fit_group_scales(pred, label, sigma, groups, label_names, split: str = "cal",
                     min_stars: int = MIN_CAL_STARS, shrink: float = SHRINK_STARS,
                     source=None) -> dict:
    """Per-group σ factors fitted on the rows given; ``groups``: (n,) the rule group of each
    row (:func:`assign_group` of its predicted labels); ``source``: (n,) its known group, for
    the ``source_groups`` factors reported beside.

    Returns the record stored in a checkpoint's ``sigma_scale`` meta: ``{"split": split,
    "grouping": "predicted", "rule": GROUP_RULE, "groups": {group: {label: factor}}, "n":
    {group: n}, "pooled_for": [...], "min_stars", "shrink", "source_groups", "n_source"}``.
    """
    z = _zscores(pred, label, sigma)
    if not len(z):
        raise ValueError("no calibration stars: cannot fit σ factors")
    table, counts, pooled_for = group_factors(z, groups, min_stars, shrink)
    as_dict = lambda t: {g: dict(zip(label_names, map(float, k), strict=True))  # noqa: E731
                         for g, k in t.items()}
    record = {"split": split, "grouping": "predicted",
              "method": "68.27th percentile of |z| per group and label, shrunk to the pooled "
                        f"factor with {shrink:g} pseudo-stars", "rule": GROUP_RULE,
              "min_stars": min_stars, "shrink": shrink, "groups": as_dict(table), "n": counts,
              "pooled_for": pooled_for}
    if source is not None:
        st, sn, _ = group_factors(z, source, min_stars, shrink)
        record["source_groups"], record["n_source"] = as_dict(st), sn
    return record


def row_scales(record, label_names, groups, key: str = "groups") -> np.ndarray:
    """(n, k) factors for stars of ``groups`` from a ``sigma_scale`` record: per-group
    (:func:`fit_group_scales`; ``key="source_groups"`` for the known-group factors), a legacy
    flat ``{label: factor}`` applied to every star, or None/empty (all 1). A group without
    factors gets the pooled ``all``."""
    groups = np.asarray(groups).astype(str)
    out = np.ones((len(groups), len(label_names)))
    if not record:
        return out
    if "groups" not in record:  # one factor per label for every star
        return out * np.array([float(record.get(n, 1.0)) for n in label_names])
    table = record.get(key, {})
    fallback = record["groups"].get(POOLED, {})
    legacy = key == "groups" and record.get("grouping") != "predicted"
    for g in np.unique(groups):
        factors = table.get(_LEGACY.get(g, g) if legacy else g, fallback)
        out[groups == g] = [float(factors.get(n, 1.0)) for n in label_names]
    return out


def fold_ids(groups, folds: int = CROSSFIT_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold (0 … folds − 1) of each row, stratified by group: each group's rows in a seeded
    random order dealt round-robin, so every fold holds ~1/folds of every group."""
    groups = np.asarray(groups).astype(str)
    rng = np.random.default_rng(seed)
    out = np.zeros(len(groups), int)
    start = 0
    for g in sorted(set(groups)):
        idx = np.flatnonzero(groups == g)
        out[rng.permutation(idx)] = (start + np.arange(len(idx))) % folds
        start += len(idx)
    return out


def crossfit_scales(z, groups, folds: int = CROSSFIT_FOLDS, seed: int = 0,
                    min_stars: int = MIN_CAL_STARS, shrink: float = SHRINK_STARS,
                    strata=None) -> np.ndarray:
    """(n, k) out-of-fold factors: row i's factor is that of its group fitted
    (:func:`group_factors`) on the rows of the other folds only. ``strata``: what the folds
    are stratified by (default ``groups``)."""
    groups = np.asarray(groups).astype(str)
    fold = fold_ids(groups if strata is None else strata, folds, seed)
    out = np.ones(z.shape)
    for f in range(folds):
        inside = fold == f
        if not inside.any():
            continue
        table, _, _ = group_factors(z[~inside], groups[~inside], min_stars, shrink)
        for g in np.unique(groups[inside]):
            out[inside & (groups == g)] = table.get(g, table[POOLED])
    return out


def calibrate(pred, label, sigma, source, split, assigned, label_names,
              method: str = "crossfit", base: str = "cal", folds: int = CROSSFIT_FOLDS,
              seed: int = 0, min_stars: int = MIN_CAL_STARS,
              shrink: float = SHRINK_STARS) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Fit the factors and the per-star factors that judge them.

    ``method``: ``cal`` (factors fitted on the ``base`` split; every star judged with them)
    or ``crossfit`` (factors fitted on ``base`` + ``test``; those stars judged with
    out-of-fold factors, :func:`crossfit_scales`). Returns ``(record, k_rule, k_source,
    used)``: (n, k) factors of each star's rule group (``assigned``) and of its known group
    (``source``), and the rows the stored factors were fitted on.
    """
    if method not in ("cal", "crossfit"):
        raise ValueError(f"calibration method must be 'cal' or 'crossfit', got {method!r}")
    source, split = np.asarray(source).astype(str), np.asarray(split).astype(str)
    assigned = np.asarray(assigned).astype(str)
    used = split == base
    if method == "crossfit":
        used = used | (split == "test")
    name = base if method == "cal" else f"{base}+test ({folds}-fold cross-fit)"
    record = fit_group_scales(np.asarray(pred)[used], np.asarray(label)[used],
                              np.asarray(sigma)[used], assigned[used], label_names, name,
                              min_stars, shrink, source=source[used])
    record["method_split"] = method
    k_rule = row_scales(record, label_names, assigned)
    k_source = row_scales(record, label_names, source, key="source_groups")
    if method == "crossfit":
        z = _zscores(pred, label, sigma)[used]
        k_rule[used] = crossfit_scales(z, assigned[used], folds, seed, min_stars, shrink,
                                       strata=source[used])
        k_source[used] = crossfit_scales(z, source[used], folds, seed, min_stars, shrink)
        record["folds"], record["fold_seed"] = folds, seed
    return record, k_rule, k_source, used


def coverage_rows(pred, label, sigma, source, assigned, k_rule, k_source, label_names,
                  split: str) -> list[dict]:
    """1σ/2σ coverage on the rows given, per group and label: ``cov1_before`` (σ as predicted),
    ``cov1_after`` (× the factor of the star's rule group: what ``apogee-net predict`` writes),
    ``cov1_source`` (× its known group's factor), ``cov1_checked`` (the one the band is checked
    on: ``cov1_source`` for a label-table group, whose stars a catalogue scales by their known
    group with ``predict --groups``, else ``cov1_after``). Rows for the rule groups (``kind =
    "predicted"``) and the label-table groups (``kind = "source"``, plus ``Full``); ``label =
    "all"`` pools the labels; ``sd`` is the binomial standard error of a 68.27 % coverage on n
    stars, sqrt(p(1 − p)/n)."""
    z = _zscores(pred, label, sigma)
    z_rule, z_src = z / k_rule, z / k_source
    source, assigned = np.asarray(source).astype(str), np.asarray(assigned).astype(str)
    rows = []
    kinds = [("source", "Full", np.ones(len(source), bool))]
    kinds += [("source", g, source == g) for g in sorted(set(source))]
    kinds += [("predicted", g, assigned == g) for g in sorted(set(assigned))]
    for kind, g, sel in kinds:
        n = int(sel.sum())
        for j, name in [*enumerate(label_names), (slice(None), POOLED)]:
            c1, _ = coverage(z[sel][:, j])
            a1, a2 = coverage(z_rule[sel][:, j])
            t1, _ = coverage(z_src[sel][:, j])
            rows.append({"split": split, "kind": kind, "group": g, "label": name, "n": n,
                         "cov1_before": c1, "cov1_after": a1, "cov2_after": a2,
                         "cov1_source": t1,
                         # what a catalogue gives this group: known-group factors for the
                         # label-table groups (predict --groups), rule factors otherwise
                         "cov1_checked": t1 if kind == "source" and g != "Full" else a1,
                         "sd": float(np.sqrt(TARGET * (1 - TARGET) / n)) if n else np.nan,
                         "assigned_ok": float(np.mean(assigned[sel] == g))
                         if kind == "source" and g != "Full" and n else np.nan})
    return rows


def coverage_table(rows: list[dict]) -> Table:
    """:func:`coverage_rows` as a Table."""
    return Table(rows=rows)
