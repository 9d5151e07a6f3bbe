"""What a predictor reads: inputs planned into chunks, and one chunk of spectra in memory.

Both predictors (APOGEE Net, the LAMOST Bayesian CNN) plan their inputs with
:func:`plan_chunks` (stores by row range, spectra files in groups; the files found by the
toolkit's one input expander, :func:`apogee_net.spectra.inputs.expand_inputs`) and get each
chunk as a :class:`SpectraChunk`: from a store or apStar files by :func:`read_chunk`, from
LAMOST FITS files by :func:`apogee_net.lamost.predict.read_lamost_chunk`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apogee_net.spectra.apstar import (
    read_apstar,
    read_apstar_visits,
    read_raw_apstar,
    telescope_of,
)
from apogee_net.spectra.inputs import expand_inputs
from apogee_net.spectra.mwm import (
    count_apogee_rows,
    is_mwm_name,
    read_mwm,
    row_telescopes,
    split_row_source,
)
from apogee_net.spectra.pixmask import apply_pixmask
from apogee_net.spectra.store import decode_strings, open_store
from yso_labels.core.guards import positive_int

log = logging.getLogger(__name__)

STORE_SUFFIXES = (".h5", ".hdf5")
SPECTRUM_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz")


@dataclass
class SpectraChunk:
    """Spectra of one chunk: ``flux``, ``error`` (n, npix) float32, NaN where there is no
    data (apStar: 1e-17 erg/s/cm²/Å; LAMOST: continuum-normalised); ``spec_id`` (n,) the
    store key (APOGEE ID, LAMOST OBSID); ``ra``, ``dec`` (deg), ``snr`` (n,) float, NaN
    when unknown; ``readable`` (n,) False for a file that could not be used;
    ``telescope`` and ``file`` (n,) where each row came from; for per-visit rows (see
    :func:`plan_chunks`) ``visit`` (n,) int (0 = combined spectrum, -1 = not a visit row) and
    ``mjd`` (n,) float, else None; ``photometry`` (n, 7) for APOGEE Net II, set by the
    predictor (NaN where missing), else None; ``sp_class``, ``subclass`` (n,) the LAMOST
    header CLASS/SUBCLASS (:mod:`apogee_net.lamost.sptype`), None when the input has none
    (apStar, a LAMOST store written before they were stored)."""

    flux: np.ndarray
    error: np.ndarray
    spec_id: list[str]
    ra: np.ndarray
    dec: np.ndarray
    snr: np.ndarray
    readable: np.ndarray
    telescope: list[str]
    file: list[str]
    visit: np.ndarray | None = None
    mjd: np.ndarray | None = None
    photometry: np.ndarray | None = None
    sp_class: list[str] | None = None
    subclass: list[str] | None = None

    @classmethod
    def empty(cls, n: int, npix: int, telescope: str = "", files: Sequence[str] = (),
              visits: bool = False) -> SpectraChunk:
        """``n`` unreadable rows with NaN data, to be filled by :meth:`put`."""
        return cls(np.full((n, npix), np.nan, np.float32), np.full((n, npix), np.nan, np.float32),
                   [""] * n, np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan),
                   np.zeros(n, bool), [telescope] * n,
                   [str(f) for f in files] if len(files) else [""] * n,
                   np.full(n, -1, np.int16) if visits else None,
                   np.full(n, np.nan) if visits else None)

    def put(self, i: int, source: str, flux, error, spec_id: str, ra: float, dec: float,
            snr: float) -> None:
        """Fill row ``i`` from the file ``source``; ``ValueError`` naming it when its pixel
        count is not the model's."""
        npix = self.flux.shape[1]
        if np.shape(flux)[-1] != npix:
            raise ValueError(f"{source}: {np.shape(flux)[-1]} pixels, the model expects {npix}")
        self.flux[i], self.error[i] = flux, error
        self.spec_id[i] = spec_id
        self.ra[i], self.dec[i], self.snr[i] = ra, dec, snr
        self.readable[i] = True

    def __len__(self) -> int:
        return len(self.flux)


