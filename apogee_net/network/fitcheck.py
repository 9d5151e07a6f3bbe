"""Independent-fit consistency check of the network's labels (catalogue flag FIT_DISAGREE).

After the network has labelled an apStar spectrum, The Payne's unnormalised emulator (Ting
et al. 2019, ApJ 879, 69, §2) times a quadratic continuum per chip is fitted to the same
pixels (:func:`apogee_net.spectra.paynefit.fit_payne`: Teff, log g, [Fe/H], [α/Fe] bounded
to the emulator's range, nine continuum coefficients free), from ONE start at the network's
labels ([α/Fe] from 0), with at most :data:`MAX_NFEV` model evaluations. The fit's Teff (K),
log g (dex) and [Fe/H] (dex) go to the catalogue columns ``fit_teff``, ``fit_logg``,
``fit_fe_h``; a row gets FIT_DISAGREE when |network − fit| of any of these labels exceeds
its threshold.

Why: the network can return a confident, in-range label that the spectrum does not
support (issue 12: the real DR17 dwarf 2M19485057+5005279 at log g 4.91 ± 0.05 where a fit
gives 4.44), and neither the range check nor the out-of-distribution score
(:mod:`apogee_net.network.ood`) catches it. The fit is a second, independent reading of
the spectrum with the physics the training spectra came from; the per-chip quadratic
absorbs the instrument response and flux calibration (the same form as the augmentation's
response draws, :mod:`apogee_net.spectra.augment`).

Thresholds: fitted at the end of training on the model's dev split (the augmented dev
spectra, plain network labels, :data:`MAX_FIT` at most), like the OOD threshold: each
label's |network − fit| is divided by its :data:`QUANTILE` quantile ``s_j``, and the maximum
over the labels by the same quantile ``t`` of that maximum, so that about 1 − QUANTILE = 1 %
of dev spectra are flagged; the per-label threshold is ``s_j · t`` (physical units),
stored in the model's ``meta["fit_check"]``. Dev spectra are emulator spectra, which the
fit recovers to within their noise, so the thresholds measure the network's own scatter.

No check (columns NaN, no flag, the catalogue header ``FITCHECK`` says why) for: a model
without these statistics (trained before, imported published models, APOGEE Net II), no
emulator file, ``fit_check=False``, spectra not on the apStar grid, and rows whose network
labels lie outside the emulator's label range (there the fit would start from a clipped
label, and the emulator was never trained).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from apogee_net.network import ood
from apogee_net.network.model import Preprocess
from apogee_net.spectra.apstar import NPIX, aspcap_pixels
from apogee_net.spectra.emulator import PayneEmulator

log = logging.getLogger(__name__)

#: Labels compared (the network's names; the emulator's first three labels, same order).
COMPARED = ("teff", "logg", "fe_h")
#: Catalogue columns of the fit's labels.
FIT_COLUMNS = tuple(f"fit_{name}" for name in COMPARED)
#: Dev quantile that sets the thresholds (1 % of dev spectra flagged).
QUANTILE = 0.99
#: At most this many dev spectra are fitted for the thresholds.
MAX_FIT = 2000
#: Model evaluations per fit (one start; fits from the network's labels converge in 4–7),
#: and the convergence tolerances of :func:`apogee_net.spectra.paynefit.fit_payne`: steps
#: below 1e-4 of the emulator's label range (0.35 K in Teff, 0.0005 dex in log g) or a χ²
#: change below 1e-6 end the fit (far below any threshold).
MAX_NFEV, XTOL, FTOL = 30, 1e-4, 1e-6
#: [α/Fe] (dex) the fit starts from when the network does not predict it.
ALPHA_START = 0.0


def emulator_sha256(path) -> str:
    """SHA-256 of the emulator file (records which emulator set the thresholds)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fit_from_labels(emu: PayneEmulator, flux, error, labels, label_names) -> np.ndarray:
    """Fit labels (n, 3: Teff K, log g dex, [Fe/H] dex; :data:`COMPARED` order) of apStar
    spectra ``flux``, ``error`` (n, 8575; NaN = no data), each fit started at its row of
    ``labels`` (n, k; named ``label_names``). NaN rows: labels not finite or outside the
    emulator's range, or fewer than 20 usable pixels."""
    from apogee_net.spectra.paynefit import fit_payne
    from apogee_net.spectra.systematics import chip_coordinates

    flux, error = np.asarray(flux), np.asarray(error)
    if flux.shape[1] != NPIX:
        raise ValueError(f"fit check: spectra have {flux.shape[1]} pixels, not the apStar "
                         f"grid's {NPIX}")
    names = list(label_names)
    labels = np.asarray(labels, float)
    alpha = labels[:, names.index("alpha_fe")] if "alpha_fe" in names \
        else np.full(len(labels), ALPHA_START)
    start = np.column_stack([labels[:, names.index(c)] for c in COMPARED] + [alpha])
    pix = aspcap_pixels()
    chip_all, x_all = chip_coordinates()
    chip, x = chip_all[pix], x_all[pix]
    out = np.full((len(flux), len(COMPARED)), np.nan)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(start).all(axis=1) & emu.in_range(start)
    for i in np.flatnonzero(ok):
        f, e = flux[i, pix].astype(float), error[i, pix].astype(float)
        good = np.isfinite(f) & np.isfinite(e) & (e > 0)
        if good.sum() < 20:
            continue
        fit = fit_payne(emu, f, e, good, chip, x, starts=start[i], max_nfev=MAX_NFEV,
                        xtol=XTOL, ftol=FTOL)
        out[i] = fit.labels[:len(COMPARED)]
    return out


