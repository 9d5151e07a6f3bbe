"""``yso-labels fetch-photometry``: Gaia, 2MASS, AllWISE and g, r from the Gaia archive."""

from __future__ import annotations

import numpy as np

from yso_labels.catalog_cache import DEFAULT_CACHE, GAIA_TAP_URL
from yso_labels.catalogs import GR_SOURCES, RELEASES, fetch_photometry
from yso_labels.core.guards import nonneg_int, pos_int


def _cmd_fetch(args) -> None:
    cache = None if str(args.cache).strip().lower() in ("", "none") else args.cache
    out = fetch_photometry(args.input, args.output, gaia_release=args.gaia_release,
                           gr_source=args.gr_source, cache=cache, chunk_size=args.chunk_size,
                           timeout=args.timeout, retries=args.retries, radius=args.radius,
                           epoch=args.epoch, url=args.url)
    n_gaia = int(np.sum(out["source_id"] >= 0))
    n_2mass = int(np.sum(out["match"] == "2mass_only"))
    n_bad = int(np.sum(out["id_status"] != "ok"))
    print(f"wrote {len(out)} rows to {args.output}: {n_gaia} with a Gaia source, {n_2mass} "
          f"with 2MASS only, {n_bad} with an unusable or unmatched ID (see column id_status)")


def register(sub) -> None:
    p = sub.add_parser(
        "fetch-photometry",
        help="Gaia G/BP/RP and parallax, 2MASS JHK, AllWISE W1-W3 and g, r from the Gaia "
        "archive for APOGEE IDs and/or ra/dec")
    p.add_argument("input", help="table (FITS/CSV/ECSV/text) with apogee_id and/or ra dec "
                   "(deg), or a plain list of APOGEE IDs")
    p.add_argument("output", help="output table (.fits, .csv or .ecsv)")
    p.add_argument("--gaia-release", choices=sorted(RELEASES), default="dr3",
                   help="Gaia data release (default dr3)")
    p.add_argument("--gr-source", choices=sorted(GR_SOURCES), default="sdss",
                   help="g, r from SDSS (default; the M-dwarf relations were calibrated on "
                   "SDSS) or Pan-STARRS1 (PS1 system, noted in the header)")
    p.add_argument("--cache", default=str(DEFAULT_CACHE), metavar="DIR",
                   help="folder for cached query results; a rerun resumes from it "
                   "('none' disables; default %(default)s)")
    p.add_argument("--chunk-size", type=pos_int, default=2000,
                   help="targets per archive query (default 2000)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="socket timeout in seconds (default 60)")
    p.add_argument("--retries", type=nonneg_int, default=4,
                   help="retries of a failed query, with exponential backoff (default 4)")
    p.add_argument("--radius", type=float, default=2.0,
                   help="match radius in arcsec for rows matched by position (default 2)")
    p.add_argument("--epoch", type=float, default=2000.0,
                   help="epoch of the input ra/dec (Julian year, default 2000.0)")
    p.add_argument("--url", default=GAIA_TAP_URL, help="TAP service (default: Gaia archive)")
    p.set_defaults(func=_cmd_fetch)
