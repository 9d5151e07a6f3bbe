"""Training APOGEE Net on a spectra store (Olney et al. 2020 §3.3): the library call behind
``apogee-net train``. The loop itself is the toolkit's one training loop,
:func:`yso_labels.core.training.fit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from apogee_net.network import fitcheck, ood
from apogee_net.network.apogeenet2 import build_for_arch
from apogee_net.network.linear_path import linear_labels
from apogee_net.network.model import LABEL_NAMES, Preprocess, scale_flux
from apogee_net.network.photometry import WithPhotometry, labelled_photometry
from apogee_net.options import ApogeeTrainOptions
from apogee_net.spectra.apstar import NPIX
from apogee_net.spectra.augment import AugmentedDataset, resolve_augment
from apogee_net.spectra.dataset import SpectraDataset, join_labels, read_rows
from apogee_net.spectra.pixmask import format_bits, parse_pixmask_bits
from apogee_net.spectra.store import open_store, store_pixmask_bits
from yso_labels.core import distributed
from yso_labels.core.atomic import write_json
from yso_labels.core.guards import content_key, fingerprint
from yso_labels.core.options import narrow, resolve_options
from yso_labels.core.runtime import resolve_device, seed_everything
from yso_labels.core.sanity import check_labels
from yso_labels.core.scaling import Moments, Standardiser
from yso_labels.core.training import (
    BEST_NAME,
    LAST_NAME,
    FitResult,
    TrainOptions,
    check_resumable,
    collate,
    fit,
    standardised_mse,
    to_device,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- APOGEE Net
class NoiseAugment:
    """Training ``prepare`` that first adds a fresh draw of each spectrum's own noise,
    ``flux + scale · error · N(0, 1)`` at pixels with data
    (:func:`apogee_net.spectra.pixels.valid_pixels`), then applies ``prepare``: every epoch
    sees a new noise realisation of every star (the perturbation of Olney et al. 2020 §3.5,
    used here as augmentation)."""

    def __init__(self, prepare, scale: float = 1.0):
        self.prepare, self.scale = prepare, float(scale)

    def __call__(self, batch: dict) -> dict:
        from apogee_net.spectra.pixels import valid_pixels

        flux, error = batch["flux"].float(), batch["error"].float()
        noise = torch.randn_like(flux) * torch.where(valid_pixels(flux, error), error, 0.0)
        batch["flux"] = flux + self.scale * noise
        return self.prepare(batch)


def fit_flux_scaler(store, rows, flux_norm: str = "none", chunk: int = 512,
                    transform: Callable | None = None) -> Standardiser:
    """Per-pixel mean and std (ddof 0) of the scaled flux
    (:func:`apogee_net.network.model.scale_flux`) over store ``rows``, streaming ``chunk``
    rows at a time; pixels never with data get mean 0, std 1. ``transform(flux, error,
    rows) -> (flux, error)`` (numpy, e.g. a fixed augmentation draw) is applied first."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    with open_store(store) as h5:
        moments = Moments(h5["flux"].shape[1])
        for i in range(0, len(rows), chunk):
            sel = rows[i:i + chunk]
            flux = torch.from_numpy(read_rows(h5["flux"], sel).astype(np.float32, copy=False))
            error = torch.from_numpy(read_rows(h5["error"], sel).astype(np.float32,
                                                                         copy=False))
            if transform is not None:
                flux, error = (torch.from_numpy(a) for a in
                               transform(flux.numpy(), error.numpy(), sel))
            moments.add(scale_flux(flux, error, flux_norm).numpy())
    return moments.standardiser(empty_ok=True)


def data_key(store, labels, **settings) -> dict:
    """The data part of a training run's resume key: content fingerprints of the store and
    the label table (path or Table) and the ``settings`` that shape the targets."""
    return {"store_content": fingerprint([store]), "labels_content": content_key(labels),
            **settings}


