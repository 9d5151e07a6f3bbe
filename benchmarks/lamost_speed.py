"""Speed of the LAMOST backend's two hot spots, measured side by side (CPU or GPU).

1. Continuum (The Cannon's Gaussian smoothing, L = 50 Å) per spectrum:
   :func:`apogee_net.lamost.preprocess.gaussian_continuum` (banded convolution on the
   4501-pixel training grid, windowed blocks on the 3909-pixel log-linear grid) against the
   dense N×N weight matrix of The Cannon, built per call (one spectrum) or shared by a batch
   (as The Cannon does for a data set), on the same spectra; max relative difference too.
2. MC-dropout inference per spectrum: :func:`apogee_net.lamost.mc.mc_passes` (each spectrum
   repeated T times, forward calls of up to ``max_rows`` rows) against T separate forward
   passes over the batch, swept over ``--max-rows``.

Run: ``python benchmarks/lamost_speed.py [--spectra 20] [--passes 100] [--device auto]``.
Prints times per spectrum and the ratios (naive / ours).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from apogee_net.lamost.io import log_linear_wavelength
from apogee_net.lamost.mc import default_max_rows, mc_dropout, mc_passes
from apogee_net.lamost.model import BayesianCNN
from apogee_net.lamost.preprocess import gaussian_continuum, lamost_grid
from yso_labels.core.runtime import resolve_device


def dense_continuum(wl, flux, ivar, L=50.0):
    """The Cannon's formula with the full N×N matrix, one spectrum at a time."""
    w = np.exp(-0.5 * (wl[:, None] - wl[None, :]) ** 2 / L**2)
    return np.array([(w @ (iv * f)) / (w @ iv) for f, iv in zip(flux, ivar, strict=True)])


def timed(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_grid(name: str, wl: np.ndarray, n: int, rng: np.random.Generator) -> None:
    flux = 1000 * (1 + 0.3 * np.sin(wl / 800))[None, :] + rng.normal(0, 10, (n, wl.size))
    ivar = rng.uniform(0.5, 1.5, (n, wl.size)) * 1e-2
    ivar[:, 300:340] = 0
    ours_1 = timed(lambda: [gaussian_continuum(wl, f, iv)
                            for f, iv in zip(flux, ivar, strict=True)])
    ours_b = timed(lambda: gaussian_continuum(wl, flux, ivar))
    naive = timed(lambda: dense_continuum(wl, flux, ivar), repeat=1)
    naive_1 = timed(lambda: dense_continuum(wl, flux[:1], ivar[:1]), repeat=1)
    diff = np.max(np.abs(gaussian_continuum(wl, flux[:3], ivar[:3])
                         / dense_continuum(wl, flux[:3], ivar[:3]) - 1))
    print(f"continuum, {name}: ours {1e3 * ours_1 / n:.2f} ms/spectrum one by one, "
          f"{1e3 * ours_b / n:.2f} ms batched; dense N² {1e3 * naive_1:.0f} ms for one "
          f"spectrum (matrix built per call), {1e3 * naive / n:.1f} ms/spectrum with the matrix "
          f"shared by {n}; ratios {naive_1 / (ours_1 / n):.0f}x (single spectrum), "
          f"{naive / ours_b:.0f}x (batch vs batch); max rel. diff {diff:.1e}")


def bench_continuum(n: int) -> None:
    rng = np.random.default_rng(0)
    bench_grid("uniform 4501 px", lamost_grid(), n, rng)
    bench_grid("log-linear 3909 px", log_linear_wavelength(3.5682, 1e-4, 3909), n, rng)


@torch.no_grad()
def bench_mc(n: int, passes: int, device: str, max_rows_list: list[int]) -> None:
    dev = resolve_device(device)
    net = BayesianCNN().to(dev).eval()
    x = torch.randn(n, 1, 4501, device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def loop(xs):
        with mc_dropout(net):
            out = [net(xs) for _ in range(passes)]
        sync()
        return out

    t_loop = timed(lambda: loop(x), repeat=2)
    t1_l = timed(lambda: loop(x[:1]), repeat=2)
    print(f"MC dropout, {passes} passes on {dev}: one pass at a time over the batch "
          f"{1e3 * t_loop / n:.1f} ms/spectrum ({n} spectra), {1e3 * t1_l:.1f} ms for one "
          f"spectrum (default max_rows {default_max_rows(dev)})")
    for max_rows in max_rows_list:
        def batched(xs, m=max_rows):
            mc_passes(net, xs, passes, max_rows=m)
            sync()

        batched(x)
        t_b = timed(lambda b=batched: b(x), repeat=2)
        t1_b = timed(lambda b=batched: b(x[:1]), repeat=2)
        print(f"  batched, max_rows {max_rows:5d}: {1e3 * t_b / n:7.1f} ms/spectrum "
              f"(ratio {t_loop / t_b:.2f}x), single spectrum {1e3 * t1_b:7.1f} ms "
              f"(ratio {t1_l / t1_b:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spectra", type=int, default=20)
    parser.add_argument("--passes", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-rows", type=int, nargs="+", default=None,
                        help="rows per forward call to sweep (default 8…128 CPU, 1024…16384 GPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bench_continuum(args.spectra)
    gpu = resolve_device(args.device).type == "cuda"
    rows = args.max_rows or ([1024, 4096, 16384] if gpu else [8, 16, 32, 64, 128])
    bench_mc(min(args.spectra, 8), args.passes, args.device, rows)


if __name__ == "__main__":
    main()
