"""Label tables and training of the LAMOST Bayesian CNN (Li et al. §2.2) on the shared loop.

* :func:`build_training_labels` (``apogee-net lamost labels``): cross-match the spectra of a
  LAMOST store with an APOGEE allStar-like table, apply the §2.2.1 label treatment
  (:func:`~apogee_net.lamost.labels.treat_labels`), split 81/9/10 % into train/dev/test
  (Li et al.: reference:test = 9:1, training:cross-validation = 9:1) by star (repeat spectra
  of one APOGEE star share a split), stratified in 0.1-dex [Fe/H] bins, and add the §2.2.2
  [Fe/H] weights built on the training split.
* :func:`train_lamost` (``apogee-net lamost train``): joins the label table with the store
  (:func:`apogee_net.spectra.dataset.join_labels`) and trains :class:`~.model.BayesianCNN` with
  :func:`yso_labels.core.training.fit` and the robust loss (:func:`~.losses.robust_loss`):
  NaN labels are left out per label, label uncertainties enter the loss, the table's
  ``weight`` column weights each star (per batch the mean of wᵢlᵢ, as astroNN/Keras;
  ``weight_norm``). At the end the out-of-distribution score of
  :mod:`apogee_net.network.ood` is fitted (threshold: 1 % of dev spectra) and stored in the
  model, as for APOGEE Net.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

from apogee_net.lamost.labels import (
    LABELS,
    apply_weights,
    crossmatch_lamost_apogee,
    treat_labels,
    weight_table,
)
from apogee_net.network import ood
from apogee_net.options import LamostLabelsOptions, LamostTrainOptions
from yso_labels.core import distributed
from yso_labels.core.options import resolve_options
from yso_labels.core.runtime import seed_everything
from yso_labels.core.sanity import check_labels
from yso_labels.core.tables import provenance, read_table, write_table

log = logging.getLogger(__name__)

__all__ = ["assign_splits", "build_training_labels", "train_lamost", "LamostPrepare",
           "lamost_loss", "centre_only", "SPLIT_FRACTIONS"]

#: Li et al. §2.2: 9:1 reference:test, reference 9:1 training:cross-validation.
SPLIT_FRACTIONS = (0.81, 0.09, 0.10)
ERR_COLUMNS = tuple(f"{n}_err" for n in LABELS)


def assign_splits(fe_h: np.ndarray, fractions=SPLIT_FRACTIONS, seed: int = 0,
                  width: float = 0.1, groups=None) -> np.ndarray:
    """``train``/``dev``/``test`` per row, random but stratified in ``width``-dex [Fe/H]
    bins (NaN its own bin) so the splits share the [Fe/H] distribution (Li et al. §2.2).

    ``groups``: one key per row (e.g. the matched APOGEE ID); rows with one key are one star
    and always land in one split (repeat spectra of a star never in two splits); the star is
    stratified by the [Fe/H] of its first row. Without ``groups`` every row is its own star.
    """
    fe_h = np.asarray(fe_h, float)
    frac = np.asarray(fractions, float)
    if frac.shape != (3,) or np.any(frac < 0) or not np.isclose(frac.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, "
                         f"got {fractions}")
    if groups is not None:
        keys = np.asarray(groups).astype(str)
        if keys.shape != fe_h.shape:
            raise ValueError(f"groups must have one key per row: {keys.shape} vs {fe_h.shape}")
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        order = np.argsort(first)                       # stars in order of first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return assign_splits(fe_h[first[order]], fractions, seed, width)[rank[inverse.ravel()]]
    rng = np.random.default_rng(seed)
    key = np.where(np.isfinite(fe_h), np.floor(np.nan_to_num(fe_h) / width), np.inf)
    out = np.empty(fe_h.size, dtype="<U5")
    cum = np.cumsum(frac)
    for k in np.unique(key):
        idx = np.flatnonzero(key == k)
        u = (rng.permutation(idx.size) + rng.uniform()) / idx.size  # stratified positions
        out[idx] = np.where(u < cum[0], "train", np.where(u < cum[1], "dev", "test"))
    return out


def build_training_labels(allstar, store, out, options: LamostLabelsOptions | None = None,
                          **kwargs) -> Path:
    """Write the training label table ``out`` for the LAMOST store ``store``. The options are
    :class:`apogee_net.options.LamostLabelsOptions`, given as ``options`` or as keyword
    arguments of the same names.

    ``allstar``: APOGEE allStar-like table (path or Table; columns of
    :func:`~.labels.treat_labels`, plus RA/DEC or ``apogee_key``); ``how``: cross-match by
    ``position`` (``max_sep`` arcsec) or ``id``: ``id_table`` (path or Table) maps the LAMOST
    spectrum ID (column ``spec_id``, the store's key: OBSID) to the APOGEE ID in its
    column ``lamost_key`` (e.g. a published LAMOST–APOGEE cross-match).
    ``require_core``: keep only stars whose Teff, log g, [Fe/H], [M/H] survive the treatment
    (Li et al. wanted these complete); ``weights``: ``feh`` (§2.2.2, table from the training
    split, ``weight_standard`` 410 or ``auto``) or ``none``; ``uncovered_weight``: ``error``
    (default) or ``one`` for stars the weight table does not cover.

    Before the match the APOGEE table goes through
    :func:`~apogee_net.lamost.allstar.prepare_allstar`: allStar column names (SDSS-V astra
    summary tables and DR12 tables too), ``quality_cuts`` (``default``: ASPCAPFLAG STAR_BAD,
    STARFLAG BAD_PIXELS/COMMISSIONING/VERY_BRIGHT_NEIGHBOR/LOW_SNR, EXTRATARG COMMISSIONING;
    ``none``) and ``duplicates`` (``best-snr``: the highest-S/N row of each APOGEE ID;
    ``keep``); what they dropped is in the header (``QCUTS``).

    Columns: ``spec_id`` (the LAMOST spectrum ID, OBSID: the store's key), ``apogee_name``
    (the APOGEE ID of the matched star),
    ``match_sep``, the 14 labels and ``_err``, ``n_labels``, ``core_complete``, ``weight``,
    ``split``, ``source``.
    """
    o = resolve_options(LamostLabelsOptions, options, kwargs)
    from apogee_net.lamost.allstar import prepare_allstar
    from apogee_net.spectra.store import store_table
    from yso_labels.core.tables import check_columns

    apogee = allstar if isinstance(allstar, Table) else read_table(
        allstar, what="APOGEE allStar table")
    apogee, qreport = prepare_allstar(apogee, cuts=o.quality_cuts, duplicates=o.duplicates,
                                      id_column=o.apogee_key)
    check_columns(apogee, [o.apogee_key], "APOGEE allStar table"
                  + ("" if isinstance(allstar, Table) else f" {allstar}"))
    if len(apogee) == 0:
        raise ValueError(f"APOGEE allStar table: no row left after the quality cuts "
                         f"({qreport['cuts']}); try quality_cuts='none'")
    spectra = store_table(store)
    if o.how == "id":
        if o.id_table is None or o.lamost_key is None:
            raise ValueError("cross-match by id needs id_table (spec_id → APOGEE ID) and "
                             "lamost_key (its APOGEE ID column)")
        ids = o.id_table if isinstance(o.id_table, Table) else read_table(
            o.id_table, required=["spec_id", o.lamost_key], what="LAMOST–APOGEE ID table")
        lookup = {str(a).strip(): str(b).strip()
                  for a, b in zip(ids["spec_id"], ids[o.lamost_key], strict=True)}
        spectra[o.lamost_key] = [lookup.get(str(k), "") for k in spectra["apogee_id"]]
    matched = crossmatch_lamost_apogee(spectra, apogee, how=o.how, max_sep=o.max_sep,
                                       lamost_id="apogee_id", lamost_key=o.lamost_key,
                                       apogee_key=o.apogee_key, ra=("ra", "RA"),
                                       dec=("dec", "DEC"))
    if len(matched) == 0:
        raise ValueError(f"no LAMOST spectrum of {store} matched an APOGEE star ({o.how}"
                         + (f", {o.max_sep} arcsec)" if o.how == "position" else ")"))
    _, first = np.unique(np.asarray(matched["spec_id"]), return_index=True)
    if first.size < len(matched):  # one spectrum ID stored twice (e.g. DR5 and DR9 copies)
        log.info("label table: %d repeated spectrum ID(s) kept once",
                 len(matched) - first.size)
        matched = matched[np.sort(first)]
    table = treat_labels(matched, id_column=o.apogee_key, where="APOGEE labels")
    treated = table.meta.pop("TREATED")
    table.rename_column("apogee_id", "apogee_name")
    table.add_column(matched["spec_id"], name="spec_id", index=0)
    table["match_sep"] = matched["match_sep"]
    keep = table["n_labels"] > 0
    if o.require_core:
        keep &= table["core_complete"]
    log.info("label table: %d matched spectra, %d kept (%d without core labels, %d without "
             "any label)", len(table), int(keep.sum()), int((~table["core_complete"]).sum()),
             int((table["n_labels"] == 0).sum()))
    table = table[keep]
    if len(table) == 0:
        raise ValueError("no matched star keeps its core labels (Teff, log g, [Fe/H], [M/H]) "
                         "after the treatment; try require_core=False")
    # by star: repeat spectra of one APOGEE star share a split (a blank ID: its own star)
    star = [name if str(name).strip() else f"spectrum:{sid}"
            for name, sid in zip(table["apogee_name"], table["spec_id"], strict=True)]
    table["split"] = assign_splits(table["fe_h"], seed=o.seed, groups=star)
    wmeta = {}
    if o.weights == "feh":
        wt = weight_table(np.asarray(table["fe_h"])[table["split"] == "train"],
                          standard=o.weight_standard)
        fe = np.asarray(table["fe_h"], float)
        covered = np.isfinite(fe) & (fe >= wt["lo"][0]) & (fe <= wt["hi"][-1])
        w = np.ones(len(table))
        if not covered.all() and o.uncovered_weight == "error":
            apply_weights(fe, wt, ids=list(table["spec_id"]))  # raises, naming the stars
        w[covered] = apply_weights(fe[covered], wt)
        table["weight"] = w
        wmeta = {"WSTD": wt.meta["standard"], "WCAP": wt.meta["cap"],
                 "WUNCOV": int((~covered).sum())}
    elif o.weights == "none":
        table["weight"] = np.ones(len(table))
    else:
        raise ValueError(f"weights must be 'feh' or 'none', got {o.weights!r}")
    table["source"] = o.source
    recorded = {"how": o.how, "max_sep": o.max_sep, "require_core": o.require_core,
                "weights": o.weights, "weight_standard": o.weight_standard,
                "uncovered_weight": o.uncovered_weight, "seed": o.seed,
                "quality_cuts": o.quality_cuts, "duplicates": o.duplicates}
    meta = provenance("apogee-net lamost labels", recorded, STORE=str(store),
                      METHOD="Li et al. sec 2.2.1 label treatment, sec 2.2.2 weights",
                      TREATED=str(treated), QCUTS=json.dumps(qreport), **wmeta)
    return write_table(table, out, meta)


# --------------------------------------------------------------------------- training
class LamostPrepare:
    """``prepare`` step of :func:`yso_labels.core.training.fit`: the network input from the shared
    :class:`apogee_net.network.model.Preprocess` (per-pixel standardised normalised flux, pixels
    without data 0), and from ``target`` = [labels | label σ] (n, 2k) the standardised
    ``y`` and ``y_err`` (σ / label scale)."""

    def __init__(self, preprocess, n_labels: int):
        self.preprocess, self.k = preprocess, n_labels

    def __call__(self, batch: dict) -> dict:
        batch["input"] = self.preprocess.inputs(batch["flux"], batch.get("error"))
        if "target" in batch and batch["target"].shape[-1] == 2 * self.k:
            target = batch["target"].float()
            mean, std = self.preprocess.label_scaler.tensors(target.device)
            batch["y"] = (target[:, :self.k] - mean) / std
            batch["y_err"] = target[:, self.k:] / std
        return batch


def lamost_loss(output, batch):
    """Per-star robust loss (Li et al. eq. 1) of a :class:`~.model.BayesianCNN` output; the sample
    weights are applied by the training loop (Σwᵢlᵢ/Σwᵢ), not here."""
    from apogee_net.lamost.losses import robust_loss
    from apogee_net.lamost.model import split_output

    value, log_var = split_output(output)
    return robust_loss(batch["y"], value, log_var, batch["y_err"])


def centre_only(flux_scaler, input_norm: str = "center"):
    """The per-pixel flux scaler of the network input. ``center``: the training mean is
    subtracted and the std set to 1 (astroNN's ``input_norm_mode = 3``, featurewise centring
    without scaling, which Li et al. trained with; Leung & Bovy 2019); ``standardise``: also
    divided by the per-pixel std (the APOGEE Net recipe, Olney et al. 2020 eq. 4), which
    lifts the continuum pixels' noise to the variance of the line pixels' signal: on
    simulated LAMOST spectra the network then learnt Teff 2-3 times slower
    (benchmarks/README.md, issue 12). Pixels without any training data keep mean 0, std 1."""
    from yso_labels.core.scaling import Standardiser

    if input_norm == "standardise":
        return flux_scaler
    if input_norm != "center":
        raise ValueError(f"input_norm must be 'center' or 'standardise', got {input_norm!r}")
    return Standardiser(flux_scaler.mean, np.ones_like(flux_scaler.std))


def _check_weights(joined: Table, rows_mask: np.ndarray) -> np.ndarray:
    w = np.asarray(joined["weight"], float)
    bad = rows_mask & ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        ids = list(np.asarray(joined[joined.colnames[1]])[bad][:10])  # the ID column
        raise ValueError(f"label table: the weight column does not cover {int(bad.sum())} "
                         f"training/dev star(s) (NaN or negative), e.g. {', '.join(ids)}")
    return w


def train_lamost(store, labels, out, options: LamostTrainOptions | None = None, **kwargs):
    """Train the LAMOST Bayesian CNN on ``store`` with the label table ``labels`` (path or
    Table from :func:`build_training_labels`: ``spec_id, <14 labels>, <label>_err, split,
    source`` and ``weight`` unless ``weights`` is ``feh`` or ``none``; a table keyed by
    ``apogee_id``, as written before ``spec_id``, is read too).

    The options are :class:`apogee_net.options.LamostTrainOptions`, given as ``options`` or
    as keyword arguments of the same names. ``weights``: ``column`` (the table's weights;
    every train/dev star must have one), ``feh`` (rebuild the §2.2.2 table from the training
    split) or ``none``. ``weight_norm``: ``batch`` (default; each batch's loss is the mean
    of wᵢlᵢ, as astroNN's ``weighted_loss`` under Keras' ``SUM_OVER_BATCH_SIZE`` reduction,
    with which Li et al. trained) or ``sum_w`` (Σwᵢlᵢ/Σwᵢ, which divides out part of the
    up-weighting of a batch that holds metal-poor stars). Stars with no label at all are
    left out (counted in the log). Writes ``out/model.pt`` (best dev loss, with the OOD
    statistics ``meta["ood"]``), ``last.pt`` (resume) and ``train_log.csv``; returns the
    :class:`apogee_net.network.train.FitResult`. ``resume`` continues ``last.pt`` only if it
    was trained on the same store, labels and options (content fingerprints); ``restart``
    starts a new run in ``out`` instead.
    """
    from apogee_net.lamost.mc import mc_dropout
    from apogee_net.lamost.model import BayesianCNN
    from apogee_net.network.model import Preprocess
    from apogee_net.network.train import data_key, fit_flux_scaler
    from apogee_net.spectra.dataset import SpectraDataset, join_labels
    from apogee_net.spectra.store import open_store
    from yso_labels.core.options import narrow
    from yso_labels.core.scaling import Standardiser
    from yso_labels.core.training import LAST_NAME, TrainOptions, check_resumable, fit

    o = resolve_options(LamostTrainOptions, options, kwargs)
    weights, weight_standard = o.weights, o.weight_standard
    key = data_key(store, labels, weights=weights, weight_standard=weight_standard,
                   filters=list(o.filters), kernel=o.kernel, pool=o.pool,
                   hidden=list(o.hidden), input_norm=o.input_norm, dev_mc=o.dev_mc)
    options = narrow(TrainOptions, o, resume=o.resume and not o.restart)
    if options.resume and (Path(out) / LAST_NAME).exists():  # before any work
        check_resumable(Path(out) / LAST_NAME, options, {"resume_key": key})
    columns = [*LABELS, *ERR_COLUMNS]
    table = labels if isinstance(labels, Table) else read_table(labels, what="label table")
    table = table.copy(copy_data=False)
    table.convert_bytestring_to_unicode()  # FITS strings come back as bytes
    if weights == "column":
        if "weight" not in table.colnames:
            raise ValueError("label table has no 'weight' column; build it with `apogee-net "
                             "lamost labels` or train with --weights feh|none")
        columns.append("weight")
    missing_err = [c for c in ERR_COLUMNS if c not in table.colnames]
    if missing_err:
        for c in missing_err:  # no known label uncertainty: σ_known = 0 in the loss
            table[c] = np.zeros(len(table))
        log.warning("label table has no %s: σ_known = 0", ", ".join(missing_err))
    id_column = "spec_id" if "spec_id" in table.colnames else "apogee_id"
    rows, joined, report = join_labels(store, table, label_columns=columns,
                                       id_column=id_column)
    values = np.column_stack([joined[c] for c in LABELS]).astype(float)
    errs = np.column_stack([joined[c] for c in ERR_COLUMNS]).astype(float)
    check_labels(values, LABELS, list(joined[id_column]), "label table")
    has_label = np.isfinite(values).any(axis=1)
    split = np.asarray(joined["split"])
    if (~has_label).any():
        log.warning("%d star(s) have no finite label and are left out of training",
                    int((~has_label).sum()))
    train = has_label & (split == "train")
    dev = has_label & (split == "dev")
    if not train.any():
        raise ValueError(f"no training star: the label table joined {report['n_joined']} "
                         "star(s) with the store, none with split 'train' and a finite label")
    if weights == "column":
        w = _check_weights(joined, train | dev)
    elif weights == "feh":
        wt = weight_table(values[train, LABELS.index("fe_h")], standard=weight_standard)
        w = np.ones(len(joined))
        w[train | dev] = apply_weights(values[train | dev, LABELS.index("fe_h")], wt,
                                       ids=list(np.asarray(joined[id_column])[train | dev]))
    elif weights == "none":
        w = np.ones(len(joined))
    else:
        raise ValueError(f"weights must be 'column', 'feh' or 'none', got {weights!r}")

    label_scaler = Standardiser.fit(values[train], empty_ok=True)
    pixel_scaler = fit_flux_scaler(store, rows[train], flux_norm="none")
    flux_scaler = centre_only(pixel_scaler, o.input_norm)
    with open_store(store) as h5:
        npix = int(h5["flux"].shape[1])
        kind = str(h5.attrs.get("kind"))
        wave = h5["wavelength"][:]
    if kind != "lamost":
        log.warning("store %s is of kind %r, not 'lamost'", store, kind)
    targets = np.hstack([values, np.where(np.isfinite(errs), errs, 0.0)])
    train_set = SpectraDataset(store, rows[train], targets[train], w[train])
    dev_set = SpectraDataset(store, rows[dev], targets[dev], w[dev]) if dev.any() else None
    seed_everything(o.seed)  # the initial weights depend on the seed only
    model = BayesianCNN(n_targets=len(LABELS), npix=npix, filters=o.filters, kernel=o.kernel,
                        pool=o.pool, hidden=o.hidden, dropout=o.dropout)
    with warnings.catch_warnings():  # a label without any training value: range NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        lrange = [np.nanmin(values[train], axis=0).tolist(),
                  np.nanmax(values[train], axis=0).tolist()]
    preprocess = Preprocess(flux_scaler, label_scaler, "none")
    meta = {"model_kind": "lamost-bcnn", "label_names": list(LABELS), **preprocess.to_meta(),
            "label_range": lrange, "wavelength": [float(wave[0]), float(wave[-1]), wave.size],
            "weights": weights, "input_norm": o.input_norm, "dev_mc": o.dev_mc,
            "n_train": int(train.sum()), "n_dev": int(dev.sum()),
            "n_labels_train": np.isfinite(values[train]).sum(axis=0).tolist(),
            "store": str(store), "resume_key": key,
            "labels": str(labels) if isinstance(labels, (str, os.PathLike)) else "Table",
            "provenance": provenance("apogee-net lamost train", {
                "weights": weights, "weight_standard": weight_standard,
                "input_norm": o.input_norm, "dev_mc": o.dev_mc}),
            "method": "Li et al. Bayesian CNN; robust loss (Li et al. eq. 1); MC dropout"}
    log.info("lamost train: %d train, %d dev stars; labels per training star %.1f of %d",
             int(train.sum()), int(dev.sum()), np.isfinite(values[train]).sum(1).mean(),
             len(LABELS))
    # The dev loss that early stopping watches is taken with MC dropout on (one stochastic
    # pass per spectrum), as astroNN's always-on MCDropout gives Keras' validation loss
    # (Leung & Bovy 2019) and as the model predicts (Li et al. §2.1). With dropout off the
    # network is a different, miscalibrated function: on simulated spectra its dev loss was
    # +0.46 against -0.48 with dropout on (Teff MAE 162 vs 109 K) and jumped from epoch to
    # epoch, so training stopped after 1-2 epochs (benchmarks/README.md, issue 12).
    with mc_dropout(model, on=o.dev_mc):
        result = fit(model, train_set, dev_set, lamost_loss, Path(out), options, meta,
                     prepare=LamostPrepare(preprocess, len(LABELS)))
    if result.model_path is not None and distributed.is_main_process():
        # the OOD score of apogee_net.network.ood (as APOGEE Net): fitted on dev, in model.pt
        ood.attach_ood(result.model_path, model, preprocess, train_set, dev_set,
                       seed=o.seed, pixel_std=None if o.input_norm == "standardise"
                       else pixel_scaler.std)
    return result
