"""The published APOGEE Net models run exactly: import/export of their state dicts and the
peer pipelines' preprocessing (``preprocess = "published"``).

Published layouts (peer code: SDSS astra ``astra/contrib/apogeenet/model.py``; Olney et al.
2020 Appendix B; Sprague et al. 2022 §3): ``conv1``…``conv12`` (``Conv1d``, kernel 3,
padding 1), ``fc1``, ``fc2``, ``fc3``; version II adds ``metadata.l1``…``metadata.l5`` and
its ``fc1`` takes 8512 + 64 inputs. The toolkit's :class:`apogee_net.network.model.APOGEENet` names
the convolutions ``convs.0``…``convs.11``; :func:`to_toolkit_state` and
:func:`to_published_state` rename, and check every key and shape.

Preprocessing of the peer pipelines, reproduced by :class:`PublishedPreprocess`:

- Spectrum: apStar HDU1/HDU2 row 0 as stored
  (:func:`apogee_net.spectra.apstar.read_raw_apstar`), ``nan_to_num``, no normalisation.
  Version I (astra): pixels with non-finite flux or error, or error ≥ 1e10, take the
  spectrum's median flux (over the other pixels).
- Outputs: ``z · σ + μ`` with the published constants (:data:`LABEL_MEAN`,
  :data:`LABEL_STD`); version II predicts log10 Teff, reported here as 10^x in K.
- Version II photometry: :mod:`apogee_net.network.photometry` (fill ≥ 98 / non-finite, z-score).
- Uncertainty (astra and ApogeeNet2 ``pipeline.py``): σ = ``nan_to_num(error)``; where
  σ == 1e10, σ = flux (version II); σ capped at 5 × the median of σ over all pixels; draws
  ``flux + N(0, 1) · σ``. Version I keeps draw 0 noiseless and reports the mean and the
  standard deviation (ddof 1) of the draws; version II reports the noiseless prediction and
  the standard deviation (ddof 1) of the draws, with Teff draws converted to K first (astra).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from apogee_net.inference.uncertainty import default_chunk_rows, forward_realizations, star_seed
from apogee_net.network.apogeenet2 import (
    APOGEENet2,
    LogLabels,
    join_photometry,
    prepare_with_photometry,
)
from apogee_net.network.model import APSTAR_NPIX, LABEL_NAMES, APOGEENet, Preprocess
from yso_labels.core.checkpoint import safe_load, save_checkpoint
from yso_labels.core.scaling import Standardiser

log = logging.getLogger(__name__)

ARCHS = ("apogeenet1", "apogeenet2")
#: Output de-standardisation of the published models (astra peer code): (logg, Teff [K],
#: [Fe/H]) for version I, (logg, log10 Teff, [Fe/H]) for version II.
LABEL_MEAN = {"apogeenet1": (2.880541250669337, 4716.915128138449, -0.22329606176144642),
              "apogeenet2": (2.925783395767212, 3.6705732345581055, -0.13088105618953705)}
LABEL_STD = {"apogeenet1": (1.1648147820369943, 733.0099523547299, 0.3004270650813916),
             "apogeenet2": (1.1890668869018555, 0.0917675793170929, 0.25668784976005554)}
#: The peers' "no data" error value (DR13 off-chip pixels).
LARGE_ERROR = 1e10
#: σ cap: this multiple of the median error of the spectrum (peer code).
ERROR_CAP = 5.0


def published_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Key → shape of a published state dict (1 input channel, 3 outputs, 8575 pixels)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    shapes: dict[str, tuple[int, ...]] = {}
    channels = (1, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 64, 64)
    for k in range(12):
        shapes[f"conv{k + 1}.weight"] = (channels[k + 1], channels[k], 3)
        shapes[f"conv{k + 1}.bias"] = (channels[k + 1],)
    if arch == "apogeenet2":
        widths = (7, 8, 16, 32, 32, 64)
        for k in range(5):
            shapes[f"metadata.l{k + 1}.weight"] = (widths[k + 1], widths[k])
            shapes[f"metadata.l{k + 1}.bias"] = (widths[k + 1],)
    n_in = 64 * 133 + (64 if arch == "apogeenet2" else 0)
    for name, (n_out, n_from) in {"fc1": (512, n_in), "fc2": (512, 512),
                                  "fc3": (3, 512)}.items():
        shapes[f"{name}.weight"] = (n_out, n_from)
        shapes[f"{name}.bias"] = (n_out,)
    return shapes


def _toolkit_key(key: str) -> str:
    if key.startswith("conv"):
        layer, _, rest = key[4:].partition(".")
        return f"convs.{int(layer) - 1}.{rest}"
    return key


def _published_key(key: str) -> str:
    if key.startswith("convs."):
        _, layer, rest = key.split(".", 2)
        return f"conv{int(layer) + 1}.{rest}"
    return key


def check_state(state: Mapping, arch: str, where: str) -> None:
    """One clear error naming the first key of ``state`` that is missing, unexpected or of
    the wrong shape for the published ``arch`` layout."""
    expected = published_shapes(arch)
    for key, shape in expected.items():
        if key not in state:
            extra = [k for k in state if k not in expected]
            hint = f" (it has {extra[0]!r} instead)" if extra else ""
            raise ValueError(f"{where}: key {key!r} of the published {arch} layout is "
                             f"missing{hint}")
        got = tuple(getattr(state[key], "shape", ()))
        if got != shape:
            raise ValueError(f"{where}: key {key!r} has shape {got}, the published {arch} "
                             f"layout has {shape}")
    for key in state:
        if key not in expected:
            raise ValueError(f"{where}: unexpected key {key!r} for the published {arch} "
                             "layout (wrong --arch?)")


def to_toolkit_state(state: Mapping, arch: str, where: str = "state dict") -> dict:
    """Published state dict → the toolkit model's (checked by :func:`check_state`)."""
    check_state(state, arch, where)
    return {_toolkit_key(k): torch.as_tensor(v).detach().float().clone()
            for k, v in state.items()}


