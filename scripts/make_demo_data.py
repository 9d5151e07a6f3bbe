"""Make the demo's built-in inputs (``apogee_net/data/demo/``) from the packaged PARSEC grid.

The files are synthetic, made by this project, and shipped with the package so that
``apogee-net demo`` runs offline:

- ``mdwarf_photometry.csv``: old (1–8 Gyr) low-mass stars at 10–150 pc with SDSS g, r,
  2MASS J, H, K and Gaia parallaxes, 2MASS-style IDs, positions over the sky (a few inside
  the star-forming fields that the M-dwarf selection must exclude) and some giants that the
  selection must reject;
- ``yso_photometry.csv``: 1–5 Myr stars drawn as in Olney et al. 2020 §2.4 (but with
  A_V 0–4) placed in real star-forming regions at their distances;
- ``payne_catalogue.txt``: a Payne-format catalogue (Ting et al. 2019 text layout) of giants
  and dwarfs inside The Payne emulator's label range, a few cool dwarfs outside the trust
  region and a few bad quality flags.

Run: ``python scripts/make_demo_data.py [--seed 2020]``. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from yso_labels.isochrones import interpolate, load_isochrones
from yso_labels.synthetic import draw_population

OUT = Path(__file__).resolve().parents[1] / "apogee_net" / "data" / "demo"
#: Regions the demo YSOs are placed in: (ra, dec, radius deg, distance pc).
YSO_REGIONS = {"ONC": (83.82, -5.39, 0.8, 400.0), "NGC 1333": (52.29, 31.32, 0.5, 300.0),
               "IC 348": (56.13, 32.16, 0.5, 320.0), "NGC 2264": (100.24, 9.90, 0.6, 720.0),
               "Taurus": (68.0, 25.0, 4.0, 140.0)}
PAYNE_HEADER = ("APOGEE_ID RA[deg] Dec[deg] Teff[K] Logg vmic[km/s] CH NH OH MgH AlH SiH SH KH "
                "CaH TiH CrH MnH FeH NiH CuH C12C13 vmac[km/s] chi2_R quality_flag")


def designation(ra, dec) -> list[str]:
    """2MASS-style designations ``2MHHMMSSss+DDMMSSs`` from positions in degrees."""
    out = []
    for a, d in zip(ra, dec, strict=True):
        h = a / 15.0
        hh, mm = int(h), int((h % 1) * 60)
        ss = ((h * 60) % 1) * 60
        sign = "+" if d >= 0 else "-"
        ad = abs(d)
        dd, dm = int(ad), int((ad % 1) * 60)
        ds = ((ad * 60) % 1) * 60
        out.append(f"2M{hh:02d}{mm:02d}{int(ss * 100):04d}{sign}{dd:02d}{dm:02d}{int(ds * 10):03d}")
    return out


def sky(rng, n):
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-0.95, 0.95, n)))
    return ra, dec


def mdwarf_photometry(grid, rng, n=360) -> Table:
    mass = rng.uniform(0.12, 0.62, n)
    log_age = rng.uniform(9.0, 9.9, n)
    iso = interpolate(grid, log_age, mass, ["G", "g", "r", "J", "H", "K", "teff"])
    dist = rng.uniform(10, 150, n)
    dm = 5 * np.log10(dist) - 5
    t = Table()
    ra, dec = sky(rng, n)
    ra[:12], dec[:12] = 83.82 + rng.normal(0, 0.3, 12), -5.39 + rng.normal(0, 0.3, 12)  # ONC
    for band in ("g", "r", "J", "H", "K"):
        t[band] = np.round(np.asarray(iso[band]) + dm + rng.normal(0, 0.02, n), 3)
    plx = 1000.0 / dist
    t["parallax"] = np.round(plx + rng.normal(0, 0.05, n), 4)
    t["parallax_error"] = np.round(rng.uniform(0.02, 0.1, n), 4)
    t["parallax_error"][12:24] = np.abs(t["parallax"][12:24])  # parallax/sigma = 1: rejected
    t.add_column(designation(ra, dec), name="apogee_id", index=0)
    t.add_column(np.round(ra, 6), name="ra", index=1)
    t.add_column(np.round(dec, 6), name="dec", index=2)
    good = np.all([np.isfinite(t[c]) for c in ("g", "r", "J", "H", "K")], axis=0)
    return t[good]


def yso_photometry(grid, rng, seed, n_per=70) -> Table:
    parts = []
    for k, (name, (ra0, dec0, rad, dist)) in enumerate(YSO_REGIONS.items()):
        pop = draw_population(n_per, seed + k, grid=grid, age_myr_range=(1.0, 5.0),
                              av_range=(0.0, 4.0), distance_range=(0.9 * dist, 1.1 * dist),
                              mass_range=(0.15, 1.5))
        ra = ra0 + rng.normal(0, rad / 2, len(pop)) / np.cos(np.radians(dec0))
        dec = dec0 + rng.normal(0, rad / 2, len(pop))
        keep = [c for c in pop.colnames if c not in ("apogee_id",)]
        t = pop[keep]
        t.add_column(designation(ra, dec), name="apogee_id", index=0)
        t.add_column(np.round(ra, 6), name="ra", index=1)
        t.add_column(np.round(dec, 6), name="dec", index=2)
        t["region"] = name
        parts.append(t)
    return vstack(parts, metadata_conflicts="silent")


def payne_catalogue(rng, n=1800) -> list[str]:
    n_giant = int(0.7 * n)
    logg_g = rng.uniform(0.8, 3.6, n_giant)
    feh_g = np.clip(rng.normal(-0.2, 0.3, n_giant), -0.95, 0.45)
    teff_g = 3900 + 430 * logg_g - 250 * feh_g + rng.normal(0, 80, n_giant)
    n_dwarf = n - n_giant
    teff_d = rng.uniform(4300, 6700, n_dwarf)
    logg_d = 4.9 - 1.6e-4 * (teff_d - 4300) + rng.normal(0, 0.08, n_dwarf)
    feh_d = np.clip(rng.normal(-0.1, 0.25, n_dwarf), -0.95, 0.45)
    teff = np.r_[teff_g, teff_d]
    logg = np.clip(np.r_[logg_g, logg_d], 0.5, 5.1)
    feh = np.r_[feh_g, feh_d]
    teff[:20] = rng.uniform(3600, 3950, 20)  # cool dwarfs: outside the trust region
    logg[:20] = rng.uniform(4.5, 4.9, 20)
    flag = np.where(rng.uniform(size=n) < 0.02, "bad", "good")
    ra, dec = sky(rng, n)
    ids = designation(ra, dec)
    lines = [PAYNE_HEADER]
    for i in range(n):
        ab = " ".join(f"{feh[i] + rng.normal(0, 0.05):.3f}" for _ in range(12))
        lines.append(f"{ids[i]} {ra[i]:.6f} {dec[i]:.6f} {teff[i]:.1f} {logg[i]:.3f} 1.2 "
                     f"{ab} {feh[i]:.3f} {feh[i]:.3f} {feh[i]:.3f} 15.0 5.0 1.0 {flag[i]}")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    grid = load_isochrones()
    args.out.mkdir(parents=True, exist_ok=True)
    md = mdwarf_photometry(grid, rng)
    md.write(args.out / "mdwarf_photometry.csv", overwrite=True)
    yso = yso_photometry(grid, rng, args.seed)
    cols = ["apogee_id", "ra", "dec", "G", "BP", "RP", "J", "H", "K", "radius", "logl",
            "distance", "parallax", "region", "teff_true", "logg_true", "age_myr_true"]
    yso = yso[[c for c in cols if c in yso.colnames]]
    for c in yso.colnames:
        if yso[c].dtype.kind == "f":
            yso[c] = np.round(yso[c], 5)
    yso.write(args.out / "yso_photometry.csv", overwrite=True)
    (args.out / "payne_catalogue.txt").write_text("\n".join(payne_catalogue(rng)) + "\n")
    print(f"wrote {len(md)} M-dwarf, {len(yso)} YSO photometry rows and a Payne catalogue "
          f"to {args.out}")


if __name__ == "__main__":
    main()
