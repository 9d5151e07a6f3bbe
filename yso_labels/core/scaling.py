"""Standardisation of inputs and targets: ``z = (x − mean) / std`` per column, fitted on the
training split (Olney et al. 2020 §3.1, eq. 4) and stored in the checkpoint; and streaming
moments, so a per-pixel standardiser can be fitted over a store chunk by chunk.

Used by every model of the toolkit: the photometric CNN of stage 1 and the spectral CNNs of
stage 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Standardiser:
    """``z = (x − mean) / std`` along the last axis (Olney et al. 2020 eq. 4); units of x.

    Used for the targets (one mean/std per label) and for the flux (one per pixel).
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.std = np.asarray(self.std, dtype=np.float64)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"standardiser: mean {self.mean.shape} and std {self.std.shape} "
                             "differ in shape")
        if not (np.all(np.isfinite(self.std)) and np.all(self.std > 0)):
            raise ValueError("standardiser: std must be finite and positive")

    @classmethod
    def fit(cls, x: np.ndarray, empty_ok: bool = False) -> Standardiser:
        """Mean and std (ddof 0) of the finite values of each column of ``x`` (n, k).

        Columns without any finite value raise, unless ``empty_ok`` (then mean 0, std 1);
        constant columns get std 1.
        """
        moments = Moments(np.asarray(x).shape[-1])
        moments.add(x)
        return moments.standardiser(empty_ok)

    def transform(self, x):
        """Standardise (numpy array or torch tensor)."""
        if isinstance(x, torch.Tensor):
            mean, std = self.tensors(x.device, x.dtype)
            return (x - mean) / std
        return (np.asarray(x) - self.mean) / self.std

    def inverse(self, z):
        """Back to physical units (numpy array or torch tensor)."""
        if isinstance(z, torch.Tensor):
            mean, std = self.tensors(z.device, z.dtype)
            return z * std + mean
        return np.asarray(z) * self.std + self.mean

    def tensors(self, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.__dict__.setdefault("_cache", {})
        key = (str(device), dtype)
        if key not in cache:
            cache[key] = (torch.as_tensor(self.mean, dtype=dtype, device=device),
                          torch.as_tensor(self.std, dtype=dtype, device=device))
        return cache[key]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardiser:
        return cls(d["mean"], d["std"])


class Moments:
    """Streaming per-column mean and variance of finite values (Chan et al. 1979 pairwise
    update, float64), so a flux standardiser can be fitted over a store chunk by chunk."""

    def __init__(self, k: int):
        self.count = np.zeros(k)
        self.mean = np.zeros(k)
        self.m2 = np.zeros(k)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.count.size)
        finite = np.isfinite(x)
        n = finite.sum(axis=0)
        safe = np.maximum(n, 1)
        mean = np.where(finite, x, 0.0).sum(axis=0) / safe
        m2 = np.where(finite, (x - mean) ** 2, 0.0).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        frac = np.divide(n, total, out=np.zeros_like(self.mean), where=total > 0)
        self.mean = self.mean + delta * frac
        self.m2 = self.m2 + m2 + delta ** 2 * self.count * frac
        self.count = total

    def standardiser(self, empty_ok: bool = False) -> Standardiser:
        empty = self.count == 0
        if empty.any() and not empty_ok:
            raise ValueError(f"standardiser: column(s) {np.flatnonzero(empty)[:10].tolist()} "
                             "have no finite value")
        std = np.sqrt(np.divide(self.m2, self.count, out=np.zeros_like(self.m2),
                                where=~empty))
        return Standardiser(np.where(empty, 0.0, self.mean), np.where(std > 0, std, 1.0))
