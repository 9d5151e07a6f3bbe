#!/usr/bin/env python
"""The ApogeeNet2 pipeline's uncertainty procedure, written out straight-line, against the
toolkit's batched one: same spectra, same network, same run, interleaved timings.

The peer procedure (hutchresearch/ApogeeNet2 ``apogeenet2/``, Sprague et al. 2022; SDSS
astra's ``apogeenet`` runs the same loop), re-implemented here without the toolkit, star by
star:

1. flux ← ``nan_to_num(flux)``; error ← ``nan_to_num(error)``; where error = 1e10 (no
   data) the error becomes the flux;
2. error capped at 5 × the spectrum's median error;
3. one batch of N draws of that star: flux + N(0, 1) · error (N = 100);
4. the network on the N rows (with the star's 7 z-scored photometric inputs appended);
5. labels de-standardised (log10 Teff → Teff); the star's label is the median over the draws
   of the draws' labels, its σ their standard deviation.

The toolkit runs the same procedure (:class:`apogee_net.network.published.
PublishedPreprocess` ``.perturbed_predict``, used by ``apogee-net predict`` for an imported
published model) batched over stars × draws in forward passes of ``chunk_rows`` rows; the
third row is the toolkit's own §3.5 perturbation (:func:`apogee_net.inference.uncertainty.
perturbed_predict`, Olney et al. 2020, mean-error cap) on the APOGEE Net I architecture.

The networks have random weights (speed does not depend on them); the σ of the peer loop and
of the toolkit come from different random draws, so they agree only statistically: the
median ratio of their σ is printed as a check that both run the same procedure.

    python benchmarks/peer_uncertainty.py [--n-stars 16] [--draws 100] [--device auto]
        [--threads 1 2] [--repeats 3] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    best_of,
    host_info,
    print_host,
    print_table,
    set_threads,
    simulated_spectra,
    thread_counts,
    untrained_model,
    untrained_preprocess,
    write_json,
)

# Sprague et al. 2022 (APOGEE Net II), the peer code's constants: outputs (log g,
# log10 Teff, [Fe/H]) means and σ; photometry (parallax [mas], G, BP, RP, J, H, K) fill
# values for missing inputs, means and σ.
OUT_MEAN = np.array([2.925783395767212, 3.6705732345581055, -0.13088105618953705])
OUT_STD = np.array([1.1890668869018555, 0.0917675793170929, 0.25668784976005554])
PHOT_FILL = np.array([-84.827, 21.40844, 24.53892, 20.26276, 18.439, 24.0, 17.025])
PHOT_MEAN = np.array([-0.6959113178296891, 13.630030428758845, 14.5224418320574,
                      12.832448427460813, 11.537019017423619, 10.858717523536697,
                      10.702106344460235])
PHOT_STD = np.array([14.572430555504504, 2.2762944923233883, 2.8342029214199704,
                     2.136884367623457, 1.6793628207779732, 1.4888102872755238,
                     1.5848713221149886])
LARGE_ERROR = 1e10  # the peers' "no data" error
CAP = 5.0           # × the median error


def peer_loop(model: torch.nn.Module, flux, error, photometry, draws: int,
              device) -> tuple[np.ndarray, np.ndarray]:
    """The ApogeeNet2 procedure, one star per batch of ``draws`` rows (module docstring).
    Returns labels and σ (n, 3): log g, Teff (K), [Fe/H]."""
    labels, sigmas = [], []
    model.eval()
    for f, e, p in zip(flux, error, photometry, strict=True):
        f = np.nan_to_num(np.asarray(f, np.float32))
        e = np.nan_to_num(np.asarray(e, np.float32))
        e = np.where(e == LARGE_ERROR, f, e)
        cap = CAP * np.median(e)
        e = np.where(e < cap, e, cap)
        ft = torch.from_numpy(f).to(device)
        et = torch.from_numpy(e).to(device)
        x = ft[None, :] + torch.randn(draws, f.size, device=device) * et[None, :]
        p = np.where(np.isfinite(p) & (p < 98), p, PHOT_FILL)
        z = torch.as_tensor((p - PHOT_MEAN) / PHOT_STD, dtype=torch.float32, device=device)
        x = torch.cat([x, z[None, :].expand(draws, -1)], dim=1)[:, None, :]
        with torch.no_grad():
            out = model(x).double().cpu().numpy() * OUT_STD + OUT_MEAN
        out[:, 1] = 10 ** out[:, 1]
        labels.append(np.median(out, axis=0))
        sigmas.append(out.std(axis=0, ddof=1))
    return np.array(labels), np.array(sigmas)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-stars", type=int, default=None, help="default 16 CPU, 256 GPU")
    p.add_argument("--draws", type=int, default=100)
    p.add_argument("--chunk-rows", type=int, default=None,
                   help="toolkit rows per forward pass (default: the toolkit's, 32 / 2048)")
    p.add_argument("--threads", nargs="+", default=None, help="default 1 2 (CPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from apogee_net.inference.uncertainty import default_chunk_rows, perturbed_predict
    from apogee_net.network.published import PublishedPreprocess, build_model
    from yso_labels.core.runtime import resolve_device

    args = parse_args(argv)
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    n = args.n_stars or (256 if gpu else 16)
    threads = thread_counts(args.threads or (["all"] if gpu else ["1", "2"]))
    chunk = args.chunk_rows or default_chunk_rows(dev)
    set_threads(max(threads))
    info = host_info(dev)
    print_host("Peer comparison: ApogeeNet2's per-star uncertainty loop vs the toolkit", info)
    sp = simulated_spectra(n, min(n, 64), args.seed)
    flux, error = sp.flux, sp.error
    rng = np.random.default_rng(args.seed)
    phot = np.column_stack([rng.uniform(0.2, 3, n), rng.uniform(9, 15, (n, 6))])
    phot[::5, 0] = np.nan  # some missing parallaxes take the fill value
    torch.manual_seed(args.seed)
    net2 = build_model("apogeenet2").to(dev).eval()
    pub = PublishedPreprocess("apogeenet2")
    prep1 = untrained_preprocess(flux, error, sp.labels)
    net1 = untrained_model(seed=args.seed).to(dev).eval()
    R = args.draws
    print(f"{n} stars × {R} draws; toolkit forward passes of {chunk} rows; random weights "
          "(speed only)")
    fns = {
        "peer loop": lambda: peer_loop(net2, flux, error, phot, R, dev),
        "toolkit, peer procedure": lambda: pub.perturbed_predict(
            net2, flux, error, n_realizations=R, seed=args.seed, chunk_rows=chunk,
            photometry=phot),
        "toolkit, Olney §3.5": lambda: perturbed_predict(
            net1, flux, error, prep1, n_realizations=R, seed=args.seed, chunk_rows=chunk),
    }
    rows = []
    for t in threads:
        set_threads(t)
        peer_loop(net2, flux[:2], error[:2], phot[:2], R, dev)  # warm-up
        pub.perturbed_predict(net2, flux[:2], error[:2], n_realizations=R, chunk_rows=chunk,
                              photometry=phot[:2])
        times = best_of(fns, repeats=args.repeats, device=dev)
        peer = n / times["peer loop"]
        for name, secs in times.items():
            rows.append({"threads": t, "method": name, "stars_per_s": n / secs,
                         "vs_peer": n / secs / peer})
    _, s_peer = peer_loop(net2, flux, error, phot, R, dev)
    _, s_tool = pub.perturbed_predict(net2, flux, error, n_realizations=R, seed=args.seed,
                                      chunk_rows=chunk, photometry=phot)
    ratio = np.median(s_tool / s_peer, axis=0)
    print(f"\nstars per second ({dev.type}, best of {args.repeats} interleaved runs)")
    print_table(rows, [("threads", "threads", "d"), ("method", "method", "s"),
                       ("stars_per_s", "stars/s", ".2f"), ("vs_peer", "× peer loop", ".2f")])
    print(f"\nσ(toolkit, peer procedure) / σ(peer loop), median over stars (log g, Teff, "
          f"[Fe/H]): {', '.join(f'{r:.3f}' for r in ratio)} (1 within the draw noise, "
          f"~{1 / np.sqrt(2 * (R - 1)):.2f} per star)")
    result = {"host": info, "options": {**vars(args), "n_stars": n, "chunk_rows": chunk},
              "rows": rows, "sigma_ratio": ratio.tolist()}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
