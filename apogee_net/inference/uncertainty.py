"""Per-star uncertainties by perturbing the input spectrum (Olney et al. 2020 §3.5).

Each of N realizations (100 in the paper) adds Gaussian noise N(0, σ_pixel) to the flux,
with σ the pixel's error capped at 5 × the mean error of the spectrum (mean over pixels with
data; SDSS's astra code, ``astra.contrib.apogeenet``, uses the median and keeps draw 0
noiseless, we follow the paper's text); pixels without data are left unperturbed (they
enter the network as 0). All realizations go through the network; the label is the mean
over realizations and its uncertainty the standard deviation (ddof 0, as for astroNN's
MC-dropout ensembles, Leung & Bovy 2019).

The work is batched across stars and realizations: a chunk of stars is expanded to a
``(stars × N, 1, npix)`` tensor and passed through the network in slices of at most
``chunk_rows`` rows, so N realizations cost about N plain forward passes at full batch
efficiency. :func:`forward_realizations` is the generic part (the LAMOST MC-dropout
prediction, :func:`apogee_net.lamost.mc.mc_passes`, reuses it with a ``make_inputs`` that only
repeats the spectra).
Noise for star *i* comes from its own generator seeded by ``(seed, key_i)``, so a star's
numbers do not depend on how the stars were chunked (resumable prediction stays exact);
``apogee-net predict`` takes the key from the spectrum's content (:func:`spectrum_keys`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from apogee_net.network.model import Preprocess
from apogee_net.spectra.pixels import valid_pixels
from yso_labels.core.guards import check_memory, positive_int

#: σ per pixel is capped at this multiple of the spectrum's mean error (paper §3.5).
ERROR_CAP = 5.0
#: Default number of realizations (paper §3.5).
N_REALIZATIONS = 100


def default_chunk_rows(device: torch.device) -> int:
    """Rows per forward pass. CPU: 32, so that a layer's activations (≈ 0.3 MB per apStar
    row) stay in cache: on 2 Xeon cores (benchmarks/inference.py) the 100-realization
    uncertainty ran 2.4× faster with 32 rows than with 256 and 2× faster than with 128.
    GPU: 2048 (throughput; memory bounded)."""
    return 2048 if torch.device(device).type == "cuda" else 32


#: Bytes per realization and pixel of one spectrum's perturbed copies: noise, draws and the
#: standardised network input (float32), with slack for temporaries.
BYTES_PER_REALIZATION_PIXEL = 20


def check_realizations(n_realizations: int, npix: int, device=None,
                       name: str = "realizations") -> int:
    """``n_realizations`` as an int ≥ 0, refused (naming the largest value that fits) when
    the perturbed copies of one spectrum would not fit in the memory of ``device``."""
    n = positive_int(n_realizations, name, minimum=0)
    check_memory(name, n, BYTES_PER_REALIZATION_PIXEL * int(npix), device,
                 f"for the perturbed copies of one {npix}-pixel spectrum")
    return n


def perturbation_sigma(error: torch.Tensor, valid: torch.Tensor,
                       cap: float = ERROR_CAP) -> torch.Tensor:
    """σ per pixel (flux units): ``min(error, cap × mean(error over valid pixels))`` where
    valid, 0 elsewhere (dead pixels left unperturbed). ``error``, ``valid``: (n, npix)."""
    err = torch.where(valid, error, torch.zeros((), dtype=error.dtype, device=error.device))
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    limit = cap * err.sum(dim=1, keepdim=True) / count
    return torch.minimum(err, limit)


def spectrum_keys(flux, error) -> np.ndarray:
    """Seed keys ``(n,)`` from the content of each spectrum (BLAKE2b of its float32 flux and
    error), so the same spectrum gets the same noise draws wherever it appears: its row in
    the input, the chunking, the number of processes, or a single-visit apStar file's
    combined row and its visit row (which are the same spectrum)."""
    flux = np.ascontiguousarray(np.asarray(flux, dtype=np.float32))
    error = np.ascontiguousarray(np.asarray(error, dtype=np.float32))
    return np.array([int.from_bytes(hashlib.blake2b(f.tobytes() + e.tobytes(), digest_size=6)
                                    .digest(), "little") for f, e in zip(flux, error, strict=True)],
                    dtype=np.int64)


def star_seed(seed: int, key: int) -> int:
    """Seed of the noise generator of one star (independent of chunking)."""
    return int(np.random.SeedSequence([int(seed), int(key) & 0xFFFFFFFFFFFF])
               .generate_state(1, dtype=np.uint64)[0] >> 1)


def forward_realizations(model: torch.nn.Module,
                         make_inputs: Callable[[int, int], torch.Tensor],
                         n_stars: int, n_realizations: int,
                         chunk_rows: int = 32) -> torch.Tensor:
    """Outputs ``(n_stars, n_realizations, n_out)`` of ``model`` on inputs built chunk by chunk
    (a tuple of such tensors when the model returns a tuple, e.g. value and log variance).

    ``make_inputs(start, stop)`` returns the input rows of stars ``start:stop``, star-major:
    ``((stop − start) × n_realizations, …)``. Stars are grouped so that each forward pass
    has at most ``max(chunk_rows, n_realizations)`` rows, then split to ``chunk_rows``.
    Runs under ``torch.inference_mode``; the caller chooses ``model.eval()`` or MC dropout.
    """
    if n_realizations < 1:
        raise ValueError(f"need at least one realization, got {n_realizations}")
    stars_per_chunk = max(1, chunk_rows // n_realizations)
    outputs, single = [], True
    with torch.inference_mode():
        for start in range(0, n_stars, stars_per_chunk):
            stop = min(n_stars, start + stars_per_chunk)
            parts = [model(part) for part in torch.split(make_inputs(start, stop), chunk_rows)]
            if isinstance(parts[0], torch.Tensor):
                parts = [(p,) for p in parts]
            else:
                single = False
            outputs.append(tuple(torch.cat(o).float().reshape(stop - start, n_realizations, -1)
                                 for o in zip(*parts, strict=True)))
    if not outputs:
        return torch.empty(0, n_realizations, 0)
    joined = tuple(torch.cat(o) for o in zip(*outputs, strict=True))
    return joined[0] if single else joined


def summarise(samples: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) over axis 1 of ``(stars, realizations, k)``."""
    samples = samples.double()
    return (samples.mean(dim=1).cpu().numpy(),
            samples.std(dim=1, correction=0).cpu().numpy())


