#!/usr/bin/env python
"""Real spectra: labels, σ, ood_score, fit-check labels and flags on the real DR17 apStar
files, the flag rate on simulated test spectra, constructed out-of-domain inputs, and the
cost of the OOD score and of the fit check.

    python benchmarks/real_spectra.py --models RUN_A/model.pt RUN_B/model.pt \
        --store STORE.h5 --labels LABELS.fits [--test-store T.h5 --test-labels T.fits] \
        [--realizations 100] [--speed-stars 16] [--speed-repeats 5]

For every model (e.g. one trained with ``--augment none`` and one with the default
augmentation, or one from before issue 12): the catalogue rows of the real apStar files of
``../shared/data/apogee`` (with the model's pixel mask), and on the test split of the store
(simulated spectra) the fraction with each flag, the fraction with any flag other than
LOW_SNR, the test scatter (prediction − label standard deviation) beside a ridge regression
on the same standardised pixels fitted in the same run on the training split. The real
files go through ``predict_catalog`` with ``visits=True`` (the combined row and every
visit), the simulated test spectra through ``catalog_rows`` with the model's fit check
(:mod:`apogee_net.network.fitcheck`; the emulator of ``--emulator``). ``--test-store`` /
``--test-labels``: a further, larger simulated test set (every star split ``test``; never
trained or stopped on), reported the same way, with the binomial error of each rate and the
rates split by whether the star's TRUE labels lie inside the paper's domain (Teff ≤ 6,700 K,
Olney et al. 2020 §3.6) and the model's training label range. For the last model: the
constructed out-of-domain inputs of issue 12 (flat spectrum, pure noise, real spectrum
reversed in wavelength, real spectrum with the red chip zeroed) and the prediction speed of
the same weights with the OOD score and the fit check, with the OOD score only, and with
neither (statistics removed; interleaved runs, best of ``--speed-repeats``), as ratios, on
``--speed-stars`` simulated test spectra (all inside the emulator's range: every star is
fitted, the fit check's worst case).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import REPO, best_of, emulator, host_info, print_host

from apogee_net.inference.chunks import SpectraChunk
from apogee_net.inference.predict import (
    FLAGS,
    TEFF_MAX,
    catalog_rows,
    load_model,
    model_pixmask_bits,
)
from apogee_net.network.fitcheck import FIT_COLUMNS, resolve_checker
from apogee_net.network.ood import coverage, range_tolerance
from apogee_net.spectra.apstar import NPIX, read_apstar, write_apstar
from apogee_net.spectra.pixmask import apply_pixmask


def chunk(flux, error, ids, snr, ra=None, dec=None) -> SpectraChunk:
    n = len(flux)
    return SpectraChunk(np.asarray(flux, np.float32), np.asarray(error, np.float32), list(ids),
                        np.asarray(ra if ra is not None else np.zeros(n), float),
                        np.asarray(dec if dec is not None else np.zeros(n), float),
                        np.asarray(snr, float), np.ones(n, bool), [""] * n, [""] * n)


def predict_arrays(lm, data: SpectraChunk, realizations: int, seed: int, checker=None):
    return catalog_rows(lm, data, realizations, seed, checker=checker)

REAL = sorted((REPO.parent / "shared" / "data" / "apogee").glob("apStar-*.fits"))


def flag_names(value: int) -> str:
    return "|".join(k for k, v in FLAGS.items() if value & v[0]) or "-"


def real_data(lm, files) -> dict:
    bits = model_pixmask_bits(lm)
    rows = [read_apstar(f) for f in files]
    flux, error = zip(*(apply_pixmask(s.flux, s.error, s.mask, bits) for s in rows),
                      strict=True)
    return chunk(flux, error, [s.apogee_id for s in rows], [s.snr for s in rows],
                 [s.ra for s in rows], [s.dec for s in rows])


def constructed(files) -> dict:
    sp = read_apstar(files[-1])
    live = ~sp.dead
    rng = np.random.default_rng(0)
    cases = {"flat": np.where(live, np.nanmedian(sp.flux), np.nan),
             "pure noise": np.where(live, rng.normal(0, np.nanmedian(sp.error), NPIX), np.nan),
             "reversed": sp.flux[::-1],
             "red chip zeroed": np.where(np.arange(NPIX) > 6200, 0.0, sp.flux)}
    errors = {k: (sp.error[::-1] if k == "reversed" else sp.error) for k in cases}
    with tempfile.TemporaryDirectory() as tmp:  # through the apStar writer and reader
        spectra = []
        for k, f in cases.items():
            path = write_apstar(Path(tmp) / "apStar-x-X.fits", f, errors[k],
                                header={"OBJID": k, "SNR": float(sp.snr)})
            spectra.append(read_apstar(path))
    return chunk([s.flux for s in spectra], [s.error for s in spectra], list(cases),
                 [float(sp.snr)] * 4)


def test_split(store, labels, names, parts=("train", "test")):
    from apogee_net.spectra.dataset import join_labels, read_rows
    from apogee_net.spectra.store import open_store

    rows, joined, _ = join_labels(store, labels, label_columns=names)
    split = np.array([str(s).strip() for s in joined["split"]])
    out = {}
    with open_store(store) as h5:
        for part in parts:
            sel = rows[split == part]
            out[part] = {"flux": read_rows(h5["flux"], sel), "error": read_rows(h5["error"], sel),
                         "snr": h5["snr"][:][sel], "target": np.column_stack(
                             [np.asarray(joined[c], float)[split == part] for c in names])}
    return out


def ridge_scatter(lm, data, alpha: float = 1.0) -> np.ndarray:
    """Test scatter of a ridge regression on the model's standardised input pixels."""
    from sklearn.linear_model import Ridge

    def x(d):
        with torch.no_grad():
            z = lm.preprocess.inputs(torch.as_tensor(d["flux"]), torch.as_tensor(d["error"]))
        return z[:, 0].numpy()[:, coverage(lm.preprocess.flux_scaler)]

    model = Ridge(alpha=alpha).fit(x(data["train"]), data["train"]["target"])
    return np.std(model.predict(x(data["test"])) - data["test"]["target"], axis=0)


