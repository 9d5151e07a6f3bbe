"""LAMOST preprocessing of Li et al. §2.2: rest frame, 4000–8500 Å at 1 Å, continuum.

Pure functions over arrays, in the order :func:`prepare_spectrum` applies them:

1. :func:`good_pixels`: finite flux, ivar > 0, and-mask 0, flux ≠ 0 (LAMOST pads with 0).
2. :func:`~apogee_net.lamost.cosmics.cosmic_ray_mask`: spikes narrower than the
   line-spread function, away from stellar and sky emission lines (the paper only says
   heavily polluted spectra were removed, not how; the criterion is documented there).
3. :func:`rest_frame`: λ_rest = λ_obs / (1 + z) with the LASP redshift ``Z``.
4. :func:`resample`: flux-conserving rebinning onto 4000–8500 Å at 1 Å (4501 pixels),
   inverse variance propagated.
5. :func:`gaussian_continuum` + :func:`normalise`: The Cannon's Gaussian-smoothing
   continuum (Ho et al. 2017) with L = 50 Å, computed without a dense N×N matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from apogee_net.lamost.cosmics import cosmic_ray_mask

__all__ = ["LamostDataError", "PreparedSpectrum", "lamost_grid", "good_pixels",
           "cosmic_ray_mask", "rest_frame", "pixel_edges", "resample", "gaussian_continuum",
           "normalise", "prepare_spectrum", "GRID_START", "GRID_STOP", "GRID_STEP"]

#: Li et al. §2.2: spectra cut to 4000–8500 Å and interpolated to one value per Å.
GRID_START, GRID_STOP, GRID_STEP = 4000.0, 8500.0, 1.0


class LamostDataError(ValueError):
    """A spectrum that cannot be used (no redshift, no valid pixels, cosmic rays, ...)."""


def lamost_grid(start: float = GRID_START, stop: float = GRID_STOP,
                step: float = GRID_STEP) -> np.ndarray:
    """The rest-frame training grid of Li et al.: ``start``..``stop`` Å inclusive (4501 px)."""
    n = int(round((stop - start) / step)) + 1
    return start + step * np.arange(n, dtype=np.float64)


def good_pixels(flux: np.ndarray, ivar: np.ndarray, andmask: np.ndarray | None = None
                ) -> np.ndarray:
    """Boolean mask of usable pixels: finite flux, finite ivar > 0, and-mask 0, flux ≠ 0.

    LAMOST pads pixels without data with flux exactly 0 (sometimes with ivar > 0), and sets
    and-mask bits for pixels bad in every exposure; the or-mask (bad in *some* exposure) is
    not used, it would reject most pixels of long exposures.
    """
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0) & (flux != 0)
    if andmask is not None:
        good &= np.asarray(andmask) == 0
    return good


def rest_frame(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift to the rest frame: λ_rest = λ_obs/(1+z) Å, f_λ,rest = (1+z) f_λ,obs.

    The flux-density factor keeps ∫f dλ unchanged; ivar scales by (1+z)^−2. ``z`` is the
    LASP redshift from the header (dimensionless).
    """
    if not math.isfinite(z) or z <= -1:
        raise LamostDataError(f"redshift {z!r} is missing or unphysical")
    s = 1.0 + float(z)
    return np.asarray(wavelength, np.float64) / s, np.asarray(flux, np.float64) * s, \
        np.asarray(ivar, np.float64) / s**2


