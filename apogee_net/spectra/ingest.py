"""Ingesting spectra files into a store: a process pool reads the files, one loop appends
the rows and finishes the store (:func:`fill_store`, shared by the apStar and the LAMOST
ingest), and :func:`ingest_apstar`, the library call behind ``apogee-net ingest`` (apStar,
asStar, and the APOGEE spectra of SDSS-V mwmStar/mwmVisit files, one store row each).
"""

from __future__ import annotations

import json
import logging
import os
import time
from functools import partial
from pathlib import Path

from apogee_net.spectra.apstar import NPIX, apstar_wavelength, read_apstar
from apogee_net.spectra.inputs import expand_inputs
from apogee_net.spectra.mwm import MWM_PREFIXES, is_mwm_name, read_mwm, row_source, split_row_source
from apogee_net.spectra.pixmask import apply_pixmask, format_bits, parse_pixmask_bits
from apogee_net.spectra.store import (
    COMPRESSION,
    StoreWriter,
    decode_strings,
    duplicate_ids,
    open_store,
    part_path,
    store_pixmask_bits,
)
from yso_labels.core.guards import check_ints, check_outputs
from yso_labels.core.tables import provenance as _provenance

log = logging.getLogger(__name__)


#: File-name prefixes ``apogee-net ingest`` takes from a directory.
PREFIXES = ("apStar", "asStar", *MWM_PREFIXES)


def _read_row(path: str, pixmask_bits: tuple[int, ...] = ()):
    """Worker: (source, row tuple or None, failure reason or None); pixels with a bit of
    ``pixmask_bits`` in the apStar mask become NaN (:mod:`apogee_net.spectra.pixmask`).
    An mwmStar/mwmVisit file gives a list of rows, each ending with its own source
    (:func:`~apogee_net.spectra.mwm.row_source`), and the reasons of its unusable rows."""
    try:
        spectra = read_mwm(path) if is_mwm_name(path) else [read_apstar(path)]
    except Exception as exc:  # noqa: BLE001 - every failure is reported, the rest ingested
        return path, None, f"{type(exc).__name__}: {exc}"
    rows, reasons = [], []
    for k, sp in enumerate(spectra):
        if isinstance(sp, Exception):  # an mwm row without data
            reasons.append(f"{type(sp).__name__}: {sp}")
            continue
        flux, error = apply_pixmask(sp.flux, sp.error, sp.mask, pixmask_bits)
        rows.append((flux, error, sp.mask, sp.apogee_id, sp.snr, sp.ra, sp.dec,
                     row_source(path, k)))
    if not is_mwm_name(path):
        return path, rows[0][:-1], None
    return path, rows or None, "; ".join(reasons) or None


