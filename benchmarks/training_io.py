#!/usr/bin/env python
"""APOGEE Net training throughput with the HDF5 store vs the same data in memory, and
where an epoch's time goes (read, preprocess, optimizer step), side by side.

1. :func:`yso_labels.core.training.fit` (the loop behind ``apogee-net train``) for ``--epochs``
   epochs on the same spectra, same model initialisation and options, once reading
   batches from the store (:class:`apogee_net.spectra.dataset.SpectraDataset`, per ``--workers``
   value) and once from memory (:class:`apogee_net.network.train.ArrayDataset`); runs alternate
   ``--repeats`` times and the best epoch counts (training spectra per second of the
   training part of an epoch, as ``train_log.csv`` records it). Ratio store / memory: the
   data path is not the bottleneck when it is close to 1.
2. The pieces of one step, each alone, in spectra per second: the store's batches through
   the same ``DataLoader`` (random order, ``train.collate``), the ``Preprocess`` on the
   device, and forward + backward + Adam on a prepared batch. Ratio read / step: how many
   times faster the store delivers batches than the model consumes them.

The spectra are simulated (a few hundred distinct, tiled with fresh noise), the model
starts untrained: speed does not depend on either.

    python benchmarks/training_io.py [--n 2048] [--epochs 2] [--batch-size 128]
        [--workers 0 2] [--device auto] [--threads N] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import (
    LABELS,
    best_of,
    build_store,
    host_info,
    print_host,
    print_table,
    set_threads,
    untrained_model,
    write_json,
)

from apogee_net.network.train import fit_flux_scaler
from apogee_net.spectra.dataset import SpectraDataset, read_rows
from apogee_net.spectra.store import open_store
from yso_labels.core.runtime import resolve_device
from yso_labels.core.scaling import Standardiser
from yso_labels.core.training import ArrayDataset, TrainOptions, collate, fit, standardised_mse


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2048, help="spectra in the store (90%% train)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, nargs="+", default=[0],
                   help="DataLoader worker processes for the store runs (e.g. 0 4)")
    p.add_argument("--repeats", type=int, default=2, help="alternating fit runs per config")
    p.add_argument("--steps", type=int, default=5, help="batches timed for read/prepare/step")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--amp", action="store_true", help="bf16 autocast on a GPU (as --amp)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    p.add_argument("--n-distinct", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default=None, help="directory for the store and runs")
    p.add_argument("--json", default=None, help="also write the numbers here")
    return p.parse_args(argv)


def fit_rate(model_seed: int, train_set, dev_set, prep, out: Path, options: TrainOptions
             ) -> float:
    """Best epoch's training spectra per second of one :func:`fit` run."""
    shutil.rmtree(out, ignore_errors=True)
    model = untrained_model(seed=model_seed)
    result = fit(model, train_set, dev_set, standardised_mse, out, options, {},
                 prepare=prep)
    shutil.rmtree(out, ignore_errors=True)
    return max(h["train_spectra_per_s"] for h in result.history)


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    dev = resolve_device(args.device)
    set_threads(args.threads)
    info = host_info(dev)
    print_host("APOGEE Net training: HDF5 store vs memory", info)
    tmp = Path(tempfile.mkdtemp(prefix="bench_training_io_", dir=args.tmp))
    try:
        return _run(args, dev, info, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, dev, info, tmp: Path) -> dict:
    from apogee_net.network.model import Preprocess

    store, table = build_store(tmp / "spectra.h5", args.n, args.n_distinct, args.seed)
    split = np.asarray(table["split"])
    targets = np.column_stack([np.asarray(table[c], float) for c in LABELS])
    rows = {s: np.flatnonzero(split == s) for s in ("train", "dev")}
    prep = Preprocess(fit_flux_scaler(store, rows["train"], "median"),
                      Standardiser.fit(targets[rows["train"]]), "median")
    with open_store(store) as h5:
        mem = {s: ArrayDataset(read_rows(h5["flux"], r), targets[r],
                               read_rows(h5["error"], r)) for s, r in rows.items()}
    disk = {s: SpectraDataset(store, rows=r, targets=targets[r]) for s, r in rows.items()}
    n_train = len(rows["train"])
    print(f"{n_train} training spectra, batch {args.batch_size}, {args.epochs} epoch(s) per "
          f"run, best epoch of {args.repeats} alternating run(s) per configuration")

    def options(workers: int) -> TrainOptions:
        return TrainOptions(batch_size=args.batch_size, max_epochs=args.epochs,
                            patience=args.epochs + 1, seed=args.seed, device=str(dev),
                            amp=args.amp, workers=workers, progress=False)

    configs = {"memory (ArrayDataset)": (mem, 0)}
    for w in args.workers:
        configs[f"store, workers={w}"] = (disk, w)
    rates: dict[str, float] = {k: 0.0 for k in configs}
    for r in range(args.repeats):
        names = list(configs) if r % 2 == 0 else list(configs)[::-1]
        for name in names:
            data, w = configs[name]
            rate = fit_rate(args.seed, data["train"], data["dev"], prep, tmp / "run",
                            options(w))
            rates[name] = max(rates[name], rate)
            print(f"  run {r + 1}: {name}: {rate:.1f} spectra/s")
    mem_rate = rates["memory (ArrayDataset)"]
    fit_rows = [{"config": k, "per_s": v, "ratio": v / mem_rate} for k, v in rates.items()]
    print(f"\nfit(): training spectra per second ({dev}, {torch.get_num_threads()} threads)")
    print_table(fit_rows, [("config", "data", "s"), ("per_s", "spectra/s", ".1f"),
                           ("ratio", "vs memory", ".2f")])

    parts = pieces(args, dev, disk["train"], mem["train"], prep)
    print(f"\none step's pieces alone, spectra per second (batch {args.batch_size}, best of 3)")
    print_table([{"piece": k, "per_s": v} for k, v in parts.items()],
                [("piece", "piece", "s"), ("per_s", "spectra/s", ".1f")])
    step = parts["forward+backward+Adam"]
    worst = min(v for k, v in rates.items() if k != "memory (ArrayDataset)")
    print(f"\nratios: store fit / memory fit {worst / mem_rate:.2f} (slowest store config; "
          f"goal ≈ 1); store read / model step "
          f"{parts['store read (DataLoader, workers=0)'] / step:.1f} (goal ≫ 1); "
          f"preprocess / model step {parts['preprocess on device'] / step:.1f}")
    for ds in disk.values():
        ds.close()
    result = {"host": info, "options": vars(args), "fit": fit_rows, "pieces": parts,
              "n_train": n_train}
    write_json(args.json, result)
    return result


