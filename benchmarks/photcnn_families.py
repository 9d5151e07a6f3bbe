"""Photometric CNN per isochrone family, and across families (issue 17 §4).

For each model family (``parsec``, ``dsep-magnetic``, ``dsep-standard``;
:mod:`yso_labels.families`) a training sample (seed 1) and an independent test sample
(seed 2) are drawn as in Olney et al. 2020 §2.4 over the family's own mass coverage, a CNN
is trained on the CPU, and two baselines are fitted in the same run on the same data: a
ridge regression of the standardised targets on the same standardised input vector
(:func:`apogee_net.evaluation.baselines.ridge_baseline`, penalty chosen on a dev tenth of
the training sample) and the chi-square isochrone fit (:func:`yso_labels.isofit.chi2_fit`)
to the family's own grid. Bias and scatter (prediction − truth) on each family's own TEST
sample are printed for all three, with the issue's precision goal (log g < 0.02 dex,
log Teff < 0.006 dex).

Cross-family: a second test sample per family (seed 3) is drawn over the mass range all
families share (0.09–1.65 M☉: the stelpar DSEP grids stop at 1.65 M☉ below 100 Myr), and
every family's CNN and chi-square grid is applied to every family's sample: the diagonal is
the within-family error, the off-diagonal the model dependence a user must expect when the
true stars follow other physics than the training grid.

Trained models are cached in ``--cache`` (default ``/tmp/yso_photcnn_families``) under a
key of family and training options, and reused by ``family_systematics.py``.

    nice -n 10 python benchmarks/photcnn_families.py                     # ~15 CPU min
    python benchmarks/photcnn_families.py --n-train 3000 --n-test 500 --epochs 20  # quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import host_info, print_host, write_json  # noqa: E402

from apogee_net.evaluation.baselines import ridge_baseline  # noqa: E402
from yso_labels.core.scaling import Standardiser  # noqa: E402
from yso_labels.families import MODELS, load_models  # noqa: E402
from yso_labels.isochrones import mass_coverage  # noqa: E402
from yso_labels.isofit import chi2_fit  # noqa: E402
from yso_labels.photcnn import (  # noqa: E402
    OUTPUTS,
    build_inputs,
    build_targets,
    predict_photcnn,
    scores,
    table_bands,
    train_photcnn,
)
from yso_labels.synthetic import PAPER_RANGES, draw_population  # noqa: E402

GOAL = {"logg": 0.02, "log_teff": 0.006}
UNITS = {"log_age": "dex", "mass": "Msun", "av": "mag", "log_teff": "dex", "logg": "dex"}
DEFAULT_CACHE = Path("/tmp/yso_photcnn_families")


def cached_model(family: str, train: Table, cache: Path, **options) -> tuple[Path, dict]:
    """Train (or reuse) the CNN of ``family`` on ``train``; the cache key holds every
    training option and the training sample's size, seed and mass range."""
    key_src = json.dumps({"family": family, "n": len(train), "seed": train.meta["SEED"],
                          "massrng": train.meta["MASSRNG"], "ext": train.meta["EXTMODE"],
                          **options}, sort_keys=True)
    key = hashlib.sha1(key_src.encode()).hexdigest()[:10]
    path = cache / f"photcnn-{family}-{key}.pt"
    if path.exists():
        return path, {"cached": True}
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = train_photcnn(train, path, device="cpu", **options)
    return path, {"cached": False, "seconds": time.perf_counter() - t0,
                  "epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"]}


def as_prediction(y: np.ndarray) -> Table:
    """Rows of (log age, mass, A_V, log Teff, log g) as the columns :func:`scores` reads."""
    col = {o: y[:, i] for i, o in enumerate(OUTPUTS)}
    return Table({"teff": 10 ** col["log_teff"], "logg": col["logg"],
                  "age_myr": 10 ** (col["log_age"] - 6.0), "mass": col["mass"],
                  "av": col["av"]})


