#!/usr/bin/env python
"""APOGEE Net inference speed: plain prediction, the 100-realization uncertainty and the
naive baseline, on the same spectra in the same run (Olney et al. 2020 §3.5).

Three ways of getting labels for the same simulated apStar spectra:

- plain: :func:`apogee_net.inference.uncertainty.perturbed_predict` with ``n_realizations=0`` (one
  forward pass per star, from NumPy arrays: on a GPU the host-to-device copy is included),
  over the stars tiled to ``--plain-rows`` rows so that every batch is full;
- forward: the same rows already on the device, preprocessing + network only
  (:func:`apogee_net.inference.uncertainty.forward_realizations` with one realization): the
  reference "R plain forward passes over the same stars";
- uncertainty: ``perturbed_predict`` with ``--realizations`` (100) perturbed copies per
  star, stars × realizations batched in forward passes of at most ``chunk_rows`` rows;
- naive: :func:`apogee_net.testing.reference.naive_perturbed_predict`, the paper's listing style
  (one realization of one star per forward pass), on the first ``--n-naive`` stars.

The model is an untrained APOGEENet (random weights; speed does not depend on them) with
the standardisation fitted on the spectra. The sweep covers ``chunk_rows`` (rows per
forward pass) and torch thread counts; runs are interleaved (best of ``--repeats``).
Ratios printed: uncertainty vs naive, in stars per second (goal ≥ 3), and the time of the
uncertainty over the time of R forward passes over the same stars at the same batch size,
``t_unc / (n_stars × R / forward rows per second)`` (goal ≤ 1.3).

    python benchmarks/inference.py [--n-stars 32] [--realizations 100] [--device auto]
        [--chunk-rows 16 32 64 128 256] [--threads 1 2 all] [--json OUT.json]

On a GPU the defaults become 512 stars, chunk rows 256…4096 and one thread setting, and a
bf16-autocast row is added (``--no-amp`` drops it); ``--compile`` adds torch.compile.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np
import torch
from _common import (
    best_of,
    host_info,
    print_host,
    print_table,
    set_threads,
    simulated_spectra,
    thread_counts,
    untrained_model,
    untrained_preprocess,
    write_json,
)

from apogee_net.inference.uncertainty import (
    default_chunk_rows,
    forward_realizations,
    perturbed_predict,
)
from apogee_net.testing.reference import naive_perturbed_predict
from yso_labels.core.runtime import resolve_device

CPU_CHUNKS, GPU_CHUNKS = (16, 32, 64, 128, 256), (256, 1024, 2048, 4096)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-stars", type=int, default=None,
                   help="stars for the uncertainty (default 16 on CPU, 512 on GPU)")
    p.add_argument("--n-naive", type=int, default=8, help="stars for the naive loop")
    p.add_argument("--realizations", type=int, default=100)
    p.add_argument("--plain-rows", type=int, default=None,
                   help="rows of the plain prediction (default 4 × the largest chunk)")
    p.add_argument("--chunk-rows", type=int, nargs="+", default=None,
                   help=f"rows per forward pass (default CPU {CPU_CHUNKS}, GPU {GPU_CHUNKS})")
    p.add_argument("--threads", nargs="+", default=None,
                   help="torch thread counts, e.g. 1 2 all (default: 1 2 all on CPU, all "
                   "on GPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-amp", action="store_true", help="GPU: skip the bf16 autocast row")
    p.add_argument("--compile", action="store_true", help="add a torch.compile row")
    p.add_argument("--n-distinct", type=int, default=64, help="distinct simulated spectra")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the numbers here")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    n = args.n_stars or (512 if gpu else 16)
    n_naive = min(args.n_naive, n)
    R = args.realizations
    chunks = sorted(set(args.chunk_rows or (GPU_CHUNKS if gpu else CPU_CHUNKS)))
    threads = thread_counts(args.threads or (["all"] if gpu else ["1", "2", "all"]))
    plain_rows = args.plain_rows or 4 * max(chunks)
    if R < 1:
        raise SystemExit("--realizations must be ≥ 1")
    set_threads(max(threads))
    info = host_info(dev)
    print_host("APOGEE Net inference: plain, uncertainty, naive", info)

    spectra = simulated_spectra(n, min(args.n_distinct, n), args.seed)
    prep = untrained_preprocess(spectra.flux, spectra.error, spectra.labels)
    model = untrained_model(seed=args.seed).to(dev).eval()
    flux, error = spectra.flux, spectra.error
    reps = -(-plain_rows // n)
    plain_f = np.tile(flux, (reps, 1))[:plain_rows]
    plain_e = np.tile(error, (reps, 1))[:plain_rows]
    dev_f, dev_e = torch.from_numpy(plain_f).to(dev), torch.from_numpy(plain_e).to(dev)
    print(f"{n} stars × {R} realizations (untrained APOGEENet, random weights: speed only); "
          f"plain over {plain_rows} rows; naive over {n_naive} stars; default chunk_rows on "
          f"{dev.type}: {default_chunk_rows(dev)}")

    extra: dict[str, torch.nn.Module] = {}
    if args.compile:
        try:
            compiled = torch.compile(model)
            perturbed_predict(compiled, flux[:2], error[:2], prep, n_realizations=R,
                              chunk_rows=max(chunks))
            extra["compile"] = compiled
        except Exception as exc:  # noqa: BLE001 - report and go on without it
            print(f"torch.compile failed, skipped: {type(exc).__name__}: {exc}"[:300])
    amp = gpu and not args.no_amp and torch.cuda.is_bf16_supported()

    def autocast(on: bool):
        return (torch.autocast("cuda", dtype=torch.bfloat16) if on
                else contextlib.nullcontext())

    def job(kind: str, c: int, net=model, bf16: bool = False):
        def run():
            with autocast(bf16):
                if kind == "plain":
                    perturbed_predict(net, plain_f, plain_e, prep, n_realizations=0,
                                      chunk_rows=c)
                elif kind == "forward":
                    z = forward_realizations(
                        net, lambda a, b: prep.inputs(dev_f[a:b], dev_e[a:b]), plain_rows, 1, c)
                    prep.labels(z[:, 0].double())
                else:
                    perturbed_predict(net, flux, error, prep, n_realizations=R, seed=args.seed,
                                      chunk_rows=c)
        return run

    rows, naive_rates = [], {}
    for t in threads:
        set_threads(t)
        # warm-up: allocator, oneDNN/cuDNN primitives of each batch shape
        for c in chunks:
            perturbed_predict(model, flux[:2], error[:2], prep, n_realizations=R, chunk_rows=c)
        fns = {}
        for c in chunks:
            for kind in ("plain", "forward", "unc"):
                fns[f"{kind} {c}"] = job(kind, c)
        variants = {"fp32": (model, False)}
        if amp:
            variants["bf16 autocast"] = (model, True)
        for name, net in extra.items():
            variants[name] = (net, False)
        c_var = default_chunk_rows(dev) if default_chunk_rows(dev) in chunks else max(chunks)
        for name, (net, bf16) in variants.items():
            if name != "fp32":
                for kind in ("plain", "forward", "unc"):
                    fns[f"{kind} {c_var} {name}"] = job(kind, c_var, net, bf16)
        fns["naive"] = lambda: naive_perturbed_predict(model, flux[:n_naive], error[:n_naive],
                                                       prep, n_realizations=R, seed=args.seed)
        times = best_of(fns, repeats=args.repeats, device=dev)
        naive = n_naive / times["naive"]
        naive_rates[t] = naive
        for name in variants:
            for c in (chunks if name == "fp32" else [c_var]):
                suffix = "" if name == "fp32" else f" {name}"
                plain = plain_rows / times[f"plain {c}{suffix}"]
                fwd = plain_rows / times[f"forward {c}{suffix}"]
                unc = n / times[f"unc {c}{suffix}"]
                rows.append({"threads": t, "variant": name, "chunk_rows": c,
                             "default": "*" if c == default_chunk_rows(dev) else "",
                             "plain_per_s": plain, "forward_per_s": fwd, "unc_per_s": unc,
                             "naive_per_s": naive, "unc_vs_naive": unc / naive,
                             "unc_over_R_plain": (n / unc) / (n * R / fwd)})
    print(f"\nspectra per second ({dev}, best of {args.repeats} interleaved runs); "
          f"unc/naive: goal ≥ 3; unc time / {R} forward passes: goal ≤ 1.3")
    print_table(rows, [("threads", "threads", "d"), ("variant", "variant", "s"),
                       ("chunk_rows", "chunk_rows", "d"), ("default", "dflt", "s"),
                       ("plain_per_s", "plain/s", ".1f"), ("forward_per_s", "forward/s", ".1f"),
                       ("unc_per_s", f"{R}-real. unc/s", ".3f"),
                       ("naive_per_s", "naive/s", ".3f"), ("unc_vs_naive", "unc/naive", ".2f"),
                       ("unc_over_R_plain", f"unc/({R}×fwd)", ".2f")])
    best = max(rows, key=lambda r: r["unc_per_s"])
    default = [r for r in rows if r["default"] and r["variant"] == "fp32"
               and r["threads"] == max(threads)]
    print(f"\nbest: {best['variant']}, {best['threads']} thread(s), chunk_rows "
          f"{best['chunk_rows']}: {best['unc_per_s']:.3f} stars/s with {R} realizations = "
          f"{best['unc_vs_naive']:.2f}× the naive loop at the same threads "
          f"(goal ≥ 3: {'met' if best['unc_vs_naive'] >= 3 else 'NOT met'}), "
          f"{best['unc_over_R_plain']:.2f}× the time of {R} forward passes "
          f"(goal ≤ 1.3: {'met' if best['unc_over_R_plain'] <= 1.3 else 'NOT met'})")
    if default:
        d = default[0]
        print(f"library default (chunk_rows {d['chunk_rows']}, {d['threads']} threads): "
              f"{d['unc_per_s']:.3f} stars/s, {d['unc_vs_naive']:.2f}× naive, "
              f"{d['unc_over_R_plain']:.2f}× {R} forward passes")
    result = {"host": info, "options": {**vars(args), "n_stars": n, "n_naive": n_naive,
                                        "chunk_rows": chunks, "threads": threads,
                                        "plain_rows": plain_rows},
              "rows": rows, "best": best}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