def pieces(args, dev, disk_set, mem_set, prep) -> dict[str, float]:
    """Spectra per second of reading (store and memory), preprocessing and one step."""
    bs, steps = args.batch_size, args.steps

    def loader(ds, workers=0):
        gen = torch.Generator().manual_seed(args.seed)
        return torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, generator=gen,
                                           collate_fn=collate, num_workers=workers,
                                           pin_memory=dev.type == "cuda")

    def read(ds, workers=0):
        def run():
            for i, _ in enumerate(loader(ds, workers)):
                if i + 1 == steps:
                    break
        return run

    raw = {k: v.to(dev) for k, v in next(iter(loader(mem_set))).items()}
    batch = prep(dict(raw))
    model = untrained_model(seed=args.seed).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if args.amp and dev.type == "cuda"
                else torch.autocast("cpu", enabled=False))

    def step():
        for _ in range(steps):
            with autocast:
                out = model(batch["input"])
            loss = standardised_mse(out.float(), batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def prepare():
        for _ in range(steps):
            prep({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in raw.items()})

    fns = {"store read (DataLoader, workers=0)": read(disk_set),
           "memory read (DataLoader)": read(mem_set),
           "preprocess on device": prepare, "forward+backward+Adam": step}
    fns["forward+backward+Adam"]()  # warm-up
    times = best_of(fns, repeats=3, device=dev)
    return {k: steps * bs / v for k, v in times.items()}


if __name__ == "__main__":
    main()
