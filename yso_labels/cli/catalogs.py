"""``yso-labels fetch-photometry``: Gaia, 2MASS, AllWISE and g, r from the Gaia archive."""

from __future__ import annotations

import numpy as np

from yso_labels.catalogs import fetch_photometry
from yso_labels.core.options import add_dataclass_arguments, from_namespace
from yso_labels.options import FetchOptions


def _cmd_fetch(args) -> None:
    out = fetch_photometry(args.input, args.output, from_namespace(FetchOptions, args))
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
    add_dataclass_arguments(p, FetchOptions)
    p.set_defaults(func=_cmd_fetch)
