"""Straight-line reference implementations that the tests and benchmarks compare the
batched library code with. Not used by the library itself."""

from __future__ import annotations

import numpy as np
import torch

from apogee_net.inference.uncertainty import (
    ERROR_CAP,
    N_REALIZATIONS,
    perturbation_sigma,
    star_seed,
    summarise,
)
from apogee_net.network.model import Preprocess
from apogee_net.spectra.pixels import valid_pixels


def naive_perturbed_predict(model, flux, error, preprocess: Preprocess,
                            n_realizations: int = N_REALIZATIONS, seed: int = 0,
                            cap: float = ERROR_CAP) -> tuple[np.ndarray, np.ndarray]:
    """Reference implementation, one realization of one star per forward pass (for tests
    and the benchmark); same noise as
    :func:`apogee_net.inference.uncertainty.perturbed_predict`."""
    device = next(model.parameters()).device
    model.eval()
    means, stds = [], []
    with torch.inference_mode():
        for i in range(len(flux)):
            f = torch.as_tensor(np.asarray(flux[i:i + 1], np.float32), device=device)
            e = torch.as_tensor(np.asarray(error[i:i + 1], np.float32), device=device)
            sigma = perturbation_sigma(e, valid_pixels(f, e), cap)
            gen = torch.Generator(device=device).manual_seed(star_seed(seed, i))
            noise = torch.empty((n_realizations, f.shape[1]), device=device).normal_(
                generator=gen)
            outs = [model(preprocess.inputs(f + noise[r] * sigma, e))
                    for r in range(n_realizations)]
            m, s = summarise(preprocess.labels(torch.cat(outs)[None].double()))
            means.append(m[0])
            stds.append(s[0])
    return np.array(means), np.array(stds)
