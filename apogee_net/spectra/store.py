"""One HDF5 file for a survey's spectra, written resumably and read lazily by torch.

Layout (format version :data:`STORE_VERSION`), for ``n`` spectra of ``npix`` pixels:

- ``flux`` (n, npix) float32 and ``error`` (n, npix) float32, NaN where there is no data
  (apStar: 1e-17 erg/s/cm²/Å); ``mask`` (n, npix) int32 bit mask. Chunked by rows
  (:data:`CHUNK_ROWS`, npix), resizable along axis 0.
- ``apogee_id`` (UTF-8 str), ``snr`` float32, ``ra``, ``dec`` float64 (deg), ``source`` (str:
  the file each row came from; unique), all (n,); ``wavelength`` (npix,) float64 (Å).
- Optional per-row string columns named by the writer's ``extra`` (LAMOST:
  ``lamost_class``, ``lamost_subclass``, the header CLASS/SUBCLASS); rows appended to a
  store made without them hold "" for the older rows.
- File attributes: ``kind`` ("apstar" or "lamost"), ``npix``, ``version``, ``provenance``
  (JSON), ``complete`` (bool), ``n_rows`` (rows committed; resume truncates to it),
  ``pixmask_bits`` (apStar: the PIXMASK bits stored as no data, e.g. "0,1,12").

A store is written as ``STORE.h5.part`` and renamed to ``STORE.h5`` when complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from yso_labels.core.tables import provenance as _provenance

log = logging.getLogger(__name__)

STORE_VERSION = 1
KINDS = ("apstar", "lamost")
#: Rows per HDF5 chunk of the 2-D datasets (a chunk of 8575 float32 pixels is ~1.1 MB).
CHUNK_ROWS = 32
#: Compression of flux and error (None, "lzf" or "gzip" = gzip level 1). None: random-row
#: reads are 70x faster uncompressed and lzf saves only 16 % (benchmarks/store_io.py).
COMPRESSION: str | None = None
#: Compression of the bit mask (mostly zeros, never read by the training loop).
MASK_COMPRESSION = "lzf"
COLUMNS_1D = ("apogee_id", "snr", "ra", "dec", "source")


class StoreError(ValueError):
    """A file is not a (complete) spectra store; the message names the file."""


def part_path(path: str | os.PathLike) -> Path:
    """Temporary name of a store being written: ``path + ".part"``."""
    return Path(str(path) + ".part")


def missing_input_message(path: str | os.PathLike) -> str:
    """Why input ``path`` is not there: an unfinished store (``path.part`` exists, and
    whether an ingest is writing it now) or no such file."""
    part = part_path(path)
    if part.exists():
        busy = Path(str(path) + ".lock").exists()
        return (f"store {path} is not finished: {part} exists ("
                + ("an ingest is writing it now; wait for it to finish)" if busy else
                   "an interrupted ingest; rerun the same ingest command to complete it)"))
    return f"{path}: no such file or directory"


class StoreLock:
    """Exclusive lock on ``path + ".lock"`` while a store is written (POSIX ``flock``;
    elsewhere no lock). The file holds the writer's process ID and is removed on release."""

    def __init__(self, path: str | os.PathLike):
        self.file = Path(str(path) + ".lock")
        self.fd: int | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            return
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
                finally:
                    os.close(fd)
                raise StoreError(f"store {path} is being written by another process (pid "
                                 f"{pid}, lock {self.file}); wait for it to finish, or write "
                                 "another --out. Its .part file is in use: do not delete "
                                 "it") from None
            try:  # the file may have been removed by its last holder meanwhile: retry
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        import fcntl

        self.file.unlink(missing_ok=True)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def lock_store(path: str | os.PathLike) -> StoreLock:
    """Take the writer's lock of store ``path``; :class:`StoreError` when another process
    holds it (see :class:`StoreLock`)."""
    return StoreLock(path)


def _str_dtype():
    import h5py

    return h5py.string_dtype("utf-8")


