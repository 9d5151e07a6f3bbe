#!/usr/bin/env python
"""Real spectra: labels, σ, ood_score and flags on the real DR17 apStar files, the flag rate
on simulated test spectra, constructed out-of-domain inputs, and the cost of the OOD score.

    python benchmarks/real_spectra.py --models RUN_A/model.pt RUN_B/model.pt \
        --store STORE.h5 --labels LABELS.fits [--realizations 100] [--speed-stars 16]

For every model (e.g. one trained with ``--augment none`` and one with the default
augmentation, or one from before issue 12): the catalogue rows of the real apStar files of
``../shared/data/apogee`` (with the model's pixel mask), and on the test split of the store
(simulated spectra) the fraction with each flag, the fraction with any flag other than
LOW_SNR, the test scatter (prediction − label standard deviation) beside a ridge regression
on the same standardised pixels fitted in the same run on the training split. For the last
model: the constructed out-of-domain inputs of issue 12 (flat spectrum, pure noise, real
spectrum reversed in wavelength, real spectrum with the red chip zeroed) and the prediction
speed with and without the OOD score (same model, statistics removed; interleaved runs,
best of 3), as a ratio.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import REPO, best_of, host_info, print_host

from apogee_net.inference.chunks import SpectraChunk
from apogee_net.inference.predict import (
    FLAGS,
    TEFF_MAX,
    catalog_rows,
    load_model,
    model_pixmask_bits,
)
from apogee_net.network.ood import coverage, range_tolerance
from apogee_net.spectra.apstar import NPIX, read_apstar, write_apstar
from apogee_net.spectra.pixmask import apply_pixmask


def chunk(flux, error, ids, snr, ra=None, dec=None) -> SpectraChunk:
    n = len(flux)
    return SpectraChunk(np.asarray(flux, np.float32), np.asarray(error, np.float32), list(ids),
                        np.asarray(ra if ra is not None else np.zeros(n), float),
                        np.asarray(dec if dec is not None else np.zeros(n), float),
                        np.asarray(snr, float), np.ones(n, bool), [""] * n, [""] * n)


def predict_arrays(lm, data: SpectraChunk, realizations: int, seed: int):
    return catalog_rows(lm, data, realizations, seed)

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


def test_split(store, labels, names):
    from apogee_net.spectra.dataset import join_labels, read_rows
    from apogee_net.spectra.store import open_store

    rows, joined, _ = join_labels(store, labels, label_columns=names)
    split = np.array([str(s).strip() for s in joined["split"]])
    out = {}
    with open_store(store) as h5:
        for part in ("train", "test"):
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--realizations", type=int, default=100)
    p.add_argument("--speed-stars", type=int, default=16)
    p.add_argument("--speed-realizations", type=int, default=100)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print_host("real spectra, simulated test flags, OOD", host_info("cpu"))
    if not REAL:
        sys.exit("no real apStar files in ../shared/data/apogee")
    for path in args.models:
        lm = load_model(path)
        meta = lm.checkpoint["meta"]
        aug = meta.get("augment", "(not recorded)")
        aug = aug["systematics"] if isinstance(aug, dict) else aug
        print(f"\n== {path}: augment={aug}, pixmask={meta.get('pixmask_bits', '(none)')}, "
              f"OOD stats={'yes' if meta.get('ood') else 'no'}")
        cat = predict_arrays(lm, real_data(lm, REAL), args.realizations, seed=0)
        for r in cat:
            print(f"  {r['apogee_id']}: logg {r['logg']:.3f}±{r['logg_err']:.3f}  "
                  f"teff {r['teff']:.0f}±{r['teff_err']:.0f}  fe_h {r['fe_h']:.3f}±"
                  f"{r['fe_h_err']:.3f}  ood_score {r['ood_score']:.2f}  flags {r['flags']} "
                  f"({flag_names(int(r['flags']))})")
        data = test_split(args.store, args.labels, lm.label_names)
        test = data["test"]
        n = len(test["flux"])
        rows = predict_arrays(lm, chunk(test["flux"], test["error"], [""] * n, test["snr"]),
                              0, seed=0)
        flags = np.asarray(rows["flags"])
        rates = {k: float(np.mean(flags & v[0] != 0)) for k, v in FLAGS.items()}
        other = float(np.mean(flags & ~FLAGS["LOW_SNR"][0] != 0))
        pred = np.column_stack([rows[c] for c in lm.label_names])
        scatter = np.std(pred - test["target"], axis=0)
        print(f"  simulated test split ({n}): any flag but LOW_SNR {100 * other:.2f} %; "
              + ", ".join(f"{k} {100 * v:.2f} %" for k, v in rates.items() if v))
        if "teff" in lm.label_names:  # HOT on a star that is hot is information, not error
            true_hot = test["target"][:, lm.label_names.index("teff")] > TEFF_MAX
            false = (flags & ~FLAGS["LOW_SNR"][0] & ~np.where(true_hot, FLAGS["HOT"][0], 0))
            print(f"  {int(true_hot.sum())} test stars truly hotter than TEFF_MAX "
                  f"({TEFF_MAX:.0f} K); any flag but LOW_SNR, not counting HOT on them: "
                  f"{100 * np.mean(false != 0):.2f} %; OUT_OF_RANGE tolerance "
                  + ", ".join(f"{c} {t:.3g}" for c, t in zip(lm.label_names, range_tolerance(
                      meta.get("ood"), len(lm.label_names)), strict=True)))
        print("  test scatter " + ", ".join(f"{c} {s:.4g}" for c, s in
                                            zip(lm.label_names, scatter, strict=True))
              + "; ridge (same pixels, same run) " + ", ".join(
                  f"{c} {s:.4g}" for c, s in zip(lm.label_names, ridge_scatter(lm, data),
                                                 strict=True)))
    print("\n== constructed out-of-domain inputs (last model)")
    cat = predict_arrays(lm, constructed(REAL), args.realizations, seed=0)
    for r in cat:
        print(f"  {r['apogee_id']:16s} ood_score {r['ood_score']:8.2f}  flags {r['flags']} "
              f"({flag_names(int(r['flags']))})  teff {r['teff']:.0f} logg {r['logg']:.2f}")
    if lm.checkpoint["meta"].get("ood"):
        plain = copy.copy(lm)
        plain.checkpoint = {**lm.checkpoint, "meta": {k: v for k, v in
                                                      lm.checkpoint["meta"].items()
                                                      if k != "ood"}}
        reps = max(1, args.speed_stars // len(REAL))
        real = real_data(lm, REAL)
        data = chunk(np.concatenate([real.flux] * reps), np.concatenate([real.error] * reps),
                     list(real.spec_id) * reps, np.concatenate([real.snr] * reps))
        times = best_of({"with OOD": lambda: predict_arrays(lm, data, args.speed_realizations, 0),
                         "without": lambda: predict_arrays(plain, data,
                                                           args.speed_realizations, 0)},
                        repeats=3, warmup=1)
        print(f"\n== speed, {len(data.flux)} stars x {args.speed_realizations} realizations: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
              + f"; ratio {times['with OOD'] / times['without']:.3f}")


if __name__ == "__main__":
    main()