def differences(labels, label_names, fit: np.ndarray) -> np.ndarray:
    """network − fit (n, 3; :data:`COMPARED` order, physical units)."""
    names = list(label_names)
    return np.column_stack([np.asarray(labels, float)[:, names.index(c)] for c in COMPARED]) \
        - np.asarray(fit, float)


def fit_thresholds(diff: np.ndarray, quantile: float = QUANTILE) -> dict:
    """Per-label thresholds (module docstring) from dev differences ``diff`` (n, 3; rows
    with NaN, i.e. no fit, left out)."""
    d = np.abs(np.asarray(diff, float))
    d = d[np.isfinite(d).all(axis=1)]
    if len(d) < 10:
        raise ValueError(f"fit check: {len(d)} dev spectra with a fit, need at least 10")
    scales = np.maximum(np.quantile(d, quantile, axis=0), 1e-12)
    t = float(np.quantile((d / scales).max(axis=1), quantile))
    thresholds = scales * t
    return {"labels": list(COMPARED), "thresholds": thresholds.tolist(),
            "scales": scales.tolist(), "threshold": t, "quantile": quantile,
            "n_dev": int(len(d)),
            "dev_flagged": float(np.mean((d > thresholds).any(axis=1))),
            "dev_median_abs": np.median(d, axis=0).tolist()}


def disagree(diff: np.ndarray, stats: dict) -> np.ndarray:
    """Rows (n,) where |network − fit| exceeds the threshold of any label (NaN: False)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(np.asarray(diff, float))
                > np.asarray(stats["thresholds"], float)).any(axis=1)


@dataclass
class FitChecker:
    """An emulator and a model's fit-check statistics, ready to check catalogue rows."""

    emulator: PayneEmulator
    stats: dict

    def __call__(self, flux, error, labels, label_names) -> tuple[np.ndarray, np.ndarray]:
        """Fit labels (n, 3) and the FIT_DISAGREE rows (n,) of spectra and their labels."""
        fit = fit_from_labels(self.emulator, flux, error, labels, label_names)
        return fit, disagree(differences(labels, label_names, fit), self.stats)

    def header(self) -> str:
        """Catalogue header text (``FITCHECK``)."""
        return ("Payne fit (Ting+2019) x quadratic per chip from the network labels; "
                "FIT_DISAGREE if |label - fit| > " + ", ".join(
                    f"{n} {t:.3g}" for n, t in zip(COMPARED, self.stats["thresholds"],
                                                   strict=True))
                + f" (dev {100 * self.stats['quantile']:g}%); emulator "
                + Path(self.emulator.path).name)


def resolve_checker(meta: dict, enabled: bool = True, emulator=None,
                    label_names=(), npix: int = NPIX) -> tuple[FitChecker | None, str]:
    """The checker of a model (``meta``: the checkpoint's) and the header text; ``None``
    with the reason when the check does not run. ``emulator``: path of The Payne's
    unnormalised emulator (default: the one recorded in the model if it still exists,
    else ``$YSO_PAYNE_DIR`` or the download cache)."""
    from apogee_net.spectra.emulator import find_emulator, load_emulator

    stats = meta.get("fit_check")
    if not enabled:
        return None, "did not run: switched off (--no-fit-check)"
    if not stats:
        return None, "did not run: the model has no fit-check statistics"
    if npix != NPIX or not set(COMPARED) <= set(label_names):
        return None, "did not run: not an apStar-grid model with teff, logg, fe_h"
    path = find_emulator(emulator if emulator is not None else recorded_emulator(meta))
    if path is None:
        return None, "did not run: no Payne emulator file (pass --emulator)"
    emu = load_emulator(path)
    if stats.get("emulator_sha256") and emulator_sha256(path) != stats["emulator_sha256"]:
        log.warning("fit check: %s is not the emulator the thresholds were fitted with (%s)",
                    path, stats.get("emulator"))
    checker = FitChecker(emu, stats)
    return checker, checker.header()