def perturbed_predict(model: torch.nn.Module, flux, error, preprocess: Preprocess,
                      n_realizations: int = N_REALIZATIONS,
                      seed: int = 0, keys: Sequence[int] | None = None,
                      chunk_rows: int | None = None, cap: float = ERROR_CAP,
                      photometry=None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and 1σ uncertainties (physical units, ``(n, k)`` each) by the perturbation
    method of §3.5 (module docstring). ``flux``, ``error``: ``(n, npix)`` raw spectra (NaN
    where no data); ``preprocess``: the checkpoint's input and label standardisation;
    ``keys``: per-star integers for the noise seeds (default ``0…n−1``).
    ``n_realizations = 0``: the plain prediction and NaN uncertainties. ``photometry``:
    ``(n, 7)`` raw inputs of an APOGEE Net II model (:mod:`apogee_net.network.apogeenet2`), the
    same for every realization.
    """
    device = next(model.parameters()).device
    flux = torch.as_tensor(np.asarray(flux, dtype=np.float32), device=device)
    error = torch.as_tensor(np.asarray(error, dtype=np.float32), device=device)
    check_realizations(n_realizations, flux.shape[-1], device)
    if chunk_rows is not None:
        positive_int(chunk_rows, "batch_size")
    if flux.shape != error.shape or flux.dim() != 2:
        raise ValueError(f"flux {tuple(flux.shape)} and error {tuple(error.shape)} must both "
                         "be (n_spectra, n_pixels)")
    n = flux.shape[0]
    keys = np.arange(n) if keys is None else np.asarray(keys)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} seed keys for {n} spectra")
    chunk_rows = chunk_rows or default_chunk_rows(device)
    model.eval()

    def inputs(f, e, a: int, b: int, repeat: int = 1):
        if photometry is None:
            return preprocess.inputs(f, e)
        return preprocess.inputs(f, e, np.repeat(np.asarray(photometry)[a:b], repeat, axis=0))

    if n_realizations == 0:
        z = forward_realizations(model, lambda a, b: inputs(flux[a:b], error[a:b], a, b),
                                 n, 1, chunk_rows)
        mean = preprocess.labels(z[:, 0].double()).cpu().numpy()
        return mean, np.full_like(mean, np.nan)
    valid = valid_pixels(flux, error)
    sigma = perturbation_sigma(error, valid, cap)

    def make_inputs(start: int, stop: int) -> torch.Tensor:
        noise = torch.empty((stop - start, n_realizations, flux.shape[1]), device=device)
        for j, key in enumerate(keys[start:stop]):
            gen = torch.Generator(device=device).manual_seed(star_seed(seed, key))
            noise[j].normal_(generator=gen)
        draws = flux[start:stop, None] + noise * sigma[start:stop, None]
        err = error[start:stop, None].expand_as(draws)
        return inputs(draws.reshape(-1, flux.shape[1]), err.reshape(-1, flux.shape[1]),
                      start, stop, n_realizations)

    z = forward_realizations(model, make_inputs, n, n_realizations, chunk_rows)
    return summarise(preprocess.labels(z.double()))
