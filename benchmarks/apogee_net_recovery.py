"""APOGEE Net label recovery on Payne-emulated spectra, and prediction throughput.

Simulates ``--n`` apStar-grid spectra with The Payne's unnormalised emulator (Ting et al.
2019; labels spanning red giants and dwarfs, SNR 50–200), writes them to a store, trains
APOGEE Net with ``train_apogee_net`` (the code behind ``apogee-net train``; 80/10/10
train/dev/test), and prints, side by side:

- the test-split scatter per label against a ridge regression on the same standardised
  pixels and a quadratic Cannon on the same median-scaled flux, fitted in the same run on
  the same split (:mod:`apogee_net.evaluation.baselines`), and against Olney et al. (2020)
  Table 3, full sample, test (184 K, 0.216 dex, 0.091 dex);
- training time and training spectra per second;
- inference spectra per second: plain, 100 perturbed realizations batched
  (:func:`apogee_net.inference.uncertainty.perturbed_predict`) and a naive loop of one realization
  per forward pass, with their ratios;
- ``apogee-net predict`` on the two real DR17 apStar files of ``../shared/data/apogee``.

Run: ``python benchmarks/apogee_net_recovery.py [--n 3000] [--max-epochs N]``. CPU by
default (``--device``); takes tens of minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
#: Olney et al. 2020 Table 3, full sample, test column.
PAPER_TEST = {"teff": 183.74, "logg": 0.216, "fe_h": 0.0914}


def draw_labels(n: int, seed: int) -> np.ndarray:
    """[Teff, log g, [Fe/H], [α/Fe]] for half red giants, half dwarfs, inside the emulator's
    range (Teff 3529–6983 K, log g 0.34–5.22)."""
    rng = np.random.default_rng(seed)
    giant = rng.random(n) < 0.5
    teff = np.where(giant, rng.uniform(3700, 5300, n), rng.uniform(3700, 6900, n))
    logg = np.where(giant, 0.6 + (teff - 3700) / 1600 * 2.6 + rng.normal(0, 0.3, n),
                    4.75 - (teff - 3700) / 3200 * 0.6 + rng.normal(0, 0.15, n))
    feh = rng.uniform(-0.9, 0.45, n)
    alpha = np.clip(-0.3 * feh + rng.normal(0, 0.05, n), -0.1, 0.4)
    return np.column_stack([teff, np.clip(logg, 0.5, 5.1), feh, alpha])


def make_store(args, out: Path):
    from astropy.table import Table

    from apogee_net.spectra.apstar import apstar_wavelength
    from apogee_net.spectra.simulate import simulate_spectra
    from apogee_net.spectra.store import StoreWriter

    labels = draw_labels(args.n, args.seed)
    ids = [f"SIM{i:06d}" for i in range(args.n)]
    split = np.array(["train"] * args.n, dtype="U5")
    perm = np.random.default_rng(args.seed + 1).permutation(args.n)
    split[perm[: args.n // 10]] = "dev"
    split[perm[args.n // 10: args.n // 5]] = "test"
    table = Table({"apogee_id": ids, "teff": labels[:, 0], "logg": labels[:, 1],
                   "fe_h": labels[:, 2], "source": ["payne"] * args.n, "split": split})
    store = out / "spectra.h5"
    if not store.exists():
        t0 = time.perf_counter()
        with StoreWriter(store, 8575, apstar_wavelength(), "apstar",
                         {"simulated": "payne"}) as writer:
            for start in range(0, args.n, 500):
                sl = slice(start, start + 500)
                sim = simulate_spectra(labels[sl], emulator=args.emulator, snr=args.snr,
                                       seed=args.seed, star_index=np.arange(args.n)[sl])
                n = len(sim.flux)
                writer.append(sim.flux, sim.error, np.zeros((n, 8575), np.int32), ids[sl],
                              sim.snr, sim.ra, sim.dec, [f"sim:{i}" for i in ids[sl]])
        print(f"simulated {args.n} spectra in {time.perf_counter() - t0:.0f} s")
    return store, table


def throughput(model, prep, flux, error, realizations: int, n_naive: int,
               repeats: int = 3) -> dict:
    """Spectra per second of plain prediction, batched realizations and the naive loop,
    measured interleaved ``repeats`` times; the best of each (the machine is shared)."""
    from apogee_net.inference.uncertainty import perturbed_predict
    from apogee_net.testing.reference import naive_perturbed_predict

    def rate(fn, n):
        t0 = time.perf_counter()
        fn()
        return n / (time.perf_counter() - t0)

    n = len(flux)
    many_f, many_e = np.tile(flux, (10, 1)), np.tile(error, (10, 1))  # plain: 10× the stars
    perturbed_predict(model, flux[:2], error[:2], prep, n_realizations=10)  # warm-up
    rates = {"plain": [], "batched": [], "naive": []}
    for _ in range(repeats):
        rates["plain"].append(rate(lambda: perturbed_predict(
            model, many_f, many_e, prep, n_realizations=0), 10 * n))
        rates["batched"].append(rate(lambda: perturbed_predict(
            model, flux, error, prep, n_realizations=realizations), n))
        rates["naive"].append(rate(lambda: naive_perturbed_predict(
            model, flux[:n_naive], error[:n_naive], prep, n_realizations=realizations), n_naive))
    return {k: max(v) for k, v in rates.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=3000, help="simulated spectra")
    p.add_argument("--snr", default="50:200")
    # training options default to the library's (train_apogee_net)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--flux-norm", default="median", choices=("median", "none"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--realizations", type=int, default=100)
    p.add_argument("--n-bench", type=int, default=32, help="test stars timed for inference")
    p.add_argument("--n-naive", type=int, default=2, help="stars for the naive loop")
    p.add_argument("--emulator", default=str(DATA / "payne" / "NN_unnormalized_spectra.npz"))
    p.add_argument("--out", default="/tmp/apogee_net_recovery")
    p.add_argument("--skip-inference", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from apogee_net.evaluation.baselines import store_baselines
    from apogee_net.inference.predict import load_model, predict_catalog
    from apogee_net.network.train import train_apogee_net
    from apogee_net.spectra.store import open_store

    store, table = make_store(args, out)
    run = out / f"run-{args.flux_norm}-{args.n}"
    t0 = time.perf_counter()
    given = {k: getattr(args, k) for k in ("max_epochs", "batch_size", "lr", "patience")
             if getattr(args, k) is not None}
    result = train_apogee_net(store, table, run, device=args.device, seed=args.seed,
                              flux_norm=args.flux_norm, resume=True, progress=False, **given)
    train_s = time.perf_counter() - t0
    metrics = json.loads((run / "test_metrics.json").read_text())
    epochs = len(result.history)
    rate = np.median([h["train_spectra_per_s"] for h in result.history])
    print(f"\ntraining: {epochs} epochs (best {result.best_epoch}) in {train_s:.0f} s, "
          f"{rate:.1f} training spectra/s per epoch, flux_norm={args.flux_norm}")
    lm = load_model(run / "model.pt", device=args.device)
    base = store_baselines(store, table, lm.preprocess)
    print(f"baselines on the same split and inputs: ridge (alpha {base['ridge']['alpha']:g}, "
          f"chosen on dev) {base['ridge']['seconds']:.0f} s, quadratic Cannon "
          f"{base['cannon']['seconds']:.0f} s to train")
    print(f"TEST split ({metrics['teff']['n']} stars), scatter:")
    print(f"{'label':6s} {'CNN':>9s} {'ridge':>9s} {'Cannon':>9s} {'CNN/ridge':>10s} "
          f"{'paper test':>11s} {'CNN bias':>9s}")
    for name in ("teff", "logg", "fe_h"):
        m, r, c = metrics[name], base["ridge"][name], base["cannon"][name]
        print(f"{name:6s} {m['scatter']:9.4g} {r['scatter']:9.4g} {c['scatter']:9.4g} "
              f"{m['scatter'] / r['scatter']:10.3f} {PAPER_TEST[name]:11.4g} "
              f"{m['bias']:9.3g}")
    if not args.skip_inference:
        test_rows = np.sort(np.flatnonzero(np.asarray(table["split"]) == "test"))[:args.n_bench]
        with open_store(store) as h5:
            flux, error = h5["flux"][test_rows], h5["error"][test_rows]
        tp = throughput(lm.model, lm.preprocess, flux, error, args.realizations, args.n_naive)
        print(f"\ninference (spectra/s, {args.device}, {args.threads} threads): plain "
              f"{tp['plain']:.1f}; {args.realizations} realizations batched "
              f"{tp['batched']:.3f}, naive loop {tp['naive']:.3f}; batched/naive "
              f"{tp['batched'] / tp['naive']:.2f}, plain/batched "
              f"{tp['plain'] / tp['batched']:.1f} (ideal {args.realizations})")
    files = sorted((DATA / "apogee").glob("apStar-*.fits"))
    if files:
        from astropy.table import Table

        cat = Table.read(predict_catalog(run / "model.pt", files, out / "real.fits",
                                         realizations=args.realizations, device=args.device,
                                         progress=False), mask_invalid=False)
        print("\nreal DR17 apStar files:")
        cat[["apogee_id", "teff", "teff_err", "logg", "logg_err", "fe_h", "fe_h_err", "snr",
             "flags"]].pprint(max_width=200)


if __name__ == "__main__":
    main()