def train_apogee_net(store, labels, out, options: ApogeeTrainOptions | None = None,
                     **kwargs) -> FitResult:
    """Train APOGEE Net on the spectra of ``store`` with the labels table ``labels`` (path
    or Table with ``apogee_id, logg, teff, fe_h, split, source``), writing ``out/model.pt``,
    ``out/last.pt``, ``out/train_log.csv`` and ``out/test_metrics.json``. The options are
    :class:`apogee_net.options.ApogeeTrainOptions`, given as ``options`` or as keyword
    arguments of the same names (``max_epochs=3``); the keywords override ``options``.

    Targets are standardised with the training split's mean and std (§3.1, stored in the
    checkpoint with the per-pixel flux standardisation and the training label range);
    the dev split drives early stopping (§3.3); the test split is scored at the end.
    ``arch``: ``apogeenet1`` (Olney et al. 2020) or ``apogeenet2`` (Sprague et al. 2022:
    photometry from ``photometry`` (table with ``apogee_id``) or the label table's own
    parallax, G, BP, RP, J, H, K columns; Teff learnt as log10 Teff, hot stars allowed).

    Recipe defaults (issue 14; 2,000 Payne-emulated spectra, dev loss after 15 epochs,
    benchmarks/README.md): batch 32 instead of the paper's 128 (0.0028 vs 0.0039), a cosine
    learning-rate decay after one warm-up epoch instead of a constant rate, no dropout
    (the paper's 0.1 slowed the fit: 0.0032 vs 0.0096 after 6 epochs), and noise
    augmentation, ``noise_augment=1`` (without it the network overfits: train loss 0.0003
    against dev 0.0022; with it dev 0.0015 after 15 epochs). The paper's recipe is
    ``batch_size=128, schedule="constant", warmup=0, dropout=0.1, noise_augment=0,
    patience=5, max_epochs=100``. ``warmup`` is cut to leave at least one epoch after it
    (a one-epoch run has none). ``schedule``, ``warmup``, ``weight_decay``, ``optimizer``: see
    :class:`yso_labels.core.options.TrainOptions`; ``noise_augment``: scale of the fresh
    noise added to each training spectrum every epoch (:class:`NoiseAugment`; 0: none).
    ``augment``: real-instrument systematics drawn onto the training (new draws every
    epoch) and dev (fixed draws) spectra, :mod:`apogee_net.spectra.augment`: ``"default"``
    (the packaged systematics), a file from scripts/learn_apstar_systematics.py, or
    ``"none"``. ``pixmask_bits``: apStar PIXMASK bits treated as no data (default: those
    the store was ingested with; :mod:`apogee_net.spectra.pixmask`). Both are recorded in
    the model, with the out-of-distribution statistics fitted at the end
    (:mod:`apogee_net.network.ood`; APOGEE Net I) and, with ``fit_check`` (default) and
    The Payne's emulator (``emulator``, else found as by ``simulate``), the thresholds of
    the independent-fit consistency check (:mod:`apogee_net.network.fitcheck`).
    ``linear_skip``: an architecture OPTION outside the paper (``apogeenet1`` only; ``True``
    or ``"all"``, or the labels given it, e.g. ``"logg,fe_h"``): a fixed
    ridge regression on the standardised pixels added to the network's output, the network
    trained on the ridge's cross-fitted residuals (:mod:`apogee_net.network.linear_path`).
    ``resume`` continues ``out/last.pt`` only if it was trained on the same store and labels
    (content fingerprints) with the same options, and refuses otherwise, before any work;
    ``restart`` starts a new run in ``out`` whatever it holds. Impossible labels (±inf,
    outside :data:`yso_labels.core.sanity.LABEL_RANGES`) are refused before any epoch.
    """
    o = resolve_options(ApogeeTrainOptions, options, kwargs)
    out = Path(out)
    if not o.restart and (out / BEST_NAME).exists() and not o.resume:
        raise FileExistsError(f"{out} already holds a run ({BEST_NAME}); pass --resume to "
                              "continue it, --restart to replace it, or choose another --out")
    options = narrow(TrainOptions, o, resume=o.resume and not o.restart)
    seed, arch, photometry, flux_norm, noise_augment = (o.seed, o.arch, o.photometry,
                                                        o.flux_norm, o.noise_augment)
    if not noise_augment >= 0:
        raise ValueError(f"noise_augment must be ≥ 0, got {noise_augment!r}")
    label_columns = list(o.label_columns or LABEL_NAMES)
    skip_labels = linear_labels(o.linear_skip, label_columns)
    key = data_key(store, labels, label_columns=label_columns, flux_norm=flux_norm, arch=arch,
                   photometry=content_key(photometry), noise_augment=noise_augment,
                   **({"linear_skip": skip_labels} if skip_labels else {}))
    if options.resume and (out / LAST_NAME).exists():  # before any work
        check_resumable(out / LAST_NAME, options, {"resume_key": key})
    where = "the label table" if hasattr(labels, "colnames") else f"label table {labels}"
    rows, joined, report = join_labels(store, labels, label_columns=label_columns)
    split = np.asarray(joined["split"])  # train/dev/cal/test, checked by join_labels
    targets = np.column_stack([np.asarray(joined[c], float) for c in label_columns])
    check_labels(targets, label_columns, list(joined["apogee_id"]), where)
    # "cal" (σ calibration, apogee_net.evaluation.groupcal): never trained on nor stopped on
    parts = {name: np.flatnonzero(split == name) for name in ("train", "dev", "cal", "test")}
    for name in ("train", "dev"):
        if len(parts[name]) == 0:
            raise ValueError(f"no '{name}' stars with spectra after joining {where} with "
                             f"store {store} ({report['n_joined']} joined)")
    train_t = targets[parts["train"]]
    phot = (labelled_photometry(joined["apogee_id"], labels, photometry, where)
            if arch == "apogeenet2" else None)
    with open_store(store) as h5:
        npix = int(h5["flux"].shape[1])
        wave = np.asarray(h5["wavelength"][[0, -1]], float)
        stored_bits = store_pixmask_bits(h5.attrs)
    bits = parse_pixmask_bits(o.pixmask_bits if o.pixmask_bits is not None else stored_bits)
    if stored_bits is not None and set(bits) - set(stored_bits):
        log.warning("store %s was ingested with pixmask bits %s: bits %s are applied to the "
                    "augmentation and at prediction only (re-ingest to apply them to the "
                    "training spectra)", store, format_bits(stored_bits),
                    format_bits(set(bits) - set(stored_bits)))
    augmenter = resolve_augment(o.augment, bits) if npix == NPIX else None
    if npix != NPIX and str(o.augment).lower() != "none":
        log.warning("store %s has %d pixels, not the apStar grid's %d: no augmentation",
                    store, npix, NPIX)
    fixed = None
    if augmenter is not None:
        def fixed(flux, error, sel):  # one fixed draw per store row (seed + 1)
            return augmenter(flux, error, [np.random.default_rng([seed + 1, int(r)])
                                           for r in sel])
    log.info("fitting the flux standardisation on %d training spectra", len(parts["train"]))
    flux_scaler = fit_flux_scaler(store, rows[parts["train"]], flux_norm, transform=fixed)
    seed_everything(seed)
    model, prep = build_for_arch(arch, flux_scaler, train_t, label_columns, flux_norm,
                                 o.dropout, npix)
    if skip_labels:
        model, targets, meta_linear = _linear_skip(
            arch, store, rows, parts, targets, prep, fixed, seed, o.dropout, npix,
            [c in skip_labels for c in label_columns])
    meta = {"label_names": label_columns, **prep.to_meta(),
            "label_range": [np.nanmin(train_t, 0).tolist(), np.nanmax(train_t, 0).tolist()],
            "npix": npix, "wavelength_range": wave.tolist(), "store": str(store),
            "labels": where, "labels_path": None if hasattr(labels, "colnames") else str(labels),
            "n_split": {k: int(len(v)) for k, v in parts.items()}, "join_report": report,
            "arch": arch, "photometry_path": None if photometry is None or hasattr(
                photometry, "colnames") else str(photometry), "resume_key": key,
            "pixmask_bits": format_bits(bits),
            "augment": "none" if augmenter is None else augmenter.describe(),
            "method": "Olney et al. 2020 sec. 3 (Kaiming init, per-pixel standardised flux)",
            "noise_augment": float(noise_augment)}
    if skip_labels:
        meta["linear_skip"] = meta_linear

    def dataset(name, draws=None):
        idx = parts[name]
        ds = SpectraDataset(store, rows=rows[idx], targets=targets[idx])
        if augmenter is not None and draws is not None:
            ds = AugmentedDataset(ds, augmenter, seed + (1 if draws == "fixed" else 0),
                                  fixed=draws == "fixed")
        return ds if phot is None else WithPhotometry(ds, phot[idx])

    result = fit(model, dataset("train", "random"), dataset("dev", "fixed"), standardised_mse,
                 out, options, meta, prepare=prep,
                 train_prepare=NoiseAugment(prep, noise_augment) if noise_augment else None)
    if result.model_path is not None and phot is None and distributed.is_main_process():
        ood.attach_ood(result.model_path, model, prep, dataset("train", "fixed"),
                       dataset("dev", "fixed"), seed=seed)  # APOGEE Net II: no OOD score yet
        if o.fit_check and npix == NPIX:  # FIT_DISAGREE thresholds (APOGEE Net I)
            fitcheck.attach_fit_check(result.model_path, model, prep, dataset("dev", "fixed"),
                                      emulator=o.emulator, seed=seed)
    if len(parts["test"]) and distributed.is_main_process():
        metrics = score(model, dataset("test"), prep, label_columns, options)
        log.info("test split: %s", metrics)
        write_json(out / "test_metrics.json", metrics)
    return result