def to_published_state(state: Mapping, arch: str, where: str = "model") -> dict:
    """Toolkit state dict → the published layout (checked by :func:`check_state`)."""
    out = {_published_key(k): v.detach().cpu().clone() for k, v in state.items()}
    check_state(out, arch, where)
    return {k: out[k] for k in published_shapes(arch)}  # the peers' key order


def build_model(arch: str) -> APOGEENet:
    """The toolkit model of a published ``arch`` (dropout 0, as the peers run it)."""
    cls = APOGEENet2 if arch == "apogeenet2" else APOGEENet
    return cls(in_channels=1, n_targets=3, dropout=0.0, npix=APSTAR_NPIX)


class PublishedPreprocess:
    """The peer pipelines' preprocessing and output constants (module docstring), with the
    interface of :class:`apogee_net.network.model.Preprocess` (``inputs``, ``labels``, ``__call__``,
    ``to_meta``) plus :meth:`perturbed_predict` (the peers' uncertainty procedure)."""

    kind = "published"
    raw_flux = True  # read apStar row 0 as stored (no dead-pixel NaNs)

    def __init__(self, arch: str):
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        self.arch = arch
        self.label_scaler = Standardiser(LABEL_MEAN[arch], LABEL_STD[arch])
        self.logs = LogLabels(LABEL_NAMES, ("teff",) if arch == "apogeenet2" else ())
        self.flux_scaler = None
        self.flux_norm = "none"

    @property
    def physical_std(self) -> np.ndarray:
        return self.logs.physical_std(self.label_scaler)

    # ------------------------------------------------------------------ spectra
    def clean(self, flux: torch.Tensor, error: torch.Tensor) -> tuple[torch.Tensor,
                                                                      torch.Tensor]:
        """``(flux, σ)`` as the peers feed them: flux ``nan_to_num`` (version I: bad pixels
        set to the median flux), σ the capped error (module docstring). ``(n, npix)``."""
        flux, error = flux.float(), error.float()
        if self.arch == "apogeenet1":
            bad = ~torch.isfinite(flux) | ~torch.isfinite(error) | (error >= LARGE_ERROR)
            # numpy's median (mean of the two middle values), as astra computes it
            med = torch.nanquantile(torch.where(bad, torch.full_like(flux, float("nan")), flux),
                                    0.5, dim=1, keepdim=True)
            med = torch.nan_to_num(med)
            flux = torch.where(bad, med.expand_as(flux), flux)
        flux = torch.nan_to_num(flux)
        sigma = torch.nan_to_num(error)
        # astra (version I): numpy median; ApogeeNet2: torch.median (the lower middle value
        # for an even count); identical for the 8575 apStar pixels
        cap = ERROR_CAP * (sigma.median(dim=1, keepdim=True).values if self.arch == "apogeenet2"
                           else torch.quantile(sigma, 0.5, dim=1, keepdim=True))
        if self.arch == "apogeenet2":
            sigma = torch.where(sigma == LARGE_ERROR, flux, sigma)
        sigma = torch.where(sigma < cap, sigma, cap.expand_as(sigma))
        return flux, sigma

    def network_input(self, flux: torch.Tensor, photometry=None) -> torch.Tensor:
        """``(n, 1, npix[+7])`` from cleaned flux ``(n, npix)``."""
        x = flux.unsqueeze(1)
        return join_photometry(x, photometry, x.shape[0]) if self.arch == "apogeenet2" else x

    def inputs(self, flux, error, photometry=None) -> torch.Tensor:
        if error is None:
            error = torch.ones_like(flux)
        return self.network_input(self.clean(flux, error)[0], photometry)

    def labels(self, z: torch.Tensor) -> torch.Tensor:
        return self.logs.back(self.label_scaler.inverse(z))

    def targets(self, y):
        return self.label_scaler.transform(self.logs.forward(y))

    def __call__(self, batch: dict) -> dict:
        return prepare_with_photometry(self, batch)

    def to_meta(self) -> dict:
        return {"preprocess": self.kind, "published_arch": self.arch,
                "label_names": list(LABEL_NAMES), "label_scaler": self.label_scaler.to_dict(),
                "flux_scaler": None, "flux_norm": "none",
                "log_labels": self.logs.log_labels}

    @classmethod
    def from_meta(cls, meta: dict) -> PublishedPreprocess:
        return cls(meta["published_arch"])

    # ------------------------------------------------------------------ uncertainty
    def perturbed_predict(self, model: torch.nn.Module, flux, error, n_realizations: int = 100,
                          seed: int = 0, keys: Sequence[int] | None = None,
                          chunk_rows: int | None = None, photometry=None,
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and σ (physical units, ``(n, 3)`` each) by the peers' procedure (module
        docstring), batched over stars × draws. The draws of star *i* come from a generator
        seeded by ``(seed, keys[i])`` (:func:`apogee_net.inference.uncertainty.star_seed`)."""
        device = next(model.parameters()).device
        flux = torch.as_tensor(np.asarray(flux, dtype=np.float32), device=device)
        error = torch.as_tensor(np.asarray(error, dtype=np.float32), device=device)
        n = flux.shape[0]
        keys = np.arange(n) if keys is None else np.asarray(keys)
        phot = None if photometry is None else np.asarray(photometry, dtype=np.float64)
        chunk_rows = chunk_rows or default_chunk_rows(device)
        model.eval()
        clean, sigma = self.clean(flux, error)

        def plain(a: int, b: int) -> torch.Tensor:
            return self.network_input(clean[a:b], None if phot is None else phot[a:b])

        point = self.labels(forward_realizations(model, plain, n, 1, chunk_rows)[:, 0]
                            .double()).cpu().numpy()
        if n_realizations == 0:
            return point, np.full_like(point, np.nan)
        if n_realizations < 2:
            raise ValueError("the published uncertainty needs at least 2 draws")
        noiseless_first = self.arch == "apogeenet1"

        def draws(a: int, b: int) -> torch.Tensor:
            noise = torch.empty((b - a, n_realizations, flux.shape[1]), device=device)
            for j, key in enumerate(keys[a:b]):
                gen = torch.Generator(device=device).manual_seed(star_seed(seed, key))
                noise[j].normal_(generator=gen)
            if noiseless_first:
                noise[:, 0] = 0.0
            x = (clean[a:b, None] + noise * sigma[a:b, None]).reshape(-1, flux.shape[1])
            p = None if phot is None else np.repeat(phot[a:b], n_realizations, axis=0)
            return self.network_input(x, p)

        z = forward_realizations(model, draws, n, n_realizations, chunk_rows)
        samples = self.labels(z.double())
        std = samples.std(dim=1, correction=1).cpu().numpy()
        if noiseless_first:
            return samples.mean(dim=1).cpu().numpy(), std
        return point, std


def preprocess_from_meta(meta: dict):
    """The preprocessing object a checkpoint's meta names (``preprocess`` key: ``standard``,
    the default, :class:`~apogee_net.network.model.Preprocess`; ``published``;
    ``apogeenet2``)."""
    kind = meta.get("preprocess", "standard")
    if kind == "standard":
        return Preprocess.from_meta(meta)
    if kind == "published":
        return PublishedPreprocess.from_meta(meta)
    if kind == "apogeenet2":
        from apogee_net.network.apogeenet2 import PhotPreprocess

        return PhotPreprocess.from_meta(meta)
    raise ValueError(f"unknown preprocessing {kind!r} in the model checkpoint")


def _load_state(path: Path) -> dict:
    obj = safe_load(path, "published state dict")
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"],
                                                                       Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor)
                                               for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict (key → tensor) of a published "
                         "APOGEE Net model")
    if obj and all(str(k).startswith("module.") for k in obj):  # saved from DataParallel
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def import_model(peer: str | os.PathLike, arch: str, out: str | os.PathLike) -> Path:
    """Turn a published state dict ``peer`` (``torch.save(model.state_dict())``) into a
    toolkit checkpoint ``out`` with ``preprocess = "published"``; returns ``out``."""
    from yso_labels.core.tables import provenance

    peer = Path(peer)
    state = to_toolkit_state(_load_state(peer), arch, str(peer))
    model = build_model(arch)
    model.load_state_dict(state)
    import hashlib

    prep = PublishedPreprocess(arch)
    lo = [-np.inf] * 3
    meta = {**prep.to_meta(), "label_range": [lo, [np.inf] * 3], "npix": APSTAR_NPIX,
            "imported_from": str(peer),
            "imported_sha256": hashlib.sha256(peer.read_bytes()).hexdigest(),
            "method": ("Olney et al. 2020 (APOGEE Net I), astra peer preprocessing"
                       if arch == "apogeenet1" else
                       "Sprague et al. 2022 (APOGEE Net II), ApogeeNet2 peer preprocessing"),
            "provenance": provenance("apogee-net import-model", {"arch": arch})}
    return save_checkpoint(out, model, model.arch_kwargs, meta)


def export_model(model_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the state dict of a toolkit checkpoint in the published layout (``conv1``…) to
    ``out`` (atomic). The published pipelines apply their own preprocessing and output
    constants: only a model trained with them (an imported one, or one adapted from it)
    gives the published numbers there; otherwise a warning says so."""
    from yso_labels.core.atomic import atomic_write
    from yso_labels.core.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(model_path, expect=APOGEENet)
    arch = "apogeenet2" if isinstance(model, APOGEENet2) else "apogeenet1"
    state = to_published_state(model.state_dict(), arch, str(model_path))
    if ckpt["meta"].get("preprocess") != "published":
        log.warning("%s was trained with the toolkit's preprocessing (flux scaling, label "
                    "standardisation); the peer pipelines will feed it raw flux and apply "
                    "the published output constants", model_path)
    with atomic_write(out) as tmp:
        torch.save(state, tmp)
    final = Path(out)
    return final
