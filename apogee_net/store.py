"""One HDF5 file for a survey's spectra, written resumably and read lazily by torch.

Layout (format version :data:`STORE_VERSION`), for ``n`` spectra of ``npix`` pixels:

- ``flux`` (n, npix) float32 and ``error`` (n, npix) float32, NaN where there is no data
  (apStar: 1e-17 erg/s/cm²/Å); ``mask`` (n, npix) int32 bit mask. Chunked by rows
  (:data:`CHUNK_ROWS`, npix), resizable along axis 0.
- ``apogee_id`` (UTF-8 str), ``snr`` float32, ``ra``, ``dec`` float64 (deg), ``source`` (str:
  the file each row came from; unique), all (n,); ``wavelength`` (npix,) float64 (Å).
- File attributes: ``kind`` ("apstar" or "lamost"), ``npix``, ``version``, ``provenance``
  (JSON), ``complete`` (bool), ``n_rows`` (rows committed; resume truncates to it).

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

from yso_labels.tables import provenance as _provenance

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


def _str_dtype():
    import h5py

    return h5py.string_dtype("utf-8")


def _decode(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class StoreWriter:
    """Append spectra to a store; context manager (complete on a clean exit).

    Writes ``path + ".part"``; :meth:`close` with ``complete=True`` marks it complete and
    renames it to ``path``. An existing ``.part`` is resumed (rows beyond the last committed
    batch are dropped); an existing complete store is copied to ``.part`` and appended to
    (``overwrite=True`` starts afresh). ``meta`` goes into the ``provenance`` attribute.
    """

    def __init__(self, path: str | os.PathLike, npix: int, wavelength, kind: str = "apstar",
                 meta: dict | None = None, compression: str | None = COMPRESSION,
                 chunk_rows: int = CHUNK_ROWS, overwrite: bool = False):
        import h5py

        if kind not in KINDS:
            raise ValueError(f"store kind must be one of {KINDS}, got {kind!r}")
        self.path, self.part = Path(path), part_path(path)
        self.npix, self.kind = int(npix), kind
        wavelength = np.asarray(wavelength, dtype=np.float64)
        if wavelength.shape != (self.npix,):
            raise ValueError(f"store {self.path}: wavelength has shape {wavelength.shape}, "
                             f"expected ({self.npix},)")
        if overwrite:
            for p in (self.part, self.path):
                p.unlink(missing_ok=True)
        self.resumed = self.part.exists() or self.path.exists()
        if not self.part.exists() and self.path.exists():
            _check_store_file(self.path)
            log.info("store %s exists: copying it to %s to append", self.path, self.part)
            shutil.copyfile(self.path, self.part)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.resumed:
            try:
                self.h5 = h5py.File(self.part, "r+")
            except OSError as exc:
                raise StoreError(f"store {self.part}: cannot be resumed ({exc}); delete it to "
                                 "start again") from exc
            self._check_resume(wavelength)
            history = json.loads(self.h5.attrs.get("provenance", "{}"))
            history.setdefault("resumed", []).append(_provenance("resume", meta)["DATE"])
            self.h5.attrs["provenance"] = json.dumps(history, default=str)
        else:
            self.h5 = h5py.File(self.part, "w")
            self._create(wavelength, meta, compression, chunk_rows)
        self.h5.attrs["complete"] = False
        self._sources = set(_decode(self.h5["source"][:]))

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
                         "provenance": json.dumps(prov, default=str), "n_rows": 0})

    def _check_resume(self, wavelength) -> None:
        attrs = self.h5.attrs
        if attrs.get("kind") != self.kind or int(attrs.get("npix", -1)) != self.npix:
            raise StoreError(f"store {self.part}: holds kind={attrs.get('kind')!r}, "
                             f"npix={attrs.get('npix')}; cannot append kind={self.kind!r}, "
                             f"npix={self.npix}")
        if not np.allclose(self.h5["wavelength"][:], wavelength, rtol=1e-9):
            raise StoreError(f"store {self.part}: different wavelength grid")
        n = int(attrs.get("n_rows", 0))
        for name in ("flux", "error", "mask", *COLUMNS_1D):
            if self.h5[name].shape[0] != n:  # a batch interrupted before it was committed
                log.warning("store %s: dropping %d uncommitted row(s) of %s", self.part,
                            self.h5[name].shape[0] - n, name)
                self.h5[name].resize(n, axis=0)

    # -- writing
    def __len__(self) -> int:
        return int(self.h5.attrs["n_rows"])

    def stored_sources(self) -> set[str]:
        """Sources (file paths) already in the store."""
        return set(self._sources)

    def append(self, flux, error, mask, apogee_id, snr, ra, dec, source) -> int:
        """Append a batch of ``n`` rows (2-D arrays (n, npix), 1-D arrays/lists (n,)).

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
                             *((k, np.asarray(v, dtype=object) if k in ("apogee_id", "source")
                                else v) for k, v in cols.items())):
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
        self.h5.attrs["complete"] = bool(complete)
        self.h5.close()
        self.h5 = None
        if complete:
            os.replace(self.part, self.path)
            return self.path
        return self.part

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
            raise StoreError(f"store {path} is not finished ({part_path(path)} exists: an "
                             "interrupted ingest); rerun the same ingest command to complete it")
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
        ids = _decode(h5["apogee_id"][:])
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
                      "apogee_id": _decode(h5["apogee_id"][:]), "snr": h5["snr"][:],
                      "ra": h5["ra"][:], "dec": h5["dec"][:],
                      "source": _decode(h5["source"][:])})


