"""Monte Carlo dropout prediction (Gal & Ghahramani 2016; astroNN, Leung & Bovy
2019; Li et al. §2.1).

T stochastic forward passes with dropout on (T = 100 in Li et al.). For each label:

* prediction = mean over passes of the value head;
* model variance = variance over passes (ddof 0);
* predictive variance = exp(mean over passes of the log-variance head);
* total σ = √(model variance + predictive variance).

The passes are batched: each star is repeated T times and the rows are sent through the
network in forward calls of at most ``max_rows`` rows. Everything is
computed in the network's standardised label space and converted to label units with the
label scale s (values: x·s + m; variances: v·s²).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from apogee_net.inference.uncertainty import check_realizations, forward_realizations
from apogee_net.lamost.model import MCDropout, split_output
from yso_labels.core.guards import positive_int

__all__ = ["mc_dropout", "MCResult", "combine_passes", "mc_passes", "mc_predict",
           "default_max_rows"]

#: Monte Carlo passes of Li et al. (§4.1: "the mean of predictions in the 100 times of
#: forward passes").
DEFAULT_PASSES = 100


@contextlib.contextmanager
def mc_dropout(model: torch.nn.Module, on: bool = True) -> Iterator[torch.nn.Module]:
    """Switch the :class:`MCDropout` layers of ``model`` to sampling (``on``) inside the block."""
    layers = [m for m in model.modules() if isinstance(m, MCDropout)]
    before = [m.mc for m in layers]
    for m in layers:
        m.mc = on
    try:
        yield model
    finally:
        for m, b in zip(layers, before, strict=True):
            m.mc = b


@dataclass
class MCResult:
    """MC-dropout summary, arrays (n, n_labels): ``mean``, ``var_model``, ``var_pred``."""

    mean: np.ndarray
    var_model: np.ndarray
    var_pred: np.ndarray

    @property
    def sigma(self) -> np.ndarray:
        """Total σ = √(model variance + predictive variance) (Leung & Bovy
        2019 §2; Kendall & Gal 2017)."""
        return np.sqrt(self.var_model + self.var_pred)

    def to_units(self, mean: np.ndarray, scale: np.ndarray) -> MCResult:
        """From standardised labels to label units: x·scale + mean, variances·scale²."""
        scale = np.asarray(scale, np.float64)
        return MCResult(self.mean * scale + np.asarray(mean, np.float64),
                        self.var_model * scale**2, self.var_pred * scale**2)


def combine_passes(values, log_vars) -> MCResult:
    """Summarise T passes, arrays (T, n, n_labels) of values and log variances (model
    variance: Var over passes, ddof 0; predictive: exp(mean log variance); astroNN)."""
    values = np.asarray(values, np.float64)
    log_vars = np.asarray(log_vars, np.float64)
    if values.shape != log_vars.shape or values.ndim != 3:
        raise ValueError(f"combine_passes: values and log_vars must be (T, n, k); got "
                         f"{values.shape}, {log_vars.shape}")
    return MCResult(values.mean(axis=0), values.var(axis=0, ddof=0),
                    np.exp(log_vars.mean(axis=0)))


def default_max_rows(device) -> int:
    """Rows per forward call: on a GPU large (throughput), on a CPU ~128 (activations stay in
    cache; measured in benchmarks/lamost_speed.py)."""
    return 8192 if torch.device(device).type == "cuda" else 128


def mc_passes(model: torch.nn.Module, x: torch.Tensor, passes: int = DEFAULT_PASSES,
              max_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw MC-dropout output for input ``x`` (n, 1, npix): ``(values, log_vars)`` of shape
    (passes, n, n_labels), with dropout on. Each star is repeated ``passes`` times and the
    rows go through the network in forward calls of at most ``max_rows`` rows (default
    :func:`default_max_rows` of ``x``'s device), by the same batched loop as the APOGEE Net
    perturbations (:func:`apogee_net.inference.uncertainty.forward_realizations`); every
    row draws its own dropout mask."""
    if passes < 1:
        raise ValueError(f"passes must be ≥ 1, got {passes}")
    check_realizations(passes, x.shape[-1], x.device, name="passes")
    max_rows = default_max_rows(x.device) if max_rows is None else positive_int(max_rows,
                                                                                 "batch_size")
    with mc_dropout(model):
        out = forward_realizations(model, lambda a, b: x[a:b].repeat_interleave(passes, 0),
                                   x.shape[0], passes, chunk_rows=max_rows)
    values, log_vars = split_output(out, out.shape[-1] // 2)      # (n, passes, k) each
    return values.transpose(0, 1), log_vars.transpose(0, 1)


@torch.no_grad()
def mc_predict(model: torch.nn.Module, x: torch.Tensor, passes: int = DEFAULT_PASSES,
               label_mean=None, label_scale=None, max_rows: int | None = None) -> MCResult:
    """MC-dropout prediction for ``x`` (n, 1, npix), in label units when ``label_mean`` and
    ``label_scale`` (the training standardisation) are given, else in standardised units."""
    values, log_vars = mc_passes(model, x, passes, max_rows)
    v = values.double()
    result = MCResult(v.mean(0).cpu().numpy(), v.var(0, unbiased=False).cpu().numpy(),
                      torch.exp(log_vars.double().mean(0)).cpu().numpy())
    if label_scale is not None:
        result = result.to_units(0.0 if label_mean is None else label_mean, label_scale)
    return result