def _linear_skip(arch, store, rows, parts, targets, prep, fixed, seed, dropout, npix, use):
    """The ``linear_skip`` model (same initial layers as the plain one, then the ridge path
    of :func:`apogee_net.network.linear_path.fit_linear_path` for the labels ``use``), the
    training targets shifted by the path's cross-fitting offsets (physical units), and the
    path's metadata."""
    from apogee_net.network.linear_path import fit_linear_path, read_inputs  # sklearn
    from apogee_net.network.model import APOGEENet

    if arch != "apogeenet1":
        raise ValueError(f"linear_skip is an option of arch apogeenet1, not {arch}")
    scaler = prep.label_scaler
    x, z = {}, {}
    for name in ("train", "dev"):
        x[name] = read_inputs(store, rows[parts[name]], prep, fixed)
        z[name] = (targets[parts[name]] - scaler.mean) / scaler.std
    path = fit_linear_path(x["train"], z["train"], x["dev"], z["dev"], seed=seed, use=use)
    log.info("linear_skip: ridge penalty %g; cross-fitted training residual scatter %s "
             "(standardised), in-sample %s", path.alpha,
             np.round((z["train"] - path.offsets - (x["train"] @ path.coef.T + path.intercept)
                       ).std(0), 4),
             np.round((z["train"] - (x["train"] @ path.coef.T + path.intercept)).std(0), 4))
    seed_everything(seed)  # the network's own layers start as the plain model's
    model = APOGEENet(in_channels=1, n_targets=targets.shape[1], dropout=dropout, npix=npix,
                      linear_skip=True)
    model.set_linear(path.coef, path.intercept)
    targets = np.array(targets, dtype=float)
    targets[parts["train"]] -= path.offsets * scaler.std
    return model, targets, path.describe()