def decode_strings(values) -> list[str]:
    """HDF5 strings (bytes or str) as a list of str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class StoreWriter:
    """Append spectra to a store; context manager (complete on a clean exit).

    Writes ``path + ".part"``; :meth:`close` with ``complete=True`` marks it complete and
    renames it to ``path``. An existing ``.part`` is resumed (rows beyond the last committed
    batch are dropped; ``restart=True`` discards it instead); an existing complete store is
    copied to ``.part`` and appended to. ``overwrite=True`` starts an empty ``.part``: the old
    store stays in place, intact, until the new one is complete (replace after success).
    ``meta`` goes into the ``provenance`` attribute; ``settings`` (JSON-able: what decides
    the content of a row, e.g. preprocessing options) must match those of the store or
    ``.part`` that is appended to. While open, the writer holds ``path + ".lock"``: a second
    writer of the same store gets a :class:`StoreError` at once.
    """

    def __init__(self, path: str | os.PathLike, npix: int, wavelength, kind: str = "apstar",
                 meta: dict | None = None, compression: str | None = COMPRESSION,
                 chunk_rows: int = CHUNK_ROWS, overwrite: bool = False,
                 restart: bool = False, settings: dict | None = None,
                 extra: tuple[str, ...] = ()):
        import h5py

        if kind not in KINDS:
            raise ValueError(f"store kind must be one of {KINDS}, got {kind!r}")
        self.path, self.part = Path(path), part_path(path)
        self.npix, self.kind, self.h5 = int(npix), kind, None
        self.extra = tuple(extra)
        self.settings = json.dumps(settings or {}, sort_keys=True, default=str)
        wavelength = np.asarray(wavelength, dtype=np.float64)
        if wavelength.shape != (self.npix,):
            raise ValueError(f"store {self.path}: wavelength has shape {wavelength.shape}, "
                             f"expected ({self.npix},)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = lock_store(self.path)
        copied = False
        try:
            if (overwrite or restart) and self.part.exists():
                log.info("store %s: discarding the unfinished %s", self.path, self.part)
                self.part.unlink()
            append_final = self.path.exists() and not overwrite and not self.part.exists()
            if append_final:  # check before copying: a foreign store leaves nothing behind
                with _check_store_file(self.path) as h5:
                    self._check_compatible(h5, self.path, wavelength)
                log.info("store %s exists: copying it to %s to append", self.path, self.part)
                shutil.copyfile(self.path, self.part)
                copied = True
            self.resumed = self.part.exists()
            if self.resumed:
                try:
                    self.h5 = h5py.File(self.part, "r+")
                except OSError as exc:
                    raise StoreError(f"store {self.part}: cannot be opened ({exc}); another "
                                     "program may be using it. If no ingest is running, rerun "
                                     "with --restart to discard it") from exc
                self._check_compatible(self.h5, self.part, wavelength)
                self._truncate_uncommitted()
                history = json.loads(self.h5.attrs.get("provenance", "{}"))
                history.setdefault("resumed", []).append(_provenance("resume", meta)["DATE"])
                self.h5.attrs["provenance"] = json.dumps(history, default=str)
            else:
                self.h5 = h5py.File(self.part, "w")
                self._create(wavelength, meta, compression, chunk_rows)
            self._add_extra_columns()
            self.h5.attrs["complete"] = False
            self._sources = set(decode_strings(self.h5["source"][:]))
        except BaseException:
            if self.h5 is not None:
                self.h5.close()
                self.h5 = None
            if copied:
                self.part.unlink(missing_ok=True)
            self._lock.release()
            raise

    # -- layout
    def _create(self, wavelength, meta, compression, chunk_rows) -> None:
        h5, npix = self.h5, self.npix
        chunks = (max(1, int(chunk_rows)), npix)
        for name, dtype, comp in (("flux", "f4", compression), ("error", "f4", compression),
                                  ("mask", "i4", MASK_COMPRESSION)):
            h5.create_dataset(name, shape=(0, npix), maxshape=(None, npix), dtype=dtype,
                              chunks=chunks, compression=comp,
                              compression_opts=1 if comp == "gzip" else None)  # gzip-1
        for name, dtype in (("apogee_id", _str_dtype()), ("snr", "f4"), ("ra", "f8"),
                            ("dec", "f8"), ("source", _str_dtype())):
            h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
        h5.create_dataset("wavelength", data=wavelength)
        prov = dict(meta or {})
        prov.setdefault("VERSION", _provenance("store")["VERSION"])
        h5.attrs.update({"kind": self.kind, "npix": npix, "version": STORE_VERSION,
                         "provenance": json.dumps(prov, default=str), "n_rows": 0,
                         "settings": self.settings})

    def _add_extra_columns(self) -> None:
        """Create the ``extra`` string columns a store lacks ("" for its rows so far)."""
        n = int(self.h5.attrs.get("n_rows", 0))
        for name in self.extra:
            if name not in self.h5:
                # HDF5's fill value of a variable-length string: "" for the rows so far
                self.h5.create_dataset(name, shape=(n,), maxshape=(None,),
                                       dtype=_str_dtype(), chunks=(4096,))

    def _check_compatible(self, h5, where: Path, wavelength) -> None:
        """The store ``h5`` (at ``where``) can take this writer's rows: same kind, pixels,
        wavelength grid and settings."""
        attrs = h5.attrs
        what = "the unfinished store" if where == self.part else "store"
        fix = ("rerun with the same options to resume it, or with --restart to discard it"
               if where == self.part else "write another --out, or replace it (--overwrite)")
        if attrs.get("kind") != self.kind or int(attrs.get("npix", -1)) != self.npix:
            raise StoreError(f"{what} {where} holds {attrs.get('kind')!r} spectra of "
                             f"{attrs.get('npix')} pixels; cannot add {self.kind!r} spectra of "
                             f"{self.npix} pixels to it: {fix}")
        if not np.allclose(h5["wavelength"][:], wavelength, rtol=1e-9):
            raise StoreError(f"{what} {where} has another wavelength grid: {fix}")
        stored = attrs.get("settings")
        if stored is not None and stored != self.settings:
            raise StoreError(f"{what} {where} was made with other settings ({stored}; now "
                             f"{self.settings}): {fix}")

    def _truncate_uncommitted(self) -> None:
        n = int(self.h5.attrs.get("n_rows", 0))
        for name in ("flux", "error", "mask", *COLUMNS_1D, *self.extra):
            # a batch interrupted before it was committed
            if name in self.h5 and self.h5[name].shape[0] != n:
                log.warning("store %s: dropping %d uncommitted row(s) of %s", self.part,
                            self.h5[name].shape[0] - n, name)
                self.h5[name].resize(n, axis=0)

    # -- writing
    def __len__(self) -> int:
        return int(self.h5.attrs["n_rows"])

    def stored_sources(self) -> set[str]:
        """Sources (file paths) already in the store."""
        return set(self._sources)

    def append(self, flux, error, mask, apogee_id, snr, ra, dec, source, *extra) -> int:
        """Append a batch of ``n`` rows (2-D arrays (n, npix), 1-D arrays/lists (n,));
        ``extra``: one list of strings per column of the writer's ``extra``.

        ``error`` must be > 0 where there is data; non-finite errors are stored as NaN.
        ``source`` values must be new (not stored, not repeated). Returns the row count.
        """
        flux = np.atleast_2d(np.asarray(flux, dtype=np.float32))
        error = np.atleast_2d(np.asarray(error, dtype=np.float32)).copy()
        mask = np.atleast_2d(np.asarray(mask, dtype=np.int32))
        n = flux.shape[0]
        for name, arr in (("flux", flux), ("error", error), ("mask", mask)):
            if arr.shape != (n, self.npix):
                raise ValueError(f"store {self.part}: {name} has shape {arr.shape}, expected "
                                 f"({n}, {self.npix})")
        cols = {"apogee_id": [str(x).strip() for x in np.atleast_1d(apogee_id)],
                "snr": np.atleast_1d(np.asarray(snr, np.float32)),
                "ra": np.atleast_1d(np.asarray(ra, np.float64)),
                "dec": np.atleast_1d(np.asarray(dec, np.float64)),
                "source": [str(x) for x in np.atleast_1d(source)]}
        if len(extra) != len(self.extra):
            raise ValueError(f"store {self.part}: {len(extra)} extra column(s) for "
                             f"{self.extra}")
        cols.update({name: [str(x) for x in np.atleast_1d(v)]
                     for name, v in zip(self.extra, extra, strict=True)})
        for name, values in cols.items():
            if len(values) != n:
                raise ValueError(f"store {self.part}: {len(values)} {name} value(s) for {n} rows")
        new = set(cols["source"])
        if len(new) != n or new & self._sources:
            dup = sorted((new & self._sources) or {s for s in cols["source"]
                                                   if cols["source"].count(s) > 1})
            raise ValueError(f"store {self.part}: source(s) already stored or repeated: {dup[:3]}")
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(error) & (error <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ValueError(f"store {self.part}: non-positive error in {cols['source'][row]}")
        error[~np.isfinite(error)] = np.nan
        start = len(self)
        for name, values in (("flux", flux), ("error", error), ("mask", mask),
                             *((k, np.asarray(v, dtype=object)
                                if k in ("apogee_id", "source", *self.extra) else v)
                               for k, v in cols.items())):
            ds = self.h5[name]
            ds.resize(start + n, axis=0)
            ds[start:start + n] = values
        self.h5.flush()
        self.h5.attrs["n_rows"] = start + n  # commit point for resume
        self.h5.flush()
        self._sources |= new
        return n

    def close(self, complete: bool = True) -> Path:
        """Close; ``complete=True`` marks the store complete and renames ``.part`` to the
        final name (returned); otherwise ``.part`` stays for a later resume."""
        if self.h5 is None:
            return self.path if complete else self.part
        try:
            self.h5.attrs["complete"] = bool(complete)
            self.h5.close()
            self.h5 = None
            if complete:
                os.replace(self.part, self.path)
                return self.path
            return self.part
        finally:
            self._lock.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)


# --------------------------------------------------------------------------- reading

def _check_store_file(path: Path):
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"store {path}: not a readable HDF5 file ({exc})") from exc
    missing = [k for k in ("kind", "npix", "version") if k not in h5.attrs]
    missing += [k for k in ("flux", "error", "mask", "wavelength", *COLUMNS_1D) if k not in h5]
    if missing:
        h5.close()
        raise StoreError(f"store {path}: not a spectra store (missing {', '.join(missing)}); "
                         "make one with `apogee-net ingest`")
    return h5


def open_store(path: str | os.PathLike, rdcc_nbytes: int | None = None):
    """Open a complete store read-only (an ``h5py.File``); :class:`StoreError` for a missing,
    foreign or incomplete store (an interrupted ingest leaves ``STORE.h5.part``).

    ``rdcc_nbytes`` (HDF5 chunk cache per dataset): by default 0 for uncompressed stores
    (a row read then reads just that row, not its whole chunk: 6x faster random rows than a
    16 MiB cache) and 256 MiB for compressed ones (a chunk must be decompressed whole).
    """
    import h5py

    path = Path(path)
    if not path.exists():
        if part_path(path).exists():
            raise StoreError(missing_input_message(path))
        raise FileNotFoundError(f"store {path}: no such file")
    with _check_store_file(path) as probe:
        compressed = probe["flux"].compression is not None
    if rdcc_nbytes is None:
        rdcc_nbytes = 256 * 2**20 if compressed else 0
    h5 = h5py.File(path, "r", rdcc_nbytes=rdcc_nbytes)
    if not bool(h5.attrs.get("complete", False)):
        h5.close()
        raise StoreError(f"store {path}: incomplete (interrupted ingest); rerun the ingest to "
                         "finish it")
    return h5


def store_info(path: str | os.PathLike) -> dict:
    """Summary of a store (complete or ``.part``): rows, kind, layout, size, SNR range."""
    path = Path(path)
    if not path.exists() and part_path(path).exists():
        path = part_path(path)
    if not path.exists():
        raise FileNotFoundError(f"store {path}: no such file")
    with _check_store_file(path) as h5:
        flux = h5["flux"]
        snr = h5["snr"][:]
        ids = decode_strings(h5["apogee_id"][:])
        wave = h5["wavelength"][:]
        return {"path": str(path), "kind": h5.attrs["kind"], "version": int(h5.attrs["version"]),
                "complete": bool(h5.attrs.get("complete", False)), "n_rows": int(flux.shape[0]),
                "npix": int(h5.attrs["npix"]), "n_unique_ids": len(set(ids)),
                "chunks": flux.chunks, "compression": flux.compression,
                "size_bytes": path.stat().st_size,
                "wavelength_range": (float(wave[0]), float(wave[-1])) if wave.size else None,
                "snr_median": float(np.nanmedian(snr)) if snr.size else float("nan"),
                "provenance": json.loads(h5.attrs.get("provenance", "{}"))}


def store_table(path: str | os.PathLike):
    """The 1-D columns of a complete store as an astropy Table (``row`` = store row)."""
    from astropy.table import Table

    with open_store(path) as h5:
        n = h5["flux"].shape[0]
        return Table({"row": np.arange(n, dtype=np.int64),
                      "apogee_id": decode_strings(h5["apogee_id"][:]), "snr": h5["snr"][:],
                      "ra": h5["ra"][:], "dec": h5["dec"][:],
                      "source": decode_strings(h5["source"][:])})


def duplicate_ids(ids: Iterable[str]) -> list[str]:
    """IDs occurring more than once, sorted."""
    values, counts = np.unique(np.asarray(list(ids), dtype=str), return_counts=True)
    return sorted(values[counts > 1].tolist())


def store_pixmask_bits(attrs) -> tuple[int, ...] | None:
    """PIXMASK bits applied when an apStar store was ingested (attribute ``pixmask_bits``);
    None for a store from before the attribute existed, or a LAMOST store."""
    from apogee_net.spectra.pixmask import parse_pixmask_bits

    value = attrs.get("pixmask_bits")
    return None if value is None else parse_pixmask_bits(str(value))
