"""``apogee-net evaluate``: the paper's Tables 2–3, σ calibration and figures for one model.

Predicts every labelled spectrum of a store with perturbation uncertainties
(:func:`apogee_net.inference.uncertainty.perturbed_predict`), then writes to ``out``:

- ``table2_mse.{fits,csv}`` (standardised MSE per group and split, Olney et al. 2020 Table 2),
- ``table3_scatter.{fits,csv}`` (scatter and bias per label, group and split, Table 3),
- ``calibration.{fits,csv}``: σ scale factors per group (:mod:`apogee_net.evaluation.groupcal`:
  groups from the *predicted* labels by the rule ``apogee-net predict`` applies, so the factor
  and the group always match), fitted on stars no model selection saw: the calibration split
  ``cal`` and, by cross-fitting (default), the test split (each test star judged with factors
  fitted without it); ``dev``, with a warning, for label tables without ``cal``. Coverage of
  the 1σ and 2σ intervals on test (and on the calibration stars) per rule group and per
  label-table group (``source``), before and after scaling (``cov1_after``: the rule group's
  factor, what the catalogue carries; ``cov1_source``: the known group's factor, what it
  carries with ``predict --groups``; ``cov1_checked``: the one the 0.63–0.73 band is
  checked on, ``cov1_source`` for the label-table groups, ``cov1_after`` otherwise),
- ``predictions.fits`` (one row per star: labels, predictions, σ, SNR, group, split,
  ``sigma_group`` assigned from the predictions),
- ``pred_vs_label.png``, ``sigma_vs_snr.png``, ``kiel.png`` (Fig. 4 left and right, Fig. 3).

``apply_calibration`` stores the per-group factors in the model checkpoint (``sigma_scale``
in its meta); :mod:`apogee_net.inference.predict` then scales every σ by the factor of the star's
assigned group and records the factors and the rule in the catalogue header.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from astropy.table import Table

from apogee_net.evaluation import plots as evalplots
from apogee_net.evaluation.groupcal import (
    BAND,
    CROSSFIT_FOLDS,
    TARGET,
    assign_group,
    calibrate,
    coverage_rows,
)
from apogee_net.evaluation.metrics import mse_table, scatter_table
from apogee_net.inference.predict import load_model
from apogee_net.options import EvaluateOptions
from yso_labels.core.checkpoint import load_checkpoint, save_checkpoint
from yso_labels.core.options import resolve_options
from yso_labels.core.runtime import resolve_device
from yso_labels.core.tables import provenance, write_table

log = logging.getLogger(__name__)


def predict_labelled(model, store, labels, realizations: int = 100, seed: int = 0,
                     device: str = "auto", chunk: int = 512, arch: str | None = None,
                     photometry=None) -> Table:
    """Predictions with σ for every star of ``labels`` that has a spectrum in ``store``
    (APOGEE Net II: photometry from ``photometry`` or the label table's columns)."""
    from apogee_net.inference.predict import perturbed_labels
    from apogee_net.network.apogeenet2 import check_arch
    from apogee_net.network.photometry import labelled_photometry
    from apogee_net.spectra.dataset import join_labels, read_rows
    from apogee_net.spectra.store import open_store

    dev = resolve_device(device)
    lm = load_model(model, device=dev)
    check_arch(arch, lm.model, f"model checkpoint {lm.path}")
    names = lm.label_names
    rows, joined, _ = join_labels(store, labels, label_columns=names)
    if len(rows) == 0:
        raise ValueError(f"no star of {labels} has a spectrum in {store}")
    phot = (labelled_photometry(joined["apogee_id"], labels, photometry, "evaluate")
            if getattr(lm.model, "n_phot", 0) else None)
    mean = np.empty((len(rows), len(names)))
    std = np.empty_like(mean)
    from tqdm.auto import tqdm

    with open_store(store) as h5:
        for start in tqdm(range(0, len(rows), chunk), desc="evaluate", unit="chunk"):
            sel = rows[start:start + chunk]
            flux = read_rows(h5["flux"], sel)
            error = read_rows(h5["error"], sel)
            mean[start:start + chunk], std[start:start + chunk] = perturbed_labels(
                lm, flux, error, None if phot is None else phot[start:start + chunk],
                n_realizations=realizations, seed=seed, keys=sel)
    out = Table(joined[["apogee_id", "source", "split", "snr"]])
    for j, name in enumerate(names):
        out[name] = np.asarray(joined[name], float)
        out[f"{name}_pred"] = mean[:, j]
        out[f"{name}_err"] = std[:, j]
    out.meta["label_names"] = list(names)
    out.meta["label_std"] = np.asarray(getattr(lm.preprocess, "physical_std",
                                               lm.preprocess.label_scaler.std)).tolist()
    return out


def _arrays(pred: Table, names):
    label = np.column_stack([pred[n] for n in names])
    est = np.column_stack([pred[f"{n}_pred"] for n in names])
    sigma = np.column_stack([pred[f"{n}_err"] for n in names])
    return label, est, sigma


def evaluate_model(model, store, labels, out, options: EvaluateOptions | None = None,
                   **kwargs) -> dict:
    """Write the evaluation report of ``model`` on ``store`` + ``labels`` to ``out``; return
    a summary dict (tables as lists of rows, calibration factors, figure paths). The options
    are :class:`apogee_net.options.EvaluateOptions`, given as ``options`` or as keyword
    arguments of the same names. ``arch``/``photometry``: as for :func:`predict_labelled`;
    ``calibration``: ``crossfit`` (factors from ``cal`` + ``test``, ``folds``-fold
    cross-fitted) or ``cal`` (:func:`apogee_net.evaluation.groupcal.calibrate`)."""
    o = resolve_options(EvaluateOptions, options, kwargs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pred = predict_labelled(model, store, labels, o.realizations, o.seed, o.device,
                            arch=o.arch, photometry=o.photometry)
    names = pred.meta["label_names"]
    label, est, sigma = _arrays(pred, names)
    src, split = np.asarray(pred["source"]), np.asarray(pred["split"])
    recorded = {"model": str(model), "store": str(store), "labels": str(labels),
                "realizations": o.realizations, "seed": o.seed, "arch": o.arch,
                "photometry": None if o.photometry is None else str(o.photometry),
                "calibration": o.calibration, "folds": o.folds}
    meta = provenance("apogee-net evaluate", recorded)

    t2 = mse_table(est, label, pred.meta["label_std"], src, split)
    t3 = scatter_table(est, label, names, src, split)
    assigned = assign_group(est[:, names.index("teff")], est[:, names.index("logg")]) \
        if {"teff", "logg"} <= set(names) else np.full(len(src), "all")
    record, k_rule, k_source, cal_rows = fit_calibration(
        est, label, sigma, src, split, names, assigned, o.calibration, o.folds, o.seed)
    cov_rows = []
    for s in ("test", record["base"]):
        sel = split == s
        if sel.any():
            cov_rows += coverage_rows(est[sel], label[sel], sigma[sel], src[sel],
                                      assigned[sel], k_rule[sel], k_source[sel], names, s)
    if not (split == "test").any():
        log.warning("%s: no test-split stars: the calibration is not judged", labels)
    pred["sigma_group"] = assigned
    tables = {"table2_mse": t2, "table3_scatter": t3, "calibration": Table(rows=cov_rows)}
    meta["SIGSPLIT"] = record["split"]
    for j, name in enumerate(names):
        pred[f"{name}_sigk"] = k_rule[:, j]
    for name, table in tables.items():
        write_table(table, out / f"{name}.fits", meta)
        write_table(table, out / f"{name}.csv", meta)
    write_table(pred, out / "predictions.fits", meta)
    figures = [
        evalplots.plot_pred_vs_label(est, label, names, src, out / "pred_vs_label.png"),
        evalplots.plot_sigma_vs_snr(sigma, pred["snr"], names, src, out / "sigma_vs_snr.png"),
        evalplots.plot_kiel(est[:, names.index("teff")], est[:, names.index("logg")], src,
                            out / "kiel.png"),
    ]
    if o.apply_calibration:
        store_sigma_scale(model, record)
    summary = {"table2": [dict(r) for r in _plain(t2)], "table3": [dict(r) for r in _plain(t3)],
               "calibration": [dict(r) for r in _plain(tables["calibration"])],
               "sigma_scale": record, "factor_split": record["split"],
               "n_calibration": int(cal_rows.sum()),
               "applied": o.apply_calibration, "figures": [str(f) for f in figures]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def fit_calibration(est, label, sigma, source, split, names, assigned,
                    method: str = "crossfit", folds: int = CROSSFIT_FOLDS, seed: int = 0):
    """Per-group σ factors (:func:`apogee_net.evaluation.groupcal.calibrate`) on the
    calibration split ``cal`` (+ ``test`` when cross-fitting); without ``cal``, on ``dev``
    with a warning (dev chose the epoch and the adaptation rounds, so its residuals are
    optimistic). Returns ``(record, k_rule, k_source, rows used)``."""
    split = np.asarray(split).astype(str)
    base = "cal"
    if not (split == "cal").any():
        base = "dev"
        if not (split == "dev").any():
            raise ValueError("no 'cal' or 'dev' stars with spectra: cannot calibrate σ")
        log.warning("the label table has no calibration split 'cal': σ factors fitted on "
                    "'dev', which model selection saw (optimistic); remake the labels with "
                    "yso-labels merge --cal-fraction")
    record, k_rule, k_source, used = calibrate(est, label, sigma, source, split, assigned,
                                               names, method, base, folds, seed)
    record["base"] = base
    return record, k_rule, k_source, used


def _plain(table: Table):
    for row in table:
        yield {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(
            table.colnames, row, strict=True)}


def store_sigma_scale(model, scale: dict) -> Path:
    """Record σ scale factors in a checkpoint's meta (``sigma_scale``): a per-group record
    of :func:`apogee_net.evaluation.groupcal.fit_group_scales`, or a flat ``{label: factor}``
    applied to every star."""
    net, ckpt = load_checkpoint(model)
    record = json.loads(json.dumps(scale, default=float))
    meta = {**ckpt["meta"], "sigma_scale": record}
    log.info("storing σ scale factors %s in %s", record.get("groups", record), model)
    return save_checkpoint(model, net, ckpt["arch_kwargs"], meta, ckpt.get("training"))


def format_report(summary: dict) -> str:
    """The tables of a summary as printable text."""
    lines = ["Table 2: standardised MSE", f"{'group':8s} {'train':>8s} {'dev':>8s} {'test':>8s}"]
    for r in summary["table2"]:
        lines.append(f"{r['group']:8s} " + " ".join(f"{r[s]:8.4f}" for s in
                                                    ("train", "dev", "test")))
    lines += ["", "Table 3: scatter (prediction - label)",
              f"{'group':8s} {'label':6s} {'train':>9s} {'dev':>9s} {'test':>9s}"]
    for r in summary["table3"]:
        lines.append(f"{r['group']:8s} {r['label']:6s} " + " ".join(
            f"{r[s]:9.4f}" for s in ("train", "dev", "test")))
    rec = summary["sigma_scale"]
    where = {"cal": "the calibration split 'cal' (never used for model selection)",
             "dev": "the DEV split, which chose the epoch/rounds: optimistic"}[rec["base"]]
    how = (f"{rec['folds']}-fold cross-fitting over {where} and 'test': each test star is "
           "judged with factors fitted without it; the stored factors use all of them"
           if rec.get("method_split") == "crossfit" else where)
    lines += ["", f"sigma calibration: factors fitted per group on {rec['split']}: {how}; "
              f"{summary['n_calibration']} stars {rec['n']}",
              f"  groups: {rec['rule']} -- the catalogue of 'apogee-net predict' applies the "
              "factor of this group ('after'); 'known grp' applies the factor of the label "
              "table's source group (predict --groups, where a star's group is known); the "
              "band is checked on 'known grp' for source groups and on 'after' for the "
              "predicted groups and Full",
              f"{'split':5s} {'kind':9s} {'group':6s} {'label':6s} {'n':>5s} "
              f"{'cov1 before':>11s} {'cov1 after':>10s} {'known grp':>9s} {'cov2 after':>10s}"
              f" {'+-sd':>5s}  {BAND[0]:.2f}-{BAND[1]:.2f}?"]
    for r in summary["calibration"]:
        ok = ""
        if r["n"] >= 30 and r["split"] == "test":
            c = r["cov1_checked"]
            ok = "yes" if BAND[0] <= c <= BAND[1] else (
                "NO" + (" (within 2 sd)" if abs(c - TARGET) <= 2 * r["sd"] else ""))
        lines.append(f"{r['split']:5s} {r['kind']:9s} {r['group']:6s} {r['label']:6s} "
                     f"{r['n']:5d} {r['cov1_before']:11.3f} {r['cov1_after']:10.3f} "
                     f"{r['cov1_source']:9.3f} {r['cov2_after']:10.3f} {r['sd']:5.3f}  {ok}")
    if rec.get("pooled_for"):
        lines.append(f"  pooled factor used for {rec['pooled_for']} (fewer than "
                     f"{rec['min_stars']} calibration stars)")
    lines += ["  (Gaussian: 0.683 within 1 sigma, 0.954 within 2 sigma; sd: binomial error of "
              "0.683 on n stars; the band is checked on test for groups of >= 30 stars)"]
    return "\n".join(lines)
