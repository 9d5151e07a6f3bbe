"""The photometric CNN of Olney et al. 2020 §2.4: YSO Teff, log g, age, mass, A_V.

Three 1-D convolutional layers with max pooling over the standardised input vector
(bands, then log10 r*, log L, distance modulus), then two fully connected layers,
predicting (log age, mass, A_V, log Teff, log g). Trained on synthetic stars
(:mod:`yso_labels.synthetic`) with a dev split and early stopping; the checkpoint
(:mod:`yso_labels.core.checkpoint`) stores the standardisation, band list, training domain,
grid provenance and seed. Prediction applies the same limit and reporting rules to real
photometry and flags rows outside the synthetic training domain.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table
from torch import nn

from yso_labels.core.checkpoint import load_checkpoint, register_model, save_checkpoint
from yso_labels.core.options import resolve_options
from yso_labels.core.runtime import resolve_device, seed_everything
from yso_labels.core.sanity import missing_magnitudes
from yso_labels.core.scaling import Standardiser
from yso_labels.core.tables import TableError, float_column, read_meta, read_table
from yso_labels.core.training import ArrayDataset, TrainOptions, fit, standardised_mse
from yso_labels.isochrones import BANDS
from yso_labels.options import PhotcnnEvaluateOptions, PhotcnnPredictOptions, PhotcnnTrainOptions
from yso_labels.synthetic import LIMITS, REPORT_RULES, apply_limits, distance_modulus

log = logging.getLogger(__name__)

#: Network outputs (units: log10 yr, M☉, mag, log10 K, dex) and their truth columns.
OUTPUTS = ("log_age", "mass", "av", "log_teff", "logg")
TRUTH = {"log_age": "log_age_true", "mass": "mass_true", "av": "av_true",
         "log_teff": "teff_true", "logg": "logg_true"}
#: Columns added by :func:`predict_photcnn`.
PREDICTED = ("teff", "logg", "age_myr", "mass", "av", "out_of_domain", "ood_reason")


@register_model
class PhotCNN(nn.Module):
    """Conv1d(k=3)+ReLU+MaxPool(2) ×3 over the input vector, then FC–ReLU–FC."""

    def __init__(self, n_inputs: int, n_outputs: int = len(OUTPUTS),
                 channels: Sequence[int] = (32, 64, 128), hidden: int = 256):
        super().__init__()
        layers, c_in, length = [], 1, n_inputs
        for c in channels:
            layers += [nn.Conv1d(c_in, c, 3, padding=1), nn.ReLU(),
                       nn.MaxPool1d(2, ceil_mode=True)]
            c_in, length = c, -(-length // 2)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * length, hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))


# ------------------------------------------------------------------------------ inputs

def feature_names(bands: Sequence[str], use_radius_lum: bool = True) -> list[str]:
    """Input vector order: bands (mag), log10 r* (R☉), log L (L☉), distance modulus (mag)."""
    extra = ["log_radius", "logl"] if use_radius_lum else []
    return [*bands, *extra, "distmod"]


def _read(table, what: str) -> Table:
    if isinstance(table, Table):
        return table
    t = read_table(table, what=what)
    if str(table).lower().endswith(".csv"):
        t.meta.update(read_meta(table))
    return t


def table_bands(table: Table) -> list[str]:
    """Bands of a synthetic table (header ``BANDS``), else the known band columns present."""
    if table.meta.get("BANDS"):
        return str(table.meta["BANDS"]).split()
    return [b for b in BANDS if b in table.colnames]


def build_inputs(table: Table, bands: Sequence[str], use_radius_lum: bool = True,
                 allow_missing: bool = False, where: str = "photometry table"):
    """Input matrix (n, n_features) under the rules of :mod:`yso_labels.synthetic`.

    Faint or missing magnitudes are set to the band's limit; r* and log L (columns
    ``radius``/``logl``, or Gaia DR2 ``radius_val``/``lum_val``) are set to the reporting
    limits where missing or below them; distance from ``distance`` (pc) or ``parallax``
    (mas). Returns ``(X, problems)``: ``problems`` maps a reason to a row mask (no G, G
    fainter than the limit, no valid distance).
    """
    if "G" in bands and "G" not in table.colnames:
        raise TableError(f"{where}: no G column; Gaia G is required (Olney 2020 §2.4)")
    n = len(table)
    missing = [b for b in bands if b not in table.colnames]
    if missing and not allow_missing:
        raise TableError(f"{where}: lacks band column(s) {', '.join(missing)} the model was "
                         f"trained on ({' '.join(bands)}); use allow_missing to treat them "
                         f"as undetected")
    cols, problems = [], {}
    if "G" in bands:  # a model trained without G (bands g r J H K, ...) does not need it
        g = _magnitudes(table["G"])
        problems["no G"] = ~np.isfinite(g)
        problems["G fainter than limit"] = np.isfinite(g) & (g > LIMITS["G"])
    else:
        problems["no G"] = np.zeros(n, bool)
    for band in bands:
        if band in table.colnames:
            m = _magnitudes(table[band])
        else:
            m = np.full(n, np.nan)
        cols.append(apply_limits(m, band))
    if use_radius_lum:
        if "radius" in table.colnames:
            r = _col(table, "radius")
        elif "radius_val" in table.colnames:
            r = _col(table, "radius_val")
        elif allow_missing:
            r = np.full(n, np.nan)
        else:
            raise TableError(f"{where}: no radius (R☉) or radius_val column; the model uses "
                             f"r* and log L (use allow_missing to treat them as unreported)")
        if "logl" in table.colnames:
            lum = _col(table, "logl")
        elif "lum_val" in table.colnames:
            with np.errstate(divide="ignore", invalid="ignore"):
                lum = np.log10(_col(table, "lum_val"))
        else:
            lum = np.full(n, np.nan)
            if not allow_missing:
                raise TableError(f"{where}: no logl or lum_val column (use allow_missing)")
        rep = np.isfinite(r) & np.isfinite(lum) & (r > REPORT_RULES["radius_min"]) & \
            (lum > REPORT_RULES["logl_min"])
        cols.append(np.log10(np.where(rep, r, REPORT_RULES["radius_min"])))
        cols.append(np.where(rep, lum, REPORT_RULES["logl_min"]))
    if "distance" in table.colnames:
        d = _col(table, "distance")
    elif "parallax" in table.colnames:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1000.0 / _col(table, "parallax")
    else:
        raise TableError(f"{where}: needs a distance (pc) or parallax (mas) column")
    bad_d = ~np.isfinite(d) | (d <= 0)
    problems["no valid distance"] = bad_d
    with np.errstate(divide="ignore", invalid="ignore"):
        cols.append(np.where(bad_d, np.nan, distance_modulus(np.where(bad_d, 10.0, d))))
    return np.column_stack(cols).astype(np.float64), problems


def _magnitudes(column) -> np.ndarray:
    """A magnitude column (mag) with masked values and missing-value codes (99, −99, ...;
    :func:`yso_labels.core.sanity.missing_magnitudes`) as NaN (treated as undetected)."""
    m = float_column(column)
    return np.where(missing_magnitudes(m), np.nan, m)


def _col(table: Table, name: str) -> np.ndarray:
    return float_column(table[name])


def build_targets(table: Table, where: str = "training table") -> np.ndarray:
    """Targets (n, 5) in :data:`OUTPUTS` order from the synthetic truth columns."""
    missing = [c for c in TRUTH.values() if c not in table.colnames]
    if missing:
        raise TableError(f"{where}: lacks truth column(s) {', '.join(missing)}; "
                         f"make it with `yso-labels synth`")
    y = np.column_stack([_col(table, TRUTH[o]) for o in OUTPUTS])
    y[:, OUTPUTS.index("log_teff")] = np.log10(y[:, OUTPUTS.index("log_teff")])
    return y


# ---------------------------------------------------------------------------- training

def train_photcnn(train_table, out: str | os.PathLike,
                  options: PhotcnnTrainOptions | None = None, **kwargs) -> dict:
    """Train the photometric CNN on a synthetic table; write the checkpoint ``out``. The
    options are :class:`yso_labels.options.PhotcnnTrainOptions`, given as ``options`` or as
    keyword arguments of the same names.

    Trains with the toolkit's one loop (:func:`yso_labels.core.training.fit`): Adam on the
    mean squared error of standardised outputs (:class:`yso_labels.core.scaling.Standardiser`
    fitted on the training rows), learning rate halved after ``patience // 3`` epochs
    without dev improvement, early stop after ``patience``; the best dev weights are kept.
    The run's state is kept in the directory ``<out>.partial`` (``last.pt`` every epoch) and
    resumed from when ``resume`` (a run written with other options raises). Returns the
    checkpoint ``meta``. ``models``: when given, the model family the table must have been
    drawn from (its ``MODELS`` header, :mod:`yso_labels.families`); the table's family is
    recorded in ``meta['models']`` either way.
    """
    o = resolve_options(PhotcnnTrainOptions, options, kwargs)
    table = _read(train_table, "training table")
    where = ("training table" if isinstance(train_table, Table)
             else f"training table {train_table}")
    family = str(table.meta.get("MODELS", "parsec" if "PARSEC" in
                                str(table.meta.get("GRID", "")) else "user grid"))
    if o.models is not None and o.models != family:
        raise ValueError(f"{where}: drawn from model family {family!r} (header MODELS), "
                         f"but models={o.models!r} was requested")
    if o.max_rows:
        table = table[:o.max_rows]
    bands = table_bands(table)
    x, problems = build_inputs(table, bands, o.use_radius_lum, where=where)
    y = build_targets(table, where)
    bad = ~(np.isfinite(x).all(1) & np.isfinite(y).all(1))
    if bad.any():
        raise TableError(f"{where}: {bad.sum()} row(s) with non-finite inputs or truth "
                         f"(first row {np.nonzero(bad)[0][0]})")
    if len(x) < 20:
        raise ValueError(f"{where}: {len(x)} rows are too few to train on")
    rng = seed_everything(o.seed)
    perm = rng.permutation(len(x))
    n_dev = max(int(round(o.dev_fraction * len(x))), 1)
    dev_idx, tr_idx = perm[:n_dev], perm[n_dev:]
    x_scaler, y_scaler = Standardiser.fit(x[tr_idx]), Standardiser.fit(y[tr_idx])
    xs, ys = x_scaler.transform(x), y_scaler.transform(y)
    arch = {"n_inputs": x.shape[1], "n_outputs": len(OUTPUTS),
            "channels": list(o.channels), "hidden": o.hidden}
    recorded = {"seed": o.seed, "epochs": o.epochs, "batch_size": o.batch_size, "lr": o.lr,
                "dev_fraction": o.dev_fraction, "patience": o.patience, "n_rows": len(x),
                "use_radius_lum": o.use_radius_lum, **arch}
    model = PhotCNN(**arch)
    meta = {"bands": bands, "features": feature_names(bands, o.use_radius_lum),
            "outputs": list(OUTPUTS), "x_mean": x_scaler.mean.tolist(),
            "x_std": x_scaler.std.tolist(), "y_mean": y_scaler.mean.tolist(),
            "y_std": y_scaler.std.tolist(),
            "x_min": x.min(0).tolist(), "x_max": x.max(0).tolist(),
            "use_radius_lum": o.use_radius_lum, "limits": {b: LIMITS[b] for b in bands},
            "report_rules": dict(REPORT_RULES), "seed": o.seed, "options": recorded,
            "models": family, "grid": str(table.meta.get("GRID", "")), "grid_source":
            str(table.meta.get("GRIDSRC", "")), "mh": str(table.meta.get("MH", "")),
            "training_data": str(train_table) if not isinstance(train_table, Table)
            else "table in memory", "training_seed": str(table.meta.get("SEED", ""))}
    train_options = TrainOptions(batch_size=o.batch_size, lr=o.lr, dropout=0.0,
                                 patience=o.patience, max_epochs=o.epochs, seed=o.seed,
                                 device=o.device, resume=o.resume,
                                 lr_plateau=max(o.patience // 3, 1), progress=False)
    partial = Path(f"{out}.partial")
    result = fit(model, ArrayDataset(xs[tr_idx], ys[tr_idx]), ArrayDataset(xs[dev_idx],
                                                                           ys[dev_idx]),
                 standardised_mse, partial, train_options,
                 {**meta, "resume_key": {k: v for k, v in recorded.items()
                                         if k not in ("epochs", "patience")}},
                 prepare=_prepare, arch_kwargs=arch)
    history = [{"epoch": h["epoch"], "train": h["train_loss"], "dev": h["dev_loss"],
                "lr": h["lr"]} for h in result.history]
    meta.update(best_epoch=result.best_epoch, epochs_run=len(history),
                dev_loss=result.best_loss,
                train_seconds=round(sum(h["seconds"] for h in result.history), 2),
                history=history, device=str(resolve_device(o.device)))
    save_checkpoint(out, model, arch, meta)
    shutil.rmtree(partial, ignore_errors=True)
    return meta


def _prepare(batch: dict) -> dict:
    """Network input of :func:`yso_labels.core.training.fit`: the standardised feature
    vector ``(batch, n_inputs)`` (:meth:`PhotCNN.forward` adds the channel axis)."""
    batch["input"] = batch["flux"].float()
    return batch


# -------------------------------------------------------------------------- prediction

def predict_photcnn(model_path, table, device: str = "auto", allow_missing: bool = False,
                    batch_size: int = 8192) -> Table:
    """Predict ``teff`` (K), ``logg`` (dex), ``age_myr``, ``mass`` (M☉), ``av`` (mag).

    Adds ``out_of_domain`` (True where an input lies outside the range of the training
    sample, or G or the distance is missing; no number is given without G or distance)
    and ``ood_reason``. The input columns are kept; existing prediction columns replaced.
    """
    dev = resolve_device(device)
    model, ckpt = load_checkpoint(model_path, expect=PhotCNN, device=dev)
    meta = ckpt["meta"]
    where = "photometry table" if isinstance(table, Table) else f"photometry table {table}"
    table = _read(table, "photometry table")
    x, problems = build_inputs(table, meta["bands"], meta["use_radius_lum"],
                               allow_missing=allow_missing, where=where)
    lo, hi = np.asarray(meta["x_min"]), np.asarray(meta["x_max"])
    tol = 1e-6 * (hi - lo + 1.0)
    with np.errstate(invalid="ignore"):
        outside = (x < lo - tol) | (x > hi + tol)
    reasons = [[] for _ in range(len(x))]
    for reason, mask in problems.items():
        for i in np.nonzero(mask)[0]:
            reasons[i].append(reason)
    names = meta["features"]
    for j in range(x.shape[1]):
        for i in np.nonzero(outside[:, j])[0]:
            reasons[i].append(f"{names[j]} outside training range")
    usable = ~(problems["no G"] | problems["no valid distance"])
    xs = (x - np.asarray(meta["x_mean"])) / np.asarray(meta["x_std"])
    y = np.full((len(x), len(OUTPUTS)), np.nan)
    if usable.any():
        with torch.no_grad():
            xt = torch.as_tensor(xs[usable], dtype=torch.float32, device=dev)
            pred = torch.cat([model(xt[i:i + batch_size])
                              for i in range(0, len(xt), batch_size)]).cpu().numpy()
        y[usable] = pred * np.asarray(meta["y_std"]) + np.asarray(meta["y_mean"])
    out = table.copy()
    clash = [c for c in PREDICTED if c in out.colnames]
    if clash:
        log.warning("%s: replacing existing column(s) %s", where, ", ".join(clash))
        out.remove_columns(clash)
    col = {o: y[:, i] for i, o in enumerate(OUTPUTS)}
    out["teff"] = 10 ** col["log_teff"]
    out["logg"] = col["logg"]
    out["age_myr"] = 10 ** (col["log_age"] - 6.0)
    out["mass"] = col["mass"]
    out["av"] = col["av"]
    out["out_of_domain"] = np.array([bool(r) for r in reasons], dtype=bool)
    out["ood_reason"] = ["; ".join(r) for r in reasons]
    out.meta.update(PCMODEL=str(model_path), PCBANDS=" ".join(meta["bands"]),
                    PCGRID=meta.get("grid", ""), PCMODELS=meta.get("models", ""))
    return out


def run_predict(model_path, input, output, options: PhotcnnPredictOptions | None = None,
                **kwargs) -> Path:
    """Predict on the table ``input`` and write ``output`` with provenance; options
    :class:`yso_labels.options.PhotcnnPredictOptions` (or keywords of the same names)."""
    from yso_labels.core.tables import provenance, write_table

    o = resolve_options(PhotcnnPredictOptions, options, kwargs)
    pred = predict_photcnn(model_path, input, device=o.device, allow_missing=o.allow_missing)
    meta = provenance("photcnn predict", {"model": str(model_path), "input": str(input),
                                          "allow_missing": o.allow_missing},
                      model=str(model_path), grid=pred.meta.get("PCGRID", ""),
                      models=pred.meta.get("PCMODELS", ""),
                      n_out_of_domain=int(pred["out_of_domain"].sum()))
    pred.meta.clear()
    return write_table(pred, output, meta)


# -------------------------------------------------------------------------- evaluation

def scores(pred: Table, truth: Table) -> dict:
    """Bias (mean) and scatter (std, ddof 0) of prediction − truth per output.

    Units: log_age dex, mass M☉, av mag, log_teff dex (log10 K), logg dex. Rows with a
    non-finite prediction are left out (counted in ``n``).
    """
    values = {"log_age": np.log10(np.asarray(pred["age_myr"], float) * 1e6),
              "mass": np.asarray(pred["mass"], float), "av": np.asarray(pred["av"], float),
              "log_teff": np.log10(np.asarray(pred["teff"], float)),
              "logg": np.asarray(pred["logg"], float)}
    y = build_targets(truth, "test table")
    result = {}
    for i, o in enumerate(OUTPUTS):
        d = values[o] - y[:, i]
        d = d[np.isfinite(d)]
        result[o] = {"bias": float(np.mean(d)), "scatter": float(np.std(d)), "n": int(len(d))}
    return result


def evaluate_photcnn(model_path, test_table, options: PhotcnnEvaluateOptions | None = None,
                     **kwargs) -> dict:
    """Scores (:func:`scores`) of the model on a synthetic test table with truth columns.

    Raises ``ValueError`` when the test table was drawn for another band set. Options:
    :class:`yso_labels.options.PhotcnnEvaluateOptions` (or keywords of the same names).
    """
    o = resolve_options(PhotcnnEvaluateOptions, options, kwargs)
    _, ckpt = load_checkpoint(model_path, expect=PhotCNN)
    table = _read(test_table, "test table")
    bands = table_bands(table)
    if bands != list(ckpt["meta"]["bands"]):
        raise ValueError(f"model {model_path} was trained on bands "
                         f"{' '.join(ckpt['meta']['bands'])}; test table {test_table} has "
                         f"{' '.join(bands)}")
    pred = predict_photcnn(model_path, table, device=o.device)
    result = scores(pred, table)
    result["n_out_of_domain"] = int(pred["out_of_domain"].sum())
    result["units"] = {"log_age": "dex", "mass": "Msun", "av": "mag",
                       "log_teff": "dex", "logg": "dex"}
    return result
