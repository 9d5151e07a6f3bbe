"""``apogee-net demo``: the whole pipeline on built-in data, offline, in minutes on a CPU.

1. M-dwarf labels (Hejazi/Mann/Veyette, ``released`` set) for a built-in photometry sample;
2. YSO labels: synthetic PARSEC population (packaged grid) → photometric CNN → predictions
   for built-in YSO photometry;
3. merge with a built-in Payne-format catalogue (trust region, splits);
4. simulated apStar spectra for every labelled star (The Payne emulator when it can be found,
   else the analytic fallback, said loudly), ingested into an HDF5 store;
5. APOGEE Net training, stratified adaptation, evaluation (Tables 2–3, σ calibration
   stored in the model), a catalogue with perturbation uncertainties;
6. YSO selection and report (figures).

The built-in inputs (``apogee_net/data/demo/``) are synthetic, made by
``scripts/make_demo_data.py`` from the packaged PARSEC grid.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from astropy.table import Table

from apogee_net.options import DemoOptions
from yso_labels.core.options import resolve_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSize:
    """Sample sizes and training lengths of a demo run."""

    n_payne: int
    n_mstar: int
    n_yso: int
    n_synth: int
    photcnn_epochs: int
    max_epochs: int
    patience: int
    adapt_rounds: int
    adapt_epochs: int
    eval_realizations: int  # for the evaluation report and σ calibration
    realizations: int  # for the catalogue


SIZES = {
    "quick": DemoSize(n_payne=500, n_mstar=150, n_yso=150, n_synth=6000, photcnn_epochs=40,
                      max_epochs=10, patience=3, adapt_rounds=2, adapt_epochs=4,
                      eval_realizations=10, realizations=20),
    "full": DemoSize(n_payne=900, n_mstar=250, n_yso=250, n_synth=15000, photcnn_epochs=80,
                     max_epochs=20, patience=4, adapt_rounds=3, adapt_epochs=6,
                     eval_realizations=30, realizations=100),
}


def demo_file(name: str) -> Path:
    """Path of a built-in demo input."""
    path = Path(str(resources.files("apogee_net").joinpath("data/demo", name)))
    if not path.exists():
        raise FileNotFoundError(f"built-in demo input {path} is missing (reinstall the "
                                "package or run scripts/make_demo_data.py)")
    return path


def _subset(table: Table, n: int, seed: int) -> Table:
    if len(table) <= n:
        return table
    idx = np.sort(np.random.default_rng(seed).choice(len(table), n, replace=False))
    return table[idx]


def run_demo(out, options: DemoOptions | None = None, **kwargs) -> dict:
    """Run the demo into directory ``out``; returns a dict of the products' paths and the
    headline numbers. The options are :class:`apogee_net.options.DemoOptions`, given as
    ``options`` or as keyword arguments of the same names."""
    from apogee_net.evaluation.report import evaluate_model, format_report
    from apogee_net.inference.predict import predict_catalog
    from apogee_net.network.adapt import adapt, format_test_report
    from apogee_net.network.train import train_apogee_net
    from apogee_net.spectra.ingest import ingest_apstar
    from apogee_net.spectra.simulate import resolve_emulator, simulate_apstar
    from apogee_net.yso.report import report as yso_report
    from yso_labels.cli.labels import run_mdwarf, run_merge
    from yso_labels.core.tables import read_table, write_table
    from yso_labels.payne import read_payne
    from yso_labels.photcnn import run_predict, train_photcnn
    from yso_labels.synthetic import synth

    o = resolve_options(DemoOptions, options, kwargs)
    size = SIZES["quick" if o.quick else "full"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str, t_start: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t_start, 1)
        print(f"[demo] {name}: {timings[name]:.1f} s", flush=True)
        return now

    t = t0
    # 1. M dwarfs
    phot = _subset(read_table(demo_file("mdwarf_photometry.csv")), size.n_mstar + 40, o.seed)
    write_table(phot, out / "mdwarf_photometry.fits")
    run_mdwarf(out / "mdwarf_photometry.fits", out / "mdwarf_labels.fits", select=True)
    t = step("M-dwarf labels", t)
    # 2. YSOs
    synth(size.n_synth, o.seed, out / "synthetic_train.fits")
    train_photcnn(out / "synthetic_train.fits", out / "photcnn.pt", seed=o.seed,
                  epochs=size.photcnn_epochs, device=o.device)
    yso_phot = _subset(read_table(demo_file("yso_photometry.csv")), size.n_yso, o.seed)
    write_table(yso_phot, out / "yso_photometry.fits")
    run_predict(out / "photcnn.pt", out / "yso_photometry.fits", out / "yso_labels.fits",
                device=o.device)
    t = step("YSO labels (synthetic population, photometric CNN)", t)
    # 3. merge
    payne = out / "payne_catalogue.txt"
    lines = demo_file("payne_catalogue.txt").read_text().splitlines()
    keep = np.sort(np.random.default_rng(o.seed).choice(len(lines) - 1,
                                                      min(size.n_payne, len(lines) - 1),
                                                      replace=False)) + 1
    payne.write_text("\n".join([lines[0]] + [lines[i] for i in keep]) + "\n")
    labels = run_merge(str(payne), str(out / "labels.fits"), mstar=str(out / "mdwarf_labels.fits"),
                       yso=str(out / "yso_labels.fits"), seed=o.seed)
    t = step("merged label table", t)
    # 4. spectra
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said below, once, in capitals
        emu = resolve_emulator(o.emulator)
    if emu is None:
        msg = ("THE PAYNE EMULATOR WAS NOT FOUND: the demo spectra come from the ANALYTIC "
               "FALLBACK (continuum + absorption lines), not from The Payne. Set "
               "YSO_PAYNE_DIR or pass --emulator NN_unnormalized_spectra.npz for realistic "
               "spectra (scripts/fetch_payne_emulator.py downloads it).")
        print("[demo] WARNING: " + msg, flush=True)
        log.warning(msg)
    positions = {}
    for name in ("mdwarf_labels.fits", "yso_labels.fits"):
        tab = read_table(out / name)
        positions.update(zip(tab["apogee_id"], zip(tab["ra"], tab["dec"], strict=True),
                             strict=True))
    pt = read_payne(payne)
    positions.update(zip(pt["apogee_id"], zip(pt["ra"], pt["dec"], strict=True), strict=True))
    sim = Table(labels[["apogee_id", "teff", "logg", "fe_h"]])
    sim["ra"] = [positions[i][0] for i in sim["apogee_id"]]
    sim["dec"] = [positions[i][1] for i in sim["apogee_id"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-range labels are extrapolated and flagged
        simulate_apstar(sim, out / "spectra", emulator=emu if emu is not None else "analytic",
                        snr=(30, 200), seed=o.seed, out_of_range="extrapolate")
    ingest_apstar(out / "spectra", out / "store.h5")
    t = step(f"{len(sim)} simulated apStar spectra, ingested", t)
    # 5. APOGEE Net
    run = out / "run"
    train_apogee_net(out / "store.h5", out / "labels.fits", run, max_epochs=size.max_epochs,
                     patience=size.patience, seed=o.seed, device=o.device,
                     resume=(run / "last.pt").exists())
    t = step("APOGEE Net training", t)
    adapt_log = adapt(run, out / "run_adapted", seed=o.seed, max_rounds=size.adapt_rounds,
                      max_epochs=size.adapt_epochs, device=o.device)
    print(format_test_report(adapt_log.meta["test_report"], adapt_log.meta["label_names"]),
          flush=True)
    t = step("stratified adaptation", t)
    model = out / "run_adapted" / "model.pt"
    summary = evaluate_model(model, out / "store.h5", out / "labels.fits", out / "evaluation",
                             realizations=size.eval_realizations, seed=o.seed,
                             device=o.device, apply_calibration=True)
    print(format_report(summary), flush=True)
    t = step("evaluation and sigma calibration", t)
    catalog = predict_catalog(model, [out / "store.h5"], out / "catalog.fits",
                              realizations=size.realizations, device=o.device, seed=o.seed)
    t = step("catalogue with uncertainties", t)
    ysos = yso_report(catalog, out / "ysos")
    t = step("YSO selection and report", t)
    timings["total"] = round(time.perf_counter() - t0, 1)
    result = {"catalog": str(catalog), "labels": str(out / "labels.fits"),
              "model": str(model), "evaluation": str(out / "evaluation"),
              "ysos": str(out / "ysos"), "spectra_model": "analytic" if emu is None else "payne",
              "size": asdict(size), "timings_s": timings,
              "yso_candidates": ysos.get("n_candidates") if isinstance(ysos, dict) else None}
    (out / "demo_summary.json").write_text(json.dumps(result, indent=1, default=str))
    return result