def recorded_emulator(meta: dict) -> str | None:
    """The emulator path a model's fit-check statistics were fitted with, if it exists."""
    path = (meta.get("fit_check") or {}).get("emulator")
    return path if path and Path(path).exists() else None


def attach_fit_check(path, model: nn.Module, prep: Preprocess, dev_set, emulator=None,
                     batch_size: int = 64, seed: int = 0) -> dict:
    """Fit the thresholds of ``model`` (holding the weights saved in ``path``) on
    ``dev_set`` (a seeded subset of at most :data:`MAX_FIT`; items with ``flux`` and
    ``error``) and store them in the checkpoint ``path`` (``meta["fit_check"]``, rewritten
    atomically). ``emulator``: path (default: ``$YSO_PAYNE_DIR`` or the download cache);
    without one, without dev spectra, or with fewer than 10 dev spectra inside the
    emulator's range, the checkpoint holds no fit-check statistics (any it held, e.g.
    those of the weights an adaptation started from, are removed): the check will not
    run."""
    from torch.utils.data import DataLoader, Subset

    from apogee_net.spectra.emulator import find_emulator, load_emulator
    from yso_labels.core.checkpoint import read_checkpoint, save_checkpoint
    from yso_labels.core.training import collate

    ckpt = read_checkpoint(path)

    def nothing(reason: str) -> dict:
        log.warning("%s: %s gets no fit-check statistics", reason, path)
        if "fit_check" in ckpt["meta"]:
            save_checkpoint(path, model, ckpt["arch_kwargs"],
                            {k: v for k, v in ckpt["meta"].items() if k != "fit_check"},
                            ckpt.get("training"))
        return {}

    emu_path = find_emulator(emulator)
    if emu_path is None:
        return nothing("no Payne emulator file (pass --emulator)")
    if dev_set is None or len(dev_set) == 0:
        return nothing("no dev spectra")
    emu = load_emulator(emu_path)
    names = ckpt["meta"]["label_names"]
    pick = np.sort(np.random.default_rng(seed).permutation(len(dev_set))[:MAX_FIT])
    loader = DataLoader(Subset(dev_set, pick.tolist()), batch_size=batch_size,
                        shuffle=False, collate_fn=collate)
    covered = ood.coverage(prep.flux_scaler)
    diffs = []
    for batch in loader:
        flux, error = ood.restrict_to_coverage(np.asarray(batch["flux"]),
                                               np.asarray(batch["error"]), covered)
        labels, _ = ood.score_spectra(model, prep, None, flux, error, batch_size)
        fit = fit_from_labels(emu, flux, error, labels, names)
        diffs.append(differences(labels, names, fit))
    try:
        stats = fit_thresholds(np.concatenate(diffs))
    except ValueError as exc:
        return nothing(str(exc))
    if stats["n_dev"] < 100:
        log.warning("fit check: thresholds from %d dev spectra are about the largest dev "
                    "differences, not a 1 %% tail", stats["n_dev"])
    stats.update(emulator=str(emu_path), emulator_sha256=emulator_sha256(emu_path),
                 n_tried=int(len(pick)), max_nfev=MAX_NFEV, xtol=XTOL, ftol=FTOL,
                 method="Payne emulator (Ting et al. 2019) x quadratic per chip, one start "
                 "at the network's labels; per-label |network - fit| / dev quantile, max / "
                 "dev quantile")
    log.info("fit check fitted on %d dev spectra (%d with a fit): thresholds %s, %.2f %% of "
             "dev flagged", len(pick), stats["n_dev"],
             dict(zip(COMPARED, np.round(stats["thresholds"], 4), strict=True)),
             100 * stats["dev_flagged"])
    save_checkpoint(path, model, ckpt["arch_kwargs"], {**ckpt["meta"], "fit_check": stats},
                    ckpt.get("training"))
    return stats
