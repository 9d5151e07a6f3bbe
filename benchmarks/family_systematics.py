"""Model-family systematics of the photometric-CNN labels (issue 17 §3).

The same photometry is labelled by the CNNs of ``photcnn_families.py`` (one per family,
trained with that script's defaults and taken from its cache, trained here when absent)
with :func:`yso_labels.systematics.run_compare` (= ``yso-labels photcnn compare``): the
demo YSOs (``apogee_net/data/demo/yso_photometry.csv``, 350 stars of 1–5 Myr in five
regions; synthetic PARSEC photometry, so their true PARSEC labels are known and each
family's offset from them is printed too). Prints the summary table (median and 16–84 %
of Δ log age, Δ mass, Δ Teff, Δ log g per pair of families, all stars and split at
4000 K) and writes the per-star table, summary and figure to ``--out``.

    nice -n 10 python benchmarks/family_systematics.py --out /tmp/family_systematics
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photcnn_families import DEFAULT_CACHE, cached_model  # noqa: E402

from yso_labels.core.tables import as_bool  # noqa: E402
from yso_labels.families import load_models  # noqa: E402
from yso_labels.synthetic import draw_population  # noqa: E402
from yso_labels.systematics import run_compare  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO_YSOS = REPO / "apogee_net" / "data" / "demo" / "yso_photometry.csv"
MDWARFS = REPO.parent / "shared" / "data" / "mdwarf" / "mdwarf_labels_olney2020_subset.csv"
ORDER = ("parsec", "dsep-standard", "dsep-magnetic")
#: The M-dwarf sample has no Gaia photometry: its CNNs use SDSS g, r and 2MASS (stars still
#: G-selected), distances 10-500 pc and ages 1-1000 Myr (field dwarfs are old).
MD_BANDS = ("g", "r", "J", "H", "K")
MD_DRAW = {"distance_range": (10.0, 500.0), "age_myr_range": (1.0, 1000.0)}


def mdwarf_table(path: Path) -> tuple[Table, Table]:
    """The shared M-dwarf sample with the toolkit's column names (J, H, K from
    ``J_app`` ...; ``apogee_id`` from ``ap_id``), and the table as read (published
    ``T_eff``, ``log_g``, ``Mass``)."""
    t = Table.read(path, format="ascii.csv")
    out = Table({"apogee_id": t["ap_id"], "g": t["g"], "r": t["r"], "J": t["J_app"],
                 "H": t["H_app"], "K": t["K_app"], "parallax": t["parallax"]})
    return out, t


def run_mdwarfs(args) -> None:
    phot, published = mdwarf_table(args.mdwarf)
    path = args.out / "mdwarf_photometry.fits"
    args.out.mkdir(parents=True, exist_ok=True)
    phot.write(path, overwrite=True)
    models = {}
    for fam in ORDER:
        train = draw_population(args.md_n_train, args.train_seed, grid=load_models(fam),
                                bands=MD_BANDS, **MD_DRAW)
        models[fam], info = cached_model(fam, train, args.cache, seed=args.model_seed,
                                         epochs=args.md_epochs, patience=args.patience)
        print(f"{fam} (g r J H K): {models[fam]} {info}", flush=True)
    files = run_compare([models[f] for f in ORDER], path, args.out / "mdwarfs",
                        device="cpu", allow_missing=True)
    print(f"\n== shared M dwarfs ({args.mdwarf.name}, {len(phot)} stars; bands g r J H K, "
          f"no Gaia radius/L: unreported as for r* < 0.5 Rsun) ==")
    print_summary(files["summary"])
    stars = Table.read(files["stars"], format="ascii.csv", comment="#")
    print("\neach family − the published labels of Olney et al. 2020 (median [16%, 84%]):")
    for fam in ORDER:
        ok = ~as_bool(stars[f"ood_{fam}"])
        print(f"  {fam:14s} n={ok.sum():3d} in domain of {len(ok)}  ΔTeff " + " ".join(
            f"{v:+.0f}" for v in np.percentile((stars[f"teff_{fam}"] -
                                                 published["T_eff"])[ok], [50, 16, 84]))
            + "  Δlog g " + " ".join(f"{v:+.3f}" for v in np.percentile(
                (stars[f"logg_{fam}"] - published["log_g"])[ok], [50, 16, 84]))
            + "  Δmass " + " ".join(f"{v:+.3f}" for v in np.percentile(
                (stars[f"mass_{fam}"] - published["Mass"])[ok], [50, 16, 84])))


def print_summary(path: Path) -> None:
    s = Table.read(path, format="ascii.csv", comment="#")
    print(f"{'pair':30s} {'stars':12s} {'n':>4s} | {'Δlog age dex':>20s} | "
          f"{'Δmass Msun':>20s} | {'ΔTeff K':>18s} | {'Δlog g dex':>20s} | age ratio")
    for r in s:
        cells = []
        for q, fmt in (("log_age", "+.3f"), ("mass", "+.3f"), ("teff", "+.0f"),
                       ("logg", "+.3f")):
            cells.append(f"{r[f'd_{q}_median']:{fmt}} [{r[f'd_{q}_p16']:{fmt}}, "
                         f"{r[f'd_{q}_p84']:{fmt}}]")
        print(f"{r['pair']:30s} {r['stars']:12s} {r['n']:4d} | " + " | ".join(
            f"{c:>20s}" for c in cells) + f" | {r['age_ratio']:.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/family_systematics"))
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--n-train", type=int, default=12000)
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=120)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--mdwarf", type=Path, default=MDWARFS,
                   help="M-dwarf table (g r J_app H_app K_app parallax; skipped if absent)")
    p.add_argument("--md-n-train", type=int, default=8000)
    p.add_argument("--md-epochs", type=int, default=80)
    args = p.parse_args(argv)

    models = {}
    for fam in ORDER:
        train = draw_population(args.n_train, args.train_seed, grid=load_models(fam))
        models[fam], info = cached_model(fam, train, args.cache, seed=args.model_seed,
                                         epochs=args.epochs, patience=args.patience)
        print(f"{fam}: {models[fam]} {info}")
    files = run_compare([models[f] for f in ORDER], DEMO_YSOS, args.out / "demo_ysos",
                        device="cpu")
    print(f"\n== demo YSOs ({DEMO_YSOS.name}): labels of each family's CNN, "
          f"later − earlier family ==")
    print_summary(files["summary"])
    stars = Table.read(files["stars"], format="ascii.csv", comment="#")
    truth = Table.read(DEMO_YSOS, format="ascii.csv")
    print("\neach family − the stars' true PARSEC labels (median [16%, 84%]):")
    for fam in ORDER:
        ok = ~as_bool(stars[f"ood_{fam}"])
        d_age = (stars[f"log_age_{fam}"] - np.log10(truth["age_myr_true"] * 1e6))[ok]
        d_teff = (stars[f"teff_{fam}"] - truth["teff_true"])[ok]
        d_logg = (stars[f"logg_{fam}"] - truth["logg_true"])[ok]
        print(f"  {fam:14s} n={ok.sum():3d}  Δlog age " + " ".join(
            f"{v:+.3f}" for v in np.percentile(d_age, [50, 16, 84])) + "  ΔTeff " + " ".join(
            f"{v:+.0f}" for v in np.percentile(d_teff, [50, 16, 84])) + "  Δlog g " +
            " ".join(f"{v:+.3f}" for v in np.percentile(d_logg, [50, 16, 84])))
    print(f"\nwrote {', '.join(str(v) for v in files.values())}")
    if args.mdwarf.exists():
        run_mdwarfs(args)
    else:
        print(f"M-dwarf sample {args.mdwarf} absent: skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
