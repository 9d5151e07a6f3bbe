"""Cosmic-ray hits in LAMOST low-resolution spectra that spare stellar and sky lines at any S/N.

A hit is a positive spike that is (1) significant against the pixel errors, (2) *narrower
than the line-spread function* (LSF), which every real feature of the spectrum — stellar
absorption or emission, sky residual — has passed through, and (3) not at the position of a
line that can appear in emission (stellar lines in the rest frame, night-sky and
city-light lines in the observed frame).

**LSF width.** LAMOST LRS has R = λ/Δλ ≈ 1800 (Li et al. 2022, §2.2, citing Cui et al.
2012, RAA 12, 1197 and Zhao et al. 2012, RAA 12, 723). On the log-linear grid
λ_i = 10^(COEFF0 + COEFF1·i) one pixel is Δλ/λ = ln(10)·COEFF1 = 2.303e−4, so the LSF's
FWHM is 1/(R·ln10·COEFF1) = 2.41 px and σ_LSF = FWHM/(2√(2 ln 2)) = 1.02 px at every
wavelength (:func:`lsf_sigma_pixels`). A feature of that shape and peak excess e over the
local background, sampled at its centre, has the one-pixel curvature
ℓ = f_i − (f_{i−1} + f_{i+1})/2 = e·(1 − exp(−1/(2σ²))) = 0.38·e (:func:`lsf_sharpness`; less
when it is off-centre), while a hit confined to one pixel has ℓ ≈ e. A hit must have
ℓ > ``sharpness``·e with the default threshold midway, (1 + 0.38)/2 = 0.69: that spares
lines even where the LSF is sharper than nominal (the ratio reaches 0.69 only at R ≈ 3000).

**Errors at high S/N.** The old test compared spikes with the ivar errors alone. Where those
errors are smaller than the real pixel-to-pixel scatter (high S/N, where flat-field and
sky-subtraction residuals of ~1 % are not in ivar; or an ivar that is simply too large),
every noise pixel looked like a hit and good spectra were rejected as "heavily polluted". The
errors are therefore scaled up, never down, by the robust scatter of the curvature
z = ℓ/σ_ℓ measured in blocks of ``block`` pixels: ρ = max(1, 1.4826·median|z|) (hits are
few, the median ignores them). On the real spectra of ``shared/data`` at their own S/N,
ρ ≤ 1 (resampled LAMOST pixels are slightly correlated), so nothing changes there.

**Significance of narrowness.** Besides the ratio, ℓ − s_LSF·e (≤ 0 for any LSF-shaped
feature) must exceed ``nsigma`` times its own error, so that noise cannot make a line look
narrow.

**Arm overlap.** The spec-*.fits files the toolkit reads (DR1–DR9+) hold one spectrum with
the blue (3700–5900 Å) and red (5700–9000 Å) arms already joined, so no second, independent
measurement of the overlap wavelengths is available and this cross-check cannot be made.

Li et al. (2022, §2.2) removed spectra "heavily polluted by cosmic rays" without saying how;
:func:`~apogee_net.lamost.preprocess.prepare_spectrum` rejects a spectrum with more than
``max_cosmic`` hit pixels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["cosmic_ray_mask", "lsf_sigma_pixels", "lsf_sharpness", "line_mask",
           "LAMOST_RESOLUTION", "SKY_LINES", "STELLAR_EMISSION_LINES"]

#: LAMOST LRS resolving power (Li et al. 2022 §2.2; Cui et al. 2012; Zhao et al. 2012).
LAMOST_RESOLUTION = 1800.0
#: log10 pixel step of the LAMOST grid (header COEFF1).
LAMOST_LOG_STEP = 1e-4

#: Night-sky and city-light emission lines at Xinglong, vacuum Å (observed frame):
#: Hg I 4047, 4358, 5461, 5770, 5791 (street lamps), [O I] 5577, 6300, 6364, Na I D, and the
#: brightest OH lines of the night-sky atlas of Osterbrock et al. (1996, PASP 108, 277)
#: above 6800 Å (the ±3 px window is ±4–5 Å there, wider than any rounding here);
#: air wavelengths converted to vacuum (Morton 2000, ApJS 130, 403, eq. 3).
SKY_LINES = (4047.70, 4359.56, 5462.26, 5578.89, 5771.19, 5792.27, 5891.58, 5897.55,
             6302.04, 6365.54, 6865.85, 7318.30, 7342.91, 7752.77, 7796.25, 7823.65,
             7915.89, 7995.53, 8346.89, 8401.48, 8432.49, 8829.52, 8888.29, 8922.06,
             8945.86, 8990.85)
#: Stellar lines seen in emission (active M dwarfs, young stars, Be stars), vacuum Å, rest
#: frame: Ca II K, H; Hε, Hδ, Hγ, Hβ, Hα; He I 4472, 5877, 6680, 7067; [O I] 6300, 6364;
#: [N II] 6550, 6585; [S II] 6718, 6733; O I 8449; the Ca II triplet (air → vacuum as above).
STELLAR_EMISSION_LINES = (3934.77, 3969.59, 3971.19, 4102.90, 4341.69, 4472.73, 4862.69,
                          5877.25, 6302.04, 6365.54, 6549.86, 6564.60, 6585.27, 6679.99,
                          6718.29, 6732.68, 7067.14, 8448.68, 8500.36, 8544.44, 8664.52)


def lsf_sigma_pixels(resolution: float = LAMOST_RESOLUTION,
                     log_step: float = LAMOST_LOG_STEP) -> float:
    """Gaussian σ of the LSF in pixels of a log10-linear grid (module doc): FWHM = λ/R Å,
    one pixel = λ·ln(10)·``log_step`` Å, σ = FWHM/(2√(2 ln 2)); 1.02 px for LAMOST."""
    if not (resolution > 0 and log_step > 0):
        raise ValueError(f"resolution and log_step must be > 0, got {resolution}, {log_step}")
    fwhm_px = 1.0 / (resolution * math.log(10.0) * log_step)
    return fwhm_px / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def lsf_sharpness(sigma_px: float) -> float:
    """Curvature-to-excess ratio ℓ/e of a Gaussian feature of σ ``sigma_px`` pixels centred
    on a pixel, with e its height above the pixels two away: with G(d) = exp(−d²/(2σ²)),
    (1 − G(1))/(1 − G(2)); 0.45 for LAMOST (σ = 1.02 px), 1 for a one-pixel spike."""
    g1, g2 = math.exp(-0.5 / sigma_px**2), math.exp(-2.0 / sigma_px**2)
    return (1.0 - g1) / (1.0 - g2)


def line_mask(wavelength: np.ndarray, z: float | None = None, halfwidth: float = 3.0
              ) -> np.ndarray:
    """Pixels within ``halfwidth`` pixels (of the grid's local spacing) of a
    :data:`SKY_LINES` position (observed frame) or, when the redshift ``z`` is finite, of a
    :data:`STELLAR_EMISSION_LINES` position (λ_rest·(1 + z)). ``wavelength``: vacuum Å,
    increasing."""
    wl = np.asarray(wavelength, np.float64)
    lines = np.asarray(SKY_LINES)
    if z is not None and math.isfinite(z):
        lines = np.concatenate([lines, np.asarray(STELLAR_EMISSION_LINES) * (1.0 + z)])
    pos = np.sort(lines)
    j = np.clip(np.searchsorted(pos, wl), 1, pos.size - 1)
    dist = np.minimum(np.abs(wl - pos[j - 1]), np.abs(wl - pos[j]))
    step = np.abs(np.gradient(wl)) if wl.size > 1 else np.ones_like(wl)
    return dist <= halfwidth * step


def _block_scale(z: np.ndarray, ok: np.ndarray, block: int) -> np.ndarray:
    """Per-pixel max(1, 1.4826·median|z|) over blocks of ``block`` pixels (linear between
    block centres; a block with < 20 usable pixels takes the spectrum-wide value)."""
    n = z.size
    nb = -(-n // block)
    az = np.full(nb * block, np.nan)
    az[:n] = np.where(ok, np.abs(z), np.nan)
    blocks = az.reshape(nb, block)
    counts = np.isfinite(blocks).sum(axis=1)
    srt = np.sort(blocks, axis=1)                       # NaN sorts last
    rows = np.arange(nb)
    lo, hi = np.maximum((counts - 1) // 2, 0), np.maximum(counts // 2, 0)
    scales = 1.4826 * 0.5 * (srt[rows, lo] + srt[rows, hi])
    valid = az[np.isfinite(az)]
    overall = 1.4826 * float(np.median(valid)) if valid.size else 1.0
    scales = np.where(counts >= 20, scales, overall)
    centres = np.minimum(np.arange(nb) * block + 0.5 * block, 0.5 * (np.arange(nb) * block + n))
    return np.maximum(np.interp(np.arange(n), centres, scales), 1.0)


def _ring_max(f: np.ndarray, half: int) -> np.ndarray:
    """max(f_j) over 2 ≤ |j − i| ≤ ``half`` (ends padded with the edge values)."""
    w = half - 1                                        # pixels i+2 .. i+half
    fp = np.pad(f, half, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(fp, w).max(axis=1)
    n = f.size
    right = win[half + 2:half + 2 + n]                  # window starting at i+2
    left = win[:n]                                      # window starting at i−half
    return np.maximum(left, right)


def cosmic_ray_mask(flux: np.ndarray, ivar: np.ndarray, good: np.ndarray | None = None,
                    wavelength: np.ndarray | None = None, z: float | None = None,
                    nsigma: float = 5.0, sharpness: float | None = None,
                    resolution: float = LAMOST_RESOLUTION, log_step: float = LAMOST_LOG_STEP,
                    width: int = 15, grow: int = 1, block: int = 256,
                    line_halfwidth: float = 3.0) -> tuple[np.ndarray, int]:
    """Cosmic-ray hits of one observed-frame spectrum (criteria in the module doc).

    With m_i the running median over ``width`` pixels, e_i = f_i − m_i, ℓ_i the one-pixel
    curvature, σ from ivar scaled by the block scatter ρ ≥ 1, s = :func:`lsf_sharpness` of
    the LSF (``resolution``, ``log_step``) and t = ``sharpness`` (default (1 + s)/2), pixel i
    is a hit when e_i > n·σ_i, ℓ_i > n·σ_ℓ, ℓ_i > t·e_i, ℓ_i − s·e_i > n·σ(ℓ − s·e) and
    f_i − max(f_{i−1}, f_{i+1}) > e_i/2 (above both neighbours), with n = ``nsigma``; and it is
    not within ``line_halfwidth`` pixels of a sky line or (given ``z``) a stellar emission line
    (:func:`line_mask`; needs ``wavelength`` in vacuum Å). Bad pixels (``good`` False) are
    filled by interpolation and never hits.

    Returns ``(mask, n_hits)``: hits grown by ``grow`` pixels each side, and the number of hit
    pixels before growing.
    """
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    if flux.shape != ivar.shape or flux.ndim != 1:
        raise ValueError(f"cosmic_ray_mask: flux and ivar must be 1-D of one length; got "
                         f"{flux.shape}, {ivar.shape}")
    if good is None:
        good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0) & (flux != 0)
    n = flux.size
    if good.sum() < max(width, 4):
        return np.zeros(n, bool), 0
    s_lsf = lsf_sharpness(lsf_sigma_pixels(resolution, log_step))
    t = 0.5 * (1.0 + s_lsf) if sharpness is None else float(sharpness)
    idx = np.arange(n)
    f = np.interp(idx, idx[good], flux[good])          # bad pixels filled by interpolation
    var = np.where(good, 1.0 / np.where(good, ivar, 1.0), np.inf)
    half = max(int(width) // 2, 3)
    excess = f - _ring_max(f, half)                    # above every pixel 2..half away
    fp = np.pad(f, 1, mode="edge")
    vp = np.pad(var, 1, mode="edge")
    c, left, right = fp[1:-1], fp[:-2], fp[2:]
    vc, vl, vr = vp[1:-1], vp[:-2], vp[2:]
    lap = c - 0.5 * (left + right)
    with np.errstate(invalid="ignore"):
        s_lap = np.sqrt(vc + 0.25 * (vl + vr))
        ok = good & np.isfinite(s_lap)
        zz = np.where(ok, lap / np.where(ok, s_lap, 1.0), 0.0)
    rho2 = _block_scale(zz, ok, block) ** 2            # variance inflation, ≥ 1
    narrow = lap - s_lsf * excess                      # ≤ 0 for any LSF-shaped feature
    s_narrow = np.sqrt(rho2 * ((1.0 - s_lsf) ** 2 * vc + 0.25 * (vl + vr)))
    with np.errstate(invalid="ignore"):
        hits = ((excess > nsigma * np.sqrt(rho2 * vc)) & (lap > nsigma * np.sqrt(rho2) * s_lap)
                & (lap > t * excess) & (narrow > nsigma * s_narrow)
                & (c - np.maximum(left, right) > 0.5 * excess))
    hits &= good
    if wavelength is not None and hits.any():
        hits &= ~line_mask(wavelength, z, line_halfwidth)
    n_hits = int(hits.sum())
    if grow > 0 and n_hits:
        hits = ndimage.binary_dilation(hits, iterations=int(grow))
    return hits, n_hits
