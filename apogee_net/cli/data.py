"""``apogee-net simulate`` and ``apogee-net ingest``: simulated apStar files and the store."""

from __future__ import annotations

import argparse

from apogee_net.options import IngestOptions, SimulateOptions
from apogee_net.spectra import ingest, simulate
from yso_labels.cli import failure_status
from yso_labels.core.options import add_dataclass_arguments, from_namespace


def _cmd_simulate(args: argparse.Namespace) -> None:
    report = simulate.simulate_apstar(args.labels_table, args.out_dir,
                                      from_namespace(SimulateOptions, args))
    print(f"simulate: {report['n_written']} written, {report['n_kept']} kept "
          f"({report['n_clipped']} clipped) in {report['out_dir']} with {report['model']}; "
          f"labels used in {report['summary']}")


def _cmd_ingest(args: argparse.Namespace) -> int:
    report = ingest.ingest_apstar(args.inputs, args.out, from_namespace(IngestOptions, args))
    print(f"ingest: {report['n_ingested']} new, {report['n_already_stored']} already stored, "
          f"{report['n_failed']} failed; {report.get('n_rows', 0)} rows in {report['out']} "
          f"({report.get('files_per_s', 0):.1f} files/s)")
    for failure in report["failures"][:20]:
        print(f"failed: {failure['file']}: {failure['reason']}")
    if report["n_failed"] > 20:
        print(f"... and {report['n_failed'] - 20} more failures (store attribute 'failures')")
    if report.get("duplicate_ids"):
        print(f"note: {len(report['duplicate_ids'])} APOGEE ID(s) have several spectra "
              f"(e.g. {', '.join(report['duplicate_ids'][:5])})")
    return failure_status("ingest", report["n_failed"],
                          report["n_failed"] + report["n_ingested"], "new input files")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="write realistic apStar files from The Payne's emulator",
        description="Simulate apStar-sim-<ID>.fits files: The Payne's unnormalised emulator "
        "(or, without it, a clearly labelled analytic fallback) on the apStar grid, scaled to "
        "the star's H magnitude, with Gaussian noise for an SNR drawn uniformly in --snr.")
    p.add_argument("--labels", dest="labels_table", required=True, metavar="TABLE",
                   help="table with apogee_id teff logg fe_h (optional alpha_m, H, ra, dec)")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR", help="output folder")
    add_dataclass_arguments(p, SimulateOptions)
    p.set_defaults(func=_cmd_simulate)

    p = subparsers.add_parser(
        "ingest", help="ingest apStar/asStar/mwmStar/mwmVisit files into one HDF5 store",
        description="Read apStar/asStar files and the APOGEE spectra of SDSS-V mwmStar/"
        "mwmVisit files (directories, globs or files) in parallel into one chunked HDF5 "
        "store; resumable (a rerun skips stored files), finished atomically.")
    p.add_argument("inputs", nargs="+", metavar="SPECTRA",
                   help="apStar/asStar/mwmStar/mwmVisit files, folders, globs")
    p.add_argument("--out", required=True, metavar="STORE.h5", help="the store to write")
    add_dataclass_arguments(p, IngestOptions)
    p.set_defaults(func=_cmd_ingest)
