#!/usr/bin/env python
"""Data-parallel scaling of APOGEE Net training: 1 vs 2 processes under ``torchrun``.

Trains the same store with ``apogee-net train`` (data parallel under torchrun: gloo on the
CPU, NCCL on GPUs; :mod:`yso_labels.core.distributed`) for ``--epochs`` epochs in each
configuration ``PxT`` (P processes × T torch threads each, set with ``OMP_NUM_THREADS``).
The defaults compare, at equal cores, 2 processes × 1 thread with 1 process × 1 thread and
1 process × 2 threads. Each configuration is launched the same way,
``python -m torch.distributed.run --standalone --nproc_per_node=P -m apogee_net.cli train
…``, and reports the training spectra per second of its best epoch (``train_log.csv``:
the whole training set over the training part of the epoch, all ranks together) and the
wall time of the command (start-up, flux standardisation and dev evaluation included).
The global batch is the same in all configurations (split over the processes).

    python benchmarks/scaling.py [--n 2048] [--epochs 2] [--configs 1x1 2x1 1x2]
        [--device auto] [--json OUT.json]

On a GPU machine the same command runs on the GPU(s); a configuration with more processes
than GPUs is skipped (``--device cpu`` measures the CPU scaling there).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import build_store, host_info, print_host, print_table, write_json

from yso_labels.core.runtime import resolve_device


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2048, help="spectra in the store (90%% train)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128, help="global batch")
    p.add_argument("--configs", nargs="+", default=["1x1", "2x1", "1x2"],
                   help="PROCESSESxTHREADS per configuration")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per process")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--n-distinct", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per configuration")
    p.add_argument("--tmp", default=None, help="directory for the store and runs")
    p.add_argument("--json", default=None, help="also write the numbers here")
    return p.parse_args(argv)


def parse_config(text: str) -> tuple[int, int]:
    try:
        procs, threads = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"configuration {text!r}: expected PROCESSESxTHREADS, e.g. 2x1") from None
    if procs < 1 or threads < 1:
        raise SystemExit(f"configuration {text!r}: processes and threads must be ≥ 1")
    return procs, threads


def run_config(args, store: Path, labels: Path, out: Path, procs: int, threads: int) -> dict:
    """Launch one training under torchrun; its best epoch rate and wall time."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", "-m", "apogee_net.cli", "train", "--store", str(store),
           "--labels", str(labels), "--out", str(out), "--max-epochs", str(args.epochs),
           "--patience", str(args.epochs + 1), "--batch-size", str(args.batch_size),
           "--device", args.device, "--seed", str(args.seed), "--workers", str(args.workers)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{procs}x{threads} failed (exit {proc.returncode}):\n"
                         f"{' '.join(cmd)}\n{proc.stderr[-3000:]}")
    with open(out / "train_log.csv") as fh:
        history = list(csv.DictReader(fh))
    rates = [float(h["train_spectra_per_s"]) for h in history]
    return {"config": f"{procs}x{threads}", "processes": procs, "threads": threads,
            "cores": procs * threads, "per_s": max(rates), "epoch_rates": rates,
            "epoch_seconds": [float(h["seconds"]) for h in history], "wall_s": wall}


def main(argv=None) -> dict:
    args = parse_args(argv)
    dev = resolve_device(args.device)
    info = host_info(dev)
    print_host("APOGEE Net training: 1 vs 2 processes (torchrun)", info)
    configs = [parse_config(c) for c in args.configs]
    tmp = Path(tempfile.mkdtemp(prefix="bench_scaling_", dir=args.tmp))
    rows = []
    try:
        store, table = build_store(tmp / "spectra.h5", args.n, args.n_distinct, args.seed)
        labels = tmp / "labels.fits"
        table.write(labels)
        n_train = int((table["split"] == "train").sum())
        print(f"{n_train} training spectra, global batch {args.batch_size}, {args.epochs} "
              f"epoch(s) per configuration, backend {'nccl' if dev.type == 'cuda' else 'gloo'} "
              "for P > 1")
        for procs, threads in configs:
            if dev.type == "cuda" and procs > torch.cuda.device_count():
                print(f"  {procs}x{threads}: skipped ({procs} processes need {procs} GPUs, "
                      f"this machine has {torch.cuda.device_count()})")
                continue
            out = tmp / f"run_{procs}x{threads}"
            row = run_config(args, store, labels, out, procs, threads)
            shutil.rmtree(out, ignore_errors=True)
            rows.append(row)
            print(f"  {row['config']}: {row['per_s']:.1f} spectra/s (epochs: "
                  + ", ".join(f"{r:.1f}" for r in row["epoch_rates"])
                  + f"), wall {row['wall_s']:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntraining spectra per second, best epoch ({dev})")
    print_table(rows, [("config", "PxT", "s"), ("cores", "cores", "d"),
                       ("per_s", "spectra/s", ".1f"), ("wall_s", "wall s", ".0f")])
    by = {r["config"]: r["per_s"] for r in rows}
    speedups = {}
    for a, b, what in (("2x1", "1x1", "2 processes vs 1 (1 thread each)"),
                       ("2x1", "1x2", "2 processes × 1 thread vs 1 process × 2 threads"),
                       ("1x2", "1x1", "2 threads vs 1 (1 process)")):
        if a in by and b in by:
            speedups[f"{a}/{b}"] = by[a] / by[b]
            print(f"speed-up {a}/{b}: {by[a] / by[b]:.2f}  ({what})")
    result = {"host": info, "options": vars(args), "rows": rows, "speedups": speedups,
              "n_train": n_train}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
