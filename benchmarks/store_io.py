#!/usr/bin/env python
"""Store I/O measured side by side: ingest speed, size and read speed with and without
compression, and the Dataset's batched read against row-by-row reads.

    python benchmarks/store_io.py [--files 200] [--rows 2000] [--workers 2] [--tmp DIR]

Spectra are Payne-emulated (``../shared/data/payne``; the analytic fallback otherwise), SNR
50-200. Reads are warm-cache (the store fits in memory): they measure HDF5 + decompression +
torch overhead, not the disk.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table

from apogee_net.spectra.apstar import NPIX, apstar_wavelength
from apogee_net.spectra.dataset import SpectraDataset, collate_batch
from apogee_net.spectra.ingest import ingest_apstar
from apogee_net.spectra.simulate import simulate_apstar, simulate_spectra
from apogee_net.spectra.store import StoreWriter

EMULATOR = Path(__file__).resolve().parents[2] / "shared" / "data" / "payne" \
    / "NN_unnormalized_spectra.npz"


def _labels(n: int, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    return Table({"apogee_id": [f"2MBENCH{i:06d}" for i in range(n)],
                  "teff": rng.uniform(3700, 6800, n), "logg": rng.uniform(0.5, 5.0, n),
                  "fe_h": rng.uniform(-0.9, 0.4, n)})


def _emulator():
    return str(EMULATOR) if EMULATOR.exists() else "analytic"


def bench_ingest(tmp: Path, n_files: int, workers: list[int]) -> None:
    folder = tmp / "files"
    simulate_apstar(_labels(n_files), folder, emulator=_emulator(), progress=False)
    print(f"\n== ingest of {n_files} simulated apStar files (DR17 layout, float32) ==")
    for comp in (None, "lzf", "gzip"):
        for w in workers:
            out = tmp / f"ingest_{comp}_{w}.h5"
            t0 = time.perf_counter()
            report = ingest_apstar(folder, out, workers=w, progress=False, compression=comp)
            dt = time.perf_counter() - t0
            size = out.stat().st_size
            print(f"compression={comp!s:5} workers={w}: {n_files / dt:7.1f} files/s "
                  f"(reading {report['files_per_s']:.1f}/s), {size / n_files / 1024:6.1f} "
                  f"KiB/spectrum")
            out.unlink()


def make_store(path: Path, n: int, comp, chunk_rows: int = 32) -> float:
    t0 = time.perf_counter()
    with StoreWriter(path, NPIX, apstar_wavelength(), compression=comp,
                     chunk_rows=chunk_rows) as w:
        for start in range(0, n, 500):
            labels = _labels(n)[start:start + 500]
            sim = simulate_spectra(labels, emulator=_emulator(), seed=1,
                                   star_index=np.arange(start, start + len(labels)))
            m = len(labels)
            w.append(sim.flux, sim.error, np.zeros((m, NPIX), np.int32), labels["apogee_id"],
                     sim.snr, sim.ra, sim.dec, [f"sim{start + i}" for i in range(m)])
    return time.perf_counter() - t0


#: (compression, rows per chunk) compared by bench_reads
CONFIGS = ((None, 32), ("lzf", 32), ("gzip", 32), ("lzf", 4))


def _rate(fn, n_batches: int, batch: int) -> float:
    fn(0)  # warm up (open file, fill caches)
    t0 = time.perf_counter()
    for b in range(1, n_batches + 1):
        fn(b)
    return n_batches * batch / (time.perf_counter() - t0)


def bench_reads(tmp: Path, n: int, batch: int = 128, n_batches: int = 15) -> None:
    print(f"\n== random batches of {batch} from a store of {n} spectra (warm cache) ==")
    rng = np.random.default_rng(0)
    perms = [rng.permutation(n)[:batch] for _ in range(n_batches + 1)]
    for comp, chunk_rows in CONFIGS:
        path = tmp / f"read_{comp}_{chunk_rows}.h5"
        build = make_store(path, n, comp, chunk_rows)
        ds = SpectraDataset(path)
        rates = {
            "read_batch (sorted, 1 slice per run)": _rate(
                lambda b, ds=ds: ds.read_batch(perms[b]), n_batches, batch),
            "one h5py fancy-index read": _rate(
                lambda b, ds=ds: (ds._file()["flux"][np.sort(perms[b])],
                                  ds._file()["error"][np.sort(perms[b])]), n_batches, batch),
            "row by row + default_collate": _rate(
                lambda b, ds=ds: torch.utils.data.default_collate([ds[i] for i in perms[b]]),
                n_batches, batch),
        }
        seq = _rate(lambda b, ds=ds: ds.read_batch(np.arange(b * batch, (b + 1) * batch) % n),
                    n_batches, batch)
        size = path.stat().st_size / 2**20
        print(f"compression={comp!s:5} chunk={chunk_rows:3d} rows: {size:7.1f} MiB, "
              f"write {n / build:6.0f} spectra/s (incl. simulation); spectra/s read: "
              + ", ".join(f"{k} {v:7.0f}" for k, v in rates.items())
              + f", sequential batches {seq:7.0f}")
        if comp is None and chunk_rows == 32:
            loader_rates = {}
            for name, kw in (("DataLoader default_collate", {}),
                             ("DataLoader collate_batch", {"collate_fn": collate_batch})):
                loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, **kw)
                t0 = time.perf_counter()
                count = 0
                for i, b in enumerate(loader):
                    count += len(b["flux"])
                    if i == n_batches:
                        break
                loader_rates[name] = count / (time.perf_counter() - t0)
            print("   " + ", ".join(f"{k}: {v:7.0f} spectra/s" for k, v in loader_rates.items()))
        ds.close()
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"emulator: {_emulator()}; CPUs: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if args.files:
            bench_ingest(Path(tmp), args.files, args.workers)
        bench_reads(Path(tmp), args.rows)


if __name__ == "__main__":
    main()
