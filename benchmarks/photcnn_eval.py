"""Photometric CNN vs chi-square isochrone fit on independent synthetic stars (issue 3 §4).

Draws a training sample (default 42,000 stars, seed 1) and a test sample (5,000, seed 2)
from the packaged PARSEC grid, trains the CNN on the CPU, fits the same test photometry
by chi-square to the same grid, and prints bias and scatter (prediction − truth) of each
output side by side, on the clean test sample and on the same stars with a systematic
J−K offset (K brightened by U(0.05, 0.3) mag, as for real YSOs; Olney 2020 §2.4).

    python benchmarks/photcnn_eval.py                 # the full run (a few CPU minutes)
    python benchmarks/photcnn_eval.py --n-train 5000 --n-test 1000 --epochs 30   # quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from yso_labels.isochrones import load_isochrones
from yso_labels.isofit import chi2_fit
from yso_labels.photcnn import OUTPUTS, predict_photcnn, scores, train_photcnn
from yso_labels.synthetic import draw_population

UNITS = {"log_age": "dex", "mass": "Msun", "av": "mag", "log_teff": "dex", "logg": "dex"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=42000)
    p.add_argument("--n-test", type=int, default=5000)
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--test-seed", type=int, default=2)
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=25)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--k-excess", type=float, nargs=2, default=(0.05, 0.3))
    p.add_argument("--sigma", type=float, default=0.03, help="chi-square σ per band (mag)")
    p.add_argument("--model", default=None, help="reuse a trained checkpoint")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    grid = load_isochrones()
    t0 = time.perf_counter()
    train = draw_population(args.n_train, args.train_seed, grid=grid)
    test = draw_population(args.n_test, args.test_seed, grid=grid)
    test_jk = draw_population(args.n_test, args.test_seed, grid=grid,
                              k_excess=tuple(args.k_excess))
    t_draw = time.perf_counter() - t0
    print(f"grid: {grid.meta['GRID']}, [M/H] = {grid.meta['MH']}; bands "
          f"{train.meta['BANDS']} ({train.meta['BANDNOTE']}); drawn in {t_draw:.1f} s")

    if args.model:
        model, train_s, meta = Path(args.model), float("nan"), {}
    else:
        model = Path(tempfile.mkdtemp()) / "photcnn.pt"
        t0 = time.perf_counter()
        meta = train_photcnn(train, model, seed=args.model_seed, epochs=args.epochs,
                             patience=args.patience, device="cpu")
        train_s = time.perf_counter() - t0
        print(f"CNN training: {train_s:.0f} s on {args.threads} CPU thread(s), "
              f"{meta['epochs_run']} epochs (best {meta['best_epoch']}), "
              f"{args.n_train} stars")

    results, timing = {}, {}
    for name, table in (("clean", test), ("J-K offset", test_jk)):
        t0 = time.perf_counter()
        cnn = predict_photcnn(model, table, device="cpu")
        timing[f"cnn {name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit = chi2_fit(table, grid=grid, sigma=args.sigma)
        timing[f"chi2 {name}"] = time.perf_counter() - t0
        results[f"CNN {name}"] = scores(cnn, table)
        results[f"chi2 {name}"] = scores(fit, table)
        results[f"CNN {name}"]["n_out_of_domain"] = int(cnn["out_of_domain"].sum())

    cols = ["CNN clean", "chi2 clean", "CNN J-K offset", "chi2 J-K offset"]
    print(f"\nprediction − truth on {args.n_test} test stars (seed {args.test_seed}); "
          f"J-K offset: K brightened by U{tuple(args.k_excess)} mag; chi2 σ = {args.sigma} mag")
    head = f"{'output':9s} {'unit':5s}" + "".join(f" | {c:>21s}" for c in cols)
    print(head)
    print(f"{'':15s}" + " | {:>10s} {:>10s}".format("bias", "scatter") * len(cols))
    print("-" * len(head))
    for o in OUTPUTS:
        row = f"{o:9s} {UNITS[o]:5s}"
        for c in cols:
            r = results[c][o]
            row += f" | {r['bias']:+10.4f} {r['scatter']:10.4f}"
        print(row)
    print("\nscatter ratio chi2 / CNN:")
    for name in ("clean", "J-K offset"):
        ratios = {o: results[f"chi2 {name}"][o]["scatter"] / results[f"CNN {name}"][o]["scatter"]
                  for o in OUTPUTS}
        print(f"  {name:10s} " + "  ".join(f"{o} {v:.2f}" for o, v in ratios.items()))
    print("\ntimes (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))
    goal = results["CNN clean"]
    print(f"issue goal (clean): log g scatter {goal['logg']['scatter']:.4f} < 0.02: "
          f"{goal['logg']['scatter'] < 0.02}; log Teff scatter "
          f"{goal['log_teff']['scatter']:.4f} < 0.006: {goal['log_teff']['scatter'] < 0.006}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "timing": timing,
                                               "train_seconds": train_s,
                                               "epochs_run": meta.get("epochs_run")},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