def duplicate_ids(ids: Iterable[str]) -> list[str]:
    """IDs occurring more than once, sorted."""
    values, counts = np.unique(np.asarray(list(ids), dtype=str), return_counts=True)
    return sorted(values[counts > 1].tolist())


# --------------------------------------------------------------------------- ingest

def expand_inputs(inputs, prefix: str | tuple[str, ...] = ("apStar", "asStar"),
                  suffixes=(".fits", ".fits.gz"), what: str = "apStar") -> list[Path]:
    """Files from a directory (its files named with one of the prefixes ``prefix`` (a string
    or a tuple; default the apStar format's APO ``apStar`` and LCO ``asStar``) and one of
    ``suffixes``, case ignored, recursively), a glob, a file or a list of those; resolved,
    sorted, without repeats; ``FileNotFoundError`` naming what matched nothing (``what``:
    the file kind)."""
    import glob

    suffixes = tuple(x.lower() for x in suffixes)
    prefixes = tuple(x.lower() for x in ((prefix,) if isinstance(prefix, str) else prefix))

    def wanted(p: Path) -> bool:
        name = p.name.lower()
        return name.startswith(prefixes) and name.endswith(suffixes)

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: dict[str, Path] = {}
    for item in inputs:
        item_str = str(item)
        if Path(item_str).is_dir():
            matches = [p for p in Path(item_str).rglob("*") if wanted(p)]
        elif any(c in item_str for c in "*?["):
            matches = [Path(p) for p in glob.glob(item_str, recursive=True)]
        elif Path(item_str).exists():
            matches = [Path(item_str)]
        else:
            raise FileNotFoundError(f"{item_str}: no such file or directory")
        matches = [p for p in matches if p.is_file() and not p.name.startswith(".")
                   and not p.name.endswith(".part")]
        if not matches:
            raise FileNotFoundError(f"{item_str}: no {what} files found")
        for p in matches:
            found.setdefault(str(p.resolve()), p.resolve())
    return [found[k] for k in sorted(found)]


def _read_row(path: str):
    """Worker: (source, row tuple or None, failure reason or None)."""
    from apogee_net.apstar import read_apstar

    try:
        sp = read_apstar(path)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, the rest ingested
        return path, None, f"{type(exc).__name__}: {exc}"
    return path, (sp.flux, sp.error, sp.mask, sp.apogee_id, sp.snr, sp.ra, sp.dec), None


