"""Helpers shared by the benchmark scripts (not a test, not part of the package).

- :func:`host_info` / :func:`print_host`: what the numbers were measured on (torch version,
  device and GPU name, CPU count, torch threads, load average); printed at the top of every
  script and recorded in its JSON output.
- :func:`best_of`: best (minimum) wall time of several functions whose runs are interleaved
  (round *r* runs each once), so a change in the machine's load hits all of them alike.
- :func:`simulated_blocks`, :func:`simulated_spectra`, :func:`build_store`: many simulated
  apStar-grid spectra quickly: a few hundred distinct spectra (Payne emulator from
  ``../shared/data/payne`` when present, else the analytic fallback) tiled with fresh noise.
- :func:`untrained_preprocess`, :func:`untrained_checkpoint`: an APOGEE Net with random
  weights and a standardisation fitted on the spectra, enough to time inference.

Scripts import this module as ``_common`` (``python benchmarks/x.py`` puts ``benchmarks/``
on ``sys.path``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
EMULATOR = REPO.parent / "shared" / "data" / "payne" / "NN_unnormalized_spectra.npz"


# --------------------------------------------------------------------------- host
def emulator() -> str:
    """The Payne emulator file when present, else ``"analytic"`` (the fallback)."""
    return str(EMULATOR) if EMULATOR.exists() else "analytic"


def all_threads() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_counts(spec: Sequence[str]) -> list[int]:
    """``["1", "2", "all"]`` → distinct thread counts in order (``all``: every usable core)."""
    out: list[int] = []
    for s in spec:
        n = all_threads() if str(s) == "all" else int(s)
        if n < 1:
            raise ValueError(f"thread count must be ≥ 1 or 'all', got {s!r}")
        if n not in out:
            out.append(n)
    return out


def set_threads(n: int | None) -> int:
    """``torch.set_num_threads`` (``None``: every usable core); returns the count in use."""
    torch.set_num_threads(int(n) if n else all_threads())
    return torch.get_num_threads()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Description of the machine and software the numbers come from (JSON-able)."""
    from yso_labels import __version__

    device = torch.device(device)
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "toolkit": __version__, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "usable_cores": all_threads(),
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "device": str(device), "device_name": _cpu_name(),
        "cuda": torch.version.cuda, "emulator": Path(emulator()).name,
        "argv": sys.argv,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    gpu_count=torch.cuda.device_count(),
                    cudnn=torch.backends.cudnn.version(),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def print_host(title: str, info: Mapping[str, Any]) -> None:
    """One header block: the script's title and where it runs."""
    print(f"== {title} ==")
    print(f"toolkit {info['toolkit']}, torch {info['torch']}, python {info['python']}; "
          f"device {info['device']} ({info['device_name']}"
          + (f", {info['gpu_memory_gib']} GiB" if "gpu_memory_gib" in info else "") + ")")
    print(f"CPU: {info['cpu']}; {info['cpu_count']} CPUs ({info['usable_cores']} usable), "
          f"torch threads {info['torch_threads']}, load average {info['loadavg_1min']}; "
          f"spectra: {info['emulator']}")
    if info["loadavg_1min"] and info["loadavg_1min"] > 0.5 * info["usable_cores"]:
        print("NOTE: the machine is busy (load average above half its cores): timings are "
              "noisy and multi-thread numbers suffer most (an OpenMP barrier waits for a "
              "descheduled thread)")


def write_json(path: str | os.PathLike | None, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (nothing when ``path`` is None)."""
    if not path:
        return
    from yso_labels.core.atomic import write_text

    final = write_text(path, json.dumps(payload, indent=1, default=_jsonable))
    print(f"wrote {final}")


def _jsonable(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]
                ) -> None:
    """Print ``rows`` as a fixed-width table; ``columns``: (key, header, format spec)."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else format(row[k], f)
                      for k, _, f in columns])
    widths = [max(len(c[j]) for c in cells) for j in range(len(columns))]
    for i, line in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------- timing
