#!/usr/bin/env python
"""A survey dry run: simulated spectra streamed through the toolkit's prediction, measured
per stage, and the time for a whole survey (10⁶ spectra, 100 draws) extrapolated.

Spectra are made on the fly (no files on disk): 256 distinct simulated apStar-grid spectra
(The Payne's emulator when ``../shared/data/payne`` has it, else the analytic fallback),
tiled with fresh Gaussian noise, star *i* with noise seeded by (seed, i) (``_common``). They
go through the toolkit's one streaming predictor, :func:`apogee_net.inference.streaming.
stream_predict`, with APOGEE Net's catalogue rows (:func:`~apogee_net.inference.predict.
catalog_rows`: coverage, pixel masks, 100 perturbed draws, OOD score, flags, σ groups) into
resumable parts and a FITS catalogue, exactly as ``apogee-net predict`` runs; under
``torchrun`` each process takes its share of the parts (:mod:`yso_labels.core.shards`).
The network is an untrained APOGEE Net (random weights: speed does not depend on them).

Stages (spectra per second, each stage's own time; read runs in a thread, overlapped with
the prediction, as in the toolkit):

- read: a chunk of simulated spectra as a ``SpectraChunk`` (stands in for reading a store
  or apStar files; their own rates are in ``benchmarks/store_io.py``);
- preprocess: pixel coverage, valid pixels and the network input of one unperturbed copy
  (``Preprocess.inputs``), measured on the side on each chunk; the prediction repeats it
  for every draw;
- predict: the 100 perturbed draws through the network and their mean and σ
  (``perturbed_labels``);
- catalogue: the rest of the catalogue rows (flags, groups, columns), the part files and
  the final join.

``--max-seconds``: each process stops after that long (the parts done so far stay, as after
an interruption) and the time for ``--n`` spectra is extrapolated from the measured rate.
``--procs 1 2`` runs the same measurement with 1 and 2 processes (``torchrun``), side by
side in one run. Peak memory: the peak resident set of each process (``VmHWM``).

    python benchmarks/survey.py --n 1000000 --max-seconds 60 --procs 1 2 [--device auto]
        [--realizations 100] [--chunk-size 64] [--batch-size N] [--threads 1]
        [--amp none|bf16|fp16] [--compile] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    _distinct,
    host_info,
    peak_rss_mib,
    print_host,
    print_table,
    set_threads,
    untrained_checkpoint,
    untrained_preprocess,
    write_json,
)

STAGES = ("read", "preprocess", "predict", "catalogue")


class Stop(Exception):
    """--max-seconds reached: leave the stream as an interruption would."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="spectra in the survey")
    p.add_argument("--max-seconds", type=float, default=60.0,
                   help="stop each process after this long and extrapolate (0: run all)")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2],
                   help="process counts to compare (torchrun --nproc_per_node)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--realizations", type=int, default=100)
    p.add_argument("--chunk-size", type=int, default=None,
                   help="spectra per part (default 64 on CPU, 4096 on GPU)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per forward pass (default: the toolkit's, 32 CPU / 2048 GPU)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--n-distinct", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the numbers here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # JSON: run one job
    return p.parse_args(argv)


# --------------------------------------------------------------------------- one process
def sim_chunk(sim, start: int, stop: int, seed: int):
    """Spectra ``start:stop`` of the survey as a ``SpectraChunk`` (module docstring)."""
    from apogee_net.inference.chunks import SpectraChunk

    rows = np.arange(start, stop)
    base = rows % len(sim.flux)
    noise = np.empty((len(rows), sim.truth.shape[1]), np.float32)
    for j, i in enumerate(rows):
        noise[j] = np.random.default_rng([seed, 7, int(i)]).standard_normal(
            sim.truth.shape[1], dtype=np.float32)
    flux = (sim.truth[base] + sim.error[base] * noise).astype(np.float32)
    n = len(rows)
    return SpectraChunk(flux, sim.error[base].astype(np.float32),
                        [f"2MSURVEY{i:09d}" for i in rows], sim.ra[base], sim.dec[base],
                        sim.snr[base].astype(float), np.ones(n, bool), ["apo25m"] * n,
                        [""] * n)


@contextmanager
def clock(totals: dict, key: str, device):
    from _common import sync

    sync(device)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        sync(device)
        totals[key] = totals.get(key, 0.0) + time.perf_counter() - t0


def worker(cfg: dict) -> dict:
    """One process of a run (alone or a ``torchrun`` rank): stream, time, report."""
    import apogee_net.inference.predict as P
    import apogee_net.inference.streaming as S
    from apogee_net.network import ood
    from apogee_net.spectra.pixels import valid_pixels
    from yso_labels.core.runtime import autocast, compiled, resolve_device
    from yso_labels.core.shards import Shards

    set_threads(cfg["threads"])
    dev = resolve_device(cfg["device"])
    sim, labels = _distinct(cfg["n_distinct"], cfg["seed"], None)
    lm = P.load_model(cfg["model"], device=dev)
    lm.model = compiled(lm.model, cfg["compile"])
    R, seed = cfg["realizations"], cfg["seed"]
    chunk, n = cfg["chunk_size"], cfg["n"]
    chunks = [{"start": s, "stop": min(n, s + chunk)} for s in range(0, n, chunk)]
    totals: dict[str, float] = {}
    counts = {"spectra": 0, "parts": 0}
    t_start = time.perf_counter()

    orig_perturbed, orig_join, orig_write = P.perturbed_labels, S.join_parts, S.atomic_write

    def perturbed(*a, **k):
        with clock(totals, "predict", dev):
            return orig_perturbed(*a, **k)

    def join(*a, **k):
        with clock(totals, "join", dev):
            return orig_join(*a, **k)

    @contextmanager
    def write(path):
        with clock(totals, "write", None), orig_write(path) as tmp:
            yield tmp

    def read_fn(c):
        t0 = time.perf_counter()
        data = sim_chunk(sim, c["start"], c["stop"], seed)
        totals["read"] = totals.get("read", 0.0) + time.perf_counter() - t0
        return data

    def predict_fn(data, _offset):
        if cfg["max_seconds"] and time.perf_counter() - t_start > cfg["max_seconds"]:
            raise Stop
        with clock(totals, "preprocess", dev):  # on the side: one unperturbed copy
            f, e = ood.restrict_to_coverage(data.flux, data.error,
                                            ood.coverage(lm.preprocess.flux_scaler))
            valid_pixels(f, e)
            lm.preprocess.inputs(torch.from_numpy(f).to(dev), torch.from_numpy(e).to(dev))
        with clock(totals, "rows", dev):
            with autocast(dev, cfg["amp"]):
                table = P.catalog_rows(lm, data, R, seed, cfg["batch_size"])
        counts["spectra"] += len(data)
        counts["parts"] += 1
        return table

    P.perturbed_labels, S.join_parts, S.atomic_write = perturbed, join, write
    stopped = False
    try:
        S.stream_predict(chunks, read_fn, predict_fn, cfg["out"], {"BENCH": "survey"},
                         {"bench": "survey", "R": R}, progress=False, restart=False)
    except Stop:
        stopped = True
    finally:
        P.perturbed_labels, S.join_parts, S.atomic_write = orig_perturbed, orig_join, orig_write
    wall = time.perf_counter() - t_start
    shards = Shards()
    if stopped:  # join what this run wrote, as the end of a whole run would (rank 0)
        parts = sorted(S.parts_path(cfg["out"]).glob("part-*.fits"))
        shards.wait()
        if shards.is_main and parts:
            with clock(totals, "join", None):
                S.join_parts(parts, Path(cfg["out"]).with_suffix(".partial.fits"), {})
    cat_s = totals.get("rows", 0.0) - totals.get("predict", 0.0) + totals.get("write", 0.0)
    return {"rank": shards.rank, "world": shards.world, "spectra": counts["spectra"],
            "parts": counts["parts"], "wall_s": wall, "stopped": stopped,
            "read_s": totals.get("read", 0.0), "preprocess_s": totals.get("preprocess", 0.0),
            "predict_s": totals.get("predict", 0.0), "catalogue_s": cat_s,
            "join_s": totals.get("join", 0.0), "peak_rss_mib": peak_rss_mib()}


# --------------------------------------------------------------------------- driver
def run_procs(procs: int, cfg: dict, tmp: Path) -> list[dict]:
    """The worker under ``torchrun --nproc_per_node procs`` (or in a subprocess for 1)."""
    cfg = {**cfg, "out": str(tmp / f"cat-{procs}.fits")}
    cfg_path = tmp / f"cfg-{procs}.json"
    cfg_path.write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"]),
           "MKL_NUM_THREADS": str(cfg["threads"])}
    script = [str(Path(__file__).resolve()), "--worker", str(cfg_path)]
    cmd = ([sys.executable, *script] if procs == 1 else
           [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={procs}", *script])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{procs} process(es) failed:\n{proc.stderr[-3000:]}")
    return [json.loads(line[len("SURVEY "):]) for line in proc.stdout.splitlines()
            if line.startswith("SURVEY ")]


def summarise(procs: int, ranks: list[dict], n: int, R: int) -> dict:
    spectra = sum(r["spectra"] for r in ranks)
    wall = max(r["wall_s"] for r in ranks)
    rate = spectra / wall if wall > 0 else float("nan")
    row = {"procs": procs, "spectra": spectra, "wall_s": wall, "total_per_s": rate,
           "hours_1e6": 1e6 / rate / 3600, "hours_n": n / rate / 3600,
           "peak_rss_mib": max(r["peak_rss_mib"] for r in ranks), "realizations": R}
    for stage in STAGES:  # per process, then summed over processes: the stage's capacity
        secs = [r[f"{stage}_s"] for r in ranks]
        row[f"{stage}_per_s"] = sum(r["spectra"] / s for r, s in zip(ranks, secs, strict=True)
                                    if s > 0)
    row["join_s"] = max(r["join_s"] for r in ranks)
    return row


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        cfg = json.loads(Path(args.worker).read_text())
        print("SURVEY " + json.dumps(worker(cfg)), flush=True)
        return {}
    from yso_labels.core.runtime import resolve_device

    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    chunk = args.chunk_size or (4096 if gpu else 64)
    info = host_info(dev)
    print_host("Survey dry run: simulated spectra → catalogue", info)
    sim, labels = _distinct(args.n_distinct, args.seed, None)
    flux = sim.flux.astype(np.float32)
    prep = untrained_preprocess(flux, sim.error.astype(np.float32), labels)
    rows = []
    with tempfile.TemporaryDirectory(prefix="survey-") as tmp:
        tmp = Path(tmp)
        model = untrained_checkpoint(tmp / "model.pt", prep, labels, seed=args.seed)
        cfg = {"model": str(model), "device": args.device, "realizations": args.realizations,
               "seed": args.seed, "chunk_size": chunk, "n": args.n,
               "batch_size": args.batch_size, "threads": args.threads, "amp": args.amp,
               "compile": args.compile,
               "n_distinct": args.n_distinct, "max_seconds": args.max_seconds}
        print(f"{args.n} spectra planned in parts of {chunk}; {args.realizations} draws; "
              f"each process stops after {args.max_seconds:g} s; {args.threads} torch "
              f"thread(s) per process; amp {args.amp}; untrained APOGEE Net (speed only)")
        ranks_by = {}
        for procs in args.procs:
            ranks_by[procs] = run_procs(procs, cfg, tmp)
            rows.append(summarise(procs, ranks_by[procs], args.n, args.realizations))
    print(f"\nspectra per second ({dev.type}); stage rates summed over processes; "
          "hours extrapolated from the measured end-to-end rate")
    print_table(rows, [("procs", "procs", "d"), ("spectra", "spectra", "d"),
                       ("wall_s", "wall s", ".1f"), ("read_per_s", "read/s", ".0f"),
                       ("preprocess_per_s", "preproc/s", ".0f"),
                       ("predict_per_s", f"predict({args.realizations})/s", ".2f"),
                       ("catalogue_per_s", "catalogue/s", ".0f"),
                       ("total_per_s", "end-to-end/s", ".2f"),
                       ("hours_1e6", "h for 1e6", ".1f"),
                       ("peak_rss_mib", "peak RSS MiB", ".0f")])
    if len(rows) > 1:
        print(f"\n{rows[-1]['procs']} vs {rows[0]['procs']} process(es): "
              f"{rows[-1]['total_per_s'] / rows[0]['total_per_s']:.2f}× the end-to-end rate")
    result = {"host": info, "options": vars(args), "rows": rows,
              "ranks": {str(k): v for k, v in ranks_by.items()}}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
