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

from apogee_net.options import IngestOptions
from apogee_net.spectra.apstar import NPIX, apstar_wavelength, read_apstar
from apogee_net.spectra.inputs import expand_inputs
from apogee_net.spectra.mwm import MWM_PREFIXES, is_mwm_name, read_mwm, row_source, split_row_source
from apogee_net.spectra.pixmask import apply_pixmask, format_bits, parse_pixmask_bits
from apogee_net.spectra.store import (
    StoreError,
    StoreWriter,
    decode_strings,
    duplicate_ids,
    open_store,
    part_path,
    store_pixmask_bits,
)
from yso_labels.core.guards import check_ints, check_outputs
from yso_labels.core.options import resolve_options
from yso_labels.core.shards import Shards
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
               batch_size: int = 64, progress: bool = True, desc: str = "ingest",
               allow_empty: bool = False) -> list[str]:
    """Append worker results ``(source, row, reason)`` (``row`` None: skipped, ``reason``
    says why) to ``writer`` in batches of ``batch_size`` rows and finish the store.

    Failures go to ``report["failures"]`` (and the store attribute ``failures``); the counts
    ``n_ingested``, ``n_failed``, ``n_rows`` are set. ``row`` may be a list of row tuples,
    each ending with its own source (one file, several spectra: all stored in one batch,
    with ``reason`` naming its unusable rows, if any). The store is renamed into place when it
    holds rows; with none, the ``.part`` file is removed and a ValueError names the first
    failure (``allow_empty``: an empty store is finished instead: a part of a sharded
    ingest whose files all failed). An interruption keeps ``.part`` for a rerun to resume.
    Returns the stored IDs.
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
            # a row tuple: 7 store columns, then the writer's extra columns; source goes 8th
            batch.extend(row if isinstance(row, list) else [(*row[:7], source, *row[7:])])
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
        if not ids and not allow_empty:
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


#: Optional string columns a part store may hold (the LAMOST header class, see
#: :func:`apogee_net.lamost.ingest.prepare_file`), carried over when parts are merged.
EXTRA_COLUMNS = ("lamost_class", "lamost_subclass")

#: Input files per part of a sharded ingest (``torchrun``): each part is one small store.
PART_FILES = 256


def ingest_parts_path(out) -> Path:
    """Folder of the part stores of a sharded ingest of store ``out``: ``OUT.parts``."""
    return Path(str(out) + ".parts")


def ingest_files(new_writer, out, files: list[str], fn, report: dict, *, workers: int,
                 batch_size: int = 64, progress: bool = True, desc: str = "ingest",
                 restart: bool = False, overwrite: bool = False,
                 on_open=None) -> list[str]:
    """The ingest loop of both ingests: open the store ``out`` (``new_writer(path,
    restart=, overwrite=)`` makes a :class:`StoreWriter`; ``on_open(writer)`` checks or sets
    attributes), skip the ``files`` already stored, read the others with ``fn`` (a worker
    returning ``(source, row, reason)``) over ``workers`` processes, append them in order
    (:func:`fill_store`) and finish the store. Sets ``report["n_already_stored"]`` and the
    counts of :func:`fill_store`; returns the stored IDs.

    Under ``torchrun`` the files not yet stored are cut into parts of :data:`PART_FILES`;
    each rank writes its share of them (:class:`yso_labels.core.shards.Shards`) as small
    stores ``OUT.parts/part-k.h5`` (each resumable; ``part-k.json`` marks it finished, with
    its failures; an unfinished part left unreadable by a killed process is written again),
    and rank 0 appends them to ``out`` in input order: the same rows, in the same order, as
    a one-process ingest. Rank 0 opens (and locks) ``out.part`` to plan, closes it while
    the parts are written (so that a killed job leaves a valid file) and reopens it to
    merge. A rerun after any rank died resumes the unfinished parts and the merge.
    """
    out = Path(out)
    block = max(64, 32 * max(workers, 1))
    shards = Shards()
    if shards.world > 1:
        return _sharded_ingest(shards, new_writer, out, files, fn, report,
                               workers=workers, batch_size=batch_size, desc=desc,
                               restart=restart, overwrite=overwrite, on_open=on_open)
    writer = new_writer(out, restart=restart, overwrite=overwrite)
    try:
        if on_open is not None:
            on_open(writer)
        todo = _not_stored(writer, files, report, desc)
        results = parallel_map(fn, todo, workers, block=block)
    except BaseException:
        writer.close(complete=False)
        raise
    return fill_store(writer, results, report, total=len(todo), batch_size=batch_size,
                      progress=progress, desc=desc)


def _not_stored(writer: StoreWriter, files: list[str], report: dict, desc: str) -> list[str]:
    stored = _stored_files(writer.stored_sources())
    todo = [f for f in files if f not in stored]
    report["n_already_stored"] = len(files) - len(todo)
    if report["n_already_stored"]:
        log.info("%s: %d of %d files already stored in %s; reading %d", desc,
                 report["n_already_stored"], len(files), writer.part, len(todo))
    return todo


def _sharded_ingest(shards, new_writer, out: Path, files: list[str], fn, report: dict, *,
                    workers: int, batch_size: int, desc: str, restart: bool, overwrite: bool,
                    on_open) -> list[str]:
    """:func:`ingest_files` under ``torchrun`` (its docstring)."""
    import hashlib
    import shutil

    from yso_labels.core.atomic import write_json

    parts = ingest_parts_path(out)
    key = {"files_sha256": hashlib.sha256(json.dumps(files).encode()).hexdigest(),
           "n_files": len(files)}
    writer = None

    def plan() -> tuple[list[list[str]], list[int], int]:  # rank 0
        nonlocal writer
        writer = new_writer(out, restart=restart, overwrite=overwrite)
        if on_open is not None:
            on_open(writer)
        if (restart or overwrite) and parts.exists():
            shutil.rmtree(parts)
        manifest = parts / "manifest.json"
        if manifest.exists():
            old = json.loads(manifest.read_text())
            if old["key"] != key:
                raise ValueError(f"{parts} holds the parts of an interrupted ingest of other "
                                 "input files; rerun the same command to resume it, or pass "
                                 "--restart to discard it")
            groups = old["parts"]
        else:
            todo = _not_stored(writer, files, report, desc)
            groups = [todo[i:i + PART_FILES] for i in range(0, len(todo), PART_FILES)]
            parts.mkdir(parents=True, exist_ok=True)
            write_json(manifest, {"key": key, "parts": groups})
        # closed (a valid file) while the ranks write their parts: a process killed then
        # must not leave a half-written store; reopened (and locked) for the merge
        writer.close(complete=False)
        left = [k for k in range(len(groups)) if not _part_name(parts, k, "json").exists()]
        if len(left) < len(groups):
            log.info("%s: resuming from %s: %d of %d parts finished", desc, parts,
                     len(groups) - len(left), len(groups))
        n_done = len(files) - sum(len(g) for g in groups)
        return groups, left, n_done

    try:
        groups, left, n_done = shards.from_main(plan)
        for k in shards.mine(left):
            _write_part(new_writer, parts, k, groups[k], fn, workers, batch_size, desc)
            shards.part_done()
        shards.wait()  # every part is written
        ids: list[str] = []
        if shards.is_main:
            report["n_already_stored"] = n_done
            writer = new_writer(out)  # the .part the plan made or resumed
            if on_open is not None:
                on_open(writer)
            merged = writer.stored_sources()
            ids = fill_store(writer, _part_rows(parts, groups, merged), report,
                             total=sum(len(g) for g in groups), batch_size=batch_size,
                             progress=False, desc=desc)
            shutil.rmtree(parts)
    except BaseException:
        if writer is not None and writer.h5 is not None:
            writer.close(complete=False)
        raise
    final = shards.from_main(lambda: (report, ids))  # every rank returns rank 0's report
    report.update(final[0])
    return final[1]


def _part_name(parts: Path, k: int, suffix: str) -> Path:
    return parts / f"part-{k:06d}.{suffix}"


def _write_part(new_writer, parts: Path, k: int, group: list[str], fn, workers: int,
                batch_size: int, desc: str) -> None:
    """Part ``k`` (the files ``group``) as the store ``part-k.h5`` (resumed when
    interrupted), then ``part-k.json`` with its failures, in input order."""
    from yso_labels.core.atomic import write_json

    try:
        writer = new_writer(_part_name(parts, k, "h5"))
    except StoreError as exc:  # a process killed while writing it: only this rank writes it
        log.warning("%s part %d: %s; writing the part again", desc, k, exc)
        writer = new_writer(_part_name(parts, k, "h5"), restart=True)
    rep: dict = {"failures": []}
    try:
        todo = [f for f in group if f not in _stored_files(writer.stored_sources())]
        results = parallel_map(fn, todo, workers, block=max(64, 32 * max(workers, 1)))
    except BaseException:
        writer.close(complete=False)
        raise
    fill_store(writer, results, rep, total=len(todo), batch_size=batch_size, progress=False,
               desc=f"{desc} part {k}", allow_empty=True)
    write_json(_part_name(parts, k, "json"), {"failures": rep["failures"]})


def _part_rows(parts: Path, groups: list[list[str]], merged: set[str]):
    """``(file, rows, reason)`` of the part stores, file by file in input order, as the
    workers gave them (``rows``: the file's row tuples, each ending with its source; None
    when the file failed), leaving out rows already in the store (``merged`` sources)."""
    for k, group in enumerate(groups):
        with open_store(_part_name(parts, k, "h5")) as h5:
            cols = {c: h5[c][:] for c in ("flux", "error", "mask", "snr", "ra", "dec")}
            ids = decode_strings(h5["apogee_id"][:])
            sources = decode_strings(h5["source"][:])
            extra = [decode_strings(h5[c][:]) for c in EXTRA_COLUMNS if c in h5]
        rows: dict[str, list] = {}
        for i, source in enumerate(sources):
            if source not in merged:
                rows.setdefault(next(iter(_stored_files([source]))), []).append(
                    (cols["flux"][i], cols["error"][i], cols["mask"][i], ids[i],
                     cols["snr"][i], cols["ra"][i], cols["dec"][i], source,
                     *(e[i] for e in extra)))
        reasons = {f["file"]: f["reason"] for f in
                   json.loads(_part_name(parts, k, "json").read_text())["failures"]}
        for name in group:
            if name in rows or name in reasons:
                yield name, rows.get(name), reasons.get(name)


def ingest_apstar(inputs, out: str | os.PathLike, options: IngestOptions | None = None,
                  **kwargs) -> dict:
    """Ingest apStar-format files (APO ``apStar``, LCO ``asStar``) and SDSS-V
    ``mwmStar``/``mwmVisit`` files (each APOGEE spectrum a row, source ``PATH[k]``,
    keyed by ``sdss_id``; :mod:`apogee_net.spectra.mwm`) — a directory, a glob or a list —
    into the store ``out``.

    The options are :class:`apogee_net.options.IngestOptions`, given as ``options`` or as
    keyword arguments of the same names. Reads in parallel (``workers`` processes; default
    min(4, CPUs); 0 or 1: in this process), appends in batches of ``batch_size`` rows, and
    renames ``out.part`` to ``out`` at the end. A rerun skips the sources already stored
    (after an interruption, or to add new files to a finished store); ``restart`` discards
    an unfinished ``out.part`` instead. Unreadable files are listed with the reason and the
    rest ingested. ``pixmask_bits``: apStar PIXMASK bits whose pixels are stored as no data
    (NaN; the bit mask itself is stored whole), default
    :data:`apogee_net.spectra.pixmask.DEFAULT_PIXMASK_BITS`; recorded in the store attribute
    ``pixmask_bits``. Returns a report: counts, failures, duplicated APOGEE IDs, files per
    second.
    """
    o = resolve_options(IngestOptions, options, kwargs)
    compression = None if o.compression in (None, "none") else o.compression
    t0 = time.perf_counter()
    check_ints(workers=(o.workers, 0), batch_size=(o.batch_size, 1))
    check_outputs([out, part_path(out), ingest_parts_path(out)], inputs)
    bits = parse_pixmask_bits(o.pixmask_bits)
    files = expand_inputs(inputs, prefix=PREFIXES, what="apStar/asStar/mwmStar/mwmVisit")
    workers = min(4, os.cpu_count() or 1) if o.workers is None else int(o.workers)
    out = Path(out)
    recorded = {"inputs": [str(i) for i in (inputs if isinstance(inputs, (list, tuple))
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
    meta = _provenance("ingest", recorded)
    new_writer = partial(StoreWriter, npix=NPIX, wavelength=apstar_wavelength(), kind="apstar",
                         meta=meta, compression=compression)

    def on_open(writer: StoreWriter) -> None:
        _check_pixmask(out, writer.h5.attrs, bits)
        writer.h5.attrs["pixmask_bits"] = format_bits(bits)

    t_read = time.perf_counter()
    ids = ingest_files(new_writer, out, [str(f) for f in files],
                       partial(_read_row, pixmask_bits=bits), report, workers=workers,
                       batch_size=o.batch_size, progress=o.progress, desc="ingest",
                       restart=o.restart, on_open=on_open)
    n_read = len(files) - report["n_already_stored"]
    read_s = time.perf_counter() - t_read
    dups = duplicate_ids(ids)
    if dups:
        log.warning("ingest: %d APOGEE ID(s) occur in more than one row (e.g. %s)", len(dups),
                    ", ".join(dups[:5]))
    report.update(duplicate_ids=dups, seconds=time.perf_counter() - t0,
                  files_per_s=n_read / read_s if read_s > 0 and n_read else 0.0)
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