def plan_chunks(inputs: Sequence, chunk_size: int = 1024,
                visits: bool = False) -> list[dict[str, Any]]:
    """Chunks of the inputs: ``{"store": path, "start": i, "stop": j}`` or ``{"files": [...]}``.

    An input is a store (``.h5``/``.hdf5``), a spectrum file (FITS), a glob, or a directory
    (its stores and FITS files, searched recursively, sorted). The plan is deterministic, so
    chunk *k* is the same spectra on every run. ``visits``: each apStar file becomes
    ``[path, v]`` entries, one for the combined spectrum (v = 0) and one per visit
    (v = 1..NVISITS of its header); stores hold combined spectra only and keep one row per
    spectrum.
    """
    chunk_size = positive_int(chunk_size, "chunk_size")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise ValueError("no input given: a store, spectra files or a directory")
    chunks: list[dict[str, Any]] = []
    files: list[str] = []

    def flush():
        for i in range(0, len(files), chunk_size):
            chunks.append({"files": files[i:i + chunk_size]})
        files.clear()

    for item in expand_inputs(inputs, prefix="", suffixes=STORE_SUFFIXES + SPECTRUM_SUFFIXES,
                              what="spectra (FITS) or store"):
        if item.name.lower().endswith(STORE_SUFFIXES):
            flush()
            n = _store_length(item)
            for start in range(0, n, chunk_size):
                chunks.append({"store": str(item), "start": start,
                               "stop": min(n, start + chunk_size)})
        elif is_mwm_name(item.name):  # SDSS-V: one entry per APOGEE spectrum in the file
            files.extend([str(item), k] for k in range(max(1, count_apogee_rows(item))))
        elif visits:
            files.extend([str(item), v] for v in range(_n_visits(item) + 1))
        else:
            files.append(str(item))
    flush()
    return chunks


def _n_visits(path: Path) -> int:
    """NVISITS of an apStar file's primary header (1 when unreadable: the read reports it)."""
    from astropy.io import fits

    try:
        return max(1, int(fits.getheader(path, 0).get("NVISITS", 1) or 1))
    except (OSError, ValueError, TypeError):
        return 1


def _store_length(path: Path) -> int:
    with open_store(path) as h5:
        return int(h5["flux"].shape[0])


def read_chunk(chunk: dict[str, Any], npix: int, workers: int = 4,
               pixmask_bits: tuple[int, ...] = ()) -> SpectraChunk:
    """Spectra of one chunk of a store or of apStar files (unreadable files become rows
    with ``readable`` False; the reason is logged); with visit entries (see
    :func:`plan_chunks`) one row per entry, with ``visit`` and ``mjd``. Pixels whose apStar
    bit mask has a bit of ``pixmask_bits`` become no data (:mod:`apogee_net.spectra.pixmask`)."""
    if "store" in chunk:
        return _read_store(Path(chunk["store"]), chunk["start"], chunk["stop"], npix,
                           pixmask_bits)
    entries = [(e, None) if isinstance(e, str) else (str(e[0]), int(e[1]))
               for e in chunk["files"]]
    with_visits = any(v is not None for _, v in entries)
    by_file: dict[str, list] = {}

    def one(entry):
        path, visit = entry
        try:
            if visit is None:
                return read_apstar(path)
            if path not in by_file:  # one read per file for all its visits
                by_file[path] = (read_mwm(path) if is_mwm_name(path)
                                 else read_apstar_visits(path))
            rows = by_file[path]
            if visit >= len(rows):
                raise ValueError(f"{path}: no spectrum {visit} ({len(rows)} in the file)")
            if isinstance(rows[visit], Exception):
                raise rows[visit]
            return rows[visit]
        except ValueError as exc:  # ApStarError and friends: a per-row flag, not a crash
            log.warning("%s", exc)
            return None

    if with_visits:  # in order, so each file is read once
        spectra = [one(e) for e in entries]
    else:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            spectra = list(pool.map(one, entries))
    out = SpectraChunk.empty(len(spectra), npix, files=[p for p, _ in entries],
                             visits=with_visits)
    out.telescope = [telescope_of(p) for p, _ in entries]
    for i, ((path, visit), sp) in enumerate(zip(entries, spectra, strict=True)):
        if with_visits:
            out.visit[i] = -1 if visit is None else visit
        if sp is None:
            out.spec_id[i] = _id_from_name(path)
            continue
        out.put(i, path, *apply_pixmask(sp.flux, sp.error, getattr(sp, "mask", None),
                                       pixmask_bits),
                sp.apogee_id, sp.ra, sp.dec, sp.snr)
        out.telescope[i] = sp.telescope
        if with_visits:
            out.visit[i], out.mjd[i] = sp.visit, sp.mjd
    return out


