"""``apogee-net evaluate``: the paper's Tables 2–3, σ calibration and figures for one model.

Predicts every labelled spectrum of a store with perturbation uncertainties
(:func:`apogee_net.inference.uncertainty.perturbed_predict`), then writes to ``out``:

- ``table2_mse.{fits,csv}`` (standardised MSE per group and split, Olney et al. 2020 Table 2),
- ``table3_scatter.{fits,csv}`` (scatter and bias per label, group and split, Table 3),
- ``calibration.{fits,csv}`` (σ scale factors fitted on the dev split; coverage of the 1σ
  and 2σ intervals before and after scaling, on dev and test),
- ``predictions.fits`` (one row per star: labels, predictions, σ, SNR, group, split),
- ``pred_vs_label.png``, ``sigma_vs_snr.png``, ``kiel.png`` (Fig. 4 left and right, Fig. 3).

``apply_calibration`` stores the dev-split factors in the model checkpoint (``sigma_scale``
in its meta); :mod:`apogee_net.inference.predict` then scales every σ and records the factors in the
catalogue header.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from astropy.table import Table

from apogee_net.evaluation import plots as evalplots
from apogee_net.evaluation.metrics import calibration, mse_table, scatter_table
from apogee_net.inference.predict import load_model
from yso_labels.core.checkpoint import load_checkpoint, save_checkpoint
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


def evaluate_model(model, store, labels, out, realizations: int = 100, seed: int = 0,
                   device: str = "auto", apply_calibration: bool = False,
                   arch: str | None = None, photometry=None) -> dict:
    """Write the evaluation report of ``model`` on ``store`` + ``labels`` to ``out``; return
    a summary dict (tables as lists of rows, calibration factors, figure paths).
    ``arch``/``photometry``: as for :func:`predict_labelled`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pred = predict_labelled(model, store, labels, realizations, seed, device, arch=arch,
                            photometry=photometry)
    names = pred.meta["label_names"]
    label, est, sigma = _arrays(pred, names)
    src, split = np.asarray(pred["source"]), np.asarray(pred["split"])
    options = {"model": str(model), "store": str(store), "labels": str(labels),
               "realizations": realizations, "seed": seed, "arch": arch,
               "photometry": None if photometry is None else str(photometry)}
    meta = provenance("apogee-net evaluate", options)

    t2 = mse_table(est, label, pred.meta["label_std"], src, split)
    t3 = scatter_table(est, label, names, src, split)
    dev, test = split == "dev", split == "test"
    if not dev.any():
        raise ValueError(f"{labels}: no dev-split stars with spectra: cannot calibrate σ")
    cal_dev = calibration(est[dev], label[dev], sigma[dev], names)
    scale = np.asarray(cal_dev["scale"])
    cal_dev["split"] = "dev"
    tables = {"table2_mse": t2, "table3_scatter": t3, "calibration": cal_dev}
    if test.any():
        cal_test = calibration(est[test], label[test], sigma[test], names, scale=scale)
        cal_test["split"] = "test"
        from astropy.table import vstack

        tables["calibration"] = vstack([cal_dev, cal_test])
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
    if apply_calibration:
        store_sigma_scale(model, dict(zip(names, scale.tolist(), strict=True)))
    summary = {"table2": [dict(r) for r in _plain(t2)], "table3": [dict(r) for r in _plain(t3)],
               "calibration": [dict(r) for r in _plain(tables["calibration"])],
               "sigma_scale": dict(zip(names, scale.tolist(), strict=True)),
               "applied": apply_calibration, "figures": [str(f) for f in figures]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def _plain(table: Table):
    for row in table:
        yield {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(
            table.colnames, row, strict=True)}


def store_sigma_scale(model, scale: dict[str, float]) -> Path:
    """Record per-label σ scale factors in a checkpoint's meta (``sigma_scale``)."""
    net, ckpt = load_checkpoint(model)
    meta = {**ckpt["meta"], "sigma_scale": {k: float(v) for k, v in scale.items()}}
    log.info("storing σ scale factors %s in %s", meta["sigma_scale"], model)
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
    lines += ["", "sigma calibration (factors fitted on dev)",
              f"{'split':5s} {'label':6s} {'scale':>7s} {'cov1 before':>12s} {'cov1 after':>11s}"
              f" {'cov2 before':>12s} {'cov2 after':>11s}"]
    for r in summary["calibration"]:
        lines.append(f"{r['split']:5s} {r['label']:6s} {r['scale']:7.3f} "
                     f"{r['cov1_before']:12.3f} {r['cov1_after']:11.3f} "
                     f"{r['cov2_before']:12.3f} {r['cov2_after']:11.3f}")
    return "\n".join(lines)
