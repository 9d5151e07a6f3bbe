"""Real-label check of the LAMOST Bayesian CNN trained on simulated spectra (issue 12).

The 60 real LAMOST DR1 spectra of ``../shared/data/lamost/learninglamost`` come with the
LAMOST pipeline's (LASP) Teff, log g and [Fe/H] (``index_with_lasp_labels.csv``; F, G, K
dwarfs and A stars, Teff 3,970–8,660 K, log g 1.8–4.7, [Fe/H] −1.04…+0.38). No labelled real
spectra exist for training, so the model learns from the toolkit's simulated spectra
(:func:`apogee_net.lamost.simulate.simulate_lamost`, a documented *toy* model: real line
positions, R = 1800, Planck continuum) that cover that label range, and is then asked about
the real spectra:

* **simulated test split** (the in-domain figure): MAE of the CNN and of a ridge regression
  fitted in the same run on the same training spectra;
* **the 60 real spectra** (ingested with ``apogee-net lamost ingest``'s library call, as a
  user would): MAE vs LASP of the CNN and of the ridge, the CNN's mean σ, and the fraction
  of spectra with any catalogue flag (``flags`` ≠ 0) or outside Li et al.'s recommended
  ranges (``<label>_flag``), with and without the OOD/UNPHYSICAL bits of the OOD score
  (:mod:`apogee_net.network.ood`), and how many wrong labels (:data:`WRONG`) stay unflagged;
  on the simulated test split, the fraction with any flag but SNR_BELOW_10;
* **before vs after the new cosmic-ray detector**: the same model on the real spectra
  prepared with the old detector (toolkit ≤ ff945c4, from ``lamost_cosmics.py``);
* **before vs after an OOD refit** (``--before-model OLD.pt``: the same weights with the
  OOD statistics of an earlier toolkit, e.g. a copy of ``--work``/run/model.pt taken before
  rerunning, which refits them): labels, σ, ``ood_score`` and flags of every real spectrum
  with both, and how many wrong labels stay unflagged (:data:`WRONG`, and |ΔTeff| >
  :data:`WRONG_TEFF_STRICT`);
* **every real LAMOST spectrum** of ``../shared/data/lamost`` (the 60 above and the 10 of
  ``formats/``: DR5–DR13, a dM5 and a QSO among them): whether each row has physically
  possible labels inside the training range (within its tolerance) or carries a flag.

Training labels: Teff U(4300, 5900) K (:data:`TEFF_RANGE`, ``--teff-range``: where the toy
simulator is sane; about half of the real stars are hotter and so outside what the model
knows; the README's earlier runs used 4000–6000 K, whose edges hold broken spectra), log g
U(1.5, 5.0), [Fe/H] U(−1.5, 0.5), [M/H] = [Fe/H], [α/M] = clip(−0.3 [Fe/H], 0, 0.4),
[X/Fe] ~ N(0, 0.05); S/N_g log-uniform 15–150, cosmic rays (the simulator's defaults).
The nine [X/Fe] are simulated but, by default (``--xfe missing``), not given as training
labels: at R ≈ 1800 and 0.05 dex scatter they leave no learnable imprint, and with them the
dev loss (the mean over 14 labels that early stopping watches) is dominated by nine labels
the network can only memorise: it rose from epoch 2 while Teff and log g were still
improving (benchmarks/README.md, issue 12).
Per-star rows are written to ``--work``/real_catalogue.csv.

``python benchmarks/lamost_real_labels.py [--stars 5000] [--test-stars 500]``: the network
is trained with the CLI's defaults (early stopping by the MC dev loss; 36 epochs, about
11 min on two shared CPU cores at 5,000 stars); stores and the run are reused from
``--work`` on a rerun.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

import apogee_net.lamost.preprocess as preprocess
from apogee_net.inference.predict import flag_value
from apogee_net.lamost.ingest import ingest_lamost
from apogee_net.lamost.labels import LABELS
from apogee_net.lamost.predict import FLAGS
from apogee_net.lamost.training import assign_splits, train_lamost
from yso_labels.core.runtime import seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lamost_cosmics import old_cosmic_ray_mask  # noqa: E402
from lamost_recovery import label_table, make_store, predict_test  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lamost" / \
    "learninglamost"
CORE = ("teff", "logg", "fe_h")
#: Where the toy simulator gives sane normalised spectra: hotter, its Balmer optical depth
#: 0.3·10^((Teff − 4750 K)/1000 K) saturates over tens of Å and, its noise having no floor
#: (σ ∝ √flux), the ivar-weighted continuum collapses there (normalised flux up to 1e4–1e10
#: above 6,200 K); cooler, the TiO bands do the same (up to 26 at 3,800 K). Measured on 200
#: spectra 3,900–9,500 K after `prepare_spectrum`: the largest normalised flux per 400 K bin
#: is 1.3–1.6 from 4,300 to 5,900 K, but 4.5 at 3,900–4,300 K and 28 at 5,900–6,300 K;
#: spectra that broken in training and dev widen the per-pixel flux scatter and the dev
#: quantiles of the OOD score, so that real spectra no longer stand out.
TEFF_RANGE = (4300.0, 5900.0)
LASP = {"teff": "teff", "logg": "logg", "fe_h": "feh"}
#: A real label counts as wrong when it is off LASP by more than this (Teff K, log g dex,
#: [Fe/H] dex): about 3-4 times LASP's own errors (Luo et al. 2015, §5: ~110 K, 0.2, 0.1).
WRONG = (500.0, 0.75, 0.4)
#: The stricter Teff criterion: |CNN − LASP| > 300 K (about 3 LASP σ).
WRONG_TEFF_STRICT = 300.0
FORMATS = REAL.parent / "formats"


def draw_labels(n: int, seed: int, teff_range=TEFF_RANGE) -> Table:
    """Training/test labels covering the LASP range of the real spectra (module doc)."""
    rng = np.random.default_rng(seed)
    t = Table({"id": [f"sim{i:05d}" for i in range(n)]})
    t["teff"] = rng.uniform(teff_range[0], teff_range[1], n)
    t["logg"] = rng.uniform(1.5, 5.0, n)
    t["fe_h"] = rng.uniform(-1.5, 0.5, n)
    t["m_h"] = t["fe_h"]
    t["alpha_m"] = np.clip(-0.3 * t["fe_h"], 0, 0.4)
    for name in LABELS[5:]:
        t[name] = rng.normal(0, 0.05, n)
    return t


def store_arrays(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Normalised flux (NaN → 1, the continuum), IDs and S/N of a store."""
    import h5py

    with h5py.File(path, "r") as h5:
        key = "spec_id" if "spec_id" in h5 else "apogee_id"
        flux = h5["flux"][:].astype(np.float64)
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in h5[key][:]]
        snr = h5["snr"][:]
    return np.where(np.isfinite(flux), flux, 1.0), ids, snr


