"""Realistic simulated apStar spectra from The Payne's emulator (or an analytic fallback).

Steps for each star (Olney et al. 2020 trained on raw apStar flux, so the simulation keeps
the raw flux scale and the apStar pixel layout):

1. Model flux on the 7214 ASPCAP pixels: The Payne's unnormalised emulator (Ting et
   al. 2019; :mod:`apogee_net.spectra.emulator`) for [Teff, log g, [Fe/H], [α/Fe]], or,
   without the emulator file, the analytic fallback of :func:`analytic_spectra` (clearly
   labelled, with a warning).
2. Placed on the 8575-pixel apStar grid at pixels 322:3242, 3648:6048, 6412:8306; every
   other pixel has no data (NaN, the DR17 convention).
3. Scaled so that the mean flux over those pixels equals the 2MASS H-band flux density of
   the star, F = 1.133e-10 erg/s/cm²/Å × 10^(−0.4 H) (Cohen, Wheaton & Megeath 2003, AJ 126,
   1090), in apStar units of 1e-17 erg/s/cm²/Å. Both real DR17 files in ../shared/data give
   1.11e7 × 10^(−0.4 H) for their median flux, within 2 % of this.
4. Gaussian noise with σ_i = √(F_i · F_med) / SNR (photon-noise-like), so that the median
   noiseless S/N per pixel equals the drawn SNR exactly, as the apStar header's SNR is the
   median S/N per pixel.

Star ``i`` of a table draws its SNR, H magnitude, sky position and noise from its own
generator ``numpy.random.default_rng([seed, i])``: the same seed gives the same numbers
whether the stars are simulated at once, in chunks, or resumed after an interruption.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apogee_net.options import SimulateOptions
from apogee_net.spectra.apstar import CDELT1, CRVAL1, NPIX, aspcap_pixels, write_apstar
from apogee_net.spectra.emulator import PayneEmulator, evaluate, find_emulator, load_emulator
from yso_labels.core.options import resolve_options

log = logging.getLogger(__name__)

#: 2MASS H-band isophotal flux density for H = 0, in 1e-17 erg/s/cm²/Å
#: (1.133e-13 W cm⁻² µm⁻¹; Cohen, Wheaton & Megeath 2003, Table 2).
H_ZERO_FLUX = 1.133e7
#: H magnitudes drawn when the table has no ``H`` column (APOGEE main survey: 7 < H < 12.2).
H_RANGE = (7.0, 12.2)
#: Label range of The Payne's unnormalised emulator (x_min, x_max of the npz file), used for
#: the analytic fallback as well: Teff (K), log g, [Fe/H], [α/Fe] (dex).
EMULATOR_RANGE = np.array([[3529.16, 0.3352, -0.9880, -0.5587],
                           [6983.40, 5.2178, 0.5184, 0.9079]])
ANALYTIC = "analytic-fallback"
FALLBACK_WARNING = ("No Payne emulator file given or found: simulating with the ANALYTIC "
                    "FALLBACK (continuum + synthetic absorption lines), not realistic spectra. "
                    "Fetch the emulator with scripts/fetch_payne_emulator.py and pass "
                    "--emulator NN_unnormalized_spectra.npz.")


class FallbackWarning(UserWarning):
    """Issued whenever spectra come from the analytic fallback instead of The Payne."""


@dataclass
class SimulatedSpectra:
    """Simulated spectra on the apStar grid: ``flux``/``error`` (n, 8575) float32 in
    1e-17 erg/s/cm²/Å (NaN where ``dead``), ``truth`` the noiseless flux (when kept),
    per-star ``snr``, ``h`` (mag), ``ra``/``dec`` (deg), the ``labels`` used (n, 4: Teff,
    log g, [Fe/H], [α/Fe]), ``clipped`` (labels moved into the emulator range) and ``model``."""

    flux: np.ndarray
    error: np.ndarray
    dead: np.ndarray
    snr: np.ndarray
    h: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    labels: np.ndarray
    clipped: np.ndarray
    model: str
    truth: np.ndarray | None = None


# --------------------------------------------------------------------------- model flux

def _line_list(seed: int = 20200515, n: int = 400) -> dict[str, np.ndarray]:
    """Fixed synthetic line list of the analytic fallback (same for every run)."""
    rng = np.random.default_rng(seed)
    lam = 10.0 ** (CRVAL1 + CDELT1 * aspcap_pixels())
    return {
        "center": rng.uniform(lam[0], lam[-1], n),
        "strength": 10.0 ** rng.uniform(-1.7, -0.3, n),   # central optical depth at 5000 K
        "t_power": rng.uniform(-3.0, 0.5, n),             # τ ∝ (Teff/5000)^t_power
        "g_power": rng.uniform(-0.25, 0.25, n),           # τ ∝ 10^(g_power (log g − 3))
        "alpha": (rng.random(n) < 0.3).astype(float),     # α-element lines follow [α/Fe]
    }


def analytic_spectra(labels: np.ndarray) -> np.ndarray:
    """Analytic FALLBACK model flux (n, 7214) on the ASPCAP pixels, arbitrary units.

    Continuum: Planck B_λ(Teff) (λ in the H band). Lines: 400 Gaussian lines (width from
    R = 22 500) with optical depth τ_k = a_k (Teff/5000)^p_k 10^([Fe/H] + α_k[α/Fe])
    10^(q_k(log g − 3)); flux = B_λ · exp(−Σ_k τ_k φ_k(λ)). Depths grow smoothly with
    [Fe/H] and, for most lines, towards lower Teff. Not a stellar atmosphere: only for
    demos and tests without the emulator file.
    """
    labels = np.atleast_2d(np.asarray(labels, dtype=np.float64))
    teff, logg, feh, alpha = labels.T
    lam = 10.0 ** (CRVAL1 + CDELT1 * aspcap_pixels())  # Å
    hc_k = 1.438777e8  # hc/k in Å·K
    planck = 1.0 / (lam[None, :] / 1.6e4) ** 5 / np.expm1(hc_k / (lam[None, :] * teff[:, None]))
    lines = _line_list()
    sigma = lines["center"] / 22500.0 / 2.355
    profile = np.exp(-0.5 * ((lam[None, :] - lines["center"][:, None]) / sigma[:, None]) ** 2)
    tau = (lines["strength"][None, :] * (teff[:, None] / 5000.0) ** lines["t_power"][None, :]
           * 10.0 ** (feh[:, None] + lines["alpha"][None, :] * alpha[:, None])
           * 10.0 ** (lines["g_power"][None, :] * (logg[:, None] - 3.0)))
    return planck * np.exp(-(tau @ profile))


def resolve_emulator(emulator: str | os.PathLike | PayneEmulator | None) -> PayneEmulator | None:
    """``PayneEmulator`` to use, or ``None`` for the analytic fallback (with a loud warning).

    ``None`` searches ``$YSO_PAYNE_DIR`` and the download cache; ``"analytic"`` asks for the
    fallback; a path must exist.
    """
    if isinstance(emulator, PayneEmulator):
        return emulator
    if emulator is not None and str(emulator) == "analytic":
        path = None
    else:
        path = find_emulator(emulator)
    if path is None:
        warnings.warn(FALLBACK_WARNING, FallbackWarning, stacklevel=3)
        log.warning(FALLBACK_WARNING)
        return None
    return load_emulator(path)


def model_name(emulator: PayneEmulator | None) -> str:
    return ANALYTIC if emulator is None else f"payne:{Path(emulator.path).name}"


def check_labels(labels: np.ndarray, ids: Sequence[str], emulator: PayneEmulator | None,
                 out_of_range: str = "error") -> tuple[np.ndarray, np.ndarray]:
    """Labels (n, 4) checked against the emulator's range; returns (labels, clipped).

    ``out_of_range="error"`` (default) raises ``ValueError`` naming the stars and labels out
    of range; ``"clip"`` moves them to the range edge, warns, and flags them;
    ``"extrapolate"`` keeps them (the emulator is a smooth network, so a spectrum a few
    hundred K beyond its grid is still a smooth function of the labels, though not a
    validated one), warns, and flags them.
    """
    if out_of_range not in ("error", "clip", "extrapolate"):
        raise ValueError("out_of_range must be 'error', 'clip' or 'extrapolate', "
                         f"got {out_of_range!r}")
    names = ("teff", "logg", "fe_h", "alpha_fe")
    lo, hi = (EMULATOR_RANGE if emulator is None else (emulator.x_min, emulator.x_max))
    bad_nan = ~np.isfinite(labels)
    if bad_nan.any():
        i, j = np.argwhere(bad_nan)[0]
        raise ValueError(f"{int(bad_nan.any(axis=1).sum())} star(s) with non-finite labels "
                         f"(first: {ids[i]} {names[j]} = {labels[i, j]})")
    outside = (labels < lo) | (labels > hi)
    clipped = outside.any(axis=1)
    if clipped.any():
        examples = "; ".join(f"{ids[i]} {names[j]} = {labels[i, j]:g} not in "
                             f"[{lo[j]:g}, {hi[j]:g}]" for i, j in np.argwhere(outside)[:5])
        msg = f"{int(clipped.sum())} star(s) outside the emulator's label range ({examples})"
        if out_of_range == "error":
            raise ValueError(msg + "; pass out_of_range='clip' (--out-of-range clip) to clip")
        if out_of_range == "extrapolate":
            warnings.warn(msg + "; extrapolated and flagged (LBLCLIP)", stacklevel=3)
        else:
            warnings.warn(msg + "; clipped to the range and flagged (LBLCLIP)", stacklevel=3)
            labels = np.clip(labels, lo, hi)
    return labels, clipped


# --------------------------------------------------------------------------- noise, layout

def _star_draws(seed: int, index: int, snr: tuple[float, float], h_range: tuple[float, float]):
    """SNR, H, RA, Dec and the noise generator of star ``index`` (own generator per star)."""
    rng = np.random.default_rng([int(seed), int(index)])
    lo, hi = snr
    snr_i = rng.uniform(lo, hi) if hi > lo else float(lo)
    h_i = rng.uniform(*h_range)
    ra = rng.uniform(0.0, 360.0)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0)))
    return snr_i, h_i, ra, dec, rng


def parse_snr(snr) -> tuple[float, float]:
    """``(lo, hi)`` from a number, a ``(lo, hi)`` pair or a ``"lo:hi"`` string; both > 0."""
    if isinstance(snr, str):
        parts = snr.split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"SNR range {snr!r}: expected 'lo:hi', e.g. 50:200") from None
    else:
        values = list(np.atleast_1d(np.asarray(snr, dtype=float)))
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not (0 < values[0] <= values[1] < np.inf):
        raise ValueError(f"SNR range {snr!r}: expected 0 < lo <= hi (finite)")
    return float(values[0]), float(values[1])


def place_on_apstar(model: np.ndarray) -> np.ndarray:
    """(n, 7214) ASPCAP-pixel arrays onto the (n, 8575) apStar grid, NaN elsewhere."""
    out = np.full((model.shape[0], NPIX), np.nan)
    out[:, aspcap_pixels()] = model
    return out


def labels_array(labels) -> tuple[np.ndarray, list[str]]:
    """(n, 4) [Teff, log g, [Fe/H], [α/Fe]] and the IDs from a Table/mapping or an array.

    A table needs ``teff logg fe_h``; ``alpha_fe`` or ``alpha_m`` (taken as [α/Fe]) is
    optional (0 when absent); ``apogee_id`` names the stars (row numbers otherwise).
    """
    if isinstance(labels, np.ndarray):
        arr = np.atleast_2d(labels).astype(float)
        if arr.shape[1] == 3:
            arr = np.column_stack([arr, np.zeros(len(arr))])
        if arr.shape[1] != 4:
            raise ValueError(f"labels array must be (n, 3) or (n, 4), got {arr.shape}")
        return arr, [f"row{i}" for i in range(len(arr))]
    cols = labels.colnames if hasattr(labels, "colnames") else list(labels.keys())
    missing = [c for c in ("teff", "logg", "fe_h") if c not in cols]
    if missing:
        raise ValueError(f"label table lacks column(s) {', '.join(missing)} (has {cols})")
    alpha_col = next((c for c in ("alpha_fe", "alpha_m") if c in cols), None)
    n = len(labels["teff"])
    alpha = np.asarray(labels[alpha_col], float) if alpha_col else np.zeros(n)
    arr = np.column_stack([np.asarray(labels[c], float) for c in ("teff", "logg", "fe_h")]
                          + [alpha])
    ids = ([str(x).strip() for x in labels["apogee_id"]] if "apogee_id" in cols
           else [f"row{i}" for i in range(n)])
    return arr, ids


def simulate_spectra(labels, emulator=None, snr=(50, 200), seed: int = 0,
                     h_mag: np.ndarray | None = None, out_of_range: str = "error",
                     keep_truth: bool = False,
                     star_index: np.ndarray | None = None) -> SimulatedSpectra:
    """Simulate apStar-grid spectra in memory for ``labels`` (see :func:`labels_array`).

    ``emulator``: a path, a loaded :class:`~apogee_net.spectra.emulator.PayneEmulator`,
    ``"analytic"`` or ``None`` (search, else the analytic fallback). ``snr``: ``(lo, hi)``
    uniform range, a number, or ``"lo:hi"``. ``h_mag``: H magnitudes (n,) or drawn uniform in
    :data:`H_RANGE`. ``star_index``: (n,) index of each star in its table (default 0..n-1;
    it seeds the per-star generators, so chunks reproduce a whole-table run).
    """
    emu = resolve_emulator(emulator)
    arr, ids = labels_array(labels)
    arr, clipped = check_labels(arr, ids, emu, out_of_range)
    return _simulate(arr, clipped, emu, parse_snr(snr), seed, h_mag, star_index, keep_truth)


def _simulate(arr: np.ndarray, clipped: np.ndarray, emu: PayneEmulator | None,
              lo_hi: tuple[float, float], seed: int, h_mag, star_index,
              keep_truth: bool = False) -> SimulatedSpectra:
    n = len(arr)
    model = analytic_spectra(arr) if emu is None else evaluate(emu, arr)
    truth = place_on_apstar(model)
    dead = ~np.isfinite(truth)
    flux = np.empty((n, NPIX), np.float32)
    error = np.empty((n, NPIX), np.float32)
    snrs, hs, ras, decs = (np.empty(n) for _ in range(4))
    live = ~dead[0]
    star_index = np.arange(n) if star_index is None else np.asarray(star_index)
    for i in range(n):
        snrs[i], hs[i], ras[i], decs[i], rng = _star_draws(seed, star_index[i], lo_hi, H_RANGE)
        if h_mag is not None:
            hs[i] = float(np.asarray(h_mag)[i])
        truth[i] *= H_ZERO_FLUX * 10.0 ** (-0.4 * hs[i]) / np.mean(truth[i, live])
        f_med = np.median(truth[i, live])
        sigma = np.sqrt(truth[i] * f_med) / snrs[i]
        flux[i] = truth[i] + sigma * rng.standard_normal(NPIX)
        error[i] = sigma
    return SimulatedSpectra(flux=flux, error=error, dead=dead, snr=snrs, h=hs, ra=ras, dec=decs,
                            labels=arr, clipped=clipped, model=model_name(emu),
                            truth=truth.astype(np.float32) if keep_truth else None)


def header_values(sim: SimulatedSpectra, i: int, apogee_id: str,
                  extra: Mapping | None = None) -> dict:
    """Primary-header keywords of simulated star ``i`` (the reader's keywords + truth)."""
    teff, logg, feh, alpha = sim.labels[i]
    values = {"OBJID": apogee_id, "NVISITS": 1, "SNR": float(sim.snr[i]),
              "RA": float(sim.ra[i]), "DEC": float(sim.dec[i]),
              "J": -9999.99, "H": float(sim.h[i]), "K": -9999.99, "TELESCOP": "sim",
              "SIMMODEL": sim.model, "SIMTEFF": float(teff), "SIMLOGG": float(logg),
              "SIMFEH": float(feh), "SIMALPHA": float(alpha), "LBLCLIP": bool(sim.clipped[i])}
    values.update(extra or {})
    return values


# --------------------------------------------------------------------------- apStar files

def apstar_name(apogee_id: str) -> str:
    """File name of a simulated star: ``apStar-sim-<ID>.fits``."""
    if not apogee_id or "/" in apogee_id or os.sep in apogee_id:
        raise ValueError(f"APOGEE ID {apogee_id!r} cannot name a file")
    return f"apStar-sim-{apogee_id}.fits"


def simulate_apstar(labels_table, out_dir: str | os.PathLike,
                    options: SimulateOptions | None = None, **kwargs) -> dict:
    """Write ``apStar-sim-<ID>.fits`` for every star of ``labels_table`` into ``out_dir``.

    ``labels_table``: a path or Table with ``apogee_id teff logg fe_h`` and optional
    ``alpha_m``/``alpha_fe``, ``H``, ``ra``, ``dec``. Existing files are kept (a rerun
    resumes) unless ``overwrite``. The options are
    :class:`apogee_net.options.SimulateOptions`, given as ``options`` or as keyword
    arguments of the same names. Also writes ``simulated_labels.csv`` (labels used, SNR, H,
    file, LBLCLIP flag, model) with provenance. Returns a report dict. ``augment``:
    ``"none"`` (default), ``"default"`` or a systematics file: real-instrument systematics
    drawn onto each spectrum (:mod:`apogee_net.spectra.augment`; star ``i`` draws from
    ``numpy.random.default_rng([seed, i, 1])``), their pixel flags written to HDU3 (flagged
    pixels keep their data, as in real files; the ingest's pixel mask decides).
    """
    from astropy.io import fits
    from astropy.table import Table
    from tqdm import tqdm

    from apogee_net.spectra.augment import resolve_augment
    from yso_labels.core.tables import duplicated, provenance, read_table, write_table

    o = resolve_options(SimulateOptions, options, kwargs)
    lo_hi = parse_snr(o.snr)
    if o.convention not in ("dr17", "dr13"):
        raise ValueError(f"convention must be 'dr17' or 'dr13', got {o.convention!r}")
    table = labels_table if isinstance(labels_table, Table) else read_table(
        labels_table, required=("apogee_id", "teff", "logg", "fe_h"), what="label table")
    arr, ids = labels_array(table)
    dups = duplicated(ids)
    if dups:
        raise ValueError(f"label table: duplicated apogee_id {dups[:5]} (file names collide)")
    emu = resolve_emulator(o.emulator)
    check_labels(arr, ids, emu, o.out_of_range)  # fail before writing anything
    augmenter = resolve_augment(o.augment, pixmask_bits=())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recorded = {"emulator": None if emu is None else emu.path, "snr": list(lo_hi),
                "seed": o.seed, "convention": o.convention, "out_of_range": o.out_of_range,
                "augment": "none" if augmenter is None
                else augmenter.describe()["systematics"]}
    meta = provenance("simulate", recorded, model=model_name(emu))
    paths = [out_dir / apstar_name(i) for i in ids]
    todo = np.array([o.overwrite or not p.exists() for p in paths])
    cols = table.colnames
    for start in tqdm(range(0, len(ids), o.chunk), disable=not o.progress, desc="simulate",
                      unit="chunk"):
        idx = np.flatnonzero(todo[start:start + o.chunk]) + start
        if idx.size == 0:
            continue
        labels, clipped = check_labels(arr[idx], [ids[i] for i in idx], emu, o.out_of_range)
        h_mag = np.asarray(table["H"], float)[idx] if "H" in cols else None
        sim = _simulate(labels, clipped, emu, lo_hi, o.seed, h_mag, idx)
        for k, i in enumerate(idx):
            if "ra" in cols and "dec" in cols:
                sim.ra[k], sim.dec[k] = float(table["ra"][i]), float(table["dec"][i])
            flux, error, mask = sim.flux[k], sim.error[k], None
            if augmenter is not None:
                flux, error, mask = augmenter.apply_one(
                    flux, error, np.random.default_rng([int(o.seed), int(i), 1]))
            write_apstar(paths[i], flux, error, mask=mask,
                         header=header_values(sim, k, ids[i], meta), convention=o.convention)
    rows = []
    for i, path in enumerate(paths):
        hdr = fits.getheader(path)
        rows.append((ids[i], hdr["SIMTEFF"], hdr["SIMLOGG"], hdr["SIMFEH"], hdr["SIMALPHA"],
                     hdr["SNR"], hdr["H"], hdr["RA"], hdr["DEC"], bool(hdr["LBLCLIP"]),
                     hdr["SIMMODEL"], path.name))
    summary = Table(rows=rows, names=("apogee_id", "teff", "logg", "fe_h", "alpha_fe", "snr",
                                      "H", "ra", "dec", "clipped", "model", "file"))
    write_table(summary, out_dir / "simulated_labels.csv", meta)
    report = {"out_dir": str(out_dir), "n_stars": len(ids), "n_written": int(todo.sum()),
              "n_kept": int((~todo).sum()), "model": model_name(emu),
              "n_clipped": int(np.sum(summary["clipped"])),
              "summary": str(out_dir / "simulated_labels.csv")}
    log.info("simulate: %s", report)
    return report
