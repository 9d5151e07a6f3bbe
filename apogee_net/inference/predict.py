"""Streaming prediction of a FITS catalogue from a trained APOGEE Net (Olney et al. 2020 §3.5).

Inputs are HDF5 stores (:mod:`apogee_net.spectra.store`), apStar files or directories of them,
streamed in chunks of at most ``chunk_size`` spectra into a resumable catalogue by
:func:`apogee_net.inference.streaming.stream_predict` (shared with the LAMOST Bayesian CNN).
:func:`predict_catalog` is the APOGEE Net call behind ``apogee-net predict``.

Catalogue columns: ``apogee_id, ra, dec, <labels>, <label>_err, snr, ood_score, fit_teff,
fit_logg, fit_fe_h, flags, sigma_group`` with labels in the checkpoint's order (log g in
dex, Teff in K, [Fe/H] in dex),
the out-of-distribution score of :mod:`apogee_net.network.ood`, the labels of the
independent Payne fit of :mod:`apogee_net.network.fitcheck` (K, dex, dex), the flag bits of
:data:`FLAGS`, and the group whose σ factor was applied (``yso``/``mstar``/``dwarf``/``giant``,
from the predicted labels, :func:`apogee_net.evaluation.groupcal.assign_group`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

from apogee_net.inference.chunks import SpectraChunk, plan_chunks, raw_spectra, read_chunk
from apogee_net.inference.streaming import array_sha256, input_list, parts_path, stream_predict
from apogee_net.inference.uncertainty import (
    check_realizations,
    default_chunk_rows,
    perturbed_predict,
    spectrum_keys,
)
from apogee_net.network import fitcheck, ood
from apogee_net.network.model import APOGEENet, Preprocess, check_label_names
from apogee_net.network.published import preprocess_from_meta
from apogee_net.options import PredictOptions
from apogee_net.spectra.pixels import valid_pixels
from apogee_net.spectra.pixmask import format_bits, parse_pixmask_bits
from yso_labels.core.checkpoint import load_checkpoint
from yso_labels.core.guards import check_ints, check_outputs
from yso_labels.core.options import resolve_options
from yso_labels.core.runtime import autocast, compiled, resolve_device
from yso_labels.core.tables import provenance

log = logging.getLogger(__name__)

#: Flag bits of the catalogue's ``flags`` column: name → (bit value, meaning).
FLAGS = {
    "LOW_SNR": (1, "SNR < 1 or unknown (SNR ~ 0)"),
    "BAD_PIXELS": (2, "fewer than half of the pixels have finite flux and valid error"),
    "OUT_OF_RANGE": (4, "a label beyond the range of the training labels by more than "
                     "2 dev scatters (apogee_net.network.ood.range_tolerance)"),
    "UNREADABLE": (8, "input could not be read or has no data; labels NaN"),
    "HOT": (16, "Teff above TEFF_MAX (6700 K): the version I paper left these out (edge "
            "effect); kept as information for APOGEE Net II, which covers hot stars"),
    "OOD": (32, "ood_score > 1: the spectrum is unlike the training spectra "
            "(apogee_net.network.ood)"),
    "NO_PHOTOMETRY": (64, "APOGEE Net II: a photometric input missing, filled with the "
                      "published replacement value (Sprague et al. 2022)"),
    # 128 is the LAMOST catalogue's SNR_BELOW_10 (apogee_net.lamost.predict.FLAGS)
    "UNPHYSICAL": (256, "a label outside the physically possible range (PHYSICAL_RANGES)"),
    "FIT_DISAGREE": (512, "abs(label - fit_label) above the model's dev threshold (header "
                     "FITCHECK) for Teff, log g or [Fe/H]: an independent fit of The Payne "
                     "emulator (Ting et al. 2019) x a quadratic per chip, started at the "
                     "network's labels, disagrees (apogee_net.network.fitcheck)"),
}
#: Physically possible label ranges (Teff in K, log g and [Fe/H] in dex): wider than any
#: star APOGEE or LAMOST observes (O stars reach ~50,000 K; the coolest M/L dwarfs
#: ~2,000 K), so a label outside them is nonsense whatever the model.
PHYSICAL_RANGES = {"teff": (2000.0, 50000.0), "logg": (-1.0, 6.0), "fe_h": (-5.0, 1.5)}
#: Olney et al. 2020 §3.6: stars hotter than this were left out of the published table,
#: because hotter stars are pulled towards the edge of the training labels (~8000 K).
TEFF_MAX = 6700.0
#: What to do with stars hotter than TEFF_MAX: flag them (default) or drop them.
HOT_POLICIES = ("flag", "drop")
#: SNR below this is "SNR ≈ 0" (paper §4 removed such sources).
SNR_ZERO = 1.0
#: Minimum fraction of pixels with data (the apStar chips cover ~84% of the grid).
MIN_VALID_FRACTION = 0.5


def flag_value(*names: str) -> int:
    """Bit value of flag ``names`` (see :data:`FLAGS`)."""
    return int(sum(FLAGS[n][0] for n in names))


def quality_flags(snr, nvalid, usable, mean, label_range, npix: int,
                  label_names=None, ood_score=None, range_tol=None) -> np.ndarray:
    """Per-row flag bits shared by every catalogue: LOW_SNR (SNR < :data:`SNR_ZERO` or
    unknown), BAD_PIXELS (fewer than :data:`MIN_VALID_FRACTION` of ``npix`` pixels valid),
    UNREADABLE (``usable`` False), OUT_OF_RANGE (a label of ``mean`` beyond ``label_range``
    = (low, high) of the training labels by more than ``range_tol`` (k,), default 0: see
    :func:`apogee_net.network.ood.range_tolerance`); with ``label_names``, UNPHYSICAL (a
    label outside :data:`PHYSICAL_RANGES`, or not finite for a readable spectrum); with
    ``ood_score``, OOD (score > 1)."""
    snr = np.asarray(snr, float)
    flags = np.zeros(snr.size, np.int32)
    flags[~(snr >= SNR_ZERO)] |= flag_value("LOW_SNR")
    flags[np.asarray(nvalid) < MIN_VALID_FRACTION * npix] |= flag_value("BAD_PIXELS")
    flags[~np.asarray(usable, bool)] |= flag_value("UNREADABLE")
    lo, hi = np.asarray(label_range, float)
    if range_tol is not None:
        lo, hi = lo - np.asarray(range_tol, float), hi + np.asarray(range_tol, float)
    with np.errstate(invalid="ignore"):
        flags[((mean < lo) | (mean > hi)).any(axis=1)] |= flag_value("OUT_OF_RANGE")
        if label_names is not None:
            flags[unphysical(mean, label_names) & np.asarray(usable, bool)] |= \
                flag_value("UNPHYSICAL")
        if ood_score is not None:
            flags[np.asarray(ood_score) > 1.0] |= flag_value("OOD")
    return flags


def unphysical(mean, label_names) -> np.ndarray:
    """Rows (n,) of ``mean`` (n, k) with a label outside :data:`PHYSICAL_RANGES` or not
    finite (labels without a physical range only need to be finite)."""
    mean = np.asarray(mean, float)
    bad = ~np.isfinite(mean).all(axis=1)
    for j, name in enumerate(label_names):
        if name in PHYSICAL_RANGES:
            lo, hi = PHYSICAL_RANGES[name]
            with np.errstate(invalid="ignore"):
                bad |= (mean[:, j] < lo) | (mean[:, j] > hi)
    return bad


# --------------------------------------------------------------------------- model
@dataclass
class LoadedModel:
    """A checkpoint ready for prediction: the network and its standardisation."""

    model: torch.nn.Module
    label_names: list[str]
    preprocess: Preprocess
    label_range: np.ndarray  # (2, k) min and max of the training labels
    npix: int
    path: Path
    sha256: str
    checkpoint: dict


def load_model(path, device="cpu", expect: type = APOGEENet) -> LoadedModel:
    """Load an APOGEE Net checkpoint written by :mod:`apogee_net.network.train`, with clear
    errors for other architectures or an incomplete standardisation."""
    path = Path(path)
    model, ckpt = load_checkpoint(path, expect=expect, device=device)
    meta = ckpt["meta"]
    needed = ("label_names", "label_scaler") if meta.get("preprocess") == "published" \
        else ("label_names", "flux_scaler", "label_scaler")
    missing = [k for k in needed if k not in meta]
    if missing:
        raise ValueError(f"model checkpoint {path}: lacks {', '.join(missing)} (not trained "
                         "by apogee-net train?)")
    names = check_label_names(meta["label_names"], model.n_targets, f"model checkpoint {path}")
    prep = preprocess_from_meta(meta)
    shapes = (None if prep.flux_scaler is None else prep.flux_scaler.mean.shape,
              None if prep.label_scaler is None else prep.label_scaler.mean.shape)
    if shapes[0] not in (None, (model.npix,)) or shapes[1] != (len(names),):
        raise ValueError(f"model checkpoint {path}: standardisation shapes {shapes} do not "
                         f"match {model.npix} pixels and {len(names)} labels")
    lrange = np.asarray(meta.get("label_range", [[-np.inf] * len(names), [np.inf] * len(names)]),
                        dtype=float)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedModel(model, names, prep, lrange, model.npix, path, digest, ckpt)


def _method(lm: LoadedModel) -> str:
    prep = lm.checkpoint["meta"]
    if prep.get("preprocess") == "published":
        return (f"published {prep.get('published_arch')} (imported), peer preprocessing; "
                "draws capped at 5x median error")
    return "Olney+2020 sec3.5 perturbation, sigma cap 5x mean error"


def sigma_record(lm: LoadedModel) -> dict:
    """The checkpoint's σ calibration (``apogee-net evaluate --apply-calibration``): per-group
    factors (:mod:`apogee_net.evaluation.groupcal`), a legacy flat ``{label: factor}``, or {} (σ
    unscaled)."""
    return lm.checkpoint["meta"].get("sigma_scale") or {}


def range_header(lm: LoadedModel) -> str:
    """Catalogue header text: how far past the training label range OUT_OF_RANGE allows."""
    tol = ood.range_tolerance(lm.checkpoint["meta"].get("ood"), len(lm.label_names))
    return "OUT_OF_RANGE beyond training range + " + ",".join(
        f"{n} {t:.3g}" for n, t in zip(lm.label_names, tol, strict=True))


def sigma_header(lm: LoadedModel, known: bool = False) -> dict[str, str]:
    """Catalogue header cards describing the σ calibration applied (``known``: stars of a
    known group get that group's factor)."""
    from apogee_net.evaluation.groupcal import GROUP_RULE

    rec = sigma_record(lm)
    if not rec:
        return {"SIGSCALE": "none (uncalibrated perturbation sigma)"}
    if "groups" not in rec:
        return {"SIGSCALE": ",".join(f"{float(rec.get(n, 1.0)):.4g}" for n in lm.label_names),
                "SIGGROUP": "one factor per label for every star"}
    text = ";".join(f"{g}:" + ",".join(f"{float(k.get(n, 1.0)):.4g}" for n in lm.label_names)
                    for g, k in rec["groups"].items())
    cards = {"SIGSCALE": text, "SIGSPLIT": rec.get("split", ""),
             "SIGGROUP": f"{GROUP_RULE}; others use 'all'"}
    if known:
        cards["SIGKNOWN"] = (";".join(f"known:{g}:" + ",".join(
            f"{float(k.get(n, 1.0)):.4g}" for n in lm.label_names)
            for g, k in rec.get("source_groups", {}).items()) or "none in the model")
    return cards


# --------------------------------------------------------------------------- APOGEE Net
def catalog_rows(lm: LoadedModel, data: SpectraChunk, realizations: int, seed: int,
                 batch_size: int | None = None,
                 checker: fitcheck.FitChecker | None = None,
                 known: dict[str, str] | None = None) -> Table:
    """Catalogue rows for the spectra ``data``: mean and σ over ``realizations`` perturbed
    copies (§3.5; each spectrum's draws seeded by ``seed`` and its content,
    :func:`apogee_net.inference.uncertainty.spectrum_keys`), ``ood_score``
    (:mod:`apogee_net.network.ood`; NaN for a model without OOD statistics), the labels of
    an independent Payne fit (``fit_teff``, ``fit_logg``, ``fit_fe_h``; with a
    ``checker``, :mod:`apogee_net.network.fitcheck`, else NaN), flags (:data:`FLAGS`).
    Pixels outside the training coverage are treated as having no data. σ is scaled by the
    calibration factor of the star's group (``known``: ``{apogee_id: group}`` of stars whose
    group is known, :func:`apogee_net.evaluation.groupcal.catalogue_scales`)."""
    flux, error = data.flux, data.error
    if lm.preprocess.flux_scaler is not None:
        flux, error = ood.restrict_to_coverage(flux, error,
                                               ood.coverage(lm.preprocess.flux_scaler))
    n = len(flux)
    valid = valid_pixels(flux, error)
    nvalid = valid.sum(axis=1)
    usable = data.readable & (nvalid > 0)
    k = len(lm.label_names)
    mean = np.full((n, k), np.nan)
    std = np.full((n, k), np.nan)
    phot = data.photometry  # APOGEE Net II: (n, 7) raw, NaN where missing
    score = np.full(n, np.nan)
    stats = lm.checkpoint["meta"].get("ood") if phot is None else None
    if usable.any():
        idx = np.flatnonzero(usable)
        if stats:  # one plain pass (dropout off) gives the OOD terms, and the labels
            plain, score[idx] = ood.score_spectra(lm.model, lm.preprocess, stats, flux[idx],
                                                  error[idx], batch_size or 64)
        if stats and realizations == 0:
            mean[idx] = plain
        else:
            mean[idx], std[idx] = perturbed_labels(
                lm, flux[idx], error[idx], None if phot is None else phot[idx],
                n_realizations=realizations, seed=seed,
                keys=spectrum_keys(flux[idx], error[idx]),
                chunk_rows=batch_size)
    snr = np.asarray(data.snr, float)
    flags = quality_flags(snr, nvalid, usable, mean, lm.label_range, lm.npix,
                          label_names=lm.label_names, ood_score=score,
                          range_tol=ood.range_tolerance(stats, k))
    if phot is not None:
        from apogee_net.network.photometry import fill_photometry

        flags[fill_photometry(phot)[1].any(axis=1)] |= flag_value("NO_PHOTOMETRY")
    if "teff" in lm.label_names:
        with np.errstate(invalid="ignore"):
            flags[mean[:, lm.label_names.index("teff")] > TEFF_MAX] |= flag_value("HOT")
    fit = np.full((n, len(fitcheck.FIT_COLUMNS)), np.nan)
    if checker is not None and usable.any():
        idx = np.flatnonzero(usable)
        fit[idx], bad = checker(flux[idx], error[idx], mean[idx], lm.label_names)
        flags[idx[bad]] |= flag_value("FIT_DISAGREE")
    from apogee_net.evaluation.groupcal import assign_group, catalogue_scales

    names = lm.label_names
    group = assign_group(mean[:, names.index("teff")], mean[:, names.index("logg")]) \
        if {"teff", "logg"} <= set(names) else np.full(n, "all")
    ids = np.char.strip(np.asarray(data.spec_id, dtype=str))
    factors, group = catalogue_scales(sigma_record(lm), names, group, None if known is None
                                      else [known.get(i, "") for i in ids])
    std = std * factors
    table = Table()
    table["apogee_id"] = np.asarray(data.spec_id, dtype=str)
    table["ra"], table["dec"] = np.asarray(data.ra, float), np.asarray(data.dec, float)
    for j, name in enumerate(lm.label_names):
        table[name] = mean[:, j]
    for j, name in enumerate(lm.label_names):
        table[f"{name}_err"] = std[:, j]
    table["snr"] = snr
    table["ood_score"] = score
    for j, name in enumerate(fitcheck.FIT_COLUMNS):
        table[name] = fit[:, j]
    table["flags"] = flags
    table["sigma_group"] = group
    add_provenance_columns(table, data)
    return table


def add_provenance_columns(table: Table, data: SpectraChunk) -> Table:
    """Add ``telescope`` and ``file`` (and, for per-visit rows, ``visit`` and ``mjd``) from
    the chunk ``data`` to catalogue rows ``table`` (in place), so that rows of one ID from
    different files or visits can be told apart, and put the units of
    :mod:`apogee_net.inference.catalog_columns` on the physical columns."""
    table["telescope"] = np.asarray(data.telescope, dtype=str)
    table["file"] = np.asarray(data.file, dtype=str)
    if data.visit is not None:
        table["visit"] = np.asarray(data.visit, np.int16)
        table["mjd"] = np.asarray(data.mjd, float)
    from apogee_net.inference.catalog_columns import apply_units

    return apply_units(table)  # units of every physical column (docs/CATALOG.md)


def perturbed_labels(lm: LoadedModel, flux, error, photometry=None, **kwargs):
    """Labels and σ ``(n, k)`` of spectra by the model's uncertainty procedure: the
    perturbation of §3.5 (:func:`apogee_net.inference.uncertainty.perturbed_predict`), or the peers'
    for an imported published model (:mod:`apogee_net.network.published`). ``photometry``: the
    ``(n, 7)`` raw inputs of an APOGEE Net II model."""
    if photometry is not None:
        kwargs["photometry"] = photometry
    published = getattr(lm.preprocess, "perturbed_predict", None)
    if published is not None:
        return published(lm.model, flux, error, **kwargs)
    return perturbed_predict(lm.model, flux, error, lm.preprocess, **kwargs)


def model_pixmask_bits(lm: LoadedModel, pixmask_bits=None) -> tuple[int, ...]:
    """Pixel-mask bits for prediction: ``pixmask_bits`` when given, else those the model
    was trained with (``meta["pixmask_bits"]``), else the default set."""
    if pixmask_bits is not None:
        return parse_pixmask_bits(pixmask_bits)
    return parse_pixmask_bits(lm.checkpoint["meta"].get("pixmask_bits"))


def predict_catalog(model, inputs: Sequence, out, options: PredictOptions | None = None,
                    **kwargs) -> Path:
    """Predict labels with uncertainties for every spectrum of ``inputs`` (stores, apStar
    files, directories) with the checkpoint ``model`` and write the FITS catalogue ``out``.
    The options are :class:`apogee_net.options.PredictOptions`, given as ``options`` or as
    keyword arguments of the same names; the keywords override ``options``.

    ``realizations``: perturbed copies per spectrum (0: plain prediction, NaN errors);
    ``batch_size``: rows per forward pass (default 32 on CPU, 2048 on GPU);
    ``chunk_size``: spectra per resumable part (``restart``: discard those of an
    interrupted run); ``workers``: threads reading apStar files;
    ``hot``: stars hotter than :data:`TEFF_MAX` are flagged (``flag``, default) or left out
    of the catalogue (``drop``), the paper's convention. σ is multiplied by the checkpoint's
    calibration factor of the star's group when it has them (:mod:`apogee_net.evaluation.groupcal`:
    the group, column ``sigma_group``, comes from the predicted Teff and log g, or, with
    ``groups`` (a table with ``apogee_id`` and ``source``, e.g. the label table), is the
    star's known group, ``known:<group>``; headers ``SIGSCALE``, ``SIGSPLIT``,
    ``SIGGROUP``, ``SIGKNOWN``). ``visits``: one row per
    visit of each apStar file as well as the combined one (columns ``visit``: 0 combined,
    1..N; ``mjd``), as SDSS's astra runs APOGEE Net. ``arch``: the architecture
    the checkpoint must hold (``apogeenet1|apogeenet2``; None: any). ``photometry``: table
    (path or Table) with ``apogee_id`` and parallax, G, BP, RP, J, H, K for APOGEE Net II
    (:mod:`apogee_net.network.photometry`); stars without it get the published fill values and the
    NO_PHOTOMETRY flag. Imported published models (``apogee-net import-model``) read apStar
    files as stored and use the peers' preprocessing and uncertainty procedure.
    ``pixmask_bits``: apStar PIXMASK bits treated as no data (default: the model's;
    :mod:`apogee_net.spectra.pixmask`). ``amp``: forward passes in ``none`` (float32,
    default), ``bf16`` or ``fp16`` autocast (header ``AMP``; its effect on labels and σ:
    benchmarks/README.md); ``compile``: ``torch.compile`` the network. ``fit_check``
    (default True): the independent-fit consistency check
    (:mod:`apogee_net.network.fitcheck`; columns ``fit_teff``, ``fit_logg``, ``fit_fe_h``,
    flag FIT_DISAGREE, header ``FITCHECK``) for a model with its thresholds, with The
    Payne's emulator ``emulator`` (default: the one the model recorded, else found as by
    ``simulate``).
    """
    o = resolve_options(PredictOptions, options, kwargs)
    if o.hot not in HOT_POLICIES:
        raise ValueError(f"hot must be one of {HOT_POLICIES}, got {o.hot!r}")
    check_ints(realizations=(o.realizations, 0), batch_size=(o.batch_size, 1),
               chunk_size=(o.chunk_size, 1), workers=(o.workers, 0), seed=(o.seed, 0))
    check_outputs([out, parts_path(out)], [model, *input_list(inputs)])
    dev = resolve_device(o.device)
    autocast(dev, o.amp)  # checks the name before any work
    lm = load_model(model, device=dev)
    lm.model = compiled(lm.model, o.compile)
    check_realizations(o.realizations, lm.npix, dev)
    from apogee_net.network.apogeenet2 import check_arch
    from apogee_net.network.photometry import PhotometryTable

    check_arch(o.arch, lm.model, f"model checkpoint {lm.path}")
    uses_phot = getattr(lm.model, "n_phot", 0) > 0
    phot = PhotometryTable(o.photometry) if uses_phot and o.photometry is not None else None
    if o.photometry is not None and not uses_phot:
        log.warning("--photometry ignored: %s is an APOGEE Net I model", lm.path)
    from apogee_net.evaluation.groupcal import read_known_groups

    known = read_known_groups(o.groups) if o.groups is not None else None
    batch_size = o.batch_size or default_chunk_rows(dev)
    chunks = plan_chunks(inputs, o.chunk_size, visits=o.visits)
    bits = model_pixmask_bits(lm, o.pixmask_bits)
    checker, fit_text = fitcheck.resolve_checker(lm.checkpoint["meta"], o.fit_check,
                                                 o.emulator, lm.label_names, lm.npix)
    recorded = {"realizations": o.realizations, "seed": o.seed, "batch_size": batch_size,
                "chunk_size": o.chunk_size, "device": str(dev), "hot": o.hot,
                "teff_max": TEFF_MAX, "visits": o.visits, "arch": o.arch,
                "photometry": None if phot is None else (phot.path or "table"),
                "preprocess": lm.checkpoint["meta"].get("preprocess", "standard"),
                "pixmask_bits": format_bits(bits), "amp": o.amp, "compile": o.compile,
                "fit_check": o.fit_check, "groups": None if o.groups is None else str(o.groups),
                "emulator": None if checker is None else checker.emulator.path}
    manifest = {"model_sha256": lm.sha256, "realizations": o.realizations, "seed": o.seed,
                "amp": o.amp, "compile": o.compile,
                "chunk_size": o.chunk_size, "device": dev.type, "hot": o.hot,
                "visits": o.visits,
                "photometry_sha256": None if phot is None else array_sha256(phot.values),
                "pixmask_bits": list(bits), "fit_check": fit_text,
                "groups_sha256": None if known is None else hashlib.sha256(
                    json.dumps(sorted(known.items())).encode()).hexdigest()}
    flag_doc = "; ".join(f"{v[0]}={k}" for k, v in FLAGS.items())
    meta = provenance("apogee-net predict", recorded, MODEL=str(lm.path),
                      MODELSHA=lm.sha256[:16], MODELVER=lm.checkpoint.get("version", ""),
                      LABELS=",".join(lm.label_names), NREAL=o.realizations, FLAGBITS=flag_doc,
                      METHOD=_method(lm), AMP=o.amp,
                      PIXMASK=format_bits(bits), OODTHR="ood_score > 1 (dev 99th percentile)"
                      if lm.checkpoint["meta"].get("ood") else "no OOD statistics in model",
                      RANGETOL=range_header(lm), FITCHECK=fit_text,
                      **sigma_header(lm, known is not None))

    def predict_fn(data, _offset):  # the draws are seeded by content, not position
        with autocast(dev, o.amp):
            table = catalog_rows(lm, data, o.realizations, o.seed, batch_size, checker, known)
        if o.visits:  # the same columns in every part (stores hold combined spectra)
            if "visit" not in table.colnames:
                table["visit"], table["mjd"] = np.zeros(len(table), np.int16), np.nan
        else:  # mwmStar/mwmVisit rows come with them; the option decides
            table.remove_columns([c for c in ("visit", "mjd") if c in table.colnames])
        if o.hot == "drop":
            table = table[(np.asarray(table["flags"]) & flag_value("HOT")) == 0]
        return table

    def read_fn(chunk):
        data = read_chunk(chunk, lm.npix, o.workers, bits)
        if getattr(lm.preprocess, "raw_flux", False):
            data = raw_spectra(data, chunk)  # the peers read apStar row 0 as stored
        if uses_phot:
            data.photometry = (phot.lookup(data.spec_id) if phot is not None
                               else np.full((len(data), 7), np.nan))
        return data

    path = stream_predict(chunks, read_fn, predict_fn, out, meta, manifest, o.progress,
                          restart=o.restart)
    log.info("wrote %s (%d chunk(s))", path, len(chunks))
    return path
