"""The APOGEE Net convolutional network (Olney et al. 2020 §3.2 and Appendix B) and the
standardisation of its inputs and targets (§3.1).

Architecture: 12 one-dimensional convolutions (8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 64, 64
channels, kernel 3, padding 1, ReLU), a max pool of 2 after each pair, then fully connected
layers 64·133 → 512 → 512 → n_targets with dropout on the two hidden ones. For 1 input
channel, 3 targets and the 8575-pixel apStar grid this is 4,655,275 parameters (the figure
of the peer code in SDSS's astra pipeline, ``astra.contrib.apogeenet``).

Departures from the paper, all measured: weights start from a Kaiming-normal initialisation
(PyTorch's default barely trains this plain ReLU stack: measured on 2,000
Payne-emulated spectra, 5 epochs); the flux is standardised
per pixel over the training split (the paper used the raw flux); and by default each
spectrum is first divided by its median flux (``flux_norm="median"``). On 1,000
Payne-emulated spectra whose brightness spans H = 7–12.2 mag (a factor 120 in flux), three
epochs without the median scaling left the dev loss at 1.04 (nothing learnt; a ridge
regression failed too: 689 K in Teff), with it 0.35 (ridge: 28 K). Pixels without data
(non-finite flux or error, non-positive error) become 0 after standardisation, i.e. the
training-set mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from apogee_net.spectra.pixels import valid_pixels
from yso_labels.core.checkpoint import register_model
from yso_labels.core.scaling import Standardiser

#: Channels of the 12 convolutional layers (Olney et al. 2020, Appendix B).
CONV_CHANNELS = (8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 64, 64)
#: Pixels of the apStar grid (SDSS apStar data model).
APSTAR_NPIX = 8575
#: Label order of the network's output, as in the astra peer code (log g in dex, Teff in K,
#: [Fe/H] in dex).
LABEL_NAMES = ("logg", "teff", "fe_h")


@register_model
class APOGEENet(nn.Module):
    """The 12-layer CNN of Olney et al. (2020).

    ``in_channels``: spectra channels (1 for flux); ``n_targets``: output labels;
    ``dropout``: dropout probability on the two hidden fully connected layers;
    ``npix``: pixels per spectrum (8575 for apStar; the flattened size is
    64·⌊npix/64⌋, i.e. 64·133 for apStar); ``batchnorm``: an OPTION outside the paper,
    batch normalisation (Ioffe & Szegedy 2015) after each convolution, before its ReLU;
    ``linear_skip``: an OPTION outside the paper, a fixed linear map from the (standardised)
    input pixels straight to the outputs, added to the network's head (zero until
    :meth:`set_linear`; ``train_apogee_net`` sets a ridge fit, :mod:`.linear_path`), so that
    the convolutional part learns the residual of a linear model of the pixels (a ridge
    regression beats the plain network in log g and [Fe/H] on 2,000 emulated spectra,
    benchmarks/README.md, issue 14).
    Input: ``(batch, in_channels, npix)`` standardised flux; output ``(batch, n_targets)``.
    """

    def __init__(self, in_channels: int = 1, n_targets: int = 3, dropout: float = 0.1,
                 npix: int = APSTAR_NPIX, batchnorm: bool = False, linear_skip: bool = False):
        super().__init__()
        if npix < 64:
            raise ValueError(f"APOGEENet needs at least 64 pixels per spectrum, got {npix}")
        self.arch_kwargs = {"in_channels": int(in_channels), "n_targets": int(n_targets),
                            "dropout": float(dropout), "npix": int(npix)}
        if batchnorm:  # only when set: checkpoints of the paper's network are unchanged
            self.arch_kwargs["batchnorm"] = True
        if linear_skip:
            self.arch_kwargs["linear_skip"] = True
        self.in_channels, self.n_targets, self.npix = int(in_channels), int(n_targets), int(npix)
        convs, previous = [], in_channels
        for channels in CONV_CHANNELS:
            convs.append(nn.Conv1d(previous, channels, kernel_size=3, padding=1))
            previous = channels
        self.convs = nn.ModuleList(convs)
        self.norms = (nn.ModuleList(nn.BatchNorm1d(c) for c in CONV_CHANNELS) if batchnorm
                      else None)
        # six poolings of 2 with floor: ⌊⌊n/2⌋/2⌋… = ⌊n/64⌋ (133 for 8575)
        self.n_flat = CONV_CHANNELS[-1] * (npix // 2 ** (len(CONV_CHANNELS) // 2))
        self.fc1 = nn.Linear(self.n_flat, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, n_targets)
        self.dropout = nn.Dropout(p=dropout)
        self.skip = None
        self.reset_parameters()
        if linear_skip:  # made last: the other layers start as in the paper's network
            self.skip = nn.Linear(in_channels * npix, n_targets)
            self.skip.requires_grad_(False)  # a fixed map, set before training
            self.set_linear(torch.zeros_like(self.skip.weight), torch.zeros(n_targets))

    def reset_parameters(self) -> None:
        """Kaiming-normal weights (fan-in, ReLU gain; He et al. 2015), zero biases (the
        default init barely trains this stack, see the module docstring).
        for why PyTorch's default init is not used. The output layer starts 10× smaller
        than Kaiming's linear gain (std 0.1/√512): the max pools inflate the activations'
        second moment, and a full-size output layer starts with standardised-target losses
        of ~16 instead of ~1."""
        for layer in [*self.convs, self.fc1, self.fc2]:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.fc3.weight, std=0.1 / self.fc3.in_features ** 0.5)
        nn.init.zeros_(self.fc3.bias)

    def set_linear(self, coef, intercept) -> None:
        """Set the fixed linear path (``linear_skip``): outputs ``x · coefᵀ + intercept`` for
        the flattened input ``x``; ``coef`` (n_targets, in_channels · npix)."""
        if self.skip is None:
            raise ValueError("this APOGEENet has no linear_skip path")
        with torch.no_grad():
            self.skip.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
            self.skip.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.npix:
            raise ValueError(f"APOGEENet expects input (batch, {self.in_channels}, {self.npix}), "
                             f"got {tuple(x.shape)}")
        linear = self.skip(x.flatten(1)) if self.skip is not None else 0.0
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = F.relu(x)
            if i % 2:
                x = F.max_pool1d(x, 2)
        x = x.flatten(1)
        x = F.relu(self.dropout(self.fc1(x)))
        x = F.relu(self.dropout(self.fc2(x)))
        return self.fc3(x) + linear


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


#: Per-spectrum flux scalings applied before the per-pixel standardisation.
FLUX_NORMS = ("none", "median")


def scale_flux(flux: torch.Tensor, error: torch.Tensor | None,
               flux_norm: str = "none") -> torch.Tensor:
    """Flux ``(n, npix)`` as float32 with NaN at pixels without data (:func:`valid_pixels`;
    every non-finite one when ``error`` is None), divided by each spectrum's median over
    the pixels with data when ``flux_norm="median"`` (a lossless rescaling that removes the
    star's brightness, which depends on distance rather than labels; the paper fed the raw
    flux, §3.1)."""
    if flux_norm not in FLUX_NORMS:
        raise ValueError(f"flux_norm must be one of {FLUX_NORMS}, got {flux_norm!r}")
    flux = flux.float()
    good = torch.isfinite(flux)
    if error is not None:
        good &= valid_pixels(flux, error.float())
    flux = torch.where(good, flux, torch.full((), float("nan"), device=flux.device))
    if flux_norm == "median":
        med = flux.nanmedian(dim=1, keepdim=True).values
        flux = flux / torch.where(torch.isfinite(med) & (med > 0), med, torch.ones_like(med))
    return flux


def model_input(flux: torch.Tensor, error: torch.Tensor | None, flux_scaler: Standardiser,
                flux_norm: str = "none") -> torch.Tensor:
    """Network input ``(n, 1, npix)`` from raw flux ``(n, npix)`` (1e-17 erg/s/cm²/Å):
    :func:`scale_flux`, then standardised per pixel, pixels without data set to 0."""
    z = flux_scaler.transform(scale_flux(flux, error, flux_norm))
    return torch.where(torch.isfinite(z), z, torch.zeros((), dtype=z.dtype,
                                                         device=z.device)).unsqueeze(1)


class Preprocess:
    """``prepare`` step of :func:`yso_labels.core.training.fit` for spectra: sets ``batch["input"]``
    (:func:`model_input`) and standardises ``batch["target"]`` when a label scaler is given."""

    def __init__(self, flux_scaler: Standardiser, label_scaler: Standardiser | None = None,
                 flux_norm: str = "none"):
        if flux_norm not in FLUX_NORMS:
            raise ValueError(f"flux_norm must be one of {FLUX_NORMS}, got {flux_norm!r}")
        self.flux_scaler, self.label_scaler = flux_scaler, label_scaler
        self.flux_norm = flux_norm

    def inputs(self, flux: torch.Tensor, error: torch.Tensor | None) -> torch.Tensor:
        """Network input ``(n, 1, npix)`` (see :func:`model_input`)."""
        return model_input(flux, error, self.flux_scaler, self.flux_norm)

    def labels(self, z: torch.Tensor) -> torch.Tensor:
        """Network output back to physical label units."""
        return z if self.label_scaler is None else self.label_scaler.inverse(z)

    def to_meta(self) -> dict:
        """Checkpoint metadata of this preprocessing (see :meth:`from_meta`)."""
        return {"flux_scaler": self.flux_scaler.to_dict(), "flux_norm": self.flux_norm,
                "label_scaler": (None if self.label_scaler is None
                                 else self.label_scaler.to_dict())}

    @classmethod
    def from_meta(cls, meta: dict) -> Preprocess:
        """The standard preprocessing of a checkpoint's meta; checkpoints of other kinds
        (APOGEE Net II, published models) go through
        :func:`apogee_net.network.published.preprocess_from_meta`."""
        if meta.get("preprocess", "standard") != "standard":
            raise ValueError(f"preprocessing {meta.get('preprocess')!r} is not the standard "
                             "one: use apogee_net.network.published.preprocess_from_meta")
        label = meta.get("label_scaler")
        return cls(Standardiser.from_dict(meta["flux_scaler"]),
                   None if label is None else Standardiser.from_dict(label),
                   meta.get("flux_norm", "none"))

    def __call__(self, batch: dict) -> dict:
        batch["input"] = self.inputs(batch["flux"], batch.get("error"))
        if self.label_scaler is not None and "target" in batch:
            batch["target"] = self.label_scaler.transform(batch["target"].float())
        return batch


def check_label_names(names: Sequence[str], n_targets: int, where: str) -> list[str]:
    """Label names of a checkpoint, checked against the model's output size."""
    names = [str(n) for n in names]
    if len(names) != n_targets:
        raise ValueError(f"{where}: the model has {n_targets} outputs but "
                         f"{len(names)} label names ({', '.join(names)})")
    return names