def sync(device: torch.device | str | None) -> None:
    """Wait for queued GPU work (timings on CUDA must include it)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fns: Mapping[str, Callable[[], Any]], repeats: int = 3, warmup: int = 0,
            device: torch.device | str | None = None) -> dict[str, float]:
    """Best (minimum) wall time in seconds of each function over ``repeats`` rounds.

    Runs are interleaved: every round calls each function once, the order rotated by one
    each round, so load changes on a shared machine hit all of them alike. ``warmup``
    untimed rounds come first. GPU work is synchronised before each clock read.
    """
    names = list(fns)
    best = {k: float("inf") for k in names}
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            dt = time.perf_counter() - t0
            if r >= warmup:
                best[name] = min(best[name], dt)
    return best


def peak_rss_mib() -> float:
    """Peak resident memory of this process (MiB): ``VmHWM`` of /proc/self/status, else
    ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def current_rss_mib() -> float:
    """Resident memory of this process now (MiB; ``VmRSS``), NaN where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --------------------------------------------------------------------------- spectra
#: Label columns of the benchmark tables, in APOGEE Net's output order.
LABELS = ("logg", "teff", "fe_h")


@dataclass
class Block:
    """A block of simulated spectra: rows ``start:start + len(flux)`` of the whole set."""

    start: int
    flux: np.ndarray    # (m, 8575) float32, NaN where no data
    error: np.ndarray   # (m, 8575) float32
    labels: np.ndarray  # (m, 3) logg, teff, fe_h
    snr: np.ndarray
    ra: np.ndarray
    dec: np.ndarray


def _distinct(n_distinct: int, seed: int, emu: str | None):
    from apogee_net_recovery import draw_labels

    from apogee_net.spectra.simulate import simulate_spectra

    labels = draw_labels(n_distinct, seed)  # Teff, log g, [Fe/H], [α/Fe]
    sim = simulate_spectra(labels, emulator=emu or emulator(), seed=seed, keep_truth=True)
    return sim, np.column_stack([labels[:, 1], labels[:, 0], labels[:, 2]])


def simulated_blocks(n: int, n_distinct: int = 256, seed: int = 0, block: int = 1024,
                     emu: str | None = None) -> Iterator[Block]:
    """``n`` spectra in blocks of ``block`` rows: row ``i`` is distinct spectrum
    ``i mod n_distinct`` (its noiseless flux and σ) with fresh Gaussian noise
    (generator seeded by ``(seed, block index)``); the first ``n_distinct`` rows are the
    simulated spectra themselves. Simulating 256 spectra takes about a second; tiling 50k
    rows a few seconds more."""
    n_distinct = max(1, min(n_distinct, n))
    sim, labels = _distinct(n_distinct, seed, emu)
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        base = rows % n_distinct
        rng = np.random.default_rng([seed, 7, start // block])
        noise = rng.standard_normal((len(rows), sim.truth.shape[1]), dtype=np.float32)
        flux = np.where(rows[:, None] < n_distinct, sim.flux[base],
                        sim.truth[base] + sim.error[base] * noise).astype(np.float32)
        yield Block(start, flux, sim.error[base], labels[base], sim.snr[base], sim.ra[base],
                    sim.dec[base])


def simulated_spectra(n: int, n_distinct: int = 256, seed: int = 0, emu: str | None = None
                      ) -> Block:
    """All ``n`` rows of :func:`simulated_blocks` in memory (for small ``n``)."""
    blocks = list(simulated_blocks(n, n_distinct, seed, emu=emu))
    return Block(0, *(np.concatenate([getattr(b, k) for b in blocks])
                      for k in ("flux", "error", "labels", "snr", "ra", "dec")))


def split_column(n: int, fractions: tuple[float, float, float] = (0.9, 0.1, 0.0),
                 seed: int = 0) -> np.ndarray:
    """Random train/dev/test assignment of ``n`` rows with the given fractions."""
    split = np.full(n, "train", dtype="U5")
    perm = np.random.default_rng([seed, 11]).permutation(n)
    n_dev, n_test = int(round(fractions[1] * n)), int(round(fractions[2] * n))
    split[perm[:n_dev]] = "dev"
    split[perm[n_dev:n_dev + n_test]] = "test"
    return split


def build_store(path: str | os.PathLike, n: int, n_distinct: int = 256, seed: int = 0,
                fractions: tuple[float, float, float] = (0.9, 0.1, 0.0),
                emu: str | None = None):
    """Write a store of ``n`` simulated spectra (:func:`simulated_blocks`) to ``path`` and
    return ``(path, labels)``: the label table (``apogee_id, logg, teff, fe_h, source,
    split``) that ``apogee-net train`` takes."""
    from astropy.table import Table

    from apogee_net.spectra.apstar import NPIX, apstar_wavelength
    from apogee_net.spectra.store import StoreWriter

    path = Path(path)
    ids = np.array([f"2MBENCH{i:08d}" for i in range(n)])
    labels = np.empty((n, 3))
    t0 = time.perf_counter()
    with StoreWriter(path, NPIX, apstar_wavelength(), "apstar",
                     {"simulated": emu or emulator(), "tiled_from": n_distinct},
                     overwrite=True) as writer:
        for b in simulated_blocks(n, n_distinct, seed, emu=emu):
            m = len(b.flux)
            sl = slice(b.start, b.start + m)
            writer.append(b.flux, b.error, np.zeros((m, NPIX), np.int32), ids[sl], b.snr,
                          b.ra, b.dec, [f"bench:{i}" for i in ids[sl]])
            labels[sl] = b.labels
    table = Table({"apogee_id": ids, **{k: labels[:, j] for j, k in enumerate(LABELS)},
                   "source": np.full(n, "payne" if emulator() != "analytic" else "analytic"),
                   "split": split_column(n, fractions, seed)})
    print(f"built a store of {n} spectra ({min(n, n_distinct)} distinct, tiled with fresh "
          f"noise) in {time.perf_counter() - t0:.1f} s: {path.stat().st_size / 2**30:.2f} GiB")
    return path, table


# --------------------------------------------------------------------------- models
def untrained_preprocess(flux: np.ndarray, error: np.ndarray, labels: np.ndarray,
                         flux_norm: str = "median"):
    """APOGEE Net's standardisation fitted on these spectra and labels (as
    ``train_apogee_net`` does on its training split)."""
    from apogee_net.network.model import Preprocess, scale_flux
    from yso_labels.core.scaling import Moments, Standardiser

    moments = Moments(flux.shape[1])
    moments.add(scale_flux(torch.from_numpy(flux), torch.from_numpy(error), flux_norm).numpy())
    return Preprocess(moments.standardiser(empty_ok=True), Standardiser.fit(labels), flux_norm)


def untrained_model(npix: int = 8575, seed: int = 0):
    """APOGEE Net with its initial (random, seeded) weights: speed does not depend on them."""
    from apogee_net.network.model import APOGEENet

    torch.manual_seed(seed)
    return APOGEENet(in_channels=1, n_targets=len(LABELS), npix=npix)


def untrained_checkpoint(path: str | os.PathLike, prep, labels: np.ndarray,
                         seed: int = 0) -> Path:
    """A checkpoint ``apogee-net predict`` accepts: random weights, ``prep``'s
    standardisation, the label range of ``labels``."""
    from yso_labels.core.checkpoint import save_checkpoint

    model = untrained_model(len(prep.flux_scaler.mean), seed)
    meta = {"label_names": list(LABELS), **prep.to_meta(),
            "label_range": [labels.min(0).tolist(), labels.max(0).tolist()],
            "npix": model.npix, "method": "untrained (benchmark)"}
    return save_checkpoint(path, model, model.arch_kwargs, meta)
