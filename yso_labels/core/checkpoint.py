"""One checkpoint format for every model of the toolkit.

A checkpoint is a ``torch.save`` dict::

    {"format": "yso-apogee-net/1", "version": toolkit version,
     "arch": "package.module:ClassName", "arch_kwargs": {...},   # rebuilds the model
     "state_dict": {...},
     "meta": {...},          # label names, input/label standardisation, options, seed,
                             # provenance (grid, coefficient set, training data), ...
     "training": {...}}      # optional: optimizer/scheduler state, epoch, history (resume)

:func:`save_checkpoint` writes atomically; :func:`load_checkpoint` rebuilds the model from
``arch`` and ``arch_kwargs`` and checks the format, with errors that name the file.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from yso_labels import __version__
from yso_labels.core.atomic import atomic_write

FORMAT = "yso-apogee-net/1"


def arch_name(model) -> str:
    """Import path ``module:Class`` of a model instance."""
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def save_checkpoint(path: str | os.PathLike, model, arch_kwargs: dict[str, Any],
                    meta: dict[str, Any], training: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (its class, constructor kwargs and weights) with ``meta`` atomically."""
    import torch

    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    payload = {"format": FORMAT, "version": __version__, "arch": arch_name(module),
               "arch_kwargs": dict(arch_kwargs), "state_dict": state, "meta": dict(meta),
               "training": training}
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load the checkpoint dict (on the CPU) and check its format."""
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"model checkpoint {path}: not a readable torch file ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"model checkpoint {path}: not a {FORMAT} checkpoint")
    return ckpt


def load_checkpoint(path: str | os.PathLike, expect: type | None = None, device=None):
    """Rebuild the model of a checkpoint; return ``(model, checkpoint_dict)``.

    ``expect``: the model class the caller needs (a clear error otherwise).
    The model is put in eval mode on ``device`` (default CPU).
    """
    ckpt = read_checkpoint(path)
    module_name, _, cls_name = ckpt["arch"].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model checkpoint {path}: unknown architecture {ckpt['arch']}") from exc
    if expect is not None and not issubclass(cls, expect):
        raise ValueError(f"model checkpoint {path}: holds a {cls_name}, "
                         f"expected a {expect.__name__}")
    model = cls(**ckpt["arch_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    if device is not None:
        model.to(device)
    return model, ckpt
