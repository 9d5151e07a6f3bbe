"""Stratified adaptation of a converged APOGEE Net for the rare groups (Olney et al. 2020 §3.4).

After training on everything, training continues on all YSO and M-dwarf training stars plus a
random ``fraction`` (5 %) of the Payne training stars. Each round trains with early stopping
(:func:`yso_labels.core.training.fit`), starting from the best model so far; then a new random
fraction of the Payne stars is drawn. The adaptation stops when the YSO and M-dwarf dev loss
(the mean over the two groups of the standardised MSE of §3.3) no longer improves.

Within a round, early stopping watches a fixed dev set of the same composition: all YSO and
M-dwarf dev stars plus a fixed ``fraction`` of the Payne dev stars. The groups come from the
label table's ``source`` column (``payne``, ``mstar``, ``yso``).

Honest bookkeeping (beyond the paper):

- **Majority guard.** The point of the method is to help the rare groups without sacrificing
  the Payne stars. A round whose Payne (majority) dev loss exceeds the input model's by more
  than ``majority_tolerance`` (default 5 %, relative) is rejected like a round that does not
  improve the rare groups, and the log says so (``guard`` = 1). The reference is the input
  model, so the Payne loss can never drift by more than the tolerance over many rounds.
- **Decisions on dev, results on test.** Every decision (early stopping, keeping a round, the
  guard) uses the dev split only. The test split is predicted for the log (``test_<group>``)
  and for the report (:func:`report_on_test`: standardised MSE and per-label scatter per group,
  input model vs adapted model), never for a decision. The calibration split ``cal``
  (:mod:`apogee_net.evaluation.groupcal`) is not used at all.
- **Same augmentation as training.** A model trained with the real-instrument systematics
  (:mod:`apogee_net.spectra.augment`, its ``meta["augment"]``) adapts on spectra augmented
  the same way: random draws for the round's training stars, one fixed draw per dev star
  (as :func:`apogee_net.network.train.train_apogee_net`); the group losses that decide
  which round to keep are measured on the same fixed dev draws.
"""

from __future__ import annotations

import csv
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
from astropy.table import Table

from apogee_net.network.model import APOGEENet
from apogee_net.network.published import preprocess_from_meta
from apogee_net.network.train import predict_dataset
from apogee_net.options import AdaptOptions
from yso_labels.core.atomic import atomic_write
from yso_labels.core.checkpoint import load_checkpoint, save_checkpoint
from yso_labels.core.options import TrainOptions, resolve_options
from yso_labels.core.training import BEST_NAME, fit, standardised_mse

log = logging.getLogger(__name__)

RARE = ("mstar", "yso")
MAJORITY = "payne"
#: Default largest relative increase of the majority group's dev loss a round may cause.
MAJORITY_TOLERANCE = AdaptOptions.majority_tolerance
REPORT_NAME = "adapt_report.csv"
LOG_NAME = "adapt_log.csv"
#: Default learning rate of the adaptation rounds relative to the run's. The paper does not
#: give the rate it used. Measured on benchmarks/adaptation.py (2,000 giants, 5.7 % dwarfs):
#: with a fresh Adam at the run's rate (1e-3) or at 1e-4, no epoch ever beat the converged
#: model; at 2e-5 with batches of 32 the dwarfs' dev loss fell by 11 %.
LR_FACTOR = 0.02
#: Default batch size of the adaptation rounds: the rare groups are small, so batches of
#: 128 would give a handful of steps per epoch.
ADAPT_BATCH = AdaptOptions.batch_size


