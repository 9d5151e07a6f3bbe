"""Random draws of real-instrument systematics applied to simulated apStar spectra.

Simulated spectra (:mod:`apogee_net.spectra.simulate`) are a stellar model with Gaussian photon
noise; real apStar spectra also carry the instrument response, sky-line residuals, telluric
residuals, persistence on the blue chip, a pattern of bad pixels and flagged pixels, and an
error-vs-flux relation of their own. :class:`Augmenter` draws these from the systematics
learnt on real files (:mod:`apogee_net.spectra.systematics`; the packaged file comes from the two
DR17 files of ``../shared/data``) and applies them to a batch of spectra, each component
with probability ``p`` (so un-augmented spectra stay in the training distribution):

1. response: flux and error × a quadratic per chip, level (relative to the blue chip),
   slope and curvature drawn uniformly between the identity and the real values widened by
   :data:`RESPONSE_PAD`;
2. a real spectrum's pixel flags and bad pixels, shifted by a random number of pixels
   (±:data:`MAX_SHIFT`, ±100 km/s at 4.1 km/s per pixel: detector features move with the
   star's radial velocity in the rest-frame apStar grid), become the spectrum's bit mask;
3. sky lines (SIG_SKYLINE): error × the real ratio, flux + N(0, resid × error);
4. telluric residuals (SIG_TELLURIC): flux × (1 + N(0, s)), s uniform in 0–1.5 × real;
5. persistence (PERSIST_*): flux × (1 + a), a uniform in 0–2 × real excess;
6. error-vs-flux: σ' = σ · exp(Δ_chip) · (F/F_med)^(slope − 0.5) (real per-chip values;
   photon noise has slope 0.5), extra noise N(0, √(σ'² − σ²)) where σ' > σ;
7. the real bad pixels and every pixel with a bit of ``pixmask_bits`` become dead (NaN)
   (Littrow-ghost pixels only carry their flag: masked by default).

Every draw comes from the ``numpy.random.Generator`` of its spectrum, so a seed fixes all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from apogee_net.spectra.pixmask import DEFAULT_PIXMASK_BITS, bits_value
from apogee_net.spectra.systematics import (
    PERSIST_BITS,
    SKY_BIT,
    TELLURIC_BIT,
    Systematics,
    chip_coordinates,
    load_systematics,
)

#: Widening of the real response range (level, linear, quadratic coefficient); the level
#: pad also covers differential extinction across the H band (about 5 % per 0.2 mag E(H−K)).
RESPONSE_PAD = (0.05, 0.03, 0.03)
#: Largest shift of the real pixel pattern, pixels.
MAX_SHIFT = 25
#: Probability of applying each component to a spectrum.
P_APPLY = 0.75
AUGMENT_NONE = "none"


class Augmenter:
    """Apply random draws of ``systematics`` (see the module docstring) to spectra."""

    def __init__(self, systematics: Systematics, pixmask_bits: Iterable[int] = DEFAULT_PIXMASK_BITS,
                 p: float = P_APPLY, max_shift: int = MAX_SHIFT, name: str | None = None):
        if not 0 <= p <= 1:
            raise ValueError(f"augmentation probability must be in [0, 1], got {p}")
        self.sys = systematics
        self.pixmask_bits = tuple(int(b) for b in pixmask_bits)
        self.p, self.max_shift = float(p), int(max_shift)
        self.name = name  # how the model records the systematics ("default" or a path)
        self.chip, self.x = chip_coordinates()
        resp = np.asarray(systematics.response, float)  # (n, 3, 3)
        ident = np.array([1.0, 0.0, 0.0])
        pad = np.asarray(RESPONSE_PAD)
        self.resp_lo = np.minimum(resp.min(axis=0), ident) - pad
        self.resp_hi = np.maximum(resp.max(axis=0), ident) + pad
        self.resp_lo[0, 0] = self.resp_hi[0, 0] = 1.0  # the blue chip is the reference

    def describe(self) -> dict:
        """What the model records about its augmentation."""
        return {"systematics": self.name or self.sys.path or "in-memory",
                "sources": [str(s) for s in self.sys.sources], "p": self.p,
                "max_shift": self.max_shift, "response_pad": list(RESPONSE_PAD),
                "pixmask_bits": list(self.pixmask_bits)}

    def apply_one(self, flux: np.ndarray, error: np.ndarray, rng: np.random.Generator,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One spectrum (npix,) → augmented ``(flux, error, mask)`` (float32, float32, int32)."""
        f = np.array(flux, dtype=np.float64)
        e = np.array(error, dtype=np.float64)
        live = np.isfinite(f) & np.isfinite(e)
        s = self.sys
        j = int(rng.integers(len(s)))
        use = rng.random(5) < self.p
        if use[0]:  # 1. response
            coef = rng.uniform(self.resp_lo, self.resp_hi)  # (3, 3)
            c = coef[self.chip]
            shape = c[:, 0] * (1.0 + c[:, 1] * self.x + c[:, 2] * self.x ** 2)
            f, e = f * shape, e * shape
        mask = np.zeros(f.shape, np.int32)
        dead = np.zeros(f.shape, bool)
        if use[1]:  # 2. real flag pattern, shifted
            shift = int(rng.integers(-self.max_shift, self.max_shift + 1))
            mask = np.roll(s.pixmask[j], shift).astype(np.int32)
            dead = np.roll(s.dead[j], shift)
            mask[~live] = 0
        has = lambda bits: (mask & bits_value(bits)) != 0  # noqa: E731
        fmed = np.median(f[live]) if live.any() else 1.0
        sky = has([SKY_BIT]) & live
        if sky.any():  # 3. sky-line residuals
            e[sky] *= s.sky_error_ratio[j]
            f[sky] += rng.standard_normal(sky.sum()) * s.sky_resid[j] * e[sky]
        tel = has([TELLURIC_BIT]) & live
        if use[2] and tel.any():  # 4. telluric residuals
            f[tel] *= 1.0 + rng.standard_normal(tel.sum()) * rng.uniform(0, 1.5) \
                * s.telluric_scatter[j]
        per = has(PERSIST_BITS) & live
        if use[3] and per.any():  # 5. persistence (additive light on the blue chip)
            f[per] *= 1.0 + rng.uniform(0, 2.0) * s.persist_excess[j]
        if use[4]:  # 6. error-vs-flux relation
            k = self.chip
            ratio = np.clip(np.abs(f) / fmed, 1e-3, None)
            scale = np.exp(s.error_offset[j][k]) * ratio ** (s.error_slope[j][k] - 0.5)
            scale = np.clip(scale, 1.0, 3.0)
            extra = np.sqrt(scale ** 2 - 1.0) * e
            f = f + np.where(live, rng.standard_normal(f.shape) * extra, 0.0)
            e = e * scale
        kill = dead | has(self.pixmask_bits)
        f[kill] = np.nan
        e[kill] = np.nan
        return f.astype(np.float32), e.astype(np.float32), mask

    def __call__(self, flux: np.ndarray, error: np.ndarray,
                 rngs: Sequence[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``(n, npix)`` → augmented ``(flux, error)``; ``rngs``: one per spectrum."""
        out_f = np.empty(np.shape(flux), np.float32)
        out_e = np.empty(np.shape(error), np.float32)
        for i, rng in enumerate(rngs):
            out_f[i], out_e[i], _ = self.apply_one(flux[i], error[i], rng)
        return out_f, out_e


def resolve_augment(augment: str | os.PathLike | Systematics | None,
                    pixmask_bits: Iterable[int] = DEFAULT_PIXMASK_BITS) -> Augmenter | None:
    """``"none"`` → None; ``None``/``"default"`` → the packaged systematics; a path → that
    ``.npz`` (scripts/learn_apstar_systematics.py); a :class:`Systematics` as is."""
    if augment is not None and str(augment).lower() == AUGMENT_NONE:
        return None
    sys_ = augment if isinstance(augment, Systematics) else load_systematics(augment)
    name = "default" if augment is None or str(augment).lower() == "default" else None
    return Augmenter(sys_, pixmask_bits, name=name)


def augmenter_from_meta(meta: dict) -> Augmenter | None:
    """The augmentation a model was trained with (its ``meta["augment"]``), or None."""
    spec = meta.get("augment")
    if not isinstance(spec, dict):
        return None
    return Augmenter(load_systematics(spec["systematics"]), spec.get("pixmask_bits", ()),
                     p=spec.get("p", P_APPLY), max_shift=spec.get("max_shift", MAX_SHIFT),
                     name=spec["systematics"])


class AugmentedDataset(torch.utils.data.Dataset):
    """A spectra dataset (:class:`apogee_net.spectra.dataset.SpectraDataset` or
    :class:`yso_labels.core.training.ArrayDataset`) whose batches go through ``augmenter``.

    ``fixed=False`` (training): each batch draws a new generator from torch's global RNG
    (seeded per epoch by :func:`yso_labels.core.training.fit`), so every epoch sees new draws,
    reproducibly. ``fixed=True`` (dev): spectrum ``i`` always gets the same draw, from
    ``numpy.random.default_rng([seed, i])``.
    """

    def __init__(self, base, augmenter: Augmenter, seed: int = 0, fixed: bool = False):
        self.base, self.augmenter = base, augmenter
        self.seed, self.fixed = int(seed), bool(fixed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitems__(self, indices):
        items = self.base.__getitems__(indices)
        batch = getattr(items, "collated", items)
        flux = np.asarray(batch["flux"], np.float32)
        error = np.asarray(batch["error"], np.float32)
        if self.fixed:
            rngs = [np.random.default_rng([self.seed, int(i)]) for i in indices]
        else:
            draw = int(torch.randint(0, 2 ** 62, (1,)).item())
            rngs = np.random.default_rng([self.seed, draw]).spawn(len(indices))
        f, e = self.augmenter(flux, error, rngs)
        as_torch = isinstance(batch["flux"], torch.Tensor)
        out = dict(batch)
        out["flux"] = torch.from_numpy(f) if as_torch else f
        out["error"] = torch.from_numpy(e) if as_torch else e
        return out

    def __getitem__(self, i):
        return {k: v[0] for k, v in self.__getitems__([i]).items()}
