"""One place that decides devices and precision, and one place that seeds randomness.

Used by every torch model of the toolkit (the photometric CNN of stage 1 and the spectral
CNNs of stage 2).
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError, RuntimeError):
    """A device that is unknown or not present (a one-line CLI error, not a traceback)."""


def device_arg(text: str) -> str:
    """argparse ``type=`` of every ``--device`` option: checked before any work is done."""
    import argparse

    try:
        resolve_device(text)
    except DeviceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def resolve_device(device: str = "auto"):
    """Return a ``torch.device``: ``auto`` picks CUDA when available, else the CPU.

    Under ``torchrun`` each process takes the GPU of its ``LOCAL_RANK``.
    """
    import torch

    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise DeviceError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got "
                          f"{device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but torch sees no CUDA GPU on this "
                              "machine; use --device cpu (or auto)")
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        try:
            index = torch.device(device).index
        except RuntimeError as exc:
            raise DeviceError(f"device {device!r}: {exc}") from None
        if index is not None and index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: this machine has "
                              f"{torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device(device)


#: Precision of prediction forward passes (``--amp``): float32, or autocast to bfloat16 /
#: float16 (convolutions and matrix products; sums and the label de-standardisation stay
#: float32/float64).
AMP_CHOICES = ("none", "bf16", "fp16")


def autocast(device, amp: str = "none"):
    """``torch.autocast`` context for inference in precision ``amp`` (:data:`AMP_CHOICES`)
    on ``device`` (CPU or CUDA); ``none``: a null context (float32)."""
    import contextlib

    import torch

    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


def compiled(model, compile: bool = False):
    """``torch.compile(model)`` when ``compile`` (TorchInductor: needs a C++ compiler on the
    CPU, Triton on GPUs), else ``model``."""
    if not compile:
        return model
    import torch

    return torch.compile(model)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a NumPy Generator for ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global state used by some libraries
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return np.random.default_rng(seed)
