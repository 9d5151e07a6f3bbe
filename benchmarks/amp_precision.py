#!/usr/bin/env python
"""Mixed precision (``--amp bf16|fp16``) against float32: its effect on the catalogue's labels,
σ and OOD score, and its speed, on the same spectra in the same run.

The same simulated spectra (The Payne's emulator when ``../shared/data/payne`` has it, else
the analytic fallback; tiled with fresh noise) go through APOGEE Net's catalogue rows
(:func:`apogee_net.inference.predict.catalog_rows`: 100 perturbed draws, §3.5) once in
float32 and once under each autocast precision (:func:`yso_labels.core.runtime.autocast`,
what ``apogee-net predict --amp`` does), with the same seeds, so the noise draws are
identical and every difference comes from the precision. Printed per label: the median
and 99th percentile of |Δ label| in units of the float32 σ, of |Δσ|/σ, and the change of
the OOD flag. A difference well below σ leaves the catalogue's science unchanged.

``--model``: a trained APOGEE Net checkpoint (recommended: an untrained network's labels and
σ are meaningless, though its rounding is representative); default an untrained network
with the standardisation fitted on the spectra.

    python benchmarks/amp_precision.py [--model RUN/model.pt] [--n 64] [--realizations 100]
        [--amp bf16 fp16] [--device auto] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    host_info,
    print_host,
    print_table,
    simulated_spectra,
    sync,
    untrained_checkpoint,
    untrained_preprocess,
    write_json,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="trained APOGEE Net checkpoint")
    p.add_argument("--n", type=int, default=64, help="spectra")
    p.add_argument("--realizations", type=int, default=100)
    p.add_argument("--amp", nargs="+", default=None, choices=("bf16", "fp16"),
                   help="default bf16 on CPU (fp16 autocast on a CPU is emulated: ~10× slower "
                   "than float32), bf16 fp16 on GPU")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from apogee_net.inference.chunks import SpectraChunk
    from apogee_net.inference.predict import catalog_rows, load_model
    from yso_labels.core.runtime import autocast, resolve_device

    args = parse_args(argv)
    dev = resolve_device(args.device)
    info = host_info(dev)
    print_host("Mixed precision vs float32: labels, σ, OOD", info)
    sp = simulated_spectra(args.n, min(args.n, 64), args.seed)
    n = len(sp.flux)
    chunk = SpectraChunk(sp.flux, sp.error, [f"S{i}" for i in range(n)], sp.ra, sp.dec,
                         sp.snr.astype(float), np.ones(n, bool), ["apo25m"] * n, [""] * n)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            prep = untrained_preprocess(sp.flux, sp.error, sp.labels)
            path = untrained_checkpoint(Path(tmp) / "model.pt", prep, sp.labels)
            print("NOTE: untrained network (no --model): rounding is representative, the "
                  "labels are not")
        lm = load_model(path, device=dev)
    names = lm.label_names
    runs, secs = {}, {}
    amps = args.amp or (["bf16", "fp16"] if dev.type == "cuda" else ["bf16"])
    for amp in ("none", *amps):
        try:
            sync(dev)
            t0 = time.perf_counter()
            with autocast(dev, amp):
                runs[amp] = catalog_rows(lm, chunk, args.realizations, 0, args.batch_size)
            sync(dev)
            secs[amp] = time.perf_counter() - t0
        except RuntimeError as exc:  # a precision this device does not support
            print(f"{amp}: not run ({exc})"[:200])
    ref = runs["none"]
    rows = []
    for amp, cat in runs.items():
        if amp == "none":
            continue
        for name in names:
            sig = np.asarray(ref[f"{name}_err"], float)
            d = np.abs(np.asarray(cat[name], float) - np.asarray(ref[name], float)) / sig
            ds = np.abs(np.asarray(cat[f"{name}_err"], float) / sig - 1)
            rows.append({"amp": amp, "label": name, "dlabel_med": np.median(d),
                         "dlabel_p99": np.percentile(d, 99), "dsigma_med": np.median(ds),
                         "dsigma_p99": np.percentile(ds, 99),
                         "sigma_med": float(np.median(sig))})
        flags_changed = int(np.sum(np.asarray(cat["flags"]) != np.asarray(ref["flags"])))
        ood = np.abs(np.asarray(cat["ood_score"], float) - np.asarray(ref["ood_score"], float))
        print(f"{amp}: {secs[amp]:.1f} s vs float32 {secs['none']:.1f} s "
              f"({secs['none'] / secs[amp]:.2f}× speed); flags changed in {flags_changed} of "
              f"{n} rows; median |Δ ood_score| "
              f"{np.nanmedian(ood) if np.isfinite(ood).any() else float('nan'):.2g}")
    print(f"\n{n} spectra × {args.realizations} draws on {dev.type}; Δ in units of the "
          "float32 σ of each star")
    print_table(rows, [("amp", "amp", "s"), ("label", "label", "s"),
                       ("sigma_med", "median σ", ".3g"), ("dlabel_med", "|Δlabel|/σ med", ".3f"),
                       ("dlabel_p99", "p99", ".3f"), ("dsigma_med", "|Δσ|/σ med", ".3f"),
                       ("dsigma_p99", "p99", ".3f")])
    result = {"host": info, "options": vars(args), "rows": rows, "seconds": secs}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
