"""APOGEE Net II (Sprague et al. 2022, AJ 163 152, §3): the 12-layer trunk of Olney et al.
(2020) plus a small network for seven photometric inputs, predicting log10 Teff so that OBA
stars up to ~50,000 K are covered.

Architecture (peer code ``astra/contrib/apogeenet/model.py``): the metadata network ``l1``
7→8, ``l2`` 8→16, ``l3`` 16→32, ``l4`` 32→32, ``l5`` 32→64 with a ReLU after each; its 64
outputs are concatenated after the 64·133 = 8512 flattened convolutional features, so ``fc1``
is 8576→512; ``fc2``, ``fc3`` and the dropout as in version I.

To keep one tensor per batch through the toolkit's training loop and batched ensembles, the
network input is ``(batch, in_channels, npix + 7)``: the spectrum in the first ``npix``
columns and the seven z-scored photometric inputs (:func:`apogee_net.network.photometry.
photometry_input`) in the last seven columns of channel 0.

:class:`PhotPreprocess` is the toolkit's preprocessing for this model (median-scaled,
per-pixel standardised flux as for version I; photometry filled and z-scored with the
published constants; ``teff`` learnt as log10 Teff and reported in K).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from apogee_net.network.model import APSTAR_NPIX, APOGEENet, Preprocess
from apogee_net.network.photometry import PHOT_BANDS, photometry_input
from yso_labels.core.checkpoint import register_model
from yso_labels.core.scaling import Standardiser

#: Widths of the metadata network (Sprague et al. 2022; peer ``MetadataNet``).
META_WIDTHS = (8, 16, 32, 32, 64)
N_PHOT = len(PHOT_BANDS)


class MetadataNet(nn.Module):
    """``l1``…``l5`` with a ReLU after each (peer ``MetadataNet``): 7 → 64 features."""

    def __init__(self, n_in: int = N_PHOT):
        super().__init__()
        previous = n_in
        for k, width in enumerate(META_WIDTHS, start=1):
            setattr(self, f"l{k}", nn.Linear(previous, width))
            previous = width

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        for k in range(1, len(META_WIDTHS) + 1):
            m = F.relu(getattr(self, f"l{k}")(m))
        return m


@register_model
class APOGEENet2(APOGEENet):
    """APOGEE Net II. Input ``(batch, in_channels, npix + n_phot)`` (module docstring);
    output ``(batch, n_targets)``. 4,691,963 parameters for the published configuration
    (1 channel, 3 targets, 8575 pixels)."""

    def __init__(self, in_channels: int = 1, n_targets: int = 3, dropout: float = 0.1,
                 npix: int = APSTAR_NPIX, n_phot: int = N_PHOT):
        super().__init__(in_channels, n_targets, dropout, npix)
        self.arch_kwargs["n_phot"] = self.n_phot = int(n_phot)
        self.metadata = MetadataNet(self.n_phot)
        self.fc1 = nn.Linear(self.n_flat + META_WIDTHS[-1], 512)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Version I's initialisation (:meth:`APOGEENet.reset_parameters`) and Kaiming-normal
        metadata layers."""
        super().reset_parameters()
        for layer in getattr(self, "metadata", nn.Module()).children():
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = self.npix + self.n_phot
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[2] != width:
            raise ValueError(f"APOGEENet2 expects input (batch, {self.in_channels}, "
                             f"{self.npix} + {self.n_phot}), got {tuple(x.shape)}")
        spec, meta = x[:, :, :self.npix], x[:, 0, self.npix:]
        for i in range(0, len(self.convs), 2):
            spec = F.max_pool1d(F.relu(self.convs[i + 1](F.relu(self.convs[i](spec)))), 2)
        h = torch.cat([spec.flatten(1), self.metadata(meta)], dim=1)
        h = F.relu(self.dropout(self.fc1(h)))
        h = F.relu(self.dropout(self.fc2(h)))
        return self.fc3(h)


def join_photometry(spectrum_input: torch.Tensor, photometry, n: int) -> torch.Tensor:
    """``(n, C, npix + 7)``: the spectrum input ``(n, C, npix)`` with the z-scored
    photometry (raw ``(n, 7)``; None: all missing, filled) appended to channel 0."""
    if photometry is None:
        photometry = np.full((n, N_PHOT), np.nan)
    z = photometry_input(photometry).to(spectrum_input.device, spectrum_input.dtype)
    if z.shape[0] != n:
        raise ValueError(f"{z.shape[0]} photometry rows for {n} spectra")
    pad = torch.zeros((n, spectrum_input.shape[1], N_PHOT), dtype=spectrum_input.dtype,
                      device=spectrum_input.device)
    pad[:, 0] = z
    return torch.cat([spectrum_input, pad], dim=2)


