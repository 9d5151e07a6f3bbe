"""One training-label table from Payne, M-dwarf and YSO labels (Olney et al. 2020 §2–3).

Columns: ``apogee_id, teff (K), logg (dex), fe_h (dex), source`` (``payne`` | ``mstar`` |
``yso``), ``split`` (``train`` | ``dev`` | ``cal`` | ``test``), ``dropped_sources`` (the
other sources that also had this star) and ``fe_h_assumed`` (YSO rows without an [Fe/H]:
set to 0, the metallicity of the solar PARSEC grid behind the YSO labels).

A star in several sources keeps one row, by priority YSO over M dwarf over Payne. Each
group is split on its own, deterministically for a given seed: 80/10/10 for Payne stars,
60/20/20 for M dwarfs and YSOs (Olney et al. 2020 §3.2). A fraction ``cal_fraction``
(default :data:`CAL_FRACTION`) of each group's dev stars becomes the calibration split
``cal``: no training, early stopping or adaptation round sees it, so the σ calibration
factors of ``apogee-net evaluate`` are fitted on stars that model selection never used
(the paper fitted nothing there; see :mod:`apogee_net.evaluation.groupcal`).
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.table import Table, vstack

from yso_labels.core.sanity import implausible_rows
from yso_labels.core.tables import SOURCES, as_bool, check_columns, duplicated

log = logging.getLogger(__name__)

#: Priority when a star is in several sources: earlier wins.
PRIORITY = ("yso", "mstar", "payne")
#: (train, dev, test) fractions per source.
SPLIT_FRACTIONS = {"payne": (0.8, 0.1, 0.1), "mstar": (0.6, 0.2, 0.2), "yso": (0.6, 0.2, 0.2)}
#: Fraction of each group's dev split carved out as the calibration split ``cal``.
CAL_FRACTION = 0.5
#: [Fe/H] (dex) given to YSO labels without one: the solar PARSEC grid they come from.
YSO_DEFAULT_FE_H = 0.0


def assign_split(ids, fractions: tuple[float, float, float], seed: int,
                 cal_fraction: float = 0.0) -> np.ndarray:
    """``train``/``dev``/``test`` for each ID, a seeded permutation of the sorted IDs;
    ``cal_fraction`` of the dev stars (rounded) become ``cal`` (train and test unchanged).

    The result depends only on the set of IDs, the fractions and the seed (not the order).
    """
    if not 0 <= cal_fraction < 1:
        raise ValueError(f"cal_fraction must be in [0, 1), got {cal_fraction}")
    ids = np.asarray(ids).astype(str)
    n = len(ids)
    order = np.argsort(ids, kind="stable")
    perm = order[np.random.default_rng(seed).permutation(n)]
    n_train = int(round(fractions[0] * n))
    n_dev = int(round(fractions[1] * n))
    split = np.empty(n, dtype="<U5")
    split[perm[:n_train]] = "train"
    split[perm[n_train:n_train + n_dev]] = "dev"
    split[perm[n_train + n_dev:]] = "test"
    n_cal = int(round(cal_fraction * n_dev))
    split[perm[n_train + n_dev - n_cal:n_train + n_dev]] = "cal"
    return split


def _standard(table: Table | None, source: str, keep_invalid: bool = False) -> Table | None:
    if table is None or len(table) == 0:
        return None
    required = ["apogee_id", "teff", "logg"] + ([] if source == "yso" else ["fe_h"])
    check_columns(table, required, f"{source} labels")
    out = Table()
    out["apogee_id"] = np.char.strip(np.asarray(table["apogee_id"]).astype(str))
    out["teff"] = np.asarray(table["teff"], float)
    out["logg"] = np.asarray(table["logg"], float)
    fe_h = np.asarray(table["fe_h"], float) if "fe_h" in table.colnames \
        else np.full(len(table), np.nan)
    out["fe_h_assumed"] = (source == "yso") & ~np.isfinite(fe_h)
    out["fe_h"] = np.where(out["fe_h_assumed"], YSO_DEFAULT_FE_H, fe_h)
    out["source"] = np.full(len(out), source, dtype="<U5")
    good = np.isfinite(out["teff"]) & np.isfinite(out["logg"]) & np.isfinite(out["fe_h"])
    if "out_of_domain" in table.colnames:  # photometric-CNN labels outside its training domain
        ood = as_bool(table["out_of_domain"])
        if ood.any():
            log.warning("%s labels: %d rows outside the photometric CNN's domain left out",
                        source, ood.sum())
        good &= ~ood
    if (~good).any():
        log.warning("%s labels: %d rows with non-finite labels left out", source, (~good).sum())
    wild = implausible_rows(out, ("teff", "logg", "fe_h")) & good
    if wild.any():
        log.warning("%s labels: %d rows with impossible labels left out (outside the sanity "
                    "ranges of yso_labels.core.sanity; e.g. %s)", source, wild.sum(),
                    ", ".join(np.asarray(out["apogee_id"])[wild][:5]))
        good &= ~wild
    flags = [c for c in ("bad_photometry", "implausible_labels") if c in table.colnames]
    valid = [c for c in table.colnames if c.endswith("_valid")] if not keep_invalid else []
    for col in flags + valid:
        drop = good & (as_bool(table[col]) if col in flags else ~as_bool(table[col]))
        if drop.any():
            log.warning("%s labels: %d rows with %s %s left out%s", source, drop.sum(), col,
                        "set" if col in flags else "False",
                        "" if col in flags else " (outside the relation's calibrated range; "
                        "keep_invalid / --keep-invalid keeps them)")
            good &= ~drop
    dups = duplicated(out["apogee_id"][good])
    if dups:
        log.warning("%s labels: %d duplicated APOGEE IDs, first row kept (e.g. %s)", source,
                    len(dups), ", ".join(dups[:5]))
    out = out[good]
    _, first = np.unique(out["apogee_id"], return_index=True)
    return out[np.sort(first)]


def merge_labels(payne: Table | None = None, mstar: Table | None = None,
                 yso: Table | None = None, seed: int = 0,
                 cal_fraction: float = CAL_FRACTION, keep_invalid: bool = False) -> Table:
    """Merge label tables (see module docstring); raise ValueError when nothing is left.
    ``cal_fraction``: fraction of each group's dev split that becomes ``cal``.

    Rows are left out (with a warning) when a label is non-finite or impossible
    (:mod:`yso_labels.core.sanity`), when ``bad_photometry`` or ``implausible_labels`` is set,
    and, unless ``keep_invalid``, when a ``*_valid`` column (the M-dwarf relations'
    calibrated ranges) is False. The published labels of Olney et al. 2020 kept stars
    outside those ranges (22 of the 400 of ``../shared/data/mdwarf``): ``keep_invalid``
    reproduces them."""
    groups = {"payne": payne, "mstar": mstar, "yso": yso}
    tables = {s: _standard(t, s, keep_invalid) for s, t in groups.items()}
    tables = {s: t for s, t in tables.items() if t is not None}
    if not tables:
        raise ValueError("no labels to merge: every input is empty")
    allrows = vstack([tables[s] for s in PRIORITY if s in tables], metadata_conflicts="silent")
    ids = np.asarray(allrows["apogee_id"])
    rank = np.array([PRIORITY.index(s) for s in allrows["source"]])
    order = np.lexsort((rank, ids))
    ids_sorted = ids[order]
    first = np.r_[True, ids_sorted[1:] != ids_sorted[:-1]]
    keep_idx = order[first]
    # sources dropped for each kept star
    group_id = np.cumsum(first) - 1
    dropped: list[list[str]] = [[] for _ in range(first.sum())]
    for pos in np.flatnonzero(~first):
        dropped[group_id[pos]].append(str(allrows["source"][order[pos]]))
    merged = allrows[keep_idx]
    merged["dropped_sources"] = np.array([",".join(d) for d in dropped], dtype="<U20")
    merged["split"] = np.empty(len(merged), dtype="<U5")
    for k, source in enumerate(SOURCES):
        sel = np.asarray(merged["source"]) == source
        if sel.any():
            merged["split"][sel] = assign_split(merged["apogee_id"][sel],
                                                SPLIT_FRACTIONS[source], seed + 1000 * k,
                                                cal_fraction)
    n_dup = int((~first).sum())
    if n_dup:
        log.info("%d stars were in several sources; kept by priority %s", n_dup,
                 " > ".join(PRIORITY))
    for source in SOURCES:
        sel = merged["source"] == source
        if sel.any():
            counts = {s: int((merged["split"][sel] == s).sum()) for s in ("train", "dev", "cal",
                                                                        "test")}
            log.info("%s: %d stars %s", source, sel.sum(), counts)
    cols = ["apogee_id", "teff", "logg", "fe_h", "source", "split", "dropped_sources",
            "fe_h_assumed"]
    return merged[cols]
