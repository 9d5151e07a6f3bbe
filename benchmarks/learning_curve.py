"""APOGEE Net against a ridge regression and a quadratic Cannon: a learning curve.

Simulates ``--pool + --n-dev + --n-test`` apStar-grid spectra with The Payne's
unnormalised emulator (labels of :func:`apogee_net_recovery.draw_labels`: half red giants,
half dwarfs; SNR 50–200; H = 7–12.2 mag), writes them to one store, and for each training
size ``n`` of ``--sizes`` trains, on the first ``n`` training stars, with the same fixed dev
split (early stopping, ridge penalty) and scores on the same fixed TEST split:

- APOGEE Net through ``train_apogee_net`` (the code behind ``apogee-net train``) with the
  library defaults (``--recipe default``), the same with the ``linear_skip`` architecture
  option (``--recipe linear_skip``: a ridge path plus the network on its cross-fitted
  residuals, outside the paper) or the paper's recipe (``--recipe paper``: constant learning
  rate, batch 128, dropout 0.1, no noise augmentation, patience 5, up to 100 epochs);
- ridge regression on the same standardised pixels, and the quadratic Cannon on the
  same median-scaled flux (:func:`apogee_net.baselines.store_baselines`),

printing test scatter and bias per label and the training time of each method.

Run: ``python benchmarks/learning_curve.py [--sizes 1000 2000 8000] [--device auto]
[--json curve.json]``. On 2 CPU cores the CNN takes about 1 h per 2,000 training spectra
(hours for 8,000); on a GPU: ``python benchmarks/learning_curve.py --sizes 1000 2000 8000
30000 --pool 30000 --device cuda --json curve_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from _common import LABELS, emulator, host_info, print_host, print_table, write_json
from apogee_net_recovery import draw_labels

RECIPES = {"default": {}, "linear_skip": {"linear_skip": "all"},
           "linear_skip_logg_feh": {"linear_skip": "logg,fe_h"},
           "paper": {"schedule": "constant", "warmup": 0.0, "batch_size": 128, "patience": 5,
                     "dropout": 0.1, "max_epochs": 100, "noise_augment": 0.0,
                     "weight_decay": 0.0, "optimizer": "adam"}}


def build(out: Path, n_pool: int, n_dev: int, n_test: int, seed: int, snr: str):
    """Store of ``n_pool + n_dev + n_test`` simulated spectra (reused when present) and the
    full label table: the first ``n_pool`` rows are the training pool, then dev, then test."""
    from astropy.table import Table

    from apogee_net.spectra.apstar import apstar_wavelength
    from apogee_net.spectra.simulate import simulate_spectra
    from apogee_net.spectra.store import StoreWriter
    from yso_labels.core.atomic import atomic_write

    n = n_pool + n_dev + n_test
    labels = draw_labels(n, seed)
    ids = np.array([f"SIM{i:07d}" for i in range(n)])
    split = np.array(["train"] * n_pool + ["dev"] * n_dev + ["test"] * n_test)
    table = Table({"apogee_id": ids, "teff": labels[:, 0], "logg": labels[:, 1],
                   "fe_h": labels[:, 2], "source": ["payne"] * n, "split": split})
    store = out / f"spectra-{n_pool}-{n_dev}-{n_test}-{seed}.h5"
    if not store.exists():
        t0 = time.perf_counter()
        with atomic_write(store) as tmp, StoreWriter(tmp, 8575, apstar_wavelength(), "apstar",
                                                     {"simulated": "payne"},
                                                     overwrite=True) as writer:
            for start in range(0, n, 1000):
                sl = slice(start, min(n, start + 1000))
                sim = simulate_spectra(labels[sl], emulator=emulator(), snr=snr, seed=seed,
                                       star_index=np.arange(n)[sl])
                m = len(sim.flux)
                writer.append(sim.flux, sim.error, np.zeros((m, 8575), np.int32), ids[sl],
                              sim.snr, sim.ra, sim.dec, [f"sim:{i}" for i in ids[sl]])
        print(f"simulated {n} spectra in {time.perf_counter() - t0:.0f} s: {store}")
    return store, table


def subset(table, n_train: int):
    """The first ``n_train`` training rows, all dev and test rows."""
    split = np.asarray(table["split"])
    keep = (split != "train") | (np.cumsum(split == "train") <= n_train)
    return table[keep]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 8000])
    p.add_argument("--pool", type=int, default=8000,
                   help="training pool simulated (≥ max(--sizes)); the dev and test stars "
                   "depend on it, so runs with the same --pool share them")
    p.add_argument("--n-dev", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--methods", nargs="+", default=["cnn", "ridge", "cannon"],
                   choices=["cnn", "ridge", "cannon"])
    p.add_argument("--recipe", default="default", choices=sorted(RECIPES))
    p.add_argument("--max-epochs", type=int, default=None,
                   help="CNN epoch budget (default: the library's)")
    p.add_argument("--augment", default="none",
                   help="CNN: real-instrument systematics drawn onto the training spectra "
                   "(train_apogee_net's augment; default none: the baselines and the test "
                   "stars see the emulated spectra as they are, so does the CNN)")
    p.add_argument("--snr", default="50:200")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    p.add_argument("--out", default="/tmp/apogee_net_learning_curve")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from _common import set_threads

    set_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from apogee_net.evaluation.baselines import store_baselines
    from apogee_net.inference.predict import load_model
    from apogee_net.network.train import train_apogee_net
    from yso_labels.core.runtime import resolve_device

    device = resolve_device(args.device)
    info = host_info(device)
    print_host("APOGEE Net vs ridge vs quadratic Cannon: learning curve (TEST split)", info)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if max(args.sizes) > args.pool:
        p.error(f"--sizes up to {max(args.sizes)} need --pool ≥ that")
    store, table = build(out, args.pool, args.n_dev, args.n_test, args.seed, args.snr)
    rows = []
    for n in sorted(args.sizes):
        sub = subset(table, n)
        run = out / f"cnn-{args.recipe}-{n}-{args.seed}"
        kw = dict(RECIPES[args.recipe])
        if args.max_epochs:
            kw["max_epochs"] = args.max_epochs
        prep = None
        if "cnn" in args.methods:
            t0 = time.perf_counter()
            result = train_apogee_net(store, sub, run, device=str(device), seed=args.seed,
                                      resume=True, progress=False, augment=args.augment, **kw)
            seconds = time.perf_counter() - t0
            metrics = json.loads((run / "test_metrics.json").read_text())
            done = sum(h["seconds"] for h in result.history)
            rows.append({"n_train": n, "method": f"APOGEE Net ({args.recipe})",
                         "seconds": done or seconds, "epochs": len(result.history),
                         **{k: metrics[k]["scatter"] for k in LABELS},
                         **{f"{k}_bias": metrics[k]["bias"] for k in LABELS}})
            prep = load_model(run / "model.pt", device="cpu").preprocess
        base = [m for m in args.methods if m != "cnn"]
        if base:
            if prep is None:  # the CNN's preprocessing, fitted on the same training stars
                from apogee_net.network.model import Preprocess
                from apogee_net.network.train import fit_flux_scaler
                from apogee_net.spectra.dataset import join_labels
                from yso_labels.core.scaling import Standardiser

                r, joined, _ = join_labels(store, sub)
                train = r[np.asarray(joined["split"]) == "train"]
                prep = Preprocess(fit_flux_scaler(store, train, "median"),
                                  Standardiser.fit(np.zeros((1, 3))), "median")
            for method, res in store_baselines(store, sub, prep, LABELS, base).items():
                rows.append({"n_train": n, "method": method, "seconds": res["seconds"],
                             **{k: res[k]["scatter"] for k in LABELS},
                             **{f"{k}_bias": res[k]["bias"] for k in LABELS}})
        print(f"\n-- {n} training spectra --")
        print_table([r for r in rows if r["n_train"] == n], [
            ("method", "method", "s"), ("teff", "Teff (K)", ".1f"), ("logg", "log g", ".4f"),
            ("fe_h", "[Fe/H]", ".4f"), ("teff_bias", "Teff bias", ".1f"),
            ("seconds", "train s", ".0f")], )
    print(f"\nall sizes (test split, {args.n_test} stars; dev {args.n_dev}):")
    print_table(rows, [("n_train", "n_train", "d"), ("method", "method", "s"),
                       ("teff", "Teff (K)", ".1f"), ("logg", "log g", ".4f"),
                       ("fe_h", "[Fe/H]", ".4f"), ("seconds", "train s", ".0f")])
    write_json(args.json, {"host": info, "args": vars(args), "rows": rows})


if __name__ == "__main__":
    torch.set_num_interop_threads(1)
    main()