def rate(k: int, n: int) -> str:
    """k/n as a percentage with its binomial standard error."""
    p = k / max(n, 1)
    return f"{100 * p:.2f} ± {100 * np.sqrt(p * (1 - p) / max(n, 1)):.2f} % ({k}/{n})"


def real_rows(lm, path, args) -> None:
    """The real files through predict_catalog (combined row and visits), printed."""
    from astropy.table import Table

    from apogee_net.inference.predict import predict_catalog
    from yso_labels.core.tables import quiet_units

    with tempfile.TemporaryDirectory() as tmp:
        out = predict_catalog(path, REAL, Path(tmp) / "cat.fits", realizations=args.realizations,
                              visits=True, emulator=args.emulator, device="cpu",
                              progress=False, workers=0)
        with quiet_units():  # TUNIT 'dex' is kept as text
            cat = Table.read(out, mask_invalid=False)
    print(f"  FITCHECK: {cat.meta.get('FITCHECK')}")
    for r in cat:
        print(f"  {r['apogee_id']} visit {r['visit']}: logg {r['logg']:.3f}±{r['logg_err']:.3f}"
              f"  teff {r['teff']:.0f}±{r['teff_err']:.0f}  fe_h {r['fe_h']:.3f}±"
              f"{r['fe_h_err']:.3f}  ood_score {r['ood_score']:.2f}  fit "
              f"{r['fit_teff']:.0f} / {r['fit_logg']:.3f} / {r['fit_fe_h']:.3f}  flags "
              f"{r['flags']} ({flag_names(int(r['flags']))})")


