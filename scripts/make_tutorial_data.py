"""Make the tutorial's built-in inputs (``apogee_net/data/demo/``): a list of APOGEE IDs and the
Gaia archive's answers for them, recorded in ``fetch-photometry``'s query cache.

``docs/tutorial.ipynb`` starts from ``tutorial_ids.csv`` (one column ``apogee_id``) and calls
:func:`yso_labels.catalogs.fetch_photometry` with ``cache=`` the folder ``archive_responses/``.
Every query of that call is found there (the cache key is the archive URL, the ADQL text
and the uploaded chunk: :class:`yso_labels.catalog_cache.QueryCache`), so the tutorial runs
offline through the same code path as a real query.

The stars are the demo's synthetic young stars (``yso_photometry.csv``, made by
``scripts/make_demo_data.py``), not real archive content: each answer row holds the demo
star's Gaia G, BP, RP, parallax, FLAME-like radius and luminosity (the r*, log L of the
synthetic population, Olney et al. 2020 §2.4) and 2MASS J, H, K, with Gaia DR3-like
uncertainties, no proper motion, and no AllWISE or SDSS counterpart.

Run ``python scripts/make_tutorial_data.py`` again whenever the archive query changes
(``tests/test_tutorial.py`` fails until then). Deterministic.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from astropy.table import MaskedColumn, Table

from yso_labels.catalog_cache import GAIA_TAP_URL
from yso_labels.catalogs import query_photometry

DEMO = Path(__file__).resolve().parents[1] / "apogee_net" / "data" / "demo"
N_STARS = 100
SEED = 2020
#: columns the archive returns for the ``2mass_id`` route with no counterpart (all null)
NULL_COLUMNS = ("w1mpro", "w1mpro_error", "w2mpro", "w2mpro_error", "w3mpro", "w3mpro_error",
                "gr_g", "gr_g_error", "gr_r", "gr_r_error")


class RecordingArchive:
    """Stands for :class:`yso_labels.catalog_cache.GaiaArchive` at the real archive URL and
    answers each ``2mass_id`` query from the demo photometry ``stars``."""

    url = GAIA_TAP_URL

    def __init__(self, stars: Table, seed: int = SEED):
        self.stars = {str(s["apogee_id"])[2:]: s for s in stars}
        self.rng = np.random.default_rng(seed)

    def check_reachable(self) -> None:
        pass

    def query(self, adql: str, upload: Table) -> Table:
        if "tm.designation = u.tmass_id" not in adql:
            raise ValueError("only the 2mass_id route is recorded (the tutorial has IDs)")
        rows = [self.stars[(t.decode() if isinstance(t, bytes) else str(t))]
                for t in upload["tmass_id"]]
        n = len(rows)

        def col(name):
            return np.array([float(r[name]) for r in rows])

        g = col("G")
        # Gaia DR3-like precision: G flux S/N ~ 2000 at G = 13 falling as 10^(-0.2 ΔG)
        # (photon noise); BP/RP 5x lower; parallax error 0.02 mas at G <= 15, rising
        foe = np.clip(2000 * 10 ** (-0.2 * (g - 13)), 50, 5000)
        out = Table()
        out["row_id"] = np.asarray(upload["row_id"], np.int64)
        out["source_id"] = 3_300_000_000_000_000_000 + np.asarray(upload["row_id"], np.int64)
        out["gaia_ra"], out["gaia_dec"] = col("ra"), col("dec")
        out["ref_epoch"] = np.full(n, 2016.0)
        out["pmra"], out["pmdec"] = np.zeros(n), np.zeros(n)
        out["parallax"] = col("parallax")
        out["parallax_error"] = 0.02 * np.maximum(1.0, 10 ** (0.4 * (g - 15)))
        for band, key in (("g", "G"), ("bp", "BP"), ("rp", "RP")):
            out[f"phot_{band}_mean_mag"] = col(key)
            out[f"phot_{band}_mean_flux_over_error"] = foe / (1.0 if band == "g" else 5.0)
        out["radius_flame"] = col("radius")
        out["lum_flame"] = 10 ** col("logl")
        out["tmass_designation"] = np.array([f"{r['apogee_id']}"[2:] for r in rows], "S20")
        out["tmass_ph_qual"] = np.array(["AAA"] * n, "S3")
        for band, key in (("j", "J"), ("h", "H"), ("ks", "K")):
            out[f"{band}_m"] = col(key)
            out[f"{band}_msigcom"] = np.full(n, 0.023)
        out["xm_sep"] = self.rng.uniform(0.02, 0.3, n).round(4)
        for name in NULL_COLUMNS:
            out[name] = MaskedColumn(np.zeros(n), mask=np.ones(n, bool))
        return Table(out, masked=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEMO)
    args = parser.parse_args(argv)
    stars = Table.read(DEMO / "yso_photometry.csv")
    pick = np.sort(np.random.default_rng(SEED).choice(len(stars), N_STARS, replace=False))
    stars = stars[pick]
    ids = Table({"apogee_id": stars["apogee_id"]})
    ids.write(args.out / "tutorial_ids.csv", overwrite=True)
    cache = args.out / "archive_responses"
    shutil.rmtree(cache, ignore_errors=True)
    out = query_photometry(ids, cache=cache, archive=RecordingArchive(stars))
    print(f"{len(out)} stars, {sum(1 for _ in cache.glob('*.vot'))} recorded answer(s) in "
          f"{cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
