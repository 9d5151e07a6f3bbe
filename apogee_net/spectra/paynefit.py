"""Fit of The Payne emulator × a quadratic continuum per chip to one apStar spectrum.

Model (Ting et al. 2019, ApJ 879, 69, §2 for the emulator; the per-chip polynomial stands
for the instrument response and flux calibration that the Kurucz surface flux lacks)::

    flux_i ≈ E_i(Teff, log g, [Fe/H], [α/Fe]) × (c0_k + c1_k x_i + c2_k x_i²),   k = chip(i)

on the ASPCAP pixels, with ``E`` the unnormalised emulator
(:mod:`apogee_net.spectra.emulator`), ``x ∈ [−1, 1]`` across each chip
(:func:`apogee_net.spectra.systematics.chip_coordinates`) and 13 free parameters: the four
labels, bounded to the emulator's range, and nine unbounded continuum coefficients. The fit
is weighted least squares (Levenberg–Marquardt, :func:`levenberg_marquardt`) with weights
1/√(σ² + (0.01 F)²), so that the emulator's ~1 % imperfections do not dominate at high S/N,
and the analytic Jacobian of :func:`apogee_net.spectra.emulator.evaluate_with_jacobian`
(one emulator pass per iteration instead of 14 for finite differences). The continuum
level of each start is the ratio of the medians of data and emulator.

Used by :mod:`apogee_net.spectra.systematics` (a grid of starts, to measure real spectra)
and by :mod:`apogee_net.network.fitcheck` (one start at the network's labels: the
independent-fit consistency check of the catalogue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Relative flux error floor of the fit weights (the emulator's accuracy is ~1 %).
ERROR_FLOOR = 0.01
#: Starting labels of a fit without a prior: 4 Teff × 2 log g, [Fe/H] −0.2, [α/Fe] 0.05.
GRID_STARTS = tuple((teff, logg, -0.2, 0.05) for teff in (3800.0, 4600.0, 5600.0, 6500.0)
                    for logg in (1.5, 4.3))


@dataclass
class PayneFit:
    """Best fit: ``labels`` (4,: Teff K, log g dex, [Fe/H] dex, [α/Fe] dex), continuum
    ``coeff`` (3 chips, 3: c0, c1, c2), ``model`` flux (npix,; at every pixel, fitted or
    not), ``cost`` (½ χ² of the fitted pixels), ``nfev``
    (model evaluations over all starts)."""

    labels: np.ndarray
    coeff: np.ndarray
    model: np.ndarray
    cost: float
    nfev: int


def fit_payne(emu, flux, error, good, chip, x, starts=GRID_STARTS, max_nfev: int = 200,
              xtol: float = 1e-8, ftol: float = 1e-8) -> PayneFit:
    """Fit ``flux`` (npix,; the emulator's pixels) with errors ``error`` at pixels ``good``
    by Payne(labels) × quadratic per chip (module docstring) from each row of ``starts``
    ((m, 4) labels, moved just inside the emulator's range); the fit with the lowest cost
    wins. ``chip`` (npix,) 0/1/2 and ``x`` (npix,) ∈ [−1, 1] place each pixel.

    Each start runs :func:`levenberg_marquardt` for at most ``max_nfev`` model evaluations
    (one emulator pass and its analytic Jacobian each), stopping when an accepted step
    lowers χ² by less than the fraction ``ftol`` or moves every parameter by less than
    ``xtol`` (labels in units of the emulator's range, continuum coefficients in units of
    the level)."""
    from apogee_net.spectra.emulator import evaluate, evaluate_with_jacobian

    flux, error = np.asarray(flux, float), np.asarray(error, float)
    good = np.asarray(good, bool) & np.isfinite(flux) & np.isfinite(error) & (error > 0)
    if good.sum() < 20:
        raise ValueError(f"Payne fit: {int(good.sum())} usable pixels, need at least 20")
    # continuum design (npix, 9): pixel i's chip columns hold 1, x, x² (zeros elsewhere)
    onehot = np.asarray(chip, int)[:, None] == np.arange(3)[None, :]
    design = (onehot[:, :, None] * np.column_stack([np.ones(len(flux)), x,
                                                    np.asarray(x) ** 2])[:, None, :]
              ).reshape(len(flux), 9)
    weight = np.zeros(len(flux))  # pixels without data weigh 0 (cheaper than indexing)
    weight[good] = 1.0 / np.sqrt(error[good] ** 2 + (ERROR_FLOOR * flux[good]) ** 2)
    target = np.where(good, flux, 0.0)
    span = emu.x_max - emu.x_min

    def residual_jacobian(p):
        e, de = evaluate_with_jacobian(emu, p[:4])
        c = design @ p[4:]
        jac = np.empty((len(flux), 13))
        jac[:, :4] = -(weight * c)[:, None] * de
        jac[:, 4:] = -(weight * e)[:, None] * design
        return (target - e * c) * weight, jac

    best, nfev = None, 0
    for start in np.atleast_2d(np.asarray(starts, float)):
        labels = np.clip(start, emu.x_min + 1e-3, emu.x_max - 1e-3)
        level = np.median(flux[good]) / np.median(evaluate(emu, labels[None])[0][good])
        p0 = np.r_[labels, np.tile([level, 0.0, 0.0], 3)]
        scale = np.r_[span, np.full(9, abs(level) or 1.0)]
        p, cost, n = levenberg_marquardt(residual_jacobian, p0, emu.x_min, emu.x_max, scale,
                                         max_nfev, xtol, ftol)
        nfev += n
        if best is None or cost < best[1]:
            best = (p, cost)
    p = best[0]
    model = evaluate(emu, p[None, :4])[0] * (design @ p[4:])  # every pixel
    return PayneFit(p[:4].copy(), p[4:].reshape(3, 3).copy(), model, float(best[1]), nfev)


def levenberg_marquardt(residual_jacobian, p0, lo, hi, scale, max_nfev: int = 200,
                        xtol: float = 1e-8, ftol: float = 1e-8):
    """Minimise ½‖r(p)‖² (``residual_jacobian(p) -> (r, ∂r/∂p)``) from ``p0`` by
    Levenberg–Marquardt with Marquardt's diagonal scaling (Press et al., Numerical Recipes
    §15.5), the first ``len(lo)`` parameters kept inside [lo, hi] by projection; returns
    (p, cost, evaluations). Convergence: an accepted step lowers the cost by less than the
    fraction ``ftol``, or changes every parameter by less than ``xtol`` × ``scale``.

    Why not ``scipy.optimize.least_squares``: with the same residuals, analytic Jacobian,
    bounds and scales it reaches the same fits (Teff within 11 K, log g 0.01 dex of this
    loop's, against a 150 K / 0.3 dex start offset) but costs 5.7× (``trf``) or 2.4×
    (``dogbox``) the time per star, which the fit check's ≤ 10 % prediction budget does not
    allow (``benchmarks/payne_fit_solver.py``)."""
    k = len(lo)
    p = np.asarray(p0, float).copy()
    r, jac = residual_jacobian(p)
    cost, nfev, lam = 0.5 * float(r @ r), 1, 1e-3
    while nfev < max_nfev:
        a, g = jac.T @ jac, jac.T @ r
        damp = np.diag(np.maximum(np.diag(a), 1e-12))
        try:
            step = -np.linalg.solve(a + lam * damp, g)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(a + lam * damp, g, rcond=None)[0]
        trial = p + step
        trial[:k] = np.clip(trial[:k], lo, hi)
        r_new, jac_new = residual_jacobian(trial)
        nfev += 1
        cost_new = 0.5 * float(r_new @ r_new)
        if np.isfinite(cost_new) and cost_new <= cost:
            moved = np.abs(trial - p) / scale
            drop = (cost - cost_new) / max(cost, 1e-300)
            p, r, jac, cost = trial, r_new, jac_new, cost_new
            lam = max(lam / 3.0, 1e-9)
            if drop < ftol or moved.max() < xtol:
                break
        else:
            lam *= 4.0
            if lam > 1e12:
                break
    return p, cost, nfev
