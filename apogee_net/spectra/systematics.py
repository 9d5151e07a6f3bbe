"""What real apStar spectra have and simulated ones lack, measured on real files.

:func:`learn_systematics` reads real apStar spectra (the combined row and every visit row
of each file) and fits each with The Payne's unnormalised emulator (Ting et al. 2019, ApJ 879,
69, §2) times a quadratic per chip (the three ASPCAP pixel ranges, blue to red), by weighted
least squares from a grid of eight starts (:func:`apogee_net.spectra.paynefit.fit_payne`;
errors with a 1 % floor, PIXMASK-flagged pixels left out). From the fit it keeps, per spectrum:

- ``response`` (3, 3): per-chip level relative to the blue chip and the linear and quadratic
  coefficients (fractions of the level) over x ∈ [−1, 1] across the chip: the instrument
  response and flux calibration that the simulation lacks (both DR17 files in
  ``../shared/data`` have the green and red chips 10–14 % fainter than the emulator);
- ``pixmask`` (8575,) the APOGEE_PIXMASK bits and ``dead`` (8575,) the pixels without data:
  the real pattern of bad pixels, sky lines (SIG_SKYLINE), telluric lines (SIG_TELLURIC),
  persistence (PERSIST_*) and Littrow ghost;
- ``sky_error_ratio``: median error at SIG_SKYLINE pixels / median error (sky-subtraction
  noise), ``sky_resid``: robust scatter (1.4826 × MAD) of the fit residual there in units of
  the error;
- ``telluric_scatter``: extra relative scatter of the fit residual at SIG_TELLURIC pixels
  beyond that of clean pixels (quadrature difference of 1.4826 × MAD of residual/flux);
- ``persist_excess``: median relative fit residual at PERSIST pixels minus that of clean
  pixels (additive light, fraction of the flux);
- ``error_slope`` (3,): d ln σ / d ln F per chip on clean pixels (photon noise: 0.5;
  clipped to 0–1) and ``error_offset`` (3,): median ln σ at the spectrum's median flux of
  each chip relative to the blue chip.

Only these derived numbers and the pixel flags are stored (``.npz``), not the spectra.
``scripts/learn_apstar_systematics.py`` regenerates the packaged file
(``apogee_net/data/apstar_systematics.npz``) from any apStar files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from apogee_net.spectra.apstar import ASPCAP_RANGES, NPIX, aspcap_pixels, read_apstar
from apogee_net.spectra.paynefit import GRID_STARTS, fit_payne

log = logging.getLogger(__name__)

#: The packaged systematics learnt from the two real DR17 files of ../shared/data.
DEFAULT_FILE = "apstar_systematics.npz"
#: Chips as apStar pixel ranges (half-open; blue, green, red), wide enough to hold the real
#: DR17 coverage (201:3324, 3533:6130, 6291:8382 in the two files).
CHIP_EDGES = (0, 3430, 6210, NPIX)
#: Bits of APOGEE_PIXMASK used by the measurements (apogee_net.spectra.apstar.PIXMASK_BITS).
SKY_BIT, TELLURIC_BIT, GHOST_BIT = 12, 13, 8
PERSIST_BITS = (9, 10, 11)
#: PIXMASK bits whose pixels are left out of the Payne fit.
FIT_EXCLUDE_BITS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)


@dataclass
class Systematics:
    """Per-spectrum instrument systematics (see the module docstring); ``n`` spectra."""

    response: np.ndarray        # (n, 3, 3)
    pixmask: np.ndarray         # (n, 8575) int32
    dead: np.ndarray            # (n, 8575) bool
    sky_error_ratio: np.ndarray  # (n,)
    sky_resid: np.ndarray       # (n,)
    telluric_scatter: np.ndarray  # (n,)
    persist_excess: np.ndarray  # (n,)
    error_slope: np.ndarray     # (n, 3)
    error_offset: np.ndarray    # (n, 3)
    payne_labels: np.ndarray    # (n, 4) best-fit Teff, log g, [Fe/H], [α/Fe] (information)
    sources: np.ndarray         # (n,) str: file name and row
    path: str = ""

    def __len__(self) -> int:
        return len(self.response)

    def save(self, path: str | os.PathLike) -> Path:
        """Write a compressed ``.npz`` atomically."""
        from yso_labels.core.atomic import atomic_write

        fields = {k: v for k, v in self.__dict__.items() if k != "path"}
        fields["pixmask"] = fields["pixmask"].astype(np.int16)  # bits 0-14
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **fields)
        return Path(path)


def load_systematics(path: str | os.PathLike | None = None) -> Systematics:
    """Systematics from ``path`` (default: the packaged :data:`DEFAULT_FILE`)."""
    if path is None or str(path) == "default":
        path = Path(str(resources.files("apogee_net").joinpath("data", DEFAULT_FILE)))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such systematics file (make one with "
                                "scripts/learn_apstar_systematics.py)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        sys_ = Systematics(**data, path=str(path))
    except (TypeError, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{path}: not a systematics file written by "
                         f"scripts/learn_apstar_systematics.py ({exc})") from exc
    sys_.pixmask = sys_.pixmask.astype(np.int32)
    if sys_.pixmask.shape[1:] != (NPIX,) or len(sys_) == 0:
        raise ValueError(f"{path}: pixel arrays have shape {sys_.pixmask.shape}, expected "
                         f"(n, {NPIX}) with n ≥ 1")
    return sys_


def chip_coordinates() -> tuple[np.ndarray, np.ndarray]:
    """Chip index (0 blue, 1 green, 2 red) and x ∈ [−1, 1] across the ASPCAP pixels of the
    chip, for every apStar pixel (x extrapolates linearly beyond the ASPCAP range)."""
    chip = np.searchsorted(np.asarray(CHIP_EDGES[1:-1]), np.arange(NPIX), side="right")
    x = np.empty(NPIX)
    for k, (a, b) in enumerate(ASPCAP_RANGES):
        sel = chip == k
        x[sel] = 2.0 * (np.arange(NPIX)[sel] - a) / (b - 1 - a) - 1.0
    return chip, x


def _robust_std(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size < 5:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def measure_spectrum(emu, flux, error, mask, dead) -> dict:
    """The systematics of one real spectrum (see the module docstring)."""
    pix = aspcap_pixels()
    chip_all, x_all = chip_coordinates()
    chip, x = chip_all[pix], x_all[pix]
    f, e, m = flux[pix].astype(float), error[pix].astype(float), mask[pix].astype(np.int64)
    exclude = sum(1 << b for b in FIT_EXCLUDE_BITS)
    good = ~dead[pix] & ((m & exclude) == 0)
    fit = fit_payne(emu, f, e, good, chip, x, starts=GRID_STARTS)
    labels, coeff, model = fit.labels, fit.coeff, fit.model
    resid = (f - model) / model
    live = ~dead[pix]
    has = lambda bits: (m & sum(1 << b for b in bits)) != 0  # noqa: E731
    sky, tel, per = has([SKY_BIT]) & live, has([TELLURIC_BIT]) & live, has(PERSIST_BITS) & live
    clean_scatter = _robust_std(resid[good])
    tel_scatter = _robust_std(resid[tel])
    slope, offset = np.full(3, 0.5), np.zeros(3)
    ref = np.log(np.median(f[good]))
    for k in range(3):
        sel = good & (chip == k) & (f > 0)
        lf, le = np.log(f[sel]) - ref, np.log(e[sel])
        if sel.sum() > 10:
            slope[k] = float(np.clip(np.polyfit(lf, le, 1)[0], 0.0, 1.0))
        offset[k] = np.median(le - slope[k] * lf)
    return {
        "response": np.column_stack([coeff[:, 0] / coeff[0, 0], coeff[:, 1] / coeff[:, 0],
                                     coeff[:, 2] / coeff[:, 0]]),
        "sky_error_ratio": float(np.median(e[sky]) / np.median(e[live])) if sky.any() else 1.0,
        "sky_resid": (_robust_std(((f - model) / e)[sky]) if sky.sum() >= 5 else 0.0),
        "telluric_scatter": float(np.sqrt(max(tel_scatter ** 2 - clean_scatter ** 2, 0.0)))
        if np.isfinite(tel_scatter) else 0.0,
        "persist_excess": float(max(np.median(resid[per]) - np.median(resid[good]), 0.0))
        if per.sum() >= 5 else 0.0,
        "error_slope": slope, "error_offset": offset - offset[0], "payne_labels": labels,
    }


def learn_systematics(files, emulator=None, rows: str = "all") -> Systematics:
    """Measure :class:`Systematics` on apStar ``files`` (paths, directories or globs);
    ``rows="all"`` uses the combined row and every visit row (empty rows skipped),
    ``"combined"`` only row 0. ``emulator``: The Payne's unnormalised ``.npz`` (default:
    found as by ``apogee-net simulate``)."""
    from astropy.io import fits

    from apogee_net.spectra.emulator import find_emulator, load_emulator
    from apogee_net.spectra.inputs import expand_inputs

    path = find_emulator(emulator)
    if path is None:
        raise ValueError("learning the systematics needs The Payne's emulator "
                         "(NN_unnormalized_spectra.npz); pass its path")
    emu = load_emulator(path)
    out: dict[str, list] = {}
    sources = []
    for path in expand_inputs(files):
        with fits.open(path) as hdul:
            shape = hdul[1].data.shape
        nrows = 1 if len(shape) == 1 else shape[0]
        wanted = [0] if rows == "combined" else [r for r in range(nrows) if r != 1 or
                                                  nrows == 1]
        for row in wanted:
            try:
                sp = read_apstar(path, row=row)
            except ValueError as exc:
                log.info("skipping %s row %d: %s", path, row, exc)
                continue
            values = measure_spectrum(emu, sp.flux, sp.error, sp.mask, sp.dead)
            values.update(pixmask=sp.mask, dead=sp.dead)
            for key, value in values.items():
                out.setdefault(key, []).append(value)
            sources.append(f"{Path(path).name}[{row}]")
            log.info("%s row %d: Payne fit %s", path, row, np.round(values["payne_labels"], 3))
    if not sources:
        raise ValueError(f"no readable apStar spectrum in {files}")
    return Systematics(**{k: np.asarray(v) for k, v in out.items()},
                       sources=np.asarray(sources))
