"""Column conventions, table reading with clear errors, atomic writing with provenance.

Every table the toolkit reads goes through :func:`read_table`; every table it writes goes
through :func:`write_table`, which writes to a temporary name beside the target and renames
it, and records the toolkit version, the options and the coefficient set or model in the
header (FITS keywords, or ``#`` comment lines for CSV/ECSV).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from yso_labels import __version__
from yso_labels.core.atomic import atomic_write

#: log10 units ("dex": log g, abundances, log L), which the FITS standard lacks: written as
#: TUNIT = 'dex', as the SDSS catalogues do, and read back as that text.
DEX = u.UnrecognizedUnit("dex")



@contextlib.contextmanager
def quiet_units():
    """Within: astropy's warnings about units FITS lacks (``dex``, ``%``) are not shown;
    they are written and read back as their text (TUNIT), as SDSS catalogues have them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        yield


def float_column(col) -> np.ndarray:
    """A table column (or array) as float64 with masked entries NaN."""
    return np.asarray(np.ma.filled(np.ma.asarray(col, dtype=float), np.nan), dtype=float)


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
               what: str = "table", hdu: int | str | None = None) -> Table:
    """Read a FITS, CSV, ECSV or whitespace-separated text table.

    FITS files with several tables (SDSS-V astra summary files: HDU1 BOSS results, HDU2
    APOGEE results) are read from ``hdu`` (index or EXTNAME) when given, else from the table
    HDU chosen by :func:`choose_hdu` (the one holding the ``required`` columns, preferring
    rows, then an APOGEE EXTNAME/INSTRMNT). Error columns named ``e_<x>`` (astra, Gaia,
    VizieR) are renamed ``<x>_err`` when ``<x>`` exists and ``<x>_err`` does not
    (:func:`error_aliases`), so uncertainty limits find them.

    Raises :class:`TableError` naming ``path`` when it cannot be read or lacks any of the
    ``required`` columns.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(f"{what} {path}: no such file")
    name = path.name.lower()
    required = list(required)
    try:
        if name.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
            index = hdu if hdu is not None else choose_hdu(path, required, what)
            with quiet_units():  # TUNIT 'dex', '%': kept as text, not warned
                table = Table.read(path, hdu=index) if index is not None else Table.read(path)
        elif name.endswith((".csv", ".csv.gz")):
            # utf-8-sig: a byte-order mark is dropped, not read into the first column name
            table = Table.read(path, format="ascii.csv", comment="#", encoding="utf-8-sig")
        elif name.endswith(".ecsv"):
            table = Table.read(path, format="ascii.ecsv")
        else:
            table = Table.read(path, format="ascii.basic", delimiter=r"\s",
                               encoding="utf-8-sig")
    except TableError:
        raise
    except Exception as exc:  # astropy raises many kinds; give one clear message
        raise TableError(f"{what} {path}: cannot be read as a table ({exc})") from exc
    table.convert_bytestring_to_unicode()  # FITS strings arrive as bytes
    error_aliases(table)
    check_columns(table, required, f"{what} {path}")
    return table


def error_aliases(table: Table) -> list[str]:
    """Rename ``e_<x>`` (or ``E_<X>``) to ``<x>_err`` (``<X>_ERR``) in place where ``<x>``
    is a column and ``<x>_err`` is not; returns the new names."""
    renamed = []
    for col in list(table.colnames):
        if col[:2] not in ("e_", "E_") or len(col) < 3:
            continue
        base = col[2:]
        new = base + ("_ERR" if col[0] == "E" else "_err")
        if base in table.colnames and new not in table.colnames:
            table.rename_column(col, new)
            renamed.append(new)
    return renamed


def choose_hdu(path: Path, required: Iterable[str] = (), what: str = "table") -> int | None:
    """Index of the table HDU to read from a FITS file (None: the first, astropy's default).

    With one table HDU, that one. With several: those holding every ``required`` column
    (``e_<x>`` counting as ``<x>_err``), then those with rows, then one whose EXTNAME or
    INSTRMNT says APOGEE; the first left. Raises :class:`TableError` listing each HDU's name
    and size when none holds the required columns."""
    with fits.open(path) as hdul:
        tables = [(i, h) for i, h in enumerate(hdul)
                  if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
        if len(tables) <= 1:
            return tables[0][0] if tables else None
        required = list(required)

        def names(h):
            cols = list(h.columns.names)
            return set(cols) | {c[2:] + ("_ERR" if c[0] == "E" else "_err")
                                for c in cols if c[:2] in ("e_", "E_")}

        cands = [(i, h) for i, h in tables if set(required) <= names(h)]
        if not cands:
            desc = "; ".join(f"HDU{i} {h.header.get('EXTNAME', '')!s} ({h.header.get('NAXIS2', 0)}"
                             " rows)" for i, h in tables)
            raise TableError(f"{what} {path}: no table HDU has the column(s) "
                             f"{', '.join(required)} ({desc})")
        with_rows = [(i, h) for i, h in cands if h.header.get("NAXIS2", 0) > 0] or cands
        apogee = [(i, h) for i, h in with_rows
                  if "APOGEE" in f"{h.header.get('EXTNAME', '')} {h.header.get('INSTRMNT', '')}"
                  .upper()]
        return (apogee or with_rows)[0][0]


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


def as_bool(values) -> np.ndarray:
    """A flag column as booleans, also when a CSV reader left it as the text "True"/"False"
    (``np.asarray("False", bool)`` is True)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "US":
        text = np.char.lower(np.char.strip(arr.astype(str)))
        unknown = sorted(set(text.tolist()) - {"true", "false", "1", "0", "t", "f", ""})
        if unknown:
            raise TableError(f"flag column: expected True/False, found {', '.join(unknown[:3])}")
        return np.isin(text, ("true", "1", "t"))
    return arr.astype(bool)


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
            with quiet_units():  # long keys become HIERARCH cards, as intended: no warning
                warnings.filterwarnings("ignore", "Keyword name .* HIERARCH card",
                                        fits.verify.VerifyWarning)
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
