"""The Payne spectral emulator (Ting et al. 2019, ApJ 879, 69, §2), evaluated for many stars
at once.

Each ``NN_*.npz`` file of The Payne (github tingyuansen/The_Payne, MIT) holds one small
network per ASPCAP pixel. With ``sigmoid(z) = 1/(1 + e^-z)``::

    s    = (labels - x_min) / (x_max - x_min) - 0.5
    h    = einsum('ijk,k->ij', w_array_0, s) + b_array_0
    flux = (einsum('ij,ij->i', w_array_1, sigmoid(h)) + b_array_1) / norm

``NN_unnormalized_spectra.npz``: labels [Teff (K), log g (dex), [Fe/H] (dex), [α/Fe] (dex)],
Kurucz surface flux (arbitrary units) on the 7214 ASPCAP pixels, ``norm = 1e6``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

UNNORMALIZED_FILE = "NN_unnormalized_spectra.npz"
#: Label order of the unnormalised emulator.
LABEL_NAMES = ("teff", "logg", "fe_h", "alpha_fe")
#: Where :func:`find_emulator` looks (besides an explicit path): ``$YSO_PAYNE_DIR``, then
#: the cache directory that ``scripts/fetch_payne_emulator.py`` downloads into.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yso-apogee-net" \
    / "payne"
#: Stars per matrix product (bounds memory: 5 × 7214 float64 hidden units per star).
CHUNK = 256


@dataclass(frozen=True)
class PayneEmulator:
    """The weights of one Payne emulator and its label range (``x_min``, ``x_max``)."""

    w0: np.ndarray  # (npix, nhidden, nlabels)
    b0: np.ndarray  # (npix, nhidden)
    w1: np.ndarray  # (npix, nhidden)
    b1: np.ndarray  # (npix,)
    x_min: np.ndarray
    x_max: np.ndarray
    norm: float
    path: str
    label_names: tuple[str, ...] = LABEL_NAMES

    @property
    def npix(self) -> int:
        return int(self.b1.shape[0])

    def in_range(self, labels: np.ndarray) -> np.ndarray:
        """Boolean (n,): every label within the emulator's training range [x_min, x_max]."""
        labels = np.atleast_2d(labels)
        return np.all((labels >= self.x_min) & (labels <= self.x_max), axis=1)

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        return evaluate(self, labels)


def find_emulator(path: str | os.PathLike | None = None) -> Path | None:
    """Path of the unnormalised emulator: ``path`` (must exist), else ``$YSO_PAYNE_DIR`` or the
    download cache; ``None`` when none is found."""
    if path is not None:
        path = Path(path)
        if path.is_dir():
            path = path / UNNORMALIZED_FILE
        if not path.exists():
            raise FileNotFoundError(f"Payne emulator {path}: no such file (download it with "
                                    "scripts/fetch_payne_emulator.py)")
        return path
    for folder in (os.environ.get("YSO_PAYNE_DIR"), CACHE_DIR):
        if folder and (Path(folder) / UNNORMALIZED_FILE).exists():
            return Path(folder) / UNNORMALIZED_FILE
    return None


def load_emulator(path: str | os.PathLike, norm: float = 1e6) -> PayneEmulator:
    """Load a Payne ``NN_*.npz`` file; ``norm`` divides the output (1e6 for the unnormalised
    emulator of Ting et al. 2019). Raises ``ValueError`` naming the file when arrays are missing or
    inconsistent."""
    path = Path(path)
    keys = ("w_array_0", "w_array_1", "b_array_0", "b_array_1", "x_min", "x_max")
    try:
        with np.load(path) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise ValueError(f"Payne emulator {path}: missing array(s) {', '.join(missing)}")
            arrays = {k: np.asarray(data[k], dtype=np.float64) for k in keys}
    except (OSError, EOFError) as exc:
        raise ValueError(f"Payne emulator {path}: not a readable .npz file ({exc})") from exc
    w0, b0, w1, b1 = (arrays[k] for k in ("w_array_0", "b_array_0", "w_array_1", "b_array_1"))
    npix, nhidden, nlabels = w0.shape
    if b0.shape != (npix, nhidden) or w1.shape != (npix, nhidden) or b1.shape != (npix,) \
            or arrays["x_min"].shape != (nlabels,):
        raise ValueError(f"Payne emulator {path}: inconsistent array shapes")
    names = LABEL_NAMES if nlabels == len(LABEL_NAMES) else tuple(f"x{i}" for i in range(nlabels))
    return PayneEmulator(w0=w0, b0=b0, w1=w1, b1=b1, x_min=arrays["x_min"],
                         x_max=arrays["x_max"], norm=float(norm), path=str(path),
                         label_names=names)


def scale_labels(emulator: PayneEmulator, labels: np.ndarray) -> np.ndarray:
    """s = (labels − x_min)/(x_max − x_min) − 0.5 (The Payne's input scaling)."""
    return (labels - emulator.x_min) / (emulator.x_max - emulator.x_min) - 0.5


def evaluate(emulator: PayneEmulator, labels: np.ndarray) -> np.ndarray:
    """Emulated flux (n, npix) for labels (n, nlabels) (Ting et al. 2019 §2: one
    hidden layer of sigmoids per pixel), vectorised.

    The first layer for all stars and pixels is one matrix product per chunk of
    :data:`CHUNK` stars: (n, nlabels) @ (nlabels, npix·nhidden).
    """
    labels = np.atleast_2d(np.asarray(labels, dtype=np.float64))
    npix, nhidden, nlabels = emulator.w0.shape
    if labels.shape[1] != nlabels:
        raise ValueError(f"Payne emulator {emulator.path} takes {nlabels} labels "
                         f"({', '.join(emulator.label_names)}), got {labels.shape[1]}")
    w0 = emulator.w0.reshape(npix * nhidden, nlabels).T  # (nlabels, npix*nhidden)
    out = np.empty((labels.shape[0], npix))
    for start in range(0, labels.shape[0], CHUNK):
        s = scale_labels(emulator, labels[start:start + CHUNK])
        h = (s @ w0).reshape(-1, npix, nhidden) + emulator.b0
        sig = 0.5 * (1.0 + np.tanh(0.5 * h))  # = 1/(1+e^-h), without overflow warnings
        out[start:start + CHUNK] = (np.einsum("nij,ij->ni", sig, emulator.w1)
                                    + emulator.b1) / emulator.norm
    return out


def evaluate_with_jacobian(emulator: PayneEmulator,
                           labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Emulated flux (npix,) of one star and its derivatives (npix, nlabels) with respect
    to the labels (per K for Teff, per dex for the others), analytically: with
    ``σ = sigmoid(h)`` (Ting et al. 2019 §2), ∂flux/∂label_k = Σ_j w1_j σ_j (1 − σ_j)
    w0_jk / (x_max_k − x_min_k) / norm."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    s = scale_labels(emulator, labels)
    npix, nhidden, nlabels = emulator.w0.shape
    h = (emulator.w0.reshape(npix * nhidden, nlabels) @ s).reshape(npix, nhidden) \
        + emulator.b0
    sig = 0.5 * (1.0 + np.tanh(0.5 * h))
    flux = (np.einsum("ij,ij->i", sig, emulator.w1) + emulator.b1) / emulator.norm
    dsig = emulator.w1 * sig * (1.0 - sig)  # (npix, nhidden)
    jac = np.einsum("ij,ijk->ik", dsig, emulator.w0) / (emulator.x_max - emulator.x_min) \
        / emulator.norm
    return flux, jac