def _stored_files(sources) -> set[str]:
    """Input files with rows in a store (an mwm file's rows are ``PATH[k]``)."""
    return {(split_row_source(s) or (s, 0))[0] for s in sources}


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
    ``n_ingested``, ``n_failed``, ``n_rows`` are set. ``row`` may be a list of row tuples,
    each ending with its own source (one file, several spectra: all stored in one batch,
    with ``reason`` naming its unusable rows, if any). The store is renamed into place when it
    holds rows; with none, the ``.part`` file is removed and a ValueError names the first
    failure. An interruption keeps ``.part`` for a rerun to resume. Returns the stored IDs.
    """
    from tqdm import tqdm

    try:
        batch: list = []
        n_used = 0
        for source, row, reason in tqdm(results, total=total, disable=not progress,
                                        desc=desc, unit="file"):
            if reason is not None:
                report["failures"].append({"file": source, "reason": reason})
                log.warning("%s: skipped %s%s (%s)", desc, "" if row is None else "rows of ",
                            source, reason)
            if row is None:
                continue
            n_used += 1
            batch.extend(row if isinstance(row, list) else [(*row, source)])
            if len(batch) >= batch_size:
                writer.append(*map(list, zip(*batch, strict=True)))
                batch = []
        if batch:
            writer.append(*map(list, zip(*batch, strict=True)))
        report["n_failed"] = len(report["failures"])
        report["n_ingested"] = n_used
        writer.h5.attrs["failures"] = json.dumps(report["failures"][:1000])
        ids = decode_strings(writer.h5["apogee_id"][:])
        report["n_rows"] = len(ids)
        if not ids:
            writer.close(complete=False)
            part_path(writer.path).unlink(missing_ok=True)
            first = report["failures"][0] if report["failures"] else {}
            kept = f"; {writer.path} is unchanged" if writer.path.exists() else ""
            raise ValueError(f"{desc}: no input file could be used{kept} (first: "
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
                  compression: str | None = COMPRESSION, pixmask_bits=None,
                  restart: bool = False) -> dict:
    """Ingest apStar-format files (APO ``apStar``, LCO ``asStar``) and SDSS-V
    ``mwmStar``/``mwmVisit`` files (each APOGEE spectrum a row, source ``PATH[k]``,
    keyed by ``sdss_id``; :mod:`apogee_net.spectra.mwm`) — a directory, a glob or a list —
    into the store ``out``.

    Reads in parallel (``workers`` processes; default min(4, CPUs); 0 or 1: in this
    process), appends in batches of ``batch_size`` rows, and renames ``out.part`` to ``out``
    at the end. A rerun skips the sources already stored (after an interruption, or to add
    new files to a finished store); ``restart`` discards an unfinished ``out.part`` instead.
    Unreadable files are listed with the reason and the rest ingested. ``pixmask_bits``:
    apStar PIXMASK bits whose pixels are stored as no data (NaN; the bit mask itself is
    stored whole), default :data:`apogee_net.spectra.pixmask.DEFAULT_PIXMASK_BITS`; recorded
    in the store attribute ``pixmask_bits``. Returns a report: counts, failures, duplicated
    APOGEE IDs, files per second.
    """
    t0 = time.perf_counter()
    check_ints(workers=(workers, 0), batch_size=(batch_size, 1))
    check_outputs([out, part_path(out)], inputs)
    bits = parse_pixmask_bits(pixmask_bits)
    files = expand_inputs(inputs, prefix=PREFIXES, what="apStar/asStar/mwmStar/mwmVisit")
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    out = Path(out)
    options = {"inputs": [str(i) for i in (inputs if isinstance(inputs, (list, tuple))
                                              else [inputs])][:20],
               "workers": workers, "compression": compression,
               "pixmask_bits": format_bits(bits)}
    report = {"out": str(out), "n_inputs": len(files), "n_already_stored": 0, "n_ingested": 0,
              "n_failed": 0, "failures": [], "workers": workers}
    if out.exists() and not part_path(out).exists():
        with open_store(out) as h5:
            sources = decode_strings(h5["source"][:])
            _check_pixmask(out, h5.attrs, bits)
        stored = _stored_files(sources)
        if all(str(f) in stored for f in files):
            report.update(n_already_stored=len(files), n_rows=len(sources),
                          duplicate_ids=[], seconds=time.perf_counter() - t0, files_per_s=0.0)
            log.info("ingest: all %d files already in %s", len(files), out)
            return report
    meta = _provenance("ingest", options)
    writer = StoreWriter(out, NPIX, apstar_wavelength(), kind="apstar", meta=meta,
                         compression=compression, restart=restart)
    try:
        _check_pixmask(out, writer.h5.attrs, bits)
        writer.h5.attrs["pixmask_bits"] = format_bits(bits)
        stored = _stored_files(writer.stored_sources())
        todo = [str(f) for f in files if str(f) not in stored]
        report["n_already_stored"] = len(files) - len(todo)
        if report["n_already_stored"]:
            log.info("ingest: %d of %d files already stored in %s; reading %d",
                     report["n_already_stored"], len(files), writer.part, len(todo))
        t_read = time.perf_counter()
        results = parallel_map(partial(_read_row, pixmask_bits=bits), todo, workers,
                               block=max(64, 32 * workers))
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


def _check_pixmask(path, attrs, bits) -> None:
    """A store holds spectra masked with one set of PIXMASK bits."""
    stored = store_pixmask_bits(attrs)
    if stored is not None and int(attrs.get("n_rows", 1)) > 0 and tuple(stored) != tuple(bits):
        raise ValueError(f"store {path} was ingested with pixmask bits {format_bits(stored)}; "
                         f"appending with {format_bits(bits)} would mix two masks: pass "
                         f"--pixmask-bits {format_bits(stored) or 'none'} or a new store")
