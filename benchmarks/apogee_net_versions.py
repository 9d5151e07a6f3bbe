"""APOGEE Net I vs II on the same Payne-emulated benchmark, and the speed of both.

Same spectra, labels, 80/10/10 split and seed as ``benchmarks/apogee_net_recovery.py``
(its ``make_store``); version I (Olney et al. 2020) and version II (Sprague et al. 2022: + the
seven photometric inputs, log10 Teff) are trained with ``train_apogee_net`` (``--arch``) and
the same options, then scored on the TEST split beside a ridge regression on the same
standardised pixels (version II's ridge also gets the seven z-scored photometric inputs).

Photometry of the simulated stars is synthetic (:func:`synthetic_photometry`): the H
magnitude the simulation drew, J, K, G, BP, RP from linear colour–Teff relations, and a
parallax from the distance modulus with an absolute H magnitude from the labels
(L ∝ R² Teff⁴, R² ∝ M/g with M = 1 M☉); noise 0.02 mag, 0.05 mas + 5 %. It carries the
information real photometry does (colours ~ Teff, parallax ~ luminosity ~ log g), not its
systematics: the II−I difference is an upper bound of what the photometry adds.

Hot stars: The Payne's unnormalised emulator covers Teff 3529–6983 K only (labels outside
are clipped), so OBA stars cannot be simulated; the "hot" rows score the test stars above
6,500 K, the edge where version I's paper applied its 6,700 K cut.

Speed: spectra per second of plain prediction and of 100 batched perturbed realizations, for
both architectures, measured interleaved (best of 3) in one run.

Run: ``python benchmarks/apogee_net_versions.py [--n 2000] [--max-epochs 15]``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of  # noqa: E402
from apogee_net_recovery import DATA, make_store  # noqa: E402

LABELS = ("teff", "logg", "fe_h")
BANDS = ("parallax", "G", "BP", "RP", "J", "H", "K")
HOT = 6500.0


def synthetic_photometry(teff, logg, h_mag, seed: int) -> np.ndarray:
    """``(n, 7)`` parallax (mas), G, BP, RP, J, H, K (mag) of simulated stars (module
    docstring). Colours: J−H = 0.9 − 1.1e-4 Teff, H−K = 0.25 − 3e-5 Teff, G−H = 5.3 −
    6e-4 Teff, BP−G = 1.1 − 1.1e-4 Teff, G−RP = 1.0 − 0.9e-4 Teff (linear fits to the
    dwarf/giant sequences, roughly right for 3500–7000 K). Absolute H: M_bol = 4.74 − 2.5
    log(L/L☉) with log(L/L☉) = 4.44 − log g + 4 log(Teff/5772), BC_H ≈ 1.6 − 3.5e-4 Teff."""
    rng = np.random.default_rng(seed)
    teff, logg, h = (np.asarray(a, float) for a in (teff, logg, h_mag))
    log_l = 4.44 - logg + 4 * np.log10(teff / 5772.0)
    m_h = 4.74 - 2.5 * log_l - (1.6 - 3.5e-4 * teff)
    dist = 10 ** ((h - m_h + 5) / 5)  # pc
    plx = 1000.0 / dist
    plx = plx + rng.normal(0, 0.05 + 0.05 * np.abs(plx))
    j = h + 0.9 - 1.1e-4 * teff
    k = h - (0.25 - 3e-5 * teff)
    g = h + 5.3 - 6e-4 * teff
    bp, rp = g + 1.1 - 1.1e-4 * teff, g - (1.0 - 0.9e-4 * teff)
    mags = np.column_stack([g, bp, rp, j, h, k])
    mags = mags + rng.normal(0, 0.02, mags.shape)
    return np.column_stack([plx, mags])


def ridge(store, table, prep, phot=None) -> np.ndarray:
    """Test-split residuals (pred − label, (n_test, 3) in LABELS order) of a ridge
    regression on the standardised pixels (+ z-scored photometry)."""
    from sklearn.linear_model import Ridge

    from apogee_net.network.photometry import photometry_input
    from apogee_net.spectra.store import open_store

    split = np.asarray(table["split"])
    xs, ys = {}, {}
    with open_store(store) as h5:
        for s in ("train", "test"):
            r = np.sort(np.flatnonzero(split == s))
            x = prep.inputs(torch.from_numpy(h5["flux"][r]), torch.from_numpy(h5["error"][r]))
            x = x[:, 0, : h5["flux"].shape[1]].numpy()
            if phot is not None:
                x = np.hstack([x, photometry_input(phot[r]).numpy()])
            xs[s] = x
            ys[s] = np.column_stack([np.asarray(table[c])[r] for c in LABELS])
    model = Ridge(alpha=1.0).fit(xs["train"], ys["train"])
    return model.predict(xs["test"]) - ys["test"]


def cnn_residuals(run: Path, store, table, phot=None) -> np.ndarray:
    from apogee_net.inference.predict import load_model
    from apogee_net.network.photometry import WithPhotometry
    from apogee_net.network.train import predict_dataset
    from apogee_net.spectra.dataset import SpectraDataset, join_labels

    lm = load_model(run / "model.pt")
    rows, joined, _ = join_labels(store, table, label_columns=list(lm.label_names))
    test = np.flatnonzero(np.asarray(joined["split"]) == "test")
    targets = np.column_stack([np.asarray(joined[c], float) for c in lm.label_names])
    ds = SpectraDataset(store, rows=rows[test], targets=targets[test])
    if phot is not None:
        ds = WithPhotometry(ds, phot[rows[test]])
    pred, tgt = predict_dataset(lm.model, ds, lm.preprocess, device="cpu")
    order = [list(lm.label_names).index(c) for c in LABELS]
    return (pred - tgt)[:, order]


def scatter(diff: np.ndarray, teff: np.ndarray) -> dict:
    hot = teff > HOT
    return {"all": np.std(diff, axis=0).tolist(), "hot": np.std(diff[hot], axis=0).tolist(),
            "n_all": int(len(diff)), "n_hot": int(hot.sum())}


def speed(repeats: int, n: int, realizations: int) -> dict:
    """Spectra/s of both architectures, untrained (the cost does not depend on weights)."""
    from apogee_net.inference.uncertainty import perturbed_predict
    from apogee_net.network.apogeenet2 import APOGEENet2, PhotPreprocess
    from apogee_net.network.model import APOGEENet, Preprocess, Standardiser

    rng = np.random.default_rng(0)
    flux = rng.uniform(100, 200, (n, 8575)).astype(np.float32)
    error = np.full_like(flux, 2.0)
    phot = np.tile([1.0, 13, 14, 12, 11, 10.5, 10.3], (n, 1))
    fs, ls = Standardiser(np.zeros(8575), np.ones(8575)), Standardiser(np.zeros(3), np.ones(3))
    m1, p1 = APOGEENet().eval(), Preprocess(fs, ls, "median")
    m2, p2 = APOGEENet2().eval(), PhotPreprocess(fs, ls, "median")
    fns = {
        "I plain": lambda: perturbed_predict(m1, flux, error, p1, n_realizations=0),
        "II plain": lambda: perturbed_predict(m2, flux, error, p2, n_realizations=0,
                                              photometry=phot),
        "I batched": lambda: perturbed_predict(m1, flux[:2], error[:2], p1,
                                               n_realizations=realizations),
        "II batched": lambda: perturbed_predict(m2, flux[:2], error[:2], p2,
                                                n_realizations=realizations,
                                                photometry=phot[:2]),
    }
    t = best_of(fns, repeats=repeats, warmup=1)
    return {k: (n if "plain" in k else 2) / v for k, v in t.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--snr", default="50:200")
    p.add_argument("--max-epochs", type=int, default=15)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--realizations", type=int, default=100)
    p.add_argument("--emulator", default=str(DATA / "payne" / "NN_unnormalized_spectra.npz"))
    p.add_argument("--out", default="/tmp/apogee_net_versions")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from apogee_net.inference.predict import load_model
    from apogee_net.network.train import train_apogee_net

    store, table = make_store(args, out)
    h = h_magnitudes(store)  # the store was written in table order
    phot = synthetic_photometry(table["teff"], table["logg"], h, args.seed)
    for j, band in enumerate(BANDS):
        table[band] = phot[:, j]
    teff_test = np.asarray(table["teff"])[np.sort(np.flatnonzero(
        np.asarray(table["split"]) == "test"))]
    results, timing = {}, {}
    for arch in ("apogeenet1", "apogeenet2"):
        run = out / f"run-{arch}-{args.n}"
        t0 = time.perf_counter()
        res = train_apogee_net(store, table, run, max_epochs=args.max_epochs,
                               batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                               device="cpu", seed=args.seed, resume=True, progress=False,
                               arch=arch)
        timing[arch] = {"seconds": time.perf_counter() - t0, "epochs": len(res.history),
                        "best_epoch": res.best_epoch}
        ph = phot if arch == "apogeenet2" else None
        results[arch] = scatter(cnn_residuals(run, store, table, ph), teff_test)
        results[f"ridge {arch}"] = scatter(
            ridge(store, table, load_model(run / "model.pt").preprocess, ph), teff_test)
    print(f"\nTEST split ({results['apogeenet1']['n_all']} stars; hot = Teff > {HOT:.0f} K: "
          f"{results['apogeenet1']['n_hot']}), scatter of prediction − label:")
    print(f"{'model':18s} {'Teff all':>9s} {'logg all':>9s} {'FeH all':>8s} {'Teff hot':>9s} "
          f"{'logg hot':>9s} {'FeH hot':>8s}")
    for name, r in results.items():
        a, b = r["all"], r["hot"]
        print(f"{name:18s} {a[0]:9.1f} {a[1]:9.3f} {a[2]:8.3f} {b[0]:9.1f} {b[1]:9.3f} "
              f"{b[2]:8.3f}")
    for arch, t in timing.items():
        print(f"training {arch}: {t['epochs']} epochs (best {t['best_epoch']}), "
              f"{t['seconds']:.0f} s")
    if not args.skip_speed:
        sp = speed(3, 64, args.realizations)
        print(f"\nspeed (spectra/s, CPU, {args.threads} threads, best of 3 interleaved): "
              + ", ".join(f"{k} {v:.2f}" for k, v in sp.items())
              + f"; II/I plain {sp['II plain'] / sp['I plain']:.3f}, batched "
              f"{sp['II batched'] / sp['I batched']:.3f}")
        results["speed"] = sp
    (out / "results.json").write_text(json.dumps({"results": results, "timing": timing,
                                                  "args": vars(args)}, indent=1))


def h_magnitudes(store) -> np.ndarray:
    """H of each stored spectrum from its mean flux: the simulation scaled the mean over the
    ASPCAP pixels to 1.133e7 × 10^(−0.4 H) (Cohen et al. 2003; apogee_net.spectra.simulate)."""
    from apogee_net.spectra.store import open_store

    with open_store(store) as h5:
        mean = np.concatenate([np.nanmean(h5["flux"][i:i + 256], axis=1)
                               for i in range(0, h5["flux"].shape[0], 256)])
    return -2.5 * np.log10(mean / 1.133e7)


if __name__ == "__main__":
    main()
