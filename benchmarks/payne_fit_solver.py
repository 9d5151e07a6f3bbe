#!/usr/bin/env python
"""Why :func:`apogee_net.spectra.paynefit.fit_payne` has its own Levenberg–Marquardt loop
instead of ``scipy.optimize.least_squares``: the same fits, side by side, in one run.

    python benchmarks/payne_fit_solver.py [--stars 24] [--repeats 3] [--snr 100]

Simulated spectra on the ASPCAP pixels (The Payne emulator of ``../shared/data/payne`` × a
per-chip quadratic response, Gaussian noise at ``--snr``)
are fitted from a start offset from the truth by (+150 K, +0.3 dex, +0.1 dex), as the fit
check starts from the network's labels, with the fit check's budget and tolerances
(:data:`apogee_net.network.fitcheck.MAX_NFEV`, ``XTOL``, ``FTOL``). Solvers: the package's
loop (one emulator pass and its analytic Jacobian per step), and ``least_squares`` with the
same residuals, the same analytic Jacobian (cached from the residual call, so also one
emulator pass per step), the same bounds and parameter scales, methods ``trf`` and
``dogbox``. Printed per solver: wall time per star (best of ``--repeats`` interleaved
rounds), model evaluations, and the largest and median |fit − truth| and the largest
|fit − package fit| (Teff K, log g, [Fe/H] dex).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import apogee_net.spectra.paynefit as paynefit
from apogee_net.network.fitcheck import FTOL, MAX_NFEV, XTOL
from apogee_net.spectra.apstar import aspcap_pixels
from apogee_net.spectra.systematics import chip_coordinates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EMULATOR, best_of, host_info, print_host  # noqa: E402

OFFSET = np.array([150.0, 0.3, 0.1, 0.0])
#: Per-chip response c0 (1 + c1 x + c2 x²) of the simulated spectra (blue, green, red).
RESPONSE = np.array([[1.0, -0.03, 0.04], [0.87, 0.02, -0.05], [0.9, -0.04, 0.01]])


def scipy_solver(method: str):
    """A drop-in for :func:`paynefit.levenberg_marquardt` built on ``least_squares``."""
    from scipy.optimize import least_squares

    def solve(residual_jacobian, p0, lo, hi, scale, max_nfev, xtol, ftol):
        cache: dict = {}

        def fun(p):
            r, j = residual_jacobian(p)
            cache["p"], cache["j"] = p.copy(), j
            return r

        def jac(p):
            return cache["j"] if np.array_equal(cache.get("p"), p) else residual_jacobian(p)[1]

        free = np.full(len(p0) - len(lo), np.inf)
        res = least_squares(fun, p0, jac=jac, bounds=(np.r_[lo, -free], np.r_[hi, free]),
                            x_scale=scale, method=method, max_nfev=max_nfev, xtol=xtol,
                            ftol=ftol)
        return res.x, float(res.cost), int(res.nfev)

    return solve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stars", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--snr", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not EMULATOR.exists():
        raise SystemExit(f"needs The Payne emulator at {EMULATOR}")
    from apogee_net.spectra.emulator import load_emulator

    print_host("Payne fit: package LM vs scipy least_squares", host_info())
    emu = load_emulator(str(EMULATOR))
    rng = np.random.default_rng(a.seed)
    n = a.stars
    truth = np.column_stack([rng.uniform(4000, 6000, n), rng.uniform(1.5, 4.8, n),
                             rng.uniform(-1.0, 0.3, n), rng.uniform(0.0, 0.3, n)])
    from apogee_net.spectra.emulator import evaluate

    pix = aspcap_pixels()
    chip, x = chip_coordinates()
    c = RESPONSE[chip[pix]]
    model = 1e5 * evaluate(emu, truth) * c[:, 0] * (1 + c[:, 1] * x[pix] + c[:, 2] * x[pix] ** 2)
    error = model / a.snr
    flux = model + error * rng.normal(size=model.shape)
    good = np.ones(len(pix), bool)
    solvers = {"package LM": paynefit.levenberg_marquardt,
               "scipy trf": scipy_solver("trf"), "scipy dogbox": scipy_solver("dogbox")}
    results: dict[str, tuple[np.ndarray, int]] = {}

    def fit_all(name):
        def run():
            paynefit.levenberg_marquardt = solvers[name]  # fit_payne looks it up per call
            try:
                fits = [paynefit.fit_payne(emu, flux[i], error[i], good, chip[pix],
                                           x[pix], starts=truth[i] + OFFSET,
                                           max_nfev=MAX_NFEV, xtol=XTOL, ftol=FTOL)
                        for i in range(n)]
            finally:
                paynefit.levenberg_marquardt = solvers["package LM"]
            results[name] = (np.array([f.labels for f in fits]), sum(f.nfev for f in fits))
        return run

    times = best_of({k: fit_all(k) for k in solvers}, repeats=a.repeats)
    ref = results["package LM"][0]
    base = times["package LM"]
    print(f"{n} stars, S/N {a.snr:g}, start truth + {OFFSET[:3].tolist()}")
    print(f"{'solver':14s} {'ms/star':>8s} {'ratio':>6s} {'nfev':>5s}  max|fit-truth| "
          f"(Teff, logg, feh)   median            max|fit-package|")
    for k in solvers:
        lab, nfev = results[k]
        err = np.abs(lab - truth)[:, :3]
        dref = np.abs(lab - ref)[:, :3].max(0)
        print(f"{k:14s} {1000 * times[k] / n:8.1f} {times[k] / base:6.2f} {nfev:5d}  "
              f"{np.array2string(err.max(0), precision=3)}  "
              f"{np.array2string(np.median(err, 0), precision=3)}  "
              f"{np.array2string(dref, precision=4)}")


if __name__ == "__main__":
    main()
