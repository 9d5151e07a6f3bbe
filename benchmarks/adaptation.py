"""Stratified adaptation on a synthetic benchmark with a rare group (issue 6).

Payne-emulated spectra (``../shared/data/payne/NN_unnormalized_spectra.npz``, or the analytic
fallback) of many giants (``source = payne``) and few dwarfs (``source = mstar``, about 5 % of
the training set). APOGEE Net is trained on everything, evaluated (Table 3, σ calibration),
adapted (Olney et al. 2020 §3.4) and evaluated again. Prints Table 3 before and after, the
ratio of the dev scatters, and the σ coverage on the test split with the dev-fitted factors.

    python benchmarks/adaptation.py [--n-giants 2000] [--n-dwarfs 160] [--out /tmp/adapt_bench]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

from apogee_net.evaluation.report import evaluate_model
from apogee_net.network.adapt import adapt
from apogee_net.network.train import train_apogee_net
from apogee_net.spectra.simulate import simulate_spectra
from apogee_net.spectra.store import StoreWriter
from yso_labels.merge import assign_split

EMULATOR = Path(__file__).resolve().parents[2] / "shared" / "data" / "payne" / \
    "NN_unnormalized_spectra.npz"


def draw_labels(n_giants: int, n_dwarfs: int, rng) -> Table:
    logg_g = rng.uniform(1.0, 3.5, n_giants)
    feh_g = rng.uniform(-0.9, 0.4, n_giants)
    teff_g = np.clip(3900 + 420 * logg_g - 250 * feh_g + rng.normal(0, 100, n_giants),
                     3600, 5600)
    teff_d = rng.uniform(4300, 6500, n_dwarfs)
    logg_d = np.clip(4.9 - 1.5e-4 * (teff_d - 4300) + rng.normal(0, 0.08, n_dwarfs), 4.0, 5.1)
    feh_d = rng.uniform(-0.9, 0.4, n_dwarfs)
    ids = [f"2MSIM{i:07d}" for i in range(n_giants + n_dwarfs)]
    source = np.array(["payne"] * n_giants + ["mstar"] * n_dwarfs)
    t = Table({"apogee_id": ids, "teff": np.r_[teff_g, teff_d], "logg": np.r_[logg_g, logg_d],
               "fe_h": np.r_[feh_g, feh_d], "source": source})
    t["split"] = "train"
    for grp, frac in (("payne", (0.8, 0.1, 0.1)), ("mstar", (0.6, 0.2, 0.2))):
        sel = source == grp
        t["split"][sel] = assign_split(t["apogee_id"][sel], frac, seed=1)
    return t


def table3(summary: dict, group: str, split: str) -> dict:
    return {r["label"]: r[split] for r in summary["table3"] if r["group"] == group}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-giants", type=int, default=2000)
    ap.add_argument("--n-dwarfs", type=int, default=160)
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--realizations", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("/tmp/adapt_bench"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse-run", action="store_true",
                    help="keep the store, run and 'before' report of an earlier call in --out "
                    "and redo only the adaptation")
    ap.add_argument("--max-rounds", type=int, default=20, help="adapt(): rounds at most")
    ap.add_argument("--round-epochs", type=int, default=30, help="adapt(): epochs per round")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("yso_labels.core.training", "apogee_net.network.train",
                  "apogee_net.spectra.dataset", "apogee_net.evaluation.report"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    reuse = args.reuse_run and (args.out / "eval_before" / "summary.json").exists()
    if not reuse:
        shutil.rmtree(args.out, ignore_errors=True)
        args.out.mkdir(parents=True)
        before, t_train = train_and_evaluate(args)
    else:
        before = json.loads((args.out / "eval_before" / "summary.json").read_text())
        t_train = float("nan")
    t0 = time.perf_counter()
    shutil.rmtree(args.out / "adapted", ignore_errors=True)
    adapt(args.out / "run", args.out / "adapted", max_rounds=args.max_rounds,
          max_epochs=args.round_epochs, progress=False)
    t_adapt = time.perf_counter() - t0
    after = evaluate_model(args.out / "adapted" / "model.pt", args.out / "store.h5",
                           args.out / "labels.fits", args.out / "eval_after",
                           realizations=args.realizations, apply_calibration=True)
    report(args, before, after, t_train, t_adapt)


def train_and_evaluate(args) -> tuple[dict, float]:
    """Simulate the spectra, train APOGEE Net on everything, evaluate it (the 'before')."""
    labels = draw_labels(args.n_giants, args.n_dwarfs, np.random.default_rng(0))
    labels.write(args.out / "labels.fits")
    emu = str(EMULATOR) if EMULATOR.exists() else "analytic"
    sim = simulate_spectra(labels, emulator=emu, snr=(50, 200), seed=0)
    store = args.out / "store.h5"
    with StoreWriter(store, sim.flux.shape[1], np.arange(sim.flux.shape[1], dtype=float),
                     "apstar", {"simulated": sim.model}) as w:
        w.append(sim.flux, sim.error, np.zeros(sim.flux.shape, np.int32),
                 list(labels["apogee_id"]), sim.snr, sim.ra, sim.dec,
                 [f"sim-{i}" for i in labels["apogee_id"]])
    n_train = labels["split"] == "train"
    frac = np.mean(labels["source"][n_train] == "mstar")
    print(f"spectra model: {sim.model}; dwarfs are {frac:.1%} of the training set")
    t0 = time.perf_counter()
    train_apogee_net(store, args.out / "labels.fits", args.out / "run",
                     max_epochs=args.max_epochs, device="auto", progress=False)
    t_train = time.perf_counter() - t0
    before = evaluate_model(args.out / "run" / "model.pt", store, args.out / "labels.fits",
                            args.out / "eval_before", realizations=args.realizations)
    return before, t_train


def report(args, before: dict, after: dict, t_train: float, t_adapt: float) -> None:
    print(f"\ntraining {t_train:.0f} s, adaptation {t_adapt:.0f} s")
    print((args.out / "adapted" / "adapt_log.csv").read_text())
    print("\nTable 3 (dev-split scatter), before -> after adaptation")
    print(f"{'group':7s} {'label':6s} {'before':>9s} {'after':>9s} {'ratio':>6s}")
    result = {}
    for group in ("Payne", "MStar"):
        b, a = table3(before, group, "dev"), table3(after, group, "dev")
        for lab in b:
            print(f"{group:7s} {lab:6s} {b[lab]:9.4f} {a[lab]:9.4f} {a[lab] / b[lab]:6.2f}")
            result[f"{group}_{lab}"] = (b[lab], a[lab])
    print("\nσ calibration of the adapted model (factors fitted on dev)")
    for r in after["calibration"]:
        print(f"  {r['split']:4s} {r['label']:5s} scale {r['scale']:6.2f}  1σ coverage "
              f"{r['cov1_before']:.3f} -> {r['cov1_after']:.3f}  2σ {r['cov2_before']:.3f} -> "
              f"{r['cov2_after']:.3f}")
    (args.out / "result.json").write_text(json.dumps({"table3_dev": result,
                                                      "calibration": after["calibration"]},
                                                     indent=1, default=float))


if __name__ == "__main__":
    main()