def pixel_edges(centres: np.ndarray) -> np.ndarray:
    """N+1 pixel edges (Å) from N increasing centres: midpoints, half a pixel beyond the ends."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size < 2:
        raise ValueError("need at least two pixel centres to define pixel edges")
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate(([c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]))


def resample(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
             new_wavelength: np.ndarray, min_coverage: float = 0.5
             ) -> tuple[np.ndarray, np.ndarray]:
    """Flux-conserving rebinning of a flux density onto ``new_wavelength`` (pixel centres).

    With o_ij the overlap (Å) of input pixel j with output pixel i, over good input pixels
    (ivar > 0):  f_i = Σ_j o_ij f_j / Σ_j o_ij,  σ_i² = Σ_j o_ij² σ_j² / (Σ_j o_ij)².
    When every output pixel is fully covered, Σ_i f_i Δλ_i equals ∫ f dλ of the input
    over the output range exactly. Output pixels whose good coverage is below
    ``min_coverage`` of their width get ivar 0 (flux interpolated, for display only).
    Returns ``(flux, ivar)`` on the new grid.
    """
    wl = np.asarray(wavelength, np.float64)
    f = np.asarray(flux, np.float64)
    iv = np.asarray(ivar, np.float64)
    if not (wl.shape == f.shape == iv.shape) or wl.ndim != 1:
        raise ValueError(f"wavelength, flux, ivar must be 1-D of one length; got "
                         f"{wl.shape}, {f.shape}, {iv.shape}")
    good = np.isfinite(f) & np.isfinite(iv) & (iv > 0)
    e_in = pixel_edges(wl)
    e_out = pixel_edges(np.asarray(new_wavelength, np.float64))
    lo_out, hi_out = e_out[:-1], e_out[1:]
    lo_in, hi_in = e_in[:-1], e_in[1:]
    j0 = np.searchsorted(hi_in, lo_out, side="right")           # first j with hi_j > lo_i
    j1 = np.searchsorted(lo_in, hi_out, side="left") - 1        # last j with lo_j < hi_i
    span = int(max(0, (j1 - j0 + 1).max())) if j0.size else 0
    n_in = wl.size
    sw = np.zeros(lo_out.size)
    swf = np.zeros(lo_out.size)
    swv = np.zeros(lo_out.size)
    fz = np.where(good, f, 0.0)
    var = np.where(good, 1.0 / np.where(good, iv, 1.0), 0.0)
    for k in range(span):
        j = j0 + k
        ok = (j <= j1) & (j < n_in)
        jc = np.minimum(j, n_in - 1)
        o = np.minimum(hi_out, hi_in[jc]) - np.maximum(lo_out, lo_in[jc])
        o = np.where(ok & good[jc], np.clip(o, 0.0, None), 0.0)
        sw += o
        swf += o * fz[jc]
        swv += o * o * var[jc]
    width = hi_out - lo_out
    covered = sw >= min_coverage * width
    new_f = np.where(sw > 0, swf / np.where(sw > 0, sw, 1.0), np.nan)
    if good.any():
        gap = ~np.isfinite(new_f)
        new_f[gap] = np.interp(np.asarray(new_wavelength)[gap], wl[good], f[good])
    new_iv = np.where(covered & (swv > 0), sw**2 / np.where(swv > 0, swv, 1.0), 0.0)
    return new_f, new_iv


def gaussian_continuum(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
                       L: float = 50.0, cutoff: float = 8.0) -> np.ndarray:
    """Gaussian-smoothing continuum of The Cannon (Ho et al. 2017; Li et al. §2.2).

    cont_i = Σ_j w_ij ivar_j f_j / Σ_j w_ij ivar_j,  w_ij = exp(−(λ_i−λ_j)²/(2L²)),
    with ``L`` the Gaussian sigma in Å (50 Å in Li et al.) and cont = 0 where the
    denominator is 0. Terms with |λ_i−λ_j| > ``cutoff``·L are dropped (they weigh less than
    e^{−cutoff²/2} = 1.3e−14 at the default 8; ``cutoff=np.inf`` keeps all).

    ``flux`` and ``ivar`` may be 1-D (N,) or 2-D (n_spectra, N) on one ``wavelength`` grid
    (Å, strictly increasing). A uniform grid is a direct convolution with a (2K+1)-tap
    kernel (K = cutoff·L/Δλ); any other grid (e.g. LAMOST's log-linear one) is done in
    blocks of rows against only the columns within the cutoff. Neither builds the N×N matrix.
    """
    wl = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    iv = np.asarray(ivar, dtype=np.float64)
    if wl.ndim != 1 or f.shape != iv.shape or f.shape[-1] != wl.size or f.ndim > 2:
        raise ValueError(f"gaussian_continuum: wavelength (N,), flux and ivar (N,) or (n, N) "
                         f"of one shape; got {wl.shape}, {f.shape}, {iv.shape}")
    if not L > 0:
        raise ValueError(f"gaussian_continuum: L must be > 0 Å, got {L}")
    dwl = np.diff(wl)
    if wl.size > 1 and not np.all(dwl > 0):
        raise ValueError("gaussian_continuum: wavelength must be strictly increasing")
    good = np.isfinite(f) & np.isfinite(iv) & (iv > 0)
    w_iv = np.where(good, iv, 0.0)
    w_ivf = np.where(good, iv * np.where(good, f, 0.0), 0.0)
    window = float(cutoff) * L
    if wl.size > 1 and np.ptp(dwl) <= 1e-9 * dwl.mean():
        step = dwl.mean()
        half = wl.size - 1 if not np.isfinite(window) else min(wl.size - 1,
                                                                 int(window / step + 1e-9))
        k = np.arange(-half, half + 1) * step
        kernel = np.exp(-0.5 * (k / L) ** 2)
        top = ndimage.correlate1d(w_ivf, kernel, axis=-1, mode="constant", cval=0.0)
        bot = ndimage.correlate1d(w_iv, kernel, axis=-1, mode="constant", cval=0.0)
    else:
        top = np.zeros_like(w_ivf)
        bot = np.zeros_like(w_iv)
        block = 256
        for start in range(0, wl.size, block):
            stop = min(start + block, wl.size)
            lo = int(np.searchsorted(wl, wl[start] - window, side="left"))
            hi = int(np.searchsorted(wl, wl[stop - 1] + window, side="right"))
            d = wl[start:stop, None] - wl[None, lo:hi]
            w = np.exp(-0.5 * (d / L) ** 2)
            w[np.abs(d) > window] = 0.0
            top[..., start:stop] = w_ivf[..., lo:hi] @ w.T
            bot[..., start:stop] = w_iv[..., lo:hi] @ w.T
    return np.where(bot > 0, top / np.where(bot > 0, bot, 1.0), 0.0)


def normalise(flux: np.ndarray, ivar: np.ndarray, continuum: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Continuum-normalised flux f/cont (1 where cont = 0) and ivar·cont² (The Cannon)."""
    flux = np.asarray(flux, np.float64)
    ivar = np.asarray(ivar, np.float64)
    cont = np.asarray(continuum, np.float64)
    ok = cont != 0
    norm = np.ones_like(flux)
    norm[ok] = flux[ok] / cont[ok]
    return norm, np.where(np.isfinite(ivar), ivar, 0.0) * cont**2


@dataclass
class PreparedSpectrum:
    """A spectrum on the training grid: normalised flux (1 at bad pixels), ivar (0 there),
    the continuum (flux units), ``cosmic`` (grid pixels overlapping a masked cosmic-ray hit),
    the number of hits and the fraction of valid grid pixels."""

    flux: np.ndarray
    ivar: np.ndarray
    continuum: np.ndarray
    n_cosmic: int
    valid_fraction: float
    cosmic: np.ndarray | None = None

    @property
    def error(self) -> np.ndarray:
        """σ = ivar^−½ of the normalised flux, NaN where ivar = 0 (the store's convention)."""
        with np.errstate(divide="ignore"):
            return np.where(self.ivar > 0, 1.0 / np.sqrt(self.ivar), np.nan)


def prepare_spectrum(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float,
                     andmask: np.ndarray | None = None, grid: np.ndarray | None = None,
                     L: float = 50.0, reject_cosmics: bool = True, max_cosmic: int = 20,
                     min_valid_fraction: float = 0.5, what: str = "spectrum"
                     ) -> PreparedSpectrum:
    """The whole Li et al. §2.2 chain for one observed-frame spectrum.

    Raises :class:`LamostDataError` (message starting with ``what``) when the redshift is
    missing, no pixel of the grid is valid, fewer than ``min_valid_fraction`` are, or more
    than ``max_cosmic`` cosmic-ray pixels (:func:`cosmic_ray_mask`, counted inside the grid
    range) were found ("heavily polluted", Li et al. §2.2). Hits are masked ±1 pixel.
    """
    grid = lamost_grid() if grid is None else np.asarray(grid, np.float64)
    if z is None or not math.isfinite(z):
        raise LamostDataError(f"{what}: no redshift (header Z missing or -9999); Li et al. "
                              "drop spectra without a LASP redshift")
    good = good_pixels(flux, ivar, andmask)
    n_cr = 0
    hits = np.zeros(np.shape(flux), bool)
    if reject_cosmics:
        hits, _ = cosmic_ray_mask(flux, ivar, good, wavelength=wavelength, z=z, grow=0)
        wl_rest = np.asarray(wavelength, np.float64) / (1.0 + z)
        n_cr = int((hits & (wl_rest >= grid[0] - 1) & (wl_rest <= grid[-1] + 1)).sum())
        hits = ndimage.binary_dilation(hits, iterations=1)
        if n_cr > max_cosmic:
            raise LamostDataError(f"{what}: {n_cr} cosmic-ray pixels (> {max_cosmic}); "
                                  "heavily polluted")
        good &= ~hits
    iv = np.where(good, ivar, 0.0)
    wl_rest, f_rest, iv_rest = rest_frame(wavelength, np.where(good, flux, 0.0), iv, z)
    f_new, iv_new = resample(wl_rest, f_rest, iv_rest, grid)
    cosmic = np.zeros(grid.size, bool)
    if hits.any():
        cosmic = resample(wl_rest, hits.astype(float), np.ones(hits.size), grid,
                          min_coverage=0.0)[0] > 0
    valid = iv_new > 0
    frac = float(valid.mean())
    if not valid.any():
        raise LamostDataError(f"{what}: no valid pixel in {grid[0]:.0f}–{grid[-1]:.0f} Å "
                              "(rest frame)")
    if frac < min_valid_fraction:
        raise LamostDataError(f"{what}: only {frac:.1%} valid pixels in {grid[0]:.0f}–"
                              f"{grid[-1]:.0f} Å (need {min_valid_fraction:.0%})")
    cont = gaussian_continuum(grid, f_new, iv_new, L=L)
    norm_f, norm_iv = normalise(f_new, iv_new, cont)
    bad = (norm_iv <= 0) | ~np.isfinite(norm_f)
    norm_f[bad] = 1.0
    norm_iv[bad] = 0.0
    return PreparedSpectrum(norm_f, norm_iv, cont, n_cr, frac, cosmic)
