"""Label recovery of the LAMOST Bayesian CNN on synthetic spectra (Li et al. §2.2, §3).

Labels: the giants (3500 < Teff < 5500 K, 0 < log g < 4, [Fe/H] known) of
``../shared/data/labels/lamost_apogee_dr12_labels.csv`` (Ho et al. 2017: LAMOST DR2 ×
APOGEE DR12; [X/Fe] = [X/H] − [Fe/H], [M/H] and [α/M] from ASPCAP's PARAM). Its missing
values are the realistic pattern: ~16 % of the stars have no ASPCAP abundances, [M/H] or
[α/M]; Table 1's effective ranges then blank single labels (:func:`treat_labels`). The
spectra need complete labels: a missing one is copied from the nearest complete star in
(Teff/1000 K, log g, [Fe/H], Cannon [α/M]) — the *truth* used to make the spectrum and to
score every prediction, while training sees the blanked table. The train+dev stars
(``--stars``) are a random draw, so the metal-poor end is as sparse as in the survey (~3 %
below −1 dex, the situation §2.2.2's weights address); the test set (``--test-stars``) holds
up to half metal-poor stars so that end is measured on many stars. The CSV has no label
errors: σ_known = 0. Spectra: :func:`apogee_net.testing.lamost_spectra.simulate_lamost` (toy model:
real line positions, R = 1800, S/N_g log-uniform 15–150, cosmic rays), then the full
preprocessing chain and an HDF5 store, as real data.

Three arms, each trained with every seed of ``--seeds`` (the spread over seeds is the
training noise every difference is judged against), on the same spectra (shared
:func:`train_lamost`):

* ``paper``: blanked labels + §2.2.2 [Fe/H] weights (standard ``auto`` — the mean count of
  the −1.4…−0.9 bins of this smaller training set, the paper's recipe; cap 10, 0.95);
* ``sumw``: as ``paper`` but each batch's loss normalised as Σwᵢlᵢ/Σwᵢ
  (``weight_norm="sum_w"``) instead of the mean of wᵢlᵢ (``"batch"``, astroNN/Keras'
  ``sample_weight`` with the ``SUM_OVER_BATCH_SIZE`` reduction: the ``paper`` arm);
* ``noweight``: blanked labels, all weights 1;
* ``complete``: the true labels, none missing, with weights (the reference for bias).

A ridge regression of each label on the training spectra (the stars where that label is
present; penalty chosen on the dev split) is fitted in the same run and printed beside
(``ridge``, no σ).

Scored on the test stars against the truth with MC dropout (``--passes``): per-label MAE,
bias and mean σ on the typical stars ([Fe/H] ≥ −1), printed beside Li et al.'s test MAE and
mean σ (their text; elements "0.02–0.04 dex"); the bias of the never-masked labels with and
without masking; the metal-poor end ([Fe/H] < −1 and < −1.5).

About 35 minutes on two free CPU cores with the defaults (2000 + 400 stars, 4 arms × 2
seeds, at most 80 epochs, patience 12, batch 32, 30 passes). Work lands in ``--work``
(default /tmp/lamost_recovery): stores and runs are reused/resumed on a rerun.
``python benchmarks/lamost_recovery.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

from apogee_net.lamost.labels import (
    LABELS,
    apply_weights,
    label_ranges,
    treat_labels,
    weight_table,
)
from apogee_net.lamost.preprocess import lamost_grid, prepare_spectrum
from apogee_net.lamost.training import assign_splits, train_lamost
from apogee_net.spectra.store import StoreWriter
from apogee_net.testing.lamost_spectra import simulate_lamost
from yso_labels.core.runtime import seed_everything

CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "labels" / \
    "lamost_apogee_dr12_labels.csv"
ELEMENTS = {"c_fe": "C_H", "n_fe": "N_H", "o_fe": "O_H", "mg_fe": "MG_H", "al_fe": "AL_H",
            "si_fe": "SI_H", "ca_fe": "CA_H", "mn_fe": "MN_H", "ni_fe": "NI_H"}


# --------------------------------------------------------------------------- labels
def load_labels(path: Path) -> tuple[Table, Table]:
    """(truth, observed) tables of all giants of the CSV, columns ``id`` + the 14 labels."""
    raw = Table.read(path, format="ascii.csv")
    col = {c: np.asarray(np.ma.filled(np.ma.asarray(raw[c], dtype=float), np.nan))
           for c in raw.colnames if c not in ("lamost_file", "apogee_id")}
    for v in col.values():
        v[v < -9000] = np.nan
    giant = (col["teff"] > 3500) & (col["teff"] < 5500) & (col["logg"] > 0) & (col["logg"] < 4)
    fe = np.where(np.isfinite(col["FE_H"]), col["FE_H"], col["feh"])
    giant &= np.isfinite(fe)      # 126 rows have neither ASPCAP nor Cannon [Fe/H]
    obs = {"teff": col["teff"], "logg": col["logg"], "fe_h": fe, "m_h": col["PARAM_M_H"],
           "alpha_m": col["PARAM_ALPHA_M"]}
    for name, xh in ELEMENTS.items():
        obs[name] = col[xh] - col["FE_H"]
    obs = {k: v[giant] for k, v in obs.items()}
    ids = np.asarray(raw["apogee_id"]).astype(str)[giant]
    cannon_alpha = col["alpha_m"][giant]
    # impute the missing labels (for the spectra only) from the nearest complete star
    values = np.column_stack([obs[n] for n in LABELS])
    complete = np.isfinite(values).all(axis=1)
    feats = np.column_stack([obs["teff"] / 1000, obs["logg"], obs["fe_h"],
                             np.nan_to_num(cannon_alpha)])
    donors = np.flatnonzero(complete)
    truth = values.copy()
    k_mh, k_fe = LABELS.index("m_h"), LABELS.index("fe_h")
    for i in np.flatnonzero(~complete):
        j = donors[np.argmin(((feats[donors] - feats[i]) ** 2).sum(axis=1))]
        miss = ~np.isfinite(values[i])
        truth[i, miss] = values[j, miss]        # [X/Fe], [α/M] copied from the donor
        if miss[k_mh]:                          # [M/H] keeps the donor's [M/H] − [Fe/H]
            truth[i, k_mh] = values[i, k_fe] + values[j, k_mh] - values[j, k_fe]
    t_truth = Table({"id": ids})
    t_obs = Table({"id": ids})
    for k, name in enumerate(LABELS):
        t_truth[name] = truth[:, k]
        t_obs[name] = values[:, k]
    t_truth["aspcap_missing"] = ~np.isfinite(values[:, 3])
    return t_truth, t_obs


def draw_sample(fe_h: np.ndarray, n_train: int, n_test: int, seed: int,
                poor: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train+dev, test). Train+dev: a random draw, so the metal-poor end is as
    sparse as in the survey (~3 % below ``poor``); test: up to half of it the remaining stars
    with [Fe/H] < ``poor``, the rest random, so the metal-poor end is measured on many stars."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(fe_h.size)
    train, rest = np.sort(order[:n_train]), order[n_train:]
    mp = rest[fe_h[rest] < poor][: n_test // 2]
    others = rest[fe_h[rest] >= poor][: n_test - mp.size]
    return train, np.sort(np.concatenate([mp, others]))


# --------------------------------------------------------------------------- spectra
def _prepare_chunk(args):
    labels, seed, first = args
    sim = simulate_lamost(labels, seed=seed, first_index=first)
    out_f, out_e, n_cr = [], [], []
    for i in range(len(sim.flux)):
        p = prepare_spectrum(sim.wavelength, sim.flux[i], sim.ivar[i], sim.z[i])
        out_f.append(np.where(p.ivar > 0, p.flux, np.nan))
        out_e.append(p.error)
        n_cr.append(p.n_cosmic)
    return np.array(out_f, np.float32), np.array(out_e, np.float32), sim.snr, np.array(n_cr)


def make_store(path: Path, truth: Table, rows: np.ndarray, seed: int, workers: int) -> float:
    """Simulate + prepare the spectra of ``rows`` of ``truth`` into a LAMOST store."""
    if path.exists():
        return 0.0
    t0 = time.perf_counter()
    grid = lamost_grid()
    chunks = [(rows[i:i + 100]) for i in range(0, rows.size, 100)]
    jobs = [({n: np.asarray(truth[n])[c] for n in LABELS}, seed, int(c[0])) for c in chunks]
    with StoreWriter(path, grid.size, grid, kind="lamost", overwrite=True,
                     meta={"STEP": "benchmarks/lamost_recovery.py"}) as w, \
            ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for c, (flux, err, snr, _) in zip(chunks, pool.map(_prepare_chunk, jobs), strict=True):
            w.append(flux, err, np.zeros(flux.shape, np.int32), list(truth["id"][c]), snr,
                     np.zeros(c.size), np.zeros(c.size), [f"sim-{i}" for i in c])
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- runs
def label_table(labels: Table, split: np.ndarray, weights: bool) -> Table:
    allstar = Table({"APOGEE_ID": labels["id"]})
    ranges = label_ranges()
    for name in LABELS:
        allstar[str(ranges.loc[name]["allstar"])] = labels[name]
        allstar[f"{ranges.loc[name]['allstar']}_ERR"] = 0.0   # no label errors in the CSV
    table = treat_labels(allstar, where="benchmark labels")
    table.meta.clear()
    table["split"] = split
    table["source"] = "apogee-dr12"
    if weights:
        fe = np.asarray(table["fe_h"])
        wt = weight_table(fe[split == "train"], standard="auto")
        table["weight"] = apply_weights(fe, wt)
        table.meta["weight_standard"] = wt.meta["standard"]
    else:
        table["weight"] = np.ones(len(table))
    return table


def predict_test(run: Path, store: Path, passes: int, seed: int) -> dict[str, np.ndarray]:
    import h5py

    from apogee_net.inference.chunks import read_chunk
    from apogee_net.inference.predict import load_model
    from apogee_net.lamost.model import BayesianCNN
    from apogee_net.lamost.predict import predict_arrays

    lm = load_model(run / "model.pt", expect=BayesianCNN)
    with h5py.File(store, "r") as h5:
        n = h5["flux"].shape[0]
    cat = predict_arrays(lm, read_chunk({"store": str(store), "start": 0, "stop": n}, lm.npix),
                         passes=passes, seed=seed)
    return {"ids": np.asarray(cat["spec_id"]),
            "mean": np.column_stack([cat[n] for n in LABELS]),
            "sigma": np.column_stack([cat[f"{n}_err"] for n in LABELS]),
            "flags": np.asarray(cat["flags"])}


def summarise(pred, truth: np.ndarray, select: np.ndarray | None = None):
    sel = slice(None) if select is None else select
    resid = pred["mean"][sel] - truth[sel]
    return np.abs(resid).mean(0), resid.mean(0), pred["sigma"][sel].mean(0)


def train_arm(arm: str, seed: int, args, work: Path, src: Table, rows: np.ndarray,
              split: np.ndarray, test_truth: np.ndarray) -> dict:
    """Train one arm with one seed on the train store and predict the test store."""
    table = label_table(src[rows], split, weights=(arm != "noweight"))
    norm = "sum_w" if arm == "sumw" else "batch"
    t0 = time.perf_counter()
    fit = train_lamost(work / "train.h5", table, work / f"run_{arm}_s{seed}",
                       max_epochs=args.epochs, filters=[int(x) for x in args.filters.split(",")],
                       hidden=[int(x) for x in args.hidden.split(",")],
                       batch_size=args.batch_size, weights="column", device="cpu", seed=seed,
                       resume=True, progress=False, patience=args.patience,
                       weight_norm=norm)
    seconds = time.perf_counter() - t0
    pred = predict_test(work / f"run_{arm}_s{seed}", work / "test.h5", args.passes, seed)
    print(f"[{arm}, seed {seed}] {len(fit.history)} epochs (best {fit.best_epoch}) in "
          f"{seconds:.0f} s", flush=True)
    return {"pred": pred, "truth": test_truth, "epochs": len(fit.history), "seconds": seconds}


def ridge_arm(work: Path, observed: Table, rows: np.ndarray, split: np.ndarray,
              test_truth: np.ndarray) -> dict:
    """Ridge baseline (:func:`apogee_net.evaluation.baselines.ridge_baseline`), one label at a
    time on the training stars where the label is present (the blanked table), missing pixels
    set to 1 (the continuum-normalised flux's continuum); scored like an arm."""
    import h5py

    from apogee_net.evaluation.baselines import ridge_baseline

    def flux(path):
        with h5py.File(path, "r") as h5:
            return np.nan_to_num(np.asarray(h5["flux"], np.float64), nan=1.0)

    x, x_test = flux(work / "train.h5"), flux(work / "test.h5")
    table = label_table(observed[rows], split, weights=False)
    mean = np.empty((len(x_test), len(LABELS)))
    for k, name in enumerate(LABELS):
        y = np.asarray(table[name], float)
        tr, dv = (split == "train") & np.isfinite(y), (split == "dev") & np.isfinite(y)
        model = ridge_baseline(x[tr], y[tr, None], x[dv], y[dv, None])
        mean[:, k] = np.reshape(model.predict(x_test), -1)
    pred = {"mean": mean, "sigma": np.full_like(mean, np.nan)}
    return {"pred": pred, "truth": test_truth, "epochs": 0, "seconds": 0.0}


def _cell(values: list[float], fmt: str = ".3g") -> str:
    """Mean ± standard deviation over seeds."""
    v = np.asarray(values)
    return (f"{v.mean():{fmt}}±{v.std():{fmt.lstrip('+')}}" if v.size > 1
            else f"{v[0]:{fmt}}")


def main() -> None:
    parser = argparse.ArgumentParser(description="LAMOST Bayesian CNN recovery benchmark")
    parser.add_argument("--csv", default=str(CSV))
    parser.add_argument("--stars", type=int, default=2000, help="train+dev stars (random)")
    parser.add_argument("--test-stars", type=int, default=400,
                        help="test stars, up to half of them with [Fe/H] < -1")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--patience", type=int, default=12)
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--filters", default="4,8,8")
    parser.add_argument("--hidden", default="196,96")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="sample and spectra")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="training seeds per arm (spread = training noise)")
    parser.add_argument("--work", default="/tmp/lamost_recovery")
    parser.add_argument("--arms", default="paper,sumw,noweight,complete",
                        help="comma list of paper, sumw, noweight, complete (ridge is added)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config = json.dumps({"stars": args.stars, "test_stars": args.test_stars, "seed": args.seed,
                         "csv": args.csv, "filters": args.filters, "hidden": args.hidden,
                         "batch_size": args.batch_size, "epochs": args.epochs,
                         "patience": args.patience})
    if (work / "config.json").exists() and (work / "config.json").read_text() != config:
        raise SystemExit(f"{work} holds a run with other options; delete it or pass --work")
    (work / "config.json").write_text(config)
    t_start = time.perf_counter()

    truth, observed = load_labels(Path(args.csv))
    fe_all = np.asarray(truth["fe_h"])
    train_rows, test_rows = draw_sample(fe_all, args.stars, args.test_stars, args.seed)
    split = assign_splits(fe_all[train_rows], (0.9, 0.1, 0.0), seed=args.seed + 1)
    t_sim = make_store(work / "train.h5", truth, train_rows, args.seed, args.workers)
    t_sim += make_store(work / "test.h5", truth, test_rows, args.seed, args.workers)
    print(f"{len(truth)} giants in the CSV; train+dev {train_rows.size} drawn at random "
          f"({int((fe_all[train_rows] < -1).sum())} with [Fe/H] < -1), test {test_rows.size} "
          f"({int((fe_all[test_rows] < -1).sum())} with [Fe/H] < -1); spectra made in "
          f"{t_sim:.0f} s")
    table = label_table(observed[train_rows], split, weights=True)
    blank = {n: int(np.isnan(table[n]).sum()) for n in LABELS}
    print("training labels blanked (missing + Table 1 ranges), of "
          f"{len(table)}: " + ", ".join(f"{n} {blank[n]}" for n in LABELS)
          + f"; weight standard {table.meta.get('weight_standard', 0):.0f} stars/bin, "
          f"weights {np.min(table['weight']):.2f}-{np.max(table['weight']):.2f}")

    tvals = np.column_stack([truth[n] for n in LABELS])
    results: dict[str, list[dict]] = {}
    for arm in args.arms.split(","):
        src = truth if arm == "complete" else observed
        results[arm] = [train_arm(arm, sd, args, work, src, train_rows, split,
                                  tvals[test_rows]) for sd in args.seeds]
    results["ridge"] = [ridge_arm(work, observed, train_rows, split, tvals[test_rows])]

    fe_true = tvals[test_rows][:, 2]
    typical = fe_true >= -1.0
    ranges = label_ranges()
    print(f"\nTest stars with [Fe/H] >= -1 ({int(typical.sum())}): MAE / bias / mean sigma per "
          f"label, mean±std over training seeds {args.seeds} (truth = generating labels)")
    head = f"{'label':8s} {'Li MAE':>9s} {'Li sig':>7s} |"
    for arm in results:
        head += f" {arm + ' MAE':>18s} {'bias':>16s} {'sigma':>7s} |"
    print(head)
    summ = {arm: [summarise(r["pred"], r["truth"], typical) for r in runs]
            for arm, runs in results.items()}
    for k, name in enumerate(LABELS):
        pm, ps = ranges.loc[name]["mae_paper"], ranges.loc[name]["sigma_paper"]
        line = f"{name:8s} {pm:9.3g} {ps:7.3g} |" if np.isfinite(pm) else \
            f"{name:8s} {'0.02-0.04':>9s} {ps:7.3g} |"
        for arm in results:
            mae = _cell([s_[0][k] for s_ in summ[arm]])
            bias = _cell([s_[1][k] for s_ in summ[arm]], "+.2g")
            sig = np.mean([s_[2][k] for s_ in summ[arm]])
            line += f" {mae:>18s} {bias:>16s} {sig:7.3g} |"
        print(line)

    miss = np.asarray(truth["aspcap_missing"])[test_rows]
    print(f"\nMasked labels and the others: bias (prediction - truth) of Teff, log g, [Fe/H] "
          f"(never masked) on the test stars, mean±std over seeds; 'paper' trains with the "
          f"blanked labels, 'complete' with none missing. Also the no-ASPCAP population "
          f"({int(miss.sum())} test stars whose [M/H], [α/M], [X/Fe] are blank in training) "
          f"vs the rest:")
    for name in ("teff", "logg", "fe_h", "m_h", "alpha_m"):
        k = LABELS.index(name)
        cells = []
        for arm, runs in results.items():
            allb = [(r["pred"]["mean"][:, k] - r["truth"][:, k]).mean() for r in runs]
            b1 = [(r["pred"]["mean"][miss, k] - r["truth"][miss, k]).mean() for r in runs]
            b0 = [(r["pred"]["mean"][~miss, k] - r["truth"][~miss, k]).mean() for r in runs]
            cells.append(f"{arm} {_cell(allb, '+.2g')} (no-ASPCAP {_cell(b1, '+.2g')}, rest "
                         f"{_cell(b0, '+.2g')})")
        print(f"  {name:8s} " + "   ".join(cells))

    for cut in (-1.0, -1.5):
        sel = fe_true < cut
        print(f"\nMetal-poor test stars, [Fe/H] < {cut} ({int(sel.sum())} stars): MAE / bias, "
              "mean±std over seeds")
        for name in ("teff", "logg", "fe_h", "m_h", "alpha_m", "mg_fe"):
            k = LABELS.index(name)
            cells = []
            for arm, runs in results.items():
                ss = [summarise(r["pred"], r["truth"], sel) for r in runs]
                cells.append(f"{arm} {_cell([x[0][k] for x in ss])} / "
                             f"{_cell([x[1][k] for x in ss], '+.2g')}")
            print(f"  {name:8s} " + "   ".join(cells))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