def test_report(lm, test, checker, name) -> np.ndarray:
    """Flag rates of simulated test spectra (plain prediction), by flag and by domain."""
    n = len(test["flux"])
    rows = predict_arrays(lm, chunk(test["flux"], test["error"], [""] * n, test["snr"]), 0,
                          seed=0, checker=checker)
    flags = np.asarray(rows["flags"])
    other = flags & ~FLAGS["LOW_SNR"][0] != 0
    names = lm.label_names
    truth = test["target"]
    lo, hi = np.asarray(lm.label_range)
    inside = np.all((truth >= lo) & (truth <= hi), axis=1)
    hot = truth[:, names.index("teff")] > TEFF_MAX
    domain = inside & ~hot
    print(f"  {name} ({n} stars): any flag but LOW_SNR {rate(int(other.sum()), n)}")
    for k, v in FLAGS.items():
        hit = flags & v[0] != 0
        if hit.any():
            only = flags & ~FLAGS["LOW_SNR"][0] == v[0]
            print(f"    {k}: {rate(int(hit.sum()), n)}; the only flag of {int(only.sum())}")
    print(f"    true labels in the paper's domain (Teff <= {TEFF_MAX:.0f} K, inside the "
          f"training range): {rate(int(other[domain].sum()), int(domain.sum()))}; outside: "
          f"{rate(int(other[~domain].sum()), int((~domain).sum()))} ({int(hot.sum())} truly "
          f"hotter than {TEFF_MAX:.0f} K, {int((~inside).sum())} outside the training range)")
    false = flags & ~FLAGS["LOW_SNR"][0] & ~np.where(hot, FLAGS["HOT"][0], 0)
    print(f"    any flag but LOW_SNR, not counting HOT on truly hot stars: "
          f"{rate(int((false != 0).sum()), n)}")
    pred = np.column_stack([rows[c] for c in names])
    fit = np.column_stack([rows[c] for c in FIT_COLUMNS])
    cols = [names.index(c) for c in ("teff", "logg", "fe_h")]
    with np.errstate(invalid="ignore"):
        print("    median |fit - truth| (Teff, log g, [Fe/H]): "
              + ", ".join(f"{v:.3g}" for v in np.nanmedian(np.abs(fit - truth[:, cols]), 0))
              + "; |network - truth|: " + ", ".join(
                  f"{v:.3g}" for v in np.nanmedian(np.abs(pred - truth), 0)[cols])
              + f"; rows with a fit {int(np.isfinite(fit).all(1).sum())}/{n}")
    for i in np.flatnonzero(flags & FLAGS["FIT_DISAGREE"][0]):
        print(f"    FIT_DISAGREE: truth {np.round(truth[i, cols], 2).tolist()}, network "
              f"{np.round(pred[i, cols], 2).tolist()}, fit {np.round(fit[i], 2).tolist()}, "
              f"flags {flag_names(int(flags[i]))}")
    print("    test scatter " + ", ".join(f"{c} {v:.4g}" for c, v in
                                          zip(names, np.std(pred - truth, axis=0), strict=True)))
    return flags


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--test-store")
    p.add_argument("--test-labels")
    p.add_argument("--emulator", default=None, help="The Payne emulator (default: the "
                   "model's, else ../shared/data/payne or the download cache)")
    p.add_argument("--realizations", type=int, default=100)
    p.add_argument("--speed-stars", type=int, default=16)
    p.add_argument("--speed-realizations", type=int, default=100)
    p.add_argument("--speed-repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.emulator is None and Path(emulator()).exists():
        args.emulator = emulator()
    print_host("real spectra, simulated test flags, OOD, fit check", host_info("cpu"))
    if not REAL:
        sys.exit("no real apStar files in ../shared/data/apogee")
    for path in args.models:
        lm = load_model(path)
        meta = lm.checkpoint["meta"]
        aug = meta.get("augment", "(not recorded)")
        aug = aug["systematics"] if isinstance(aug, dict) else aug
        checker, text = resolve_checker(meta, True, args.emulator, lm.label_names, lm.npix)
        print(f"\n== {path}: augment={aug}, pixmask={meta.get('pixmask_bits', '(none)')}, "
              f"OOD stats={'yes' if meta.get('ood') else 'no'}, fit check: {text}")
        real_rows(lm, path, args)
        data = test_split(args.store, args.labels, lm.label_names)
        test_report(lm, data["test"], checker, "simulated test split of the store")
        print("    OUT_OF_RANGE tolerance " + ", ".join(
            f"{c} {t:.3g}" for c, t in zip(lm.label_names, range_tolerance(
                meta.get("ood"), len(lm.label_names)), strict=True))
            + "; ridge test scatter (same pixels, same run) " + ", ".join(
                f"{c} {s:.4g}" for c, s in zip(lm.label_names, ridge_scatter(lm, data),
                                               strict=True)))
        if args.test_store:
            extra = test_split(args.test_store, args.test_labels, lm.label_names,
                               parts=("test",))["test"]
            test_report(lm, extra, checker, f"further simulated test set {args.test_store}")
            print("    ridge test scatter (trained on the store's train split) " + ", ".join(
                f"{c} {s:.4g}" for c, s in zip(lm.label_names, ridge_scatter(
                    lm, {"train": data["train"], "test": extra}), strict=True)))
    print("\n== constructed out-of-domain inputs (last model)")
    cat = predict_arrays(lm, constructed(REAL), args.realizations, seed=0, checker=checker)
    for r in cat:
        print(f"  {r['apogee_id']:16s} ood_score {r['ood_score']:8.2f}  flags {r['flags']} "
              f"({flag_names(int(r['flags']))})  teff {r['teff']:.0f} logg {r['logg']:.2f}  "
              f"fit {r['fit_teff']:.0f} {r['fit_logg']:.2f}")
    speed(lm, checker, data["test"], args)


def speed(lm, checker, test, args) -> None:
    """Same weights with OOD score and fit check, OOD only, neither: interleaved, best of N."""
    plain = copy.copy(lm)
    plain.checkpoint = {**lm.checkpoint, "meta": {k: v for k, v in lm.checkpoint["meta"].items()
                                                  if k != "ood"}}
    k = args.speed_stars
    data = chunk(test["flux"][:k], test["error"][:k], [""] * k, test["snr"][:k])
    R = args.speed_realizations
    fns = {"neither": lambda: predict_arrays(plain, data, R, 0),
           "OOD": lambda: predict_arrays(lm, data, R, 0)}
    if checker is not None:
        fns["OOD + fit check"] = lambda: predict_arrays(lm, data, R, 0, checker)
        fns["fit check only"] = lambda: predict_arrays(plain, data, R, 0, checker)
    times = best_of(fns, repeats=args.speed_repeats, warmup=1)
    print(f"\n== speed, {k} simulated test stars x {R} realizations, best of "
          f"{args.speed_repeats} (interleaved): " + ", ".join(f"{n} {v:.2f} s"
                                                          for n, v in times.items()))
    for n in times:
        if n != "neither":
            print(f"  {n} / neither = {times[n] / times['neither']:.3f}")
    if checker is not None:
        print(f"  OOD + fit check / OOD = {times['OOD + fit check'] / times['OOD']:.3f}")


if __name__ == "__main__":
    main()
