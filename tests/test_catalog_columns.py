"""docs/CATALOG.md is generated from the one table in apogee_net.inference.catalog_columns and lists
every flag bit the code sets; catalogue columns carry their units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from apogee_net.inference.catalog_columns import COLUMNS, apply_units, column_unit
from apogee_net.inference.catalog_doc import catalog_markdown, flag_tables

DOC = Path(__file__).resolve().parents[1] / "docs" / "CATALOG.md"


def test_catalog_doc_matches_the_code():
    assert DOC.read_text() == catalog_markdown(), (
        "docs/CATALOG.md is out of date: run python -m apogee_net.inference.catalog_doc")


def test_every_flag_bit_and_column_is_in_the_doc():
    from apogee_net.inference.predict import FLAGS
    from apogee_net.lamost.predict import FLAGS as LAMOST_FLAGS

    text = DOC.read_text()
    for flags in (FLAGS, LAMOST_FLAGS):
        for name, (value, _) in flags.items():
            assert f"| {value} | `{name}` |" in text, name
    for name, *_ in COLUMNS:
        assert f"| `{name}` |" in text
    values = [v for v, _ in flag_tables()["apogee-net predict"].values()]
    assert len(set(values)) == len(values) and all(v & (v - 1) == 0 for v in values)


def test_units():
    t = Table({c: np.zeros(2) for c in ("ra", "teff", "teff_err", "logg", "mg_fe_err_model",
                                        "snr", "flags", "mjd", "teff_flag")})
    apply_units(t)
    assert t["ra"].unit == u.deg and t["teff"].unit == u.K and t["teff_err"].unit == u.K
    assert str(t["logg"].unit) == "dex" and str(t["mg_fe_err_model"].unit) == "dex"
    assert t["mjd"].unit == u.d and t["snr"].unit is None and t["flags"].unit is None
    assert column_unit("teff_flag") is None
