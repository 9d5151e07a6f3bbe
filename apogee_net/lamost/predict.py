"""``apogee-net lamost predict``: MC-dropout catalogue of the LAMOST Bayesian CNN.

Inputs are LAMOST stores (``.h5``) or LAMOST FITS files/directories (prepared on the fly as
in :mod:`apogee_net.lamost.ingest`). Chunking, resumable parts and the final atomic write
are the shared machinery of :func:`apogee_net.inference.streaming.stream_predict`.

For every spectrum: T MC-dropout passes (100 by default, Li et al.), the mean as the label,
and σ = √(model variance + predictive variance) (:mod:`apogee_net.lamost.mc`, Leung & Bovy
2019).
Columns: ``spec_id`` (the LAMOST OBSID: the store's key), ``ra, dec``, the 14
labels (Teff in K, the rest in dex), ``<label>_err`` (total σ), ``<label>_err_model``,
``<label>_err_pred``, ``<label>_flag`` (True: outside Li et al.'s recommended range, Table
2 and §3.1–3.3), ``snr`` (SNR_g), ``ood_score`` (:mod:`apogee_net.network.ood`, one plain
pass with dropout off; NaN for a model without OOD statistics) and ``flags`` (bits of
:data:`FLAGS`: among them OUT_OF_RANGE, a label beyond the training labels' range by more
than 2 dev scatters, :func:`apogee_net.network.ood.range_tolerance`;
UNPHYSICAL, outside the physically possible range; OOD, ``ood_score`` > 1;
CLASS_DISAGREE, Teff outside the interval consistent with the LAMOST pipeline's own spectral
class, ``class_teff`` that class's dwarf Teff, :mod:`apogee_net.lamost.sptype`;
LUM_DISAGREE, log g outside ``lum_logg_lo``–``lum_logg_hi``, the interval allowed by the Gaia
G and parallax of a photometry table given with ``photometry``,
:mod:`apogee_net.lamost.lumcheck`). Pixels outside
the training spectra's coverage are treated as having no data, as for APOGEE Net.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

from apogee_net.inference.chunks import SpectraChunk, plan_chunks, read_chunk
from apogee_net.inference.predict import FLAGS as APOGEE_FLAGS
from apogee_net.inference.predict import (
    add_provenance_columns,
    load_model,
    quality_flags,
    range_header,
)
from apogee_net.inference.streaming import input_list, parts_path, stream_predict
from apogee_net.inference.uncertainty import check_realizations
from apogee_net.lamost import lumcheck, sptype
from apogee_net.lamost.labels import recommended_flags
from apogee_net.lamost.mc import DEFAULT_PASSES, default_max_rows, mc_predict
from apogee_net.lamost.model import BayesianCNN
from apogee_net.network import ood
from apogee_net.options import LamostPredictOptions
from apogee_net.spectra.pixels import valid_pixels
from yso_labels.core.guards import check_ints, check_outputs, fingerprint
from yso_labels.core.options import resolve_options
from yso_labels.core.runtime import autocast, compiled, resolve_device
from yso_labels.core.tables import provenance

log = logging.getLogger(__name__)

__all__ = ["FLAGS", "predict_lamost", "predict_arrays", "read_lamost_chunk"]

#: Flag bits: the APOGEE catalogue's, plus S/N_g below Li et al.'s training cut of 10.
FLAGS = {**APOGEE_FLAGS,
         "SNR_BELOW_10": (128, "SNR_g < 10 (Li et al. trained on S/N_g > 10)"),
         "CLASS_DISAGREE": (1024, "Teff outside the interval consistent with the LAMOST "
                            "pipeline's own spectral class (header SUBCLASS; "
                            "apogee_net.lamost.sptype); OUT_OF_RANGE is also set when that "
                            "whole interval lies outside the training Teff range"),
         "LUM_DISAGREE": (2048, "log g outside the interval allowed by the star's Gaia G and "
                          "parallax (--photometry; apogee_net.lamost.lumcheck)")}
if len({v[0] for v in FLAGS.values()}) != len(FLAGS):  # a bit must never mean two things
    raise RuntimeError("LAMOST flag bits collide with the APOGEE catalogue's")


def read_lamost_chunk(files: list[str], npix: int) -> SpectraChunk:
    """Prepare LAMOST FITS files on the fly; unusable files become rows with ``readable``
    False (their reason is logged)."""
    from apogee_net.lamost.ingest import prepare_file

    out = SpectraChunk.empty(len(files), npix, telescope="lamost", files=files)
    out.sp_class, out.subclass = [""] * len(files), [""] * len(files)
    for i, path in enumerate(files):
        _, row, reason = prepare_file(path)
        if row is None:
            log.warning("lamost predict: %s", reason)
            out.spec_id[i] = Path(path).name.split(".")[0]
            continue
        flux, error, _, spec_id, snr, ra, dec, cls, subclass = row
        out.put(i, path, flux, error, spec_id, ra, dec, snr)
        out.sp_class[i], out.subclass[i] = cls, subclass
    return out


def predict_arrays(lm, data: SpectraChunk, passes: int = DEFAULT_PASSES, seed: int = 0,
                   offset: int = 0, batch_size: int = 128, class_check: bool = True,
                   photometry: lumcheck.Photometry | Table | None = None) -> Table:
    """Catalogue rows for the spectra ``data`` (:func:`read_lamost_chunk`, or
    :func:`apogee_net.inference.chunks.read_chunk` for a store). The dropout masks of a chunk
    come from a torch generator seeded by (``seed``, ``offset``), so a resumed run repeats
    the same numbers. ``class_check``: compare Teff with the header class
    (:func:`class_flags`); ``photometry``: a table of Gaia G and parallaxes
    (:func:`apogee_net.lamost.lumcheck.read_photometry`) to check log g against."""
    flux, error = ood.restrict_to_coverage(data.flux, data.error,
                                           ood.coverage(lm.preprocess.flux_scaler))
    n, k = len(flux), len(lm.label_names)
    valid = valid_pixels(flux, error)
    nvalid = valid.sum(axis=1)
    usable = np.asarray(data.readable, bool) & (nvalid > 0)
    mean = np.full((n, k), np.nan)
    var_model = np.full((n, k), np.nan)
    var_pred = np.full((n, k), np.nan)
    device = next(lm.model.parameters()).device
    torch.manual_seed(int(np.random.SeedSequence([seed, offset]).generate_state(1)[0]))
    per_group = max(1, batch_size // max(passes, 1))
    idx = np.flatnonzero(usable)
    for start in range(0, idx.size, per_group):
        sel = idx[start:start + per_group]
        x = lm.preprocess.inputs(torch.from_numpy(flux[sel]).to(device),
                                 torch.from_numpy(error[sel]).to(device))
        scaler = lm.preprocess.label_scaler
        res = mc_predict(lm.model, x, passes, scaler.mean, scaler.std, max_rows=batch_size)
        mean[sel], var_model[sel], var_pred[sel] = res.mean, res.var_model, res.var_pred
    score = np.full(n, np.nan)
    stats = lm.checkpoint["meta"].get("ood")
    if stats and idx.size:  # one plain pass (dropout off): the OOD terms
        _, score[idx] = ood.score_spectra(lm.model, lm.preprocess, stats, flux[idx],
                                          error[idx], batch_size)
    snr = np.asarray(data.snr, float)
    flags = quality_flags(snr, nvalid, usable, mean, lm.label_range, lm.npix,
                          label_names=lm.label_names, ood_score=score,
                          range_tol=ood.range_tolerance(stats, k))
    flags[~(snr >= 10.0)] |= FLAGS["SNR_BELOW_10"][0]
    class_teff = np.full(n, np.nan)
    if class_check:
        class_teff = class_flags(flags, mean, data, lm, ood.range_tolerance(stats, k))
    lum_lo, lum_hi = np.full(n, np.nan), np.full(n, np.nan)
    if photometry is not None and {"teff", "logg"} <= set(lm.label_names):
        lum_lo, lum_hi, disagree = lumcheck.lum_check(
            mean[:, lm.label_names.index("teff")], mean[:, lm.label_names.index("logg")],
            data.ra, data.dec, photometry)
        flags[disagree] |= FLAGS["LUM_DISAGREE"][0]
    outside_rec = recommended_flags(mean, lm.label_names)
    table = Table()
    table["spec_id"] = np.asarray(data.spec_id, dtype=str)
    table["ra"], table["dec"] = np.asarray(data.ra, float), np.asarray(data.dec, float)
    sigma = np.sqrt(var_model + var_pred)
    for j, name in enumerate(lm.label_names):
        table[name] = mean[:, j]
        table[f"{name}_err"] = sigma[:, j]
        table[f"{name}_err_model"] = np.sqrt(var_model[:, j])
        table[f"{name}_err_pred"] = np.sqrt(var_pred[:, j])
        table[f"{name}_flag"] = outside_rec[:, j] & usable
    table["snr"] = snr
    table["ood_score"] = score
    table["class_teff"] = class_teff
    table["lum_logg_lo"], table["lum_logg_hi"] = lum_lo, lum_hi
    table["flags"] = flags
    add_provenance_columns(table, data)
    return table


def class_flags(flags: np.ndarray, mean: np.ndarray, data: SpectraChunk, lm,
                range_tol) -> np.ndarray:
    """Set CLASS_DISAGREE and OUT_OF_RANGE in ``flags`` (in place) from the header class of
    ``data`` (:func:`apogee_net.lamost.sptype.class_check`; ``range_tol`` (k,) the
    OUT_OF_RANGE tolerance); returns ``class_teff`` (NaN without a class). Skipped, with a
    log line, when the input carries no class (a store written before it was kept) or the
    model has no Teff label."""
    n = len(mean)
    if data.subclass is None or "teff" not in lm.label_names:
        log.info("lamost predict: %s; spectral-class check skipped for %d row(s)",
                 "the input has no header class (store written before class/subclass were "
                 "kept: re-ingest to get the check)" if data.subclass is None
                 else "the model has no teff label", n)
        return np.full(n, np.nan)
    j = lm.label_names.index("teff")
    lo, hi = np.asarray(lm.label_range, float)
    class_teff, disagree, outside = sptype.class_check(
        mean[:, j], data.subclass, data.sp_class, train_range=(lo[j], hi[j]),
        tol=float(np.asarray(range_tol, float)[j]))
    flags[disagree] |= FLAGS["CLASS_DISAGREE"][0]
    flags[outside] |= FLAGS["OUT_OF_RANGE"][0]
    return class_teff


def predict_lamost(model, inputs, out, options: LamostPredictOptions | None = None,
                   **kwargs) -> Path:
    """MC-dropout catalogue ``out`` (FITS) for LAMOST ``inputs`` (stores, FITS files or
    directories) with the checkpoint ``model`` written by :func:`~.training.train_lamost`.

    The options are :class:`apogee_net.options.LamostPredictOptions`, given as ``options``
    or as keyword arguments of the same names. ``passes``: MC-dropout passes (Li et al.:
    100); ``batch_size``: rows per forward call (spectra × passes; default 128 on CPU, 8192
    on a GPU); ``chunk_size``: spectra per resumable part; ``amp``: forward passes in
    ``none`` (float32), ``bf16`` or ``fp16`` autocast; ``compile``: ``torch.compile`` the
    network; ``class_check``: compare Teff with the LAMOST header class (column
    ``class_teff``, flag CLASS_DISAGREE, :mod:`apogee_net.lamost.sptype`); ``photometry``:
    a table of Gaia G and parallaxes by position (columns ``ra, dec, G, parallax,
    parallax_error``, optional ``a_g``; e.g. from ``yso-labels fetch-photometry``) to check
    log g against the luminosity (columns ``lum_logg_lo/hi``, flag LUM_DISAGREE,
    :mod:`apogee_net.lamost.lumcheck`).
    """
    o = resolve_options(LamostPredictOptions, options, kwargs)
    check_ints(passes=(o.passes, 1), batch_size=(o.batch_size, 1),
               chunk_size=(o.chunk_size, 1), seed=(o.seed, 0))
    extra = [o.photometry] if o.photometry else []
    check_outputs([out, parts_path(out)], [model, *input_list(inputs), *extra])
    phot = lumcheck.Photometry.of(lumcheck.read_photometry(o.photometry)) \
        if o.photometry else None
    dev = resolve_device(o.device)
    autocast(dev, o.amp)  # checks the name before any work
    lm = load_model(model, device=dev, expect=BayesianCNN)
    lm.model = compiled(lm.model, o.compile)
    check_realizations(o.passes, lm.npix, dev, name="passes")
    if lm.checkpoint["meta"].get("model_kind") != "lamost-bcnn":
        raise ValueError(f"model checkpoint {model}: not a LAMOST Bayesian CNN (train it "
                         "with `apogee-net lamost train`)")
    batch_size = o.batch_size or default_max_rows(dev)
    chunks = plan_chunks(inputs, o.chunk_size)

    def read_fn(chunk):
        if "store" in chunk:
            return read_chunk(chunk, lm.npix)
        return read_lamost_chunk(chunk["files"], lm.npix)

    recorded = {"passes": o.passes, "seed": o.seed, "batch_size": batch_size,
                "chunk_size": o.chunk_size, "device": str(dev), "amp": o.amp,
                "compile": o.compile, "class_check": o.class_check,
                "photometry": o.photometry}
    manifest = {"model_sha256": lm.sha256, "passes": o.passes, "seed": o.seed, "amp": o.amp,
                "compile": o.compile, "class_check": o.class_check,
                "photometry_sha256": fingerprint([o.photometry]) if o.photometry else None,
                "batch_size": batch_size, "chunk_size": o.chunk_size, "device": dev.type}
    meta = provenance("apogee-net lamost predict", recorded, MODEL=str(lm.path),
                      MODELSHA=lm.sha256[:16], MODELVER=lm.checkpoint.get("version", ""),
                      LABELS=",".join(lm.label_names), PASSES=o.passes, AMP=o.amp,
                      FLAGBITS="; ".join(f"{v[0]}={k}" for k, v in FLAGS.items()),
                      METHOD="Li et al. MC dropout: mean of T passes; err = sqrt(var over "
                      "passes (ddof 0) + exp(mean log_var)); _flag = outside Table 2 range",
                      IDCOL="spec_id: the LAMOST OBSID (store key)",
                      OODTHR="ood_score > 1 (dev 99th percentile)"
                      if lm.checkpoint["meta"].get("ood") else "no OOD statistics in model",
                      RANGETOL=range_header(lm),
                      CLASSCHK=(sptype.RULE if o.class_check else "off (--no-class-check)"),
                      CLASSTAB="dwarf: Pecaut & Mamajek 2013 ApJS 208 9 Tab 5 (Mamajek "
                      "2017.10.19 A0V-M5V); giant: Alonso et al. 1999 A&AS 140 261 Tab 1",
                      LUMCHK=(f"{lumcheck.RULE}; photometry {o.photometry}" if o.photometry
                              else "off (no --photometry)"))

    def predict_fn(data, offset):
        with autocast(dev, o.amp):
            return predict_arrays(lm, data, o.passes, o.seed, offset, batch_size,
                                  class_check=o.class_check, photometry=phot)

    path = stream_predict(chunks, read_fn, predict_fn, out, meta, manifest, o.progress,
                          restart=o.restart)
    log.info("wrote %s (%d chunk(s))", path, len(chunks))
    return path