def predict_dataset(model, dataset, prep: Preprocess, batch_size: int = 256,
                    device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Plain predictions (physical units) and targets of every item of ``dataset``."""
    dev = resolve_device(device)
    model.to(dev).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    preds, targets = [], []
    with torch.inference_mode():
        for batch in loader:
            batch = to_device(batch, dev)
            z = model(prep({k: v for k, v in batch.items() if k != "target"})["input"])
            preds.append(prep.labels(z.double()).cpu().numpy())
            targets.append(batch["target"].double().cpu().numpy())
    return np.concatenate(preds), np.concatenate(targets)


def score(model, dataset, prep: Preprocess, label_names: Sequence[str],
          options: TrainOptions | None = None) -> dict[str, dict[str, float]]:
    """Per-label bias (mean of prediction − label), scatter (its standard deviation, the
    statistic of Olney et al. 2020 Table 3) and RMSE, in label units."""
    pred, target = predict_dataset(model, dataset, prep,
                                   device=options.device if options else "auto")
    diff = pred - target
    return {name: {"n": int(np.isfinite(diff[:, j]).sum()),
                   "bias": float(np.nanmean(diff[:, j])),
                   "scatter": float(np.nanstd(diff[:, j])),
                   "rmse": float(np.sqrt(np.nanmean(diff[:, j] ** 2)))}
            for j, name in enumerate(label_names)}