def _id_from_name(path: str) -> str:
    name = Path(path).name
    for suffix in SPECTRUM_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name.split("-", 2)[-1] if name.startswith(("apStar-", "asStar-")) else name


def _read_store(path: Path, start: int, stop: int, npix: int,
                pixmask_bits: tuple[int, ...] = ()) -> SpectraChunk:
    with open_store(path) as h5:
        if h5["flux"].shape[1] != npix:
            raise ValueError(f"store {path}: {h5['flux'].shape[1]} pixels per spectrum, the "
                             f"model expects {npix}")
        n = stop - start
        cols = {key: (np.asarray(h5[key][start:stop], float) if key in h5
                      else np.full(n, np.nan)) for key in ("ra", "dec", "snr")}
        files = decode_strings(h5["source"][start:stop]) if "source" in h5 else [""] * n
        kind = str(h5.attrs.get("kind", "apstar"))
        flux = np.asarray(h5["flux"][start:stop], np.float32)
        error = np.asarray(h5["error"][start:stop], np.float32)
        if pixmask_bits and kind == "apstar":
            flux, error = apply_pixmask(flux, error, h5["mask"][start:stop], pixmask_bits)
        out = SpectraChunk(flux, error,
                           decode_strings(h5["apogee_id"][start:stop]), cols["ra"],
                           cols["dec"], cols["snr"], np.ones(n, bool),
                           _store_telescopes(files) if kind == "apstar"
                           else [kind] * n, files)
        if "lamost_subclass" in h5 and "lamost_class" in h5:
            out.sp_class = decode_strings(h5["lamost_class"][start:stop])
            out.subclass = decode_strings(h5["lamost_subclass"][start:stop])
        return out


def _store_telescopes(sources: Sequence[str]) -> list[str]:
    """Telescope of each row of an apStar-kind store: from the file's name or folder, or
    for an mwmStar/mwmVisit spectrum (source ``PATH[k]``) from that file while it exists."""
    by_file: dict[str, list[str]] = {}
    out = []
    for source in sources:
        split = split_row_source(source)
        if split is None:
            out.append(telescope_of(source))
            continue
        path, k = split
        if path not in by_file:
            by_file[path] = row_telescopes(path)
        out.append(by_file[path][k] if k < len(by_file[path]) else "")
    return out


def raw_spectra(data: SpectraChunk, chunk: dict) -> SpectraChunk:
    """Replace the flux and error of the readable files of a
    :func:`apogee_net.inference.chunks.read_chunk` result by their rows as stored (stores keep
    what ingest stored)."""
    if "files" not in chunk:
        return data
    for i, entry in enumerate(chunk["files"]):
        path, visit = (entry, 0) if isinstance(entry, str) else (entry[0], int(entry[1]))
        if data.readable[i]:
            data.flux[i], data.error[i] = read_raw_apstar(path, visit)
    return data


# --------------------------------------------------------------------------- import / export
