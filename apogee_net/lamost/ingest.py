"""``apogee-net lamost ingest``: LAMOST LRS FITS files → the toolkit's HDF5 spectra store.

Each file is read (:func:`apogee_net.lamost.io.read_lamost`, both layouts, gzip or not) and
prepared (:func:`apogee_net.lamost.preprocess.prepare_spectrum`: cosmic rays
(:mod:`apogee_net.lamost.cosmics`), rest frame,
4000–8500 Å at 1 Å, Gaussian-smoothing continuum with L = 50 Å) in worker processes, and
appended to a store of kind ``"lamost"`` (:class:`apogee_net.spectra.store.StoreWriter`: resumable,
renamed into place when complete). Store conventions for LAMOST:

* ``flux``: continuum-normalised flux f/cont; NaN where the normalised ivar is 0;
* ``error``: 1/√(ivar·cont²) of the normalised flux; NaN where ivar = 0;
* ``mask``: bit 1 = no valid data in the pixel, bit 2 = within a pixel of a cosmic-ray hit;
* key (the store's ``apogee_id`` dataset, surfaced as ``spec_id`` by the LAMOST label
  tables and catalogues): the LAMOST ``OBSID`` (DR2+; else the designation ``DESIG``, else
  the file stem), ``snr``: ``SNRG`` (``SN_G`` in DR1), ``ra``/``dec`` from the header (deg);
* ``wavelength``: the rest-frame grid (vacuum Å);
* ``lamost_class``, ``lamost_subclass``: the header's ``CLASS`` and ``SUBCLASS`` (the LAMOST
  pipeline's own classification, used by ``apogee-net lamost predict``'s class check,
  :mod:`apogee_net.lamost.sptype`); stores written before they existed lack them.

Files that cannot be used (unknown layout, no redshift, no valid pixel in 4000–8500 Å,
heavily polluted by cosmic rays) are skipped, listed with the reason in the report and in
the store attribute ``failures``.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from pathlib import Path

import numpy as np

from apogee_net.lamost import preprocess
from apogee_net.lamost.io import find_lamost_files, read_lamost
from apogee_net.lamost.preprocess import lamost_grid, prepare_spectrum
from apogee_net.options import LamostIngestOptions
from apogee_net.spectra.ingest import ingest_files, ingest_parts_path
from apogee_net.spectra.store import StoreWriter, part_path
from yso_labels.core.options import resolve_options
from yso_labels.core.tables import provenance

log = logging.getLogger(__name__)

__all__ = ["ingest_lamost", "prepare_file", "MASK_NO_DATA", "MASK_COSMIC"]

MASK_NO_DATA, MASK_COSMIC = 1, 2
#: Store columns of the header classification (:mod:`apogee_net.lamost.sptype`).
CLASS_COLUMNS = ("lamost_class", "lamost_subclass")


def prepare_file(path: str, L: float = 50.0, reject_cosmics: bool = True,
                 max_cosmic: int = 20, min_valid_fraction: float = 0.5):
    """Worker: ``(source, row, reason)`` for one file; ``row`` is None when it is skipped.

    ``row`` = (flux, error, mask, id, snr_g, ra, dec, class, subclass) in the store's
    conventions (module doc).
    """
    try:
        sp = read_lamost(path)
        prep = prepare_spectrum(sp.wavelength, sp.flux, sp.ivar, sp.z, sp.andmask, L=L,
                                reject_cosmics=reject_cosmics, max_cosmic=max_cosmic,
                                min_valid_fraction=min_valid_fraction,
                                what=f"LAMOST spectrum {path}")
    except Exception as exc:  # noqa: BLE001 - every failure is reported, the rest ingested
        return path, None, f"{type(exc).__name__}: {exc}"
    valid = prep.ivar > 0
    flux = np.where(valid, prep.flux, np.nan)
    mask = np.where(valid, 0, MASK_NO_DATA) | np.where(prep.cosmic, MASK_COSMIC, 0)
    return path, (flux, prep.error, mask.astype(np.int32), sp.spec_id, sp.snrg, sp.ra,
                  sp.dec, sp.cls, sp.subclass), None


def ingest_lamost(inputs, out: str | os.PathLike, options: LamostIngestOptions | None = None,
                  **kwargs) -> dict:
    """Ingest LAMOST LRS files (files, directories searched recursively, globs) into ``out``.

    The options are :class:`apogee_net.options.LamostIngestOptions`, given as ``options`` or
    as keyword arguments of the same names. ``workers``: reader processes (default min(4,
    CPUs); 0/1: this process); ``L``: the continuum's Gaussian sigma (Å); ``max_cosmic``:
    cosmic-ray pixels above which a spectrum is rejected; ``min_valid_fraction``: of the
    4501 grid pixels. A rerun resumes an interrupted ingest or appends new files (stored
    sources are skipped); ``restart`` discards an unfinished ``out.part`` instead;
    ``overwrite`` builds a new store that replaces ``out`` only once it is complete (a
    failed run leaves the old one intact). Returns a report (counts, failures with reasons,
    rows, files per second).
    """
    from yso_labels.core.guards import check_ints, check_outputs

    o = resolve_options(LamostIngestOptions, options, kwargs)
    t0 = time.perf_counter()
    check_ints(workers=(o.workers, 0), batch_size=(o.batch_size, 1),
               max_cosmic=(o.max_cosmic, 0))
    check_outputs([out, part_path(out), ingest_parts_path(out)], inputs)
    files = [str(f) for f in find_lamost_files(inputs)]  # resolved; raises if none
    workers = min(4, os.cpu_count() or 1) if o.workers is None else int(o.workers)
    out = Path(out)
    recorded = {"L": o.L, "reject_cosmics": o.reject_cosmics, "max_cosmic": o.max_cosmic,
                "min_valid_fraction": o.min_valid_fraction,
                "grid": [preprocess.GRID_START, preprocess.GRID_STOP, preprocess.GRID_STEP]}
    meta = provenance("apogee-net lamost ingest", recorded,
                      METHOD="Li et al. sec 2.2: rest frame, 4000-8500 A at 1 A, flux-"
                      "conserving rebin, The Cannon Gaussian-smoothing continuum",
                      FLUX="f/cont (NaN where ivar=0)", ERROR="1/sqrt(ivar cont^2)",
                      MASKBITS=f"{MASK_NO_DATA}=no data; {MASK_COSMIC}=cosmic ray",
                      CRMETHOD="apogee_net.lamost.cosmics: 5 sigma one-pixel spikes narrower "
                      "than the R=1800 LSF, errors scaled by the measured scatter, sky and "
                      "stellar emission lines spared")
    grid = lamost_grid()
    new_writer = partial(StoreWriter, npix=grid.size, wavelength=grid, kind="lamost",
                         meta=meta, settings=recorded, extra=CLASS_COLUMNS)
    report = {"out": str(out), "n_inputs": len(files), "n_already_stored": 0,
              "n_ingested": 0, "n_failed": 0, "failures": [], "workers": workers}
    fn = partial(prepare_file, L=o.L, reject_cosmics=o.reject_cosmics,
                 max_cosmic=o.max_cosmic, min_valid_fraction=o.min_valid_fraction)
    ingest_files(new_writer, out, files, fn, report, workers=workers, batch_size=o.batch_size,
                 progress=o.progress, desc="lamost ingest", restart=o.restart,
                 overwrite=o.overwrite)
    n_read = len(files) - report["n_already_stored"]
    seconds = time.perf_counter() - t0
    report.update(seconds=seconds, files_per_s=n_read / seconds if seconds > 0 else 0.0)
    log.info("lamost ingest: %d new, %d already stored, %d failed -> %s (%d rows)",
             report["n_ingested"], report["n_already_stored"], report["n_failed"], out,
             report["n_rows"])
    return report