class LogLabels:
    """Labels learnt as log10 (Sprague et al. 2022 predict log10 Teff): ``forward`` to the
    network's units before standardising, ``back`` to physical units after."""

    def __init__(self, label_names: Sequence[str], log_labels: Sequence[str] = ("teff",)):
        self.label_names = [str(n) for n in label_names]
        self.log_labels = [n for n in log_labels if n in self.label_names]
        self.idx = [self.label_names.index(n) for n in self.log_labels]

    def forward(self, y):
        if not self.idx:
            return y
        y = y.clone() if isinstance(y, torch.Tensor) else np.array(y, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            for j in self.idx:
                y[..., j] = torch.log10(y[..., j]) if isinstance(y, torch.Tensor) \
                    else np.log10(y[..., j])
        return y

    def back(self, y):
        if not self.idx:
            return y
        y = y.clone() if isinstance(y, torch.Tensor) else np.array(y, dtype=float)
        for j in self.idx:
            y[..., j] = 10.0 ** y[..., j]
        return y

    def physical_std(self, scaler: Standardiser) -> np.ndarray:
        """σ of each label in physical units from the standardiser of the network's units:
        a log10 label's σ_x ≈ ln(10) · 10^μ · σ_log (first-order propagation)."""
        std = np.array(scaler.std, dtype=float)
        for j in self.idx:
            std[j] = np.log(10.0) * 10.0 ** scaler.mean[j] * scaler.std[j]
        return std


class PhotPreprocess(Preprocess):
    """Toolkit preprocessing of :class:`APOGEENet2` (module docstring): ``inputs(flux, error,
    photometry)``, targets to log10 for ``log_labels`` then standardised, ``labels`` back to
    physical units (Teff in K)."""

    kind = "apogeenet2"

    def __init__(self, flux_scaler: Standardiser, label_scaler: Standardiser | None,
                 flux_norm: str = "median", label_names: Sequence[str] = ("logg", "teff",
                                                                          "fe_h"),
                 log_labels: Sequence[str] = ("teff",)):
        super().__init__(flux_scaler, label_scaler, flux_norm)
        self.logs = LogLabels(label_names, log_labels)

    @property
    def physical_std(self) -> np.ndarray:
        return self.logs.physical_std(self.label_scaler)

    def inputs(self, flux, error, photometry=None) -> torch.Tensor:
        return join_photometry(super().inputs(flux, error), photometry, flux.shape[0])

    def labels(self, z: torch.Tensor) -> torch.Tensor:
        return self.logs.back(super().labels(z))

    def targets(self, y):
        """Physical targets → the network's standardised units."""
        return self.label_scaler.transform(self.logs.forward(y))

    def to_meta(self) -> dict:
        return {**super().to_meta(), "preprocess": self.kind,
                "label_names": self.logs.label_names, "log_labels": self.logs.log_labels}

    @classmethod
    def from_meta(cls, meta: dict) -> PhotPreprocess:
        base = Preprocess.from_meta({**meta, "preprocess": "standard"})
        return cls(base.flux_scaler, base.label_scaler, base.flux_norm, meta["label_names"],
                   meta.get("log_labels", ("teff",)))

    def __call__(self, batch: dict) -> dict:
        return prepare_with_photometry(self, batch)


def prepare_with_photometry(prep, batch: dict) -> dict:
    """``prepare`` step of :func:`yso_labels.core.training.fit` for the preprocessings that
    take photometry (:class:`PhotPreprocess`, the published one): ``batch["input"]`` from
    flux, error and the batch's ``photometry``; targets in the network's units."""
    batch["input"] = prep.inputs(batch["flux"], batch.get("error"), batch.get("photometry"))
    if "target" in batch:
        batch["target"] = prep.targets(batch["target"].float())
    return batch


def build_for_arch(arch: str, flux_scaler: Standardiser, train_targets: np.ndarray,
                   label_names: Sequence[str], flux_norm: str, dropout: float,
                   npix: int) -> tuple[APOGEENet, Preprocess]:
    """A new model of ``arch`` and its preprocessing, the label standardisation fitted on
    the training targets (physical units; log10 Teff for ``apogeenet2``)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    n = len(label_names)
    if arch == "apogeenet1":
        return (APOGEENet(in_channels=1, n_targets=n, dropout=dropout, npix=npix),
                Preprocess(flux_scaler, Standardiser.fit(train_targets), flux_norm))
    logs = LogLabels(label_names)
    bad = [name for j, name in zip(logs.idx, logs.log_labels, strict=True)
           if np.any(np.asarray(train_targets)[:, j] <= 0)]
    if bad:
        raise ValueError(f"apogeenet2 learns log10 of {', '.join(bad)}: the training labels "
                         "must be positive")
    scaler = Standardiser.fit(logs.forward(np.asarray(train_targets, float)))
    return (APOGEENet2(in_channels=1, n_targets=n, dropout=dropout, npix=npix),
            PhotPreprocess(flux_scaler, scaler, flux_norm, label_names))


#: ``--arch`` names → model class (the toolkit's checkpoints record the class itself).
ARCHS = {"apogeenet1": APOGEENet, "apogeenet2": APOGEENet2}


def arch_of(model) -> str:
    """``--arch`` name of a model instance."""
    return "apogeenet2" if isinstance(model, APOGEENet2) else "apogeenet1"


def check_arch(arch: str | None, model, where: str) -> None:
    """Clear error when a checkpoint's architecture is not the ``--arch`` asked for."""
    if arch is None:
        return
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if arch_of(model) != arch:
        raise ValueError(f"{where}: holds an {arch_of(model)} model, not {arch} "
                         "(drop --arch or pass the matching one)")