def parallel_map(fn, items: list, workers: int, block: int):
    """``map(fn, items)`` in order, over a process pool in blocks (bounded memory)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), block):
            yield from pool.map(fn, items[start:start + block], chunksize=4)


def fill_store(writer: StoreWriter, results, report: dict, *, total: int,
               batch_size: int = 64, progress: bool = True, desc: str = "ingest") -> list[str]:
    """Append worker results ``(source, row, reason)`` (``row`` None: skipped, ``reason``
    says why) to ``writer`` in batches of ``batch_size`` rows and finish the store.

    Failures go to ``report["failures"]`` (and the store attribute ``failures``); the counts
    ``n_ingested``, ``n_failed``, ``n_rows`` are set. The store is renamed into place when it
    holds rows; with none, the ``.part`` file is removed and a ValueError names the first
    failure. An interruption keeps ``.part`` for a rerun to resume. Returns the stored IDs.
    """
    from tqdm import tqdm

    try:
        batch: list = []
        for source, row, reason in tqdm(results, total=total, disable=not progress,
                                        desc=desc, unit="file"):
            if row is None:
                report["failures"].append({"file": source, "reason": reason})
                log.warning("%s: skipped %s (%s)", desc, source, reason)
                continue
            batch.append((*row, source))
            if len(batch) >= batch_size:
                writer.append(*map(list, zip(*batch, strict=True)))
                batch = []
        if batch:
            writer.append(*map(list, zip(*batch, strict=True)))
        report["n_failed"] = len(report["failures"])
        report["n_ingested"] = total - report["n_failed"]
        writer.h5.attrs["failures"] = json.dumps(report["failures"][:1000])
        ids = _decode(writer.h5["apogee_id"][:])
        report["n_rows"] = len(ids)
        if not ids:
            writer.close(complete=False)
            part_path(writer.path).unlink(missing_ok=True)
            first = report["failures"][0] if report["failures"] else {}
            raise ValueError(f"{desc}: no input file could be used (first: "
                             f"{first.get('file')}: {first.get('reason')})")
        writer.close(complete=True)
    except BaseException:
        if writer.h5 is not None:
            writer.close(complete=False)
            log.warning("%s interrupted: %s kept; rerun to resume", desc, writer.part)
        raise
    return ids


def ingest_apstar(inputs, out: str | os.PathLike, workers: int | None = None,
                  progress: bool = True, batch_size: int = 64,
                  compression: str | None = COMPRESSION) -> dict:
    """Ingest apStar files (a directory, a glob or a list) into the store ``out``.

    Reads in parallel (``workers`` processes; default min(4, CPUs); 0 or 1: in this
    process), appends in batches of ``batch_size`` rows, and renames ``out.part`` to ``out``
    at the end. A rerun skips the sources already stored (after an interruption, or to add
    new files to a finished store). Unreadable files are listed with the reason and the rest
    ingested. Returns a report: counts, failures, duplicated APOGEE IDs, files per second.
    """
    import time

    from apogee_net.apstar import NPIX, apstar_wavelength

    t0 = time.perf_counter()
    files = expand_inputs(inputs)
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    out = Path(out)
    options = {"inputs": [str(i) for i in (inputs if isinstance(inputs, (list, tuple))
                                              else [inputs])][:20],
               "workers": workers, "compression": compression}
    report = {"out": str(out), "n_inputs": len(files), "n_already_stored": 0, "n_ingested": 0,
              "n_failed": 0, "failures": [], "workers": workers}
    if out.exists() and not part_path(out).exists():
        with open_store(out) as h5:
            stored = set(_decode(h5["source"][:]))
        if all(str(f) in stored for f in files):
            report.update(n_already_stored=len(files), n_rows=len(stored),
                          duplicate_ids=[], seconds=time.perf_counter() - t0, files_per_s=0.0)
            log.info("ingest: all %d files already in %s", len(files), out)
            return report
    meta = _provenance("ingest", options)
    writer = StoreWriter(out, NPIX, apstar_wavelength(), kind="apstar", meta=meta,
                         compression=compression)
    try:
        stored = writer.stored_sources()
        todo = [str(f) for f in files if str(f) not in stored]
        report["n_already_stored"] = len(files) - len(todo)
        if report["n_already_stored"]:
            log.info("ingest: %d of %d files already stored in %s; reading %d",
                     report["n_already_stored"], len(files), writer.part, len(todo))
        t_read = time.perf_counter()
        results = parallel_map(_read_row, todo, workers, block=max(64, 32 * workers))
    except BaseException:
        writer.close(complete=False)
        raise
    ids = fill_store(writer, results, report, total=len(todo), batch_size=batch_size,
                     progress=progress, desc="ingest")
    read_s = time.perf_counter() - t_read
    dups = duplicate_ids(ids)
    if dups:
        log.warning("ingest: %d APOGEE ID(s) occur in more than one row (e.g. %s)", len(dups),
                    ", ".join(dups[:5]))
    report.update(duplicate_ids=dups, seconds=time.perf_counter() - t0,
                  files_per_s=len(todo) / read_s if read_s > 0 and todo else 0.0)
    log.info("ingest: %d new, %d already stored, %d failed -> %s (%d rows)",
             report["n_ingested"], report["n_already_stored"], report["n_failed"], out,
             report["n_rows"])
    return report


def __getattr__(name: str):
    """The torch side (Dataset, collate, label join) lives in :mod:`apogee_net.store_dataset`
    and is imported on first use, so writers and ingest workers do not import torch."""
    if name in ("SpectraDataset", "collate_batch", "join_labels"):
        from apogee_net import store_dataset

        return getattr(store_dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