def fit_ridge(train: Table, seed: int = 0):
    """Ridge of standardised targets on the CNN's standardised input vector; returns a
    function table → prediction table."""
    bands = table_bands(train)
    x, _ = build_inputs(train, bands)
    y = build_targets(train)
    xs, ys = Standardiser.fit(x), Standardiser.fit(y)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_dev = max(len(x) // 10, 1)
    dev, tr = perm[:n_dev], perm[n_dev:]
    model = ridge_baseline(xs.transform(x[tr]), ys.transform(y[tr]), xs.transform(x[dev]),
                           ys.transform(y[dev]))

    def predict(table: Table) -> Table:
        xt, _ = build_inputs(table, bands)
        return as_prediction(ys.inverse(model.predict(xs.transform(xt))))

    return predict


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--n-train", type=int, default=12000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--test-seed", type=int, default=2)
    p.add_argument("--cross-seed", type=int, default=3)
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=120)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sigma", type=float, default=0.03, help="chi-square σ per band (mag)")
    p.add_argument("--chi2-n", type=int, default=300,
                   help="test stars fitted by chi-square (the first N of each test sample; "
                        "the CNN and ridge are scored on these too, in the chi2 columns)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print_host("photometric CNN per isochrone family and across families", host_info())

    grids = {f: load_models(f) for f in args.families}
    la_range = tuple(np.log10(np.asarray(PAPER_RANGES["age_myr"]) * 1e6))
    cover = [mass_coverage(g, la_range) for g in grids.values()]
    common = (max(max(c[0] for c in cover), PAPER_RANGES["mass"][0]),
              min(min(c[1] for c in cover), PAPER_RANGES["mass"][1]))
    models, own, cross, info = {}, {}, {}, {}
    for fam, grid in grids.items():
        train = draw_population(args.n_train, args.train_seed, grid=grid)
        test = draw_population(args.n_test, args.test_seed, grid=grid)
        cross[fam] = draw_population(args.n_test, args.cross_seed, grid=grid,
                                     mass_range=common)
        models[fam], info[fam] = cached_model(
            fam, train, args.cache, seed=args.model_seed, epochs=args.epochs,
            patience=args.patience)
        ridge = fit_ridge(train, args.model_seed)
        sub = test[:args.chi2_n]
        t0 = time.perf_counter()
        chi2 = chi2_fit(sub, grid=grid, sigma=args.sigma)
        info[fam]["chi2_seconds"] = time.perf_counter() - t0
        cnn = predict_photcnn(models[fam], test, device="cpu")
        own[fam] = {"CNN": scores(cnn, test), "ridge": scores(ridge(test), test),
                    f"CNN (first {len(sub)})": scores(cnn[:len(sub)], sub),
                    f"chi2 (first {len(sub)})": scores(chi2, sub)}
        own[fam]["CNN"]["n_out_of_domain"] = int(cnn["out_of_domain"].sum())
        info[fam]["mass_range"] = train.meta["MASSRNG"]
        print(f"{fam}: {grid.meta['GRID']}; bands {train.meta['BANDS']}; mass "
              f"{train.meta['MASSRNG']} Msun; CNN {info[fam]}", flush=True)

    print(f"\n== own family: prediction − truth on {args.n_test} TEST stars (seed "
          f"{args.test_seed}), training {args.n_train} stars (seed {args.train_seed}) ==")
    for fam in grids:
        print(f"\n{fam}   (bias / scatter)")
        print(f"{'output':9s} {'unit':5s}" + "".join(f" | {m:>19s}" for m in own[fam]))
        for o in OUTPUTS:
            print(f"{o:9s} {UNITS[o]:5s}" + "".join(
                f" | {own[fam][m][o]['bias']:+9.4f} {own[fam][m][o]['scatter']:9.4f}"
                for m in own[fam]))
        c = own[fam]["CNN"]
        print("goal: " + ", ".join(f"{o} scatter {c[o]['scatter']:.4f} < {g}: "
                                   f"{c[o]['scatter'] < g}" for o, g in GOAL.items()))

    results = {"CNN": {}, "chi2": {}}
    for tr in grids:
        for te in grids:
            cnn = predict_photcnn(models[tr], cross[te], device="cpu")
            results["CNN"][(tr, te)] = scores(cnn, cross[te])
            results["CNN"][(tr, te)]["n_out_of_domain"] = int(cnn["out_of_domain"].sum())
            sub = cross[te][:args.chi2_n]
            results["chi2"][(tr, te)] = scores(chi2_fit(sub, grid=grids[tr],
                                                        sigma=args.sigma), sub)
    print(f"\n== cross-family: {args.n_test} TEST stars per family (seed {args.cross_seed}; "
          f"chi2: the first {args.chi2_n}) "
          f"over the shared mass range {common[0]:.3f}-{common[1]:.3f} Msun; rows: model "
          f"(trained on / fitted with), columns: family the stars were drawn from ==")
    for method in ("CNN", "chi2"):
        for o in ("log_age", "mass", "log_teff", "logg", "av"):
            print(f"\n{method} {o} ({UNITS[o]}), bias / scatter")
            print(f"{'model/stars':14s}" + "".join(f" | {te:>19s}" for te in grids))
            for tr in grids:
                print(f"{tr:14s}" + "".join(
                    f" | {results[method][(tr, te)][o]['bias']:+9.4f} "
                    f"{results[method][(tr, te)][o]['scatter']:9.4f}" for te in grids))
    print("\nCNN out-of-domain flags (model -> stars): " + "; ".join(
        f"{tr}->{te} {results['CNN'][(tr, te)]['n_out_of_domain']}"
        for tr in grids for te in grids))
    if args.json:
        out = {"host": host_info(), "options": vars(args) | {"cache": str(args.cache)},
               "common_mass_range": common, "info": info, "own": own,
               "cross": {m: {f"{a}->{b}": v for (a, b), v in r.items()}
                         for m, r in results.items()}}
        write_json(args.json, json.loads(json.dumps(out, default=str)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