def fit_ridge(x_train, y_train, x_dev, y_dev, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0)):
    """Ridge on the normalised flux, labels standardised, alpha picked on dev."""
    from sklearn.linear_model import Ridge

    mu, sd = y_train.mean(0), y_train.std(0)
    best = None
    for a in alphas:
        m = Ridge(alpha=a).fit(x_train, (y_train - mu) / sd)
        err = np.abs(m.predict(x_dev) * sd + mu - y_dev).mean(0) / sd
        if best is None or err.sum() < best[0]:
            best = (err.sum(), a, m)
    _, alpha, model = best
    return (lambda x: model.predict(x) * sd + mu), alpha


def ingest_real(real: Path, out: Path, detector=None) -> dict:
    if out.exists():
        out.unlink()
    original = preprocess.cosmic_ray_mask
    if detector is not None:
        preprocess.cosmic_ray_mask = detector
    try:
        return ingest_lamost([real], out, workers=0, progress=False)
    finally:
        preprocess.cosmic_ray_mask = original


def trusted_or_flagged(lm, cat, what: str) -> None:
    """Print how many rows have physically possible labels inside the training range (with
    the model's OUT_OF_RANGE tolerance) or carry a flag (the issue's "done when")."""
    from apogee_net.inference.predict import unphysical
    from apogee_net.network.ood import range_tolerance

    names = lm.label_names
    lab = np.column_stack([cat[n] for n in names])
    tol = range_tolerance(lm.checkpoint["meta"].get("ood"), len(names))
    lo, hi = lm.label_range
    with np.errstate(invalid="ignore"):
        inside = np.all((lab >= lo - tol) | ~np.isfinite(lo), axis=1) & \
            np.all((lab <= hi + tol) | ~np.isfinite(hi), axis=1)
    ok = (inside & ~unphysical(lab, names)) | (np.asarray(cat["flags"]) != 0)
    print(f"  {what}: {int(ok.sum())} of {len(ok)} rows trusted (in range, physical) or "
          f"flagged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", default=str(REAL))
    parser.add_argument("--stars", type=int, default=5000, help="train+dev simulated stars")
    parser.add_argument("--test-stars", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=None,
                        help="max epochs (default: the CLI's, early stopping by dev)")
    parser.add_argument("--patience", type=int, default=None, help="default: the CLI's")
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the CLI's")
    parser.add_argument("--filters", default="4,8,8")
    parser.add_argument("--hidden", default="196,96")
    parser.add_argument("--input-norm", default="center", choices=("center", "standardise"))
    parser.add_argument("--xfe", default="missing", choices=("missing", "given"),
                        help="the nine [X/Fe] of the simulated stars as training labels "
                        "(given) or left out (missing, default; module doc)")
    parser.add_argument("--speed-repeats", type=int, default=5,
                        help="best of N for the with/without-OOD timing")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/lamost_real_labels")
    parser.add_argument("--teff-range", default=",".join(f"{t:g}" for t in TEFF_RANGE),
                        help="training Teff range, K (module doc)")
    parser.add_argument("--reuse-model", action="store_true",
                        help="predict with --work/run/model.pt as it is, without training")
    parser.add_argument("--before-model", default=None,
                        help="the same weights with older OOD statistics (module doc)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")
    torch.set_num_threads(args.threads)
    # subnormal floats make CPU convolutions 3x slower here and change nothing else
    torch.set_flush_denormal(True)
    seed_everything(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config = json.dumps({k: getattr(args, k) for k in ("stars", "test_stars", "epochs",
                                                        "patience", "filters", "hidden",
                                                        "batch_size", "seed", "teff_range",
                                                        "input_norm", "xfe")})
    teff_range = tuple(float(x) for x in args.teff_range.split(","))
    if (work / "config.json").exists() and (work / "config.json").read_text() != config:
        raise SystemExit(f"{work} holds a run with other options; delete it or pass --work")
    (work / "config.json").write_text(config)
    t0 = time.perf_counter()

    # ------------------------------------------------------------ simulated training set
    labels = draw_labels(args.stars + args.test_stars, args.seed, teff_range)
    train_rows = np.arange(args.stars)
    test_rows = np.arange(args.stars, args.stars + args.test_stars)
    t_sim = make_store(work / "train.h5", labels, train_rows, args.seed, args.workers)
    t_sim += make_store(work / "test.h5", labels, test_rows, args.seed, args.workers)
    split = assign_splits(np.asarray(labels["fe_h"])[train_rows], (0.9, 0.1, 0.0),
                          seed=args.seed + 1)
    table = label_table(labels[train_rows], split, weights=False)
    if args.xfe == "missing":
        for name in LABELS[5:]:  # the loss leaves missing labels out (Li et al. eq. 1)
            table[name] = np.nan
            table[f"{name}_err"] = np.nan
    t1 = time.perf_counter()
    if args.reuse_model and (work / "run" / "model.pt").exists():
        print(f"simulated: {args.stars} train+dev, {args.test_stars} test spectra; CNN: "
              f"reusing {work / 'run' / 'model.pt'} as it is (--reuse-model)")
    else:
        given = {k: v for k, v in (("max_epochs", args.epochs), ("patience", args.patience),
                                   ("batch_size", args.batch_size)) if v is not None}
        fit = train_lamost(work / "train.h5", table, work / "run",
                           filters=[int(x) for x in args.filters.split(",")],
                           hidden=[int(x) for x in args.hidden.split(",")],
                           weights="column", device="cpu", input_norm=args.input_norm,
                           seed=args.seed, resume=True, progress=False, **given)
        print(f"simulated: {args.stars} train+dev, {args.test_stars} test spectra "
              f"({t_sim:.0f} s to make); CNN {len(fit.history)} epochs (best "
              f"{fit.best_epoch}) in {time.perf_counter() - t1:.0f} s")

    k_core = [LABELS.index(n) for n in CORE]
    truth = np.column_stack([labels[n] for n in CORE])
    x_tr, _, _ = store_arrays(work / "train.h5")
    tr, dv = split == "train", split == "dev"
    ridge, alpha = fit_ridge(x_tr[tr], truth[train_rows][tr], x_tr[dv], truth[train_rows][dv])
    sim_pred = predict_test(work / "run", work / "test.h5", args.passes, args.seed)
    x_te, _, _ = store_arrays(work / "test.h5")
    mae_cnn_sim = np.abs(sim_pred["mean"][:, k_core] - truth[test_rows]).mean(0)
    mae_ridge_sim = np.abs(ridge(x_te) - truth[test_rows]).mean(0)
    new_bits = flag_value("OOD", "UNPHYSICAL")  # what the OOD hook (issue 12) adds
    sim_flagged = (sim_pred["flags"] & ~FLAGS["SNR_BELOW_10"][0]) != 0

    # ------------------------------------------------------------ the 60 real spectra
    index = Table.read(Path(args.real) / "index_with_lasp_labels.csv", format="ascii.csv")
    from apogee_net.inference.chunks import read_chunk
    from apogee_net.inference.predict import load_model
    from apogee_net.lamost.io import read_lamost
    from apogee_net.lamost.model import BayesianCNN
    from apogee_net.lamost.predict import predict_arrays

    lm = load_model(work / "run" / "model.pt", expect=BayesianCNN)
    reports, cats = {}, {}
    for arm, det in (("after", None), ("before", old_cosmic_ray_mask)):
        store = work / f"real_{arm}.h5"
        reports[arm] = ingest_real(Path(args.real), store, det)
        n = reports[arm]["n_rows"]
        cats[arm] = predict_arrays(lm, read_chunk({"store": str(store), "start": 0, "stop": n},
                                                  lm.npix), passes=args.passes, seed=args.seed)
    x_real, ids_real, _ = store_arrays(work / "real_after.h5")
    # DR1 files have no OBSID: the store key is the designation; match the index by file
    key_by_file = {Path(f).name: read_lamost(Path(args.real) / f).spec_id
                   for f in index["file"]}
    row = {k: i for i, k in enumerate(ids_real)}
    order = np.array([row[key_by_file[f]] for f in index["file"]])
    lasp = np.column_stack([np.asarray(index[LASP[n]], float) for n in CORE])
    cat = cats["after"][order]
    cnn = np.column_stack([cat[n] for n in CORE])
    sig = np.column_stack([cat[f"{n}_err"] for n in CORE])
    rid = ridge(x_real[order])
    flags_all = np.asarray(cat["flags"])
    flagged = flags_all != 0
    flagged_before_ood = (flags_all & ~new_bits) != 0
    is_ood = (flags_all & flag_value("OOD")) != 0
    outside = np.column_stack([cat[f"{n}_flag"] for n in CORE]).any(axis=1)
    mae_cnn = np.abs(cnn - lasp).mean(0)
    mae_ridge = np.abs(rid - lasp).mean(0)
    bias_cnn = (cnn - lasp).mean(0)
    cat_b = cats["before"][np.array([{k: i for i, k in enumerate(
        cats["before"]["spec_id"])}[key_by_file[f]] for f in index["file"]])]
    cnn_b = np.column_stack([cat_b[n] for n in CORE])

    print(f"\nsimulated test ({args.test_stars} spectra): MAE Teff / log g / [Fe/H]")
    print(f"  CNN   {mae_cnn_sim[0]:7.1f} K  {mae_cnn_sim[1]:.3f}  {mae_cnn_sim[2]:.3f}")
    print(f"  ridge {mae_ridge_sim[0]:7.1f} K  {mae_ridge_sim[1]:.3f}  {mae_ridge_sim[2]:.3f}"
          f"   (alpha {alpha:g}, chosen on dev)")
    print("  (simulated stores carry no LAMOST class: the class check does not run on them)")
    print(f"  flagged (any flag but SNR_BELOW_10): {sim_flagged.mean():.1%}; OOD "
          f"{((sim_pred['flags'] & flag_value('OOD')) != 0).mean():.1%}")
    print(f"\n{len(index)} real DR1 spectra vs LASP: MAE (bias) Teff / log g / [Fe/H]")
    print(f"  CNN   {mae_cnn[0]:7.1f} K ({bias_cnn[0]:+.0f})  {mae_cnn[1]:.3f} "
          f"({bias_cnn[1]:+.2f})  {mae_cnn[2]:.3f} ({bias_cnn[2]:+.2f});  mean sigma "
          f"{np.nanmean(sig[:, 0]):.0f} K / {np.nanmean(sig[:, 1]):.2f} / "
          f"{np.nanmean(sig[:, 2]):.2f}")
    print(f"  ridge {mae_ridge[0]:7.1f} K  {mae_ridge[1]:.3f}  {mae_ridge[2]:.3f}")
    print(f"  flags != 0: {flagged.mean():.0%}; outside Li et al. recommended range (Teff, "
          f"log g or [Fe/H]): {outside.mean():.0%}; either: {(flagged | outside).mean():.0%}")
    print(f"  flags != 0 without the OOD/UNPHYSICAL bits (as before the OOD hook): "
          f"{flagged_before_ood.mean():.0%}; OOD: {is_ood.mean():.0%}; ood_score median "
          f"{np.nanmedian(cat['ood_score']):.2f}, range {np.nanmin(cat['ood_score']):.2f}–"
          f"{np.nanmax(cat['ood_score']):.2f}")
    wrong = (np.abs(cnn - lasp) > WRONG).any(axis=1)
    print(f"  wrong (|CNN - LASP| > {WRONG[0]:.0f} K, {WRONG[1]} dex or {WRONG[2]} dex): "
          f"{int(wrong.sum())}; of them flagged before the hook "
          f"{int((wrong & (flagged_before_ood | outside)).sum())}, now "
          f"{int((wrong & (flagged | outside)).sum())}")
    covered = (np.abs(cnn - lasp) <= sig).mean(0)
    print(f"  |CNN - LASP| <= sigma: {covered[0]:.0%} / {covered[1]:.0%} / {covered[2]:.0%}")
    inside = (lasp[:, 0] >= teff_range[0]) & (lasp[:, 0] <= teff_range[1])
    print(f"  LASP Teff inside the training range {teff_range} ({int(inside.sum())} spectra): "
          f"MAE CNN {np.abs(cnn - lasp)[inside].mean(0).round(3).tolist()}, ridge "
          f"{np.abs(rid - lasp)[inside].mean(0).round(3).tolist()}; flagged "
          f"{(flagged | outside)[inside].mean():.0%}; outside it ({int((~inside).sum())}): "
          f"MAE CNN {np.abs(cnn - lasp)[~inside].mean(0).round(3).tolist()}, flagged "
          f"{(flagged | outside)[~inside].mean():.0%}")
    unflagged = ~(flagged | outside)
    if unflagged.any():
        print(f"  unflagged rows ({int(unflagged.sum())}): MAE "
              f"{np.abs(cnn - lasp)[unflagged].mean(0).round(3).tolist()}")
    d = np.abs(cnn - cnn_b)
    print(f"\nbefore vs after the cosmic-ray detector (same model): ingested "
          f"{reports['before']['n_ingested']} vs "
          f"{reports['after']['n_ingested']}; max |change| of the labels "
          f"{d[:, 0].max():.1f} K / {d[:, 1].max():.3f} / {d[:, 2].max():.3f}; flags changed "
          f"on {int((np.asarray(cat_b['flags']) != np.asarray(cat['flags'])).sum())} spectra")

    # the spectral-class check (apogee_net.lamost.sptype): the same rows without it
    n_real = reports["after"]["n_rows"]
    arms = {"no class check": predict_arrays(lm, read_chunk(
        {"store": str(work / "real_after.h5"), "start": 0, "stop": n_real}, lm.npix),
        passes=args.passes, seed=args.seed, class_check=False)[order], "after": cat}
    if args.before_model:
        lm_b = load_model(args.before_model, expect=BayesianCNN)
        n = reports["after"]["n_rows"]
        arms["before"] = predict_arrays(lm_b, read_chunk(
            {"store": str(work / "real_after.h5"), "start": 0, "stop": n}, lm_b.npix),
            passes=args.passes, seed=args.seed)[order]
    print("\nwrong labels without a flag (flags != 0 or outside Li et al.'s range):")
    for arm, c in arms.items():
        f = (np.asarray(c["flags"]) != 0) | outside
        lab = np.column_stack([c[n] for n in CORE])
        wrong_a = (np.abs(lab - lasp) > WRONG).any(axis=1)
        wrong_t = np.abs(lab[:, 0] - lasp[:, 0]) > WRONG_TEFF_STRICT
        print(f"  {arm:6s}: flagged {int(f.sum())}/{len(f)} (OOD "
              f"{int(((np.asarray(c['flags']) & flag_value('OOD')) != 0).sum())}, "
              f"OUT_OF_RANGE "
              f"{int(((np.asarray(c['flags']) & flag_value('OUT_OF_RANGE')) != 0).sum())}); "
              f"wrong by {WRONG}: {int(wrong_a.sum())}, unflagged {int((wrong_a & ~f).sum())}; "
              f"|dTeff| > {WRONG_TEFF_STRICT:.0f} K: {int(wrong_t.sum())}, unflagged "
              f"{int((wrong_t & ~f).sum())}; right (neither) and unflagged "
              f"{int((~wrong_a & ~wrong_t & ~f).sum())} of {int((~wrong_a & ~wrong_t).sum())}")
        disagree = (np.asarray(c["flags"]) & FLAGS["CLASS_DISAGREE"][0]) != 0
        print(f"          CLASS_DISAGREE {int(disagree.sum())}: on wrong rows "
              f"{int((disagree & (wrong_a | wrong_t)).sum())}, on right rows (false alarms) "
              f"{int((disagree & ~wrong_a & ~wrong_t).sum())}"
              + "".join(f"\n            false alarm {index['file'][i]} {index['subclass'][i]}"
                        f" class_teff {c['class_teff'][i]:.0f}: LASP {lasp[i, 0]:.0f} K, CNN "
                        f"{lab[i, 0]:.0f} K" for i in np.flatnonzero(
                            disagree & ~wrong_a & ~wrong_t)))
        for i in np.flatnonzero((wrong_a | wrong_t) & ~f):
            print(f"          wrong, unflagged: {index['file'][i]} {index['subclass'][i]:>5s} "
                  f"LASP {lasp[i, 0]:.0f} K {lasp[i, 1]:.2f} {lasp[i, 2]:+.2f} -> CNN "
                  f"{lab[i, 0]:.0f} K {lab[i, 1]:.2f} {lab[i, 2]:+.2f}")
    # the class interval itself, judged by LASP's Teff (an independent fit of the same
    # spectra) and by half: N_SUBTYPES was set on the even file numbers (sptype module doc)
    from apogee_net.lamost.sptype import N_SUBTYPES, class_check

    lasp_out = class_check(lasp[:, 0], [str(x) for x in index["subclass"]])[1]
    even = np.array([int(str(f)[-8:-5]) % 2 == 0 for f in index["file"]])
    c0 = arms["no class check"]
    f0 = (np.asarray(c0["flags"]) != 0) | outside
    f1 = (np.asarray(cat["flags"]) != 0) | outside
    wrong_any = (np.abs(cnn - lasp) > WRONG).any(axis=1)
    for name, sel in (("even (set N on)", even), ("odd (reported)", ~even)):
        print(f"  class check N = {N_SUBTYPES:g}, {name}: LASP Teff outside its class "
              f"interval {int(lasp_out[sel].sum())}/{int(sel.sum())}; wrong and unflagged "
              f"{int((wrong_any & ~f0)[sel].sum())} without the check, "
              f"{int((wrong_any & ~f1)[sel].sum())} with it")
    trusted_or_flagged(lm, cat, "60 learninglamost")
    files = sorted(FORMATS.glob("*.fits*"))
    if files:
        from apogee_net.lamost.predict import read_lamost_chunk

        cat_f = predict_arrays(lm, read_lamost_chunk([str(f) for f in files], lm.npix),
                               passes=args.passes, seed=args.seed)
        print(f"\n{len(files)} real spectra of {FORMATS}:")
        for f, r in zip(files, cat_f, strict=True):
            print(f"  {f.name:42s} S/N {r['snr']:6.1f}  Teff {r['teff']:6.0f}±{r['teff_err']:4.0f}"
                  f"  logg {r['logg']:5.2f}±{r['logg_err']:.2f}  [Fe/H] {r['fe_h']:+.2f}±"
                  f"{r['fe_h_err']:.2f}  ood {r['ood_score']:7.2f}  flags {r['flags']}  "
                  f"class {read_lamost(f).subclass!r} {r['class_teff']:.0f} K")
        trusted_or_flagged(lm, cat_f, "10 formats")

    # prediction speed with and without the OOD score (same weights, statistics removed;
    # interleaved, best of --speed-repeats, at --passes and 100): the OOD score must not
    # slow prediction by more than 10 %
    import copy

    from _common import best_of

    plain = copy.copy(lm)
    plain.checkpoint = {**lm.checkpoint, "meta": {k: v for k, v in lm.checkpoint["meta"].items()
                                                  if k != "ood"}}
    data = read_chunk({"store": str(work / "real_after.h5"), "start": 0,
                       "stop": reports["after"]["n_rows"]}, lm.npix)
    for passes in sorted({args.passes, 100}):
        times = best_of({"with OOD": lambda p=passes: predict_arrays(lm, data, passes=p),
                         "without": lambda p=passes: predict_arrays(plain, data, passes=p)},
                        repeats=args.speed_repeats, warmup=1)
        print(f"\nspeed, {len(data.flux)} real spectra x {passes} passes (best of "
              f"{args.speed_repeats}, interleaved): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
              + f"; ratio {times['with OOD'] / times['without']:.3f}")

    rows = Table({"file": index["file"], "subclass": index["subclass"],
                  "snr_g": np.asarray(cat["snr"])})
    for j, n in enumerate(CORE):
        rows[f"lasp_{n}"] = lasp[:, j]
        rows[n] = cnn[:, j]
        rows[f"{n}_err"] = sig[:, j]
        rows[f"ridge_{n}"] = rid[:, j]
        rows[f"before_{n}"] = cnn_b[:, j]
    rows["ood_score"] = cat["ood_score"]
    rows["flags"] = cat["flags"]
    if "before" in arms:
        rows["before_ood_score"] = arms["before"]["ood_score"]
        rows["before_flags"] = arms["before"]["flags"]
    rows["outside_recommended"] = outside
    rows.write(work / "real_catalogue.csv", overwrite=True)
    print("\nper spectrum (LASP -> CNN ± sigma [ridge]; flags):")
    for r in rows:
        print(f"  {r['file'][-11:-5]} {r['subclass']:>5s} S/N {r['snr_g']:5.1f}  "
              f"{r['lasp_teff']:5.0f} -> {r['teff']:5.0f}±{r['teff_err']:3.0f} "
              f"[{r['ridge_teff']:5.0f}]  {r['lasp_logg']:.2f} -> {r['logg']:.2f}±"
              f"{r['logg_err']:.2f} [{r['ridge_logg']:.2f}]  {r['lasp_fe_h']:+.2f} -> "
              f"{r['fe_h']:+.2f}±{r['fe_h_err']:.2f} [{r['ridge_fe_h']:+.2f}]  "
              f"ood {r['ood_score']:.2f} flags {r['flags']}"
              f"{' REC' if r['outside_recommended'] else ''}"
              + (f" (before: ood {r['before_ood_score']:.2f} flags {r['before_flags']})"
                 if "before_flags" in rows.colnames else ""))
    print(f"\nper-star rows: {work / 'real_catalogue.csv'}; total "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
