"""Column conventions, table reading with clear errors, atomic writing with provenance.

Every table the toolkit reads goes through :func:`read_table`; every table it writes goes
through :func:`write_table`, which writes to a temporary name beside the target and renames
it, and records the toolkit version, the options and the coefficient set or model in the
header (FITS keywords, or ``#`` comment lines for CSV/ECSV).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from yso_labels import __version__
from yso_labels.core.atomic import atomic_write

#: Photometry and astrometry columns (magnitudes in mag, parallax in mas).
PHOTOMETRY_COLUMNS = (
    "apogee_id", "ra", "dec", "g", "r", "G", "BP", "RP", "J", "H", "K", "W1", "W2", "W3",
    "parallax", "parallax_error",
)
#: Label table columns (teff in K, logg in dex [cgs], fe_h in dex).
LABEL_COLUMNS = ("apogee_id", "teff", "logg", "fe_h", "source", "split")
SOURCES = ("payne", "mstar", "yso")
SPLITS = ("train", "dev", "cal", "test")


class TableError(ValueError):
    """A table is unreadable or lacks what the toolkit needs; the message names the file."""


def read_table(path: str | os.PathLike, required: Iterable[str] = (),
               what: str = "table") -> Table:
    """Read a FITS, CSV, ECSV or whitespace-separated text table.

    Raises :class:`TableError` naming ``path`` when it cannot be read or lacks any of the
    ``required`` columns.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(f"{what} {path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
            table = Table.read(path, hdu=1) if _n_hdus(path) > 1 else Table.read(path)
        elif name.endswith((".csv", ".csv.gz")):
            table = Table.read(path, format="ascii.csv", comment="#")
        elif name.endswith(".ecsv"):
            table = Table.read(path, format="ascii.ecsv")
        else:
            table = Table.read(path, format="ascii.basic", delimiter=r"\s")
    except Exception as exc:  # astropy raises many kinds; give one clear message
        raise TableError(f"{what} {path}: cannot be read as a table ({exc})") from exc
    table.convert_bytestring_to_unicode()  # FITS strings arrive as bytes
    check_columns(table, required, f"{what} {path}")
    return table


def _n_hdus(path: Path) -> int:
    with fits.open(path) as hdul:
        return len(hdul)


def check_columns(table: Table, required: Iterable[str], where: str) -> None:
    """Raise :class:`TableError` listing the columns of ``required`` missing in ``table``."""
    missing = [c for c in required if c not in table.colnames]
    if missing:
        raise TableError(
            f"{where}: missing column(s) {', '.join(missing)}; "
            f"it has {', '.join(table.colnames) or 'no columns'}"
        )


def parse_split(values: Iterable, where: str) -> np.ndarray:
    """The ``split`` column as lower-case ``train``/``dev``/``cal``/``test`` strings
    (surrounding blanks and case ignored; ``cal``: the σ calibration split, see
    :mod:`apogee_net.evaluation.groupcal`); :class:`TableError` naming ``where`` and the other
    values."""
    split = [str(s).strip().lower() for s in values]
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        raise TableError(f"{where}: split values must be train, dev, cal or test; "
                         f"found {', '.join(unknown[:10])}")
    return np.array(split, dtype="<U5")


def duplicated(values: Iterable) -> list:
    """Values that occur more than once, sorted."""
    vals, counts = np.unique(np.asarray(list(values)).astype(str), return_counts=True)
    return sorted(vals[counts > 1].tolist())


def provenance(step: str, options: Mapping | None = None, **extra) -> dict:
    """Header metadata recorded in every output table: toolkit version, step, options."""
    meta = {
        "TOOLKIT": "yso-apogee-net",
        "VERSION": __version__,
        "STEP": step,
        "DATE": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if options:
        meta["OPTIONS"] = json.dumps(dict(options), sort_keys=True, default=str)
    for key, value in extra.items():
        meta[key.upper()] = value
    return meta


def write_table(table: Table, path: str | os.PathLike, meta: Mapping | None = None) -> Path:
    """Write ``table`` atomically as FITS (``.fits``), CSV (``.csv``) or ECSV (``.ecsv``).

    ``meta`` (see :func:`provenance`) goes into the FITS header or CSV comment lines.
    """
    table = table.copy(copy_data=False)
    meta = dict(meta or {})
    final = Path(path)
    name = final.name.lower()
    if not name.endswith((".fits", ".fit", ".csv", ".ecsv")):
        raise TableError(f"{final}: unknown output format (use .fits, .csv or .ecsv)")
    with atomic_write(final) as tmp:
        if name.endswith((".fits", ".fit")):
            table.meta.update({k[:70]: v for k, v in meta.items()})
            table.write(tmp, format="fits", overwrite=True)
        elif name.endswith(".csv"):
            table.meta["comments"] = [f"{k} = {v}" for k, v in meta.items()]
            table.write(tmp, format="ascii.csv", overwrite=True, comment="# ")
        elif name.endswith(".ecsv"):
            table.meta.update(meta)
            table.write(tmp, format="ascii.ecsv", overwrite=True)
    return final


def read_meta(path: str | os.PathLike) -> dict:
    """Provenance metadata of a table written by :func:`write_table`."""
    path = Path(path)
    if path.name.lower().endswith(".csv"):
        meta = {}
        with open(path) as fh:
            for line in fh:
                if not line.startswith("#"):
                    break
                key, _, value = line[1:].strip().partition(" = ")
                meta[key] = value
        return meta
    return dict(read_table(path).meta)