def draw_subset(indices: np.ndarray, fraction: float, seed: int, round_: int) -> np.ndarray:
    """A random ``fraction`` (at least one) of ``indices``, sorted; reproducible for
    ``(seed, round_)`` and different from round to round."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    indices = np.asarray(indices)
    if len(indices) == 0:
        return indices
    n = max(1, int(round(fraction * len(indices))))
    rng = np.random.default_rng([seed, round_])
    return np.sort(rng.choice(indices, size=n, replace=False))


def group_losses(pred: np.ndarray, target: np.ndarray, label_std: np.ndarray,
                 source: np.ndarray) -> dict[str, float]:
    """Standardised MSE (§3.3) per group present in ``source``."""
    z2 = ((pred - target) / label_std) ** 2
    return {g: float(np.nanmean(z2[source == g])) for g in np.unique(source)}


def rare_loss(losses: dict[str, float]) -> float:
    """Mean of the YSO and M-dwarf dev losses (those present)."""
    vals = [losses[g] for g in RARE if g in losses]
    if not vals:
        raise ValueError("no YSO or M-dwarf stars in the dev split: nothing to adapt for")
    return float(np.mean(vals))


def adapt(run, out, options: AdaptOptions | None = None, **kwargs) -> Table:
    """Stratified adaptation of the model in ``run`` (a run directory or its ``model.pt``),
    writing the adapted model to ``out/model.pt`` and the round log to
    ``out/adapt_log.csv``; returns the log as a Table.
    The options are :class:`apogee_net.options.AdaptOptions`, given as ``options`` or as
    keyword arguments of the same names.

    ``store``, ``labels``: default to those the run was trained on. ``round_patience``:
    rounds without a relative improvement of ``min_improvement`` in the rare-group dev loss
    before stopping. ``patience``: epochs without a better round-dev loss within a round.
    ``majority_tolerance``: a round raising the Payne dev loss above (1 + tolerance) × the
    input model's is rejected (module docstring).
    The learning rate defaults to :data:`LR_FACTOR` times the run's, the batch size to
    :data:`ADAPT_BATCH`, dropout to the run's. ``arch``: the architecture the run must hold
    (None: any); ``photometry``: APOGEE Net II photometry table (default: the run's, else
    the label table's columns). The test-split report (input vs adapted model per group) is
    written to ``out/adapt_report.csv`` and returned in the log's ``meta["test_report"]``.
    """
    from apogee_net.network.apogeenet2 import check_arch
    from apogee_net.network.photometry import WithPhotometry, labelled_photometry
    from apogee_net.spectra.dataset import SpectraDataset, join_labels

    o = resolve_options(AdaptOptions, options, kwargs)
    if o.majority_tolerance < 0:
        raise ValueError(f"majority_tolerance must be ≥ 0, got {o.majority_tolerance}")

    run = Path(run)
    model_path = run / BEST_NAME if run.is_dir() else run
    model, ckpt = load_checkpoint(model_path, expect=APOGEENet)
    check_arch(o.arch, model, f"model checkpoint {model_path}")
    meta = dict(ckpt["meta"])
    store = o.store or meta.get("store")
    labels = o.labels or meta.get("labels_path")
    if not store or not labels:
        raise ValueError(f"{model_path}: the run does not record its store/labels; "
                         "pass store= and labels=")
    names = list(meta["label_names"])
    prep = preprocess_from_meta(meta)
    label_std = np.asarray(getattr(prep, "physical_std", prep.label_scaler.std))
    old = meta.get("train_options", {})
    train_options = TrainOptions(
        batch_size=o.batch_size, lr=o.lr or LR_FACTOR * old.get("lr", 1e-3),
        dropout=old.get("dropout", 0.1), patience=o.patience, max_epochs=o.max_epochs,
        seed=o.seed, device=o.device, workers=o.workers, progress=o.progress)

    rows, joined, _ = join_labels(store, labels, label_columns=names)
    source = np.array([str(s).strip().lower() for s in joined["source"]])
    split = np.asarray(joined["split"])  # train/dev/test, checked by join_labels
    targets = np.column_stack([np.asarray(joined[c], float) for c in names])
    photometry = o.photometry or meta.get("photometry_path")
    phot = (labelled_photometry(joined["apogee_id"], labels, photometry, f"adapt {model_path}")
            if getattr(model, "n_phot", 0) else None)
    rare_train = np.flatnonzero(np.isin(source, RARE) & (split == "train"))
    payne_train = np.flatnonzero((source == MAJORITY) & (split == "train"))
    if len(rare_train) == 0:
        raise ValueError(f"label table {labels}: no YSO or M-dwarf training stars with spectra")
    dev_idx = np.concatenate([np.flatnonzero(np.isin(source, RARE) & (split == "dev")),
                              draw_subset(np.flatnonzero((source == MAJORITY) & (split == "dev")),
                                          o.fraction, o.seed, 0)])
    full_dev = np.flatnonzero(split == "dev")
    test_idx = np.flatnonzero(split == "test")

    from apogee_net.spectra.augment import AugmentedDataset, augmenter_from_meta

    augmenter = augmenter_from_meta(meta)

    def dataset(idx, draws: str | None = "fixed"):
        """Spectra of ``idx``: augmented as in training (``random`` draws, or one ``fixed``
        draw per store row), or plain (``None``: the test report)."""
        ds = SpectraDataset(store, rows=rows[idx], targets=targets[idx])
        if augmenter is not None and draws is not None:
            ds = AugmentedDataset(ds, augmenter, o.seed + (1 if draws == "fixed" else 0),
                                  fixed=draws == "fixed")
        return ds if phot is None else WithPhotometry(ds, phot[idx])

    in_round_dev = np.isin(full_dev, dev_idx)

    def dev_losses():
        """Group losses on the whole dev split, and the loss of the round's dev set (the
        quantity :func:`fit` early-stops on) from the same predictions."""
        pred, tgt = predict_dataset(model, dataset(full_dev), prep, device=o.device)
        z2 = np.nanmean(((pred - tgt) / label_std) ** 2, axis=1)
        return group_losses(pred, tgt, label_std, source[full_dev]), \
            float(np.mean(z2[in_round_dev]))

    def test_pred():
        """Test-split predictions and targets (reported, never used for a decision)."""
        if not len(test_idx):
            return np.empty((0, len(names))), np.empty((0, len(names)))
        return predict_dataset(model, dataset(test_idx, None), prep, device=o.device)

    def test_losses(pred_tgt):
        return {f"test_{g}": v for g, v in group_losses(*pred_tgt, label_std,
                                                          source[test_idx]).items()}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / "_round"
    losses, round_loss = dev_losses()
    best, best_round_loss = rare_loss(losses), round_loss
    majority_ref = losses.get(MAJORITY, np.nan)  # the input model's Payne dev loss
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    test_before = test_pred()
    history = [{"round": 0, "n_train": 0, "n_payne": 0, "epochs": 0, "rare_dev": best,
                "kept": 1, "guard": 0, "majority_dev_ratio": 1.0,
                **{f"dev_{g}": v for g, v in losses.items()}, **test_losses(test_before)}]
    log.info("adaptation start: dev losses %s; majority guard: a round may raise the %s dev "
             "loss by at most %.1f %%", _fmt(losses), MAJORITY, 100 * o.majority_tolerance)
    bad = 0
    for r in range(1, o.max_rounds + 1):
        subset = draw_subset(payne_train, o.fraction, o.seed, r)
        train_idx = np.concatenate([rare_train, subset])
        shutil.rmtree(scratch, ignore_errors=True)
        # an epoch must beat the starting (best) model on the round's dev set to count
        result = fit(model, dataset(train_idx, "random"), dataset(dev_idx), standardised_mse,
                     scratch, train_options, meta, prepare=prep, init_state=best_state,
                     best_loss=best_round_loss)
        losses, round_loss = dev_losses()
        loss = rare_loss(losses)
        ratio = losses.get(MAJORITY, np.nan) / majority_ref
        guard = bool(ratio > 1 + o.majority_tolerance)  # NaN (no Payne dev stars): no guard
        kept = loss < best * (1 - o.min_improvement) and not guard
        history.append({"round": r, "n_train": len(train_idx), "n_payne": len(subset),
                        "epochs": len(result.history), "rare_dev": loss, "kept": int(kept),
                        "guard": int(guard), "majority_dev_ratio": float(ratio),
                        **{f"dev_{g}": v for g, v in losses.items()},
                        **test_losses(test_pred())})
        log.info("round %d: %d training stars (%d Payne), %d epochs, dev losses %s%s", r,
                 len(train_idx), len(subset), len(result.history), _fmt(losses),
                 " (best)" if kept else "")
        if guard:
            log.warning("round %d rejected by the majority guard: %s dev loss %.4f is %.1f %% "
                        "above the input model's %.4f (tolerance %.1f %%)", r, MAJORITY,
                        losses[MAJORITY], 100 * (ratio - 1), majority_ref,
                        100 * o.majority_tolerance)
        if kept:
            best, best_round_loss, bad = loss, round_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            save_checkpoint(out / BEST_NAME, model, ckpt["arch_kwargs"], {
                **meta, "labels_path": str(labels), "store": str(store),
                "adaptation": {"from": str(model_path), "fraction": o.fraction, "seed": o.seed,
                               "rounds": r, "options": asdict(train_options),
                               "majority_tolerance": o.majority_tolerance,
                               "method": "Olney et al. 2020 sec. 3.4 stratified sampling"}})
        else:
            bad += 1
            model.load_state_dict(best_state)  # reload the best model
        _write_log(out / LOG_NAME, history)
        if bad >= o.round_patience:
            log.info("rare-group dev loss no longer improves: stopping after round %d", r)
            break
    shutil.rmtree(scratch, ignore_errors=True)
    if (out / BEST_NAME).exists() and meta.get("ood"):  # new weights: refit the OOD score
        _refit_ood(out / BEST_NAME, model, best_state, prep, meta, dataset,
                   np.flatnonzero(split == "train"), full_dev, o.seed)
    if (out / BEST_NAME).exists() and meta.get("fit_check"):  # and the fit-check thresholds
        _refit_fit_check(out / BEST_NAME, model, best_state, prep, meta, dataset, full_dev,
                         o.seed)
    if not (out / BEST_NAME).exists():  # no round improved: the input model stands
        log.warning("no adaptation round improved the YSO/M-dwarf dev loss; %s is a copy of "
                    "%s", out / BEST_NAME, model_path)
        shutil.copyfile(model_path, out / BEST_NAME)
    model.load_state_dict(best_state)
    report = report_on_test(*test_before, *test_pred(), source[test_idx], label_std, names)
    _write_table_csv(out / REPORT_NAME, report)
    table = Table(rows=history)
    table.meta["test_report"] = report
    table.meta["majority_tolerance"] = o.majority_tolerance
    table.meta["label_names"] = names
    return table


def report_on_test(pred_before: np.ndarray, target: np.ndarray, pred_after: np.ndarray,
                target_after: np.ndarray, source: np.ndarray, label_std: np.ndarray,
                label_names) -> list[dict]:
    """Test-split standardised MSE (§3.3) and per-label scatter (std of prediction − label,
    Table 3, physical units) per group, input model (``before``) vs adapted (``after``)."""
    rows = []
    for g in sorted(set(np.asarray(source).astype(str))):
        sel = source == g
        row = {"group": g, "n_test": int(sel.sum()),
               "mse_before": group_losses(pred_before[sel], target[sel], label_std,
                                          source[sel])[g],
               "mse_after": group_losses(pred_after[sel], target_after[sel], label_std,
                                         source[sel])[g]}
        for j, name in enumerate(label_names):
            row[f"{name}_before"] = float(np.nanstd(pred_before[sel, j] - target[sel, j]))
            row[f"{name}_after"] = float(np.nanstd(pred_after[sel, j] - target_after[sel, j]))
        rows.append(row)
    return rows


def format_test_report(report: list[dict], label_names) -> str:
    """The test report as printable text (after/before ratios: < 1 is better)."""
    lines = ["test split, input model -> adapted model (standardised MSE; scatter per label)",
             f"{'group':6s} {'n':>5s} {'MSE before':>11s} {'after':>8s} {'ratio':>6s}  "
             + "  ".join(f"{n + ' before':>12s} {'after':>8s}" for n in label_names)]
    for r in report:
        ratio = r["mse_after"] / r["mse_before"] if r["mse_before"] else np.nan
        lines.append(f"{r['group']:6s} {r['n_test']:5d} {r['mse_before']:11.4f} "
                     f"{r['mse_after']:8.4f} {ratio:6.2f}  " + "  ".join(
                         f"{r[n + '_before']:12.4g} {r[n + '_after']:8.4g}"
                         for n in label_names))
    return "\n".join(lines)


def _fixed_draws(meta, dataset, seed):
    """``idx -> dataset`` with one fixed draw per spectrum of the augmentation the base
    model was trained with (none: the plain spectra)."""
    from apogee_net.spectra.augment import AugmentedDataset, augmenter_from_meta

    aug = augmenter_from_meta(meta)

    def wrap(idx):
        ds = dataset(idx)
        return ds if aug is None else AugmentedDataset(ds, aug, seed + 1, fixed=True)

    return wrap


def _refit_ood(path, model, state, prep, meta, dataset, train_idx, dev_idx, seed) -> None:
    """Out-of-distribution statistics of the adapted weights (:mod:`apogee_net.network.ood`),
    on the same augmentation as the base model's training (fixed draws)."""
    from apogee_net.network.ood import attach_ood

    model.load_state_dict(state)
    wrap = _fixed_draws(meta, dataset, seed)
    attach_ood(path, model, prep, wrap(train_idx), wrap(dev_idx), seed=seed)


def _refit_fit_check(path, model, state, prep, meta, dataset, dev_idx, seed) -> None:
    """Fit-check thresholds of the adapted weights (:mod:`apogee_net.network.fitcheck`) on
    the same dev spectra, with the emulator the base model's were fitted with (else found
    as by ``simulate``; none: the adapted model has no fit check)."""
    from apogee_net.network.fitcheck import attach_fit_check, recorded_emulator

    model.load_state_dict(state)
    attach_fit_check(path, model, prep, _fixed_draws(meta, dataset, seed)(dev_idx),
                     recorded_emulator(meta), seed=seed)


def _fmt(losses: dict[str, float]) -> str:
    return ", ".join(f"{g} {v:.4f}" for g, v in sorted(losses.items()))


def _write_table_csv(path: Path, rows: list[dict]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["group"])
        writer.writeheader()
        writer.writerows(rows)


def _write_log(path: Path, history: list[dict]) -> None:
    keys = sorted({k for h in history for k in h},
                  key=lambda k: (k.startswith("test_"), k.startswith("dev_"), k))
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
