#!/usr/bin/env python
"""Peak memory of ``apogee-net predict`` (:func:`apogee_net.inference.predict.predict_catalog`) over
stores of growing size: it streams chunks, so the peak must not grow with the store.

For each size (default 1k, 10k and 50k simulated spectra, a few hundred distinct ones
tiled with fresh noise) a store is written, then predicted in a fresh Python process with
an untrained APOGEE Net checkpoint (random weights; memory does not depend on them) and
few realizations (``--realizations 2``) so that it finishes. The child reports its peak
resident memory (``VmHWM`` of /proc/self/status, ``ru_maxrss`` elsewhere), its resident
memory before predicting (after imports) and, on a GPU, the peak of allocated GPU memory.
Stores and catalogues are deleted after each size (50k spectra take 3.4 GB on disk).

    python benchmarks/memory.py [--sizes 1000 10000 50000] [--realizations 2]
        [--device auto] [--threads N] [--tmp DIR] [--json OUT.json]

Prints the table and the ratios of the largest to the smallest size (goal: ≈ 1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    build_store,
    current_rss_mib,
    host_info,
    peak_rss_mib,
    print_host,
    print_table,
    set_threads,
    simulated_spectra,
    untrained_checkpoint,
    untrained_preprocess,
    write_json,
)

#: Bytes per spectrum in a store: flux + error float32 on 8575 pixels (mask compresses away).
BYTES_PER_SPECTRUM = 2 * 4 * 8575


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    p.add_argument("--realizations", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=1024, help="predict's spectra per part")
    p.add_argument("--batch-size", type=int, default=None, help="predict's rows per pass")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    p.add_argument("--n-distinct", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="directory for stores (needs free space)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "STORE", "OUT"),
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args) -> None:
    """Predict one store in this (fresh) process and print one JSON line."""
    import torch
    from astropy.table import Table

    from apogee_net.inference.predict import predict_catalog
    from yso_labels.core.runtime import resolve_device

    set_threads(args.threads)
    model, store, out = args.child
    dev = resolve_device(args.device)
    before = current_rss_mib()
    t0 = time.perf_counter()
    path = predict_catalog(model, [store], out, realizations=args.realizations, device=str(dev),
                           batch_size=args.batch_size, seed=args.seed,
                           chunk_size=args.chunk_size, progress=False)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib()
    n_rows = len(Table.read(path, mask_invalid=False))
    gpu = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None)
    print(json.dumps({"peak_rss_mib": peak, "rss_before_mib": before, "seconds": seconds,
                      "n_rows": n_rows, "gpu_peak_mib": gpu, "threads": torch.get_num_threads(),
                      "device": str(dev)}))


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return None
    from yso_labels.core.runtime import resolve_device

    dev = resolve_device(args.device)
    set_threads(args.threads)
    info = host_info(dev)
    print_host("APOGEE Net predict: peak memory vs store size", info)
    sizes = sorted(set(args.sizes))
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_", dir=args.tmp))
    need = 1.1 * max(sizes) * BYTES_PER_SPECTRUM
    free = shutil.disk_usage(tmp).free
    if free < need:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(f"{tmp}: {free / 2**30:.1f} GiB free, the largest store needs "
                         f"{need / 2**30:.1f} GiB; pass --tmp DIR or smaller --sizes")
    rows = []
    try:
        sample = simulated_spectra(min(args.n_distinct, 256), seed=args.seed)
        prep = untrained_preprocess(sample.flux, sample.error, sample.labels)
        model = untrained_checkpoint(tmp / "model.pt", prep, sample.labels, args.seed)
        for n in sizes:
            store, _ = build_store(tmp / f"store_{n}.h5", n, args.n_distinct, args.seed)
            size_gib = store.stat().st_size / 2**30
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(model),
                   str(store), str(tmp / f"cat_{n}.fits"), "--realizations",
                   str(args.realizations), "--device", args.device, "--chunk-size",
                   str(args.chunk_size), "--seed", str(args.seed)]
            for opt, val in (("--threads", args.threads), ("--batch-size", args.batch_size)):
                if val:
                    cmd += [opt, str(val)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            store.unlink()
            for leftover in tmp.glob(f"cat_{n}.fits*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
            if proc.returncode != 0:
                raise SystemExit(f"predict of {n} spectra failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            if res["n_rows"] != n:
                raise SystemExit(f"catalogue of {n} spectra has {res['n_rows']} rows")
            res.update(n=n, store_gib=size_gib, per_s=n / res["seconds"],
                       growth_mib=res["peak_rss_mib"] - res["rss_before_mib"])
            rows.append(res)
            print(f"  {n} spectra: peak RSS {res['peak_rss_mib']:.0f} MiB "
                  f"({res['seconds']:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\npredict_catalog, {args.realizations} realizations, chunk_size "
          f"{args.chunk_size}, {rows[0]['device']}, {rows[0]['threads']} thread(s); each size "
          "in a fresh process")
    cols = [("n", "spectra", "d"), ("store_gib", "store GiB", ".2f"),
            ("rss_before_mib", "RSS start MiB", ".0f"), ("peak_rss_mib", "peak RSS MiB", ".0f"),
            ("growth_mib", "peak-start MiB", ".0f"), ("seconds", "seconds", ".1f"),
            ("per_s", "spectra/s", ".1f")]
    if rows[0]["gpu_peak_mib"] is not None:
        cols.append(("gpu_peak_mib", "GPU peak MiB", ".0f"))
    print_table(rows, cols)
    ratios = {}
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        ratios = {"peak": hi["peak_rss_mib"] / lo["peak_rss_mib"],
                  "growth": hi["growth_mib"] / max(lo["growth_mib"], 1.0),
                  "size": hi["n"] / lo["n"]}
        print(f"\nratio {hi['n']}/{lo['n']} spectra ({ratios['size']:.0f}× the data): peak RSS "
              f"{ratios['peak']:.2f}×, peak above start {ratios['growth']:.2f}× (goal: ≈ 1, "
              "flat)")
        if len(rows) > 2:
            mid = rows[-2]
            ratios["peak_vs_second"] = hi["peak_rss_mib"] / mid["peak_rss_mib"]
            print(f"ratio {hi['n']}/{mid['n']} spectra: peak RSS "
                  f"{ratios['peak_vs_second']:.2f}× (both span several chunks; a store of "
                  f"one chunk never holds the next chunk read ahead)")
    result = {"host": info, "options": {k: v for k, v in vars(args).items() if k != "child"},
              "rows": rows, "ratios": ratios}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
