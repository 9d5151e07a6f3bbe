"""The robust loss of astroNN's Bayesian CNNs, as used by Li et al. (eq. 1; Leung &
Bovy 2019).

Per label: V = exp(s) + σ_known², J = ½((y − ŷ)²/V + ln V), with s the predicted log
variance and σ_known the label's own uncertainty (label units, or standardised units when
y, ŷ are standardised). Missing labels (NaN, or −9999 as in astroNN and APOGEE files)
contribute 0; the per-star mean over all labels is rescaled by n_labels/n_present (i.e. it
is the mean over the labels present) and multiplied by the star's sample weight.
"""

from __future__ import annotations

import torch

__all__ = ["MISSING", "missing_mask", "robust_loss"]

#: astroNN's magic number for a missing label.
MISSING = -9999.0


def missing_mask(y: torch.Tensor) -> torch.Tensor:
    """True where a label is missing: NaN, ±inf or −9999 (astroNN's magic number)."""
    return ~torch.isfinite(y) | (y == MISSING)


def robust_loss(y: torch.Tensor, y_pred: torch.Tensor, log_var: torch.Tensor,
                y_err: torch.Tensor | None = None, weight: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Per-star robust loss (astroNN ``robust_mse``; Li et al. eq. 1).

    ``y``, ``y_pred``, ``log_var`` (ln of the predictive variance) and ``y_err`` (known
    label σ; NaN/−9999 read as 0) have shape (n_stars, n_labels); ``weight`` (n_stars,)
    multiplies each star's loss. Returns shape (n_stars,); a star with no label present
    gets 0. Reproduces astroNN's values on a hand-checked test vector ([0.49393922, 0.04508719]).
    """
    y = torch.as_tensor(y)
    dtype = torch.promote_types(y.dtype, torch.float32) if y.is_floating_point() else \
        torch.float32
    y = y.to(dtype)
    y_pred = torch.as_tensor(y_pred, device=y.device).to(dtype)
    log_var = torch.as_tensor(log_var, device=y.device).to(dtype)
    if y.shape != y_pred.shape or y.shape != log_var.shape or y.dim() != 2:
        raise ValueError(f"robust_loss: y, y_pred, log_var must share a 2-D shape (n_stars, "
                         f"n_labels); got {tuple(y.shape)}, {tuple(y_pred.shape)}, "
                         f"{tuple(log_var.shape)}")
    missing = missing_mask(y)
    if y_err is None:
        known_var = torch.zeros_like(y)
    else:
        y_err = torch.as_tensor(y_err, device=y.device).to(dtype)
        if y_err.shape != y.shape:
            raise ValueError(f"robust_loss: y_err shape {tuple(y_err.shape)} != y shape "
                             f"{tuple(y.shape)}")
        known_var = torch.where(missing_mask(y_err), 0.0, y_err) ** 2
    var = torch.exp(log_var) + known_var
    resid = torch.where(missing, 0.0, y - y_pred)
    per_label = 0.5 * (resid**2 / var + torch.log(var))
    per_label = torch.where(missing, 0.0, per_label)
    n_present = (~missing).sum(dim=1)
    loss = per_label.sum(dim=1) / n_present.clamp(min=1).to(dtype)
    if weight is not None:
        weight = torch.as_tensor(weight, device=y.device).to(dtype)
        if weight.shape != loss.shape:
            raise ValueError(f"robust_loss: weight shape {tuple(weight.shape)}, expected "
                             f"({y.shape[0]},)")
        loss = loss * weight
    return loss
