"""One checkpoint format for every model of the toolkit.

A checkpoint is a ``torch.save`` dict::

    {"format": "yso-apogee-net/1", "version": toolkit version,
     "arch": "ClassName", "arch_kwargs": {...},   # rebuilds the model (see MODELS)
     "state_dict": {...},
     "meta": {...},          # label names, input/label standardisation, options, seed,
                             # provenance (grid, coefficient set, training data), ...
     "training": {...}}      # optional: optimizer/scheduler state, epoch, history (resume)

:func:`save_checkpoint` writes atomically; :func:`load_checkpoint` rebuilds the model from
``arch`` and ``arch_kwargs`` and checks the format, with errors that name the file.

Loading never executes code from the file: it is unpickled with ``torch.load(...,
weights_only=True)`` (tensors and plain Python data only; :func:`save_checkpoint` stores
nothing else), and ``arch`` is looked up in :data:`MODELS`, the registry of the toolkit's
own model classes (``@register_model`` on a class adds it), never imported from a path
written in the file. Checkpoints of earlier versions (``arch`` = ``module:Class``) load by
their class name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yso_labels import __version__
from yso_labels.core.atomic import atomic_write

FORMAT = "yso-apogee-net/1"

#: The toolkit's model classes by architecture name (the class name): the only classes a
#: checkpoint can rebuild.
MODELS: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Class decorator: make ``cls`` loadable from checkpoints under its class name."""
    name = cls.__name__
    if MODELS.get(name, cls) is not cls:
        raise ValueError(f"model architecture {name!r} is registered twice "
                         f"({MODELS[name].__module__} and {cls.__module__})")
    MODELS[name] = cls
    return cls


def arch_name(model) -> str:
    """Architecture name of a model instance: its class name (only classes registered with
    :func:`register_model` can be rebuilt by :func:`load_checkpoint`)."""
    return type(model).__name__


def model_class(arch, where: str = "model checkpoint") -> type:
    """The registered class of architecture ``arch`` (``Name`` or legacy ``module:Name``)."""
    name = arch.rpartition(":")[2] if isinstance(arch, str) else None
    if name not in MODELS:
        known = ", ".join(sorted(MODELS)) or "none loaded"
        raise ValueError(f"{where}: unknown architecture {arch!r} (the toolkit's models: "
                         f"{known})")
    return MODELS[name]


def _plain(value):
    """``value`` with NumPy arrays and scalars turned into lists and Python numbers, so
    that the checkpoint loads with ``weights_only=True``."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def save_checkpoint(path: str | os.PathLike, model, arch_kwargs: dict[str, Any],
                    meta: dict[str, Any], training: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (its class, constructor kwargs and weights) with ``meta`` atomically."""
    import torch

    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    payload = {"format": FORMAT, "version": __version__, "arch": arch_name(module),
               "arch_kwargs": _plain(dict(arch_kwargs)), "state_dict": state,
               "meta": _plain(dict(meta)), "training": _plain(training)}
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def safe_load(path: str | os.PathLike, what: str = "model checkpoint"):
    """``torch.load`` on the CPU with ``weights_only=True`` (tensors and plain data only:
    nothing in the file is executed); one clear ``ValueError`` naming ``what`` and the file
    for a file that is missing, unreadable or holds other Python objects."""
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            names = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path)[:5])
        except Exception:  # noqa: BLE001 - only used to word the message
            names = ""
        raise ValueError(f"{what} {path}: refused, it holds Python objects other "
                         f"than tensors and plain data ({names or 'see torch.load'}); toolkit "
                         "checkpoints never do, and loading them could run code") from exc
    except Exception as exc:
        raise ValueError(f"{what} {path}: not a readable torch file ({exc})") from exc


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load the checkpoint dict (:func:`safe_load`: nothing in the file is executed) and
    check its format."""
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"model checkpoint {path}: not a {FORMAT} checkpoint")
    missing = [k for k in ("arch", "arch_kwargs", "state_dict") if k not in ckpt]
    if missing or not isinstance(ckpt["arch_kwargs"], dict):
        raise ValueError(f"model checkpoint {path}: incomplete (missing or malformed "
                         f"{', '.join(missing) or 'arch_kwargs'})")
    return ckpt


def load_checkpoint(path: str | os.PathLike, expect: type | None = None, device=None):
    """Rebuild the model of a checkpoint; return ``(model, checkpoint_dict)``.

    ``expect``: the model class the caller needs (a clear error otherwise).
    The model is put in eval mode on ``device`` (default CPU).
    """
    ckpt = read_checkpoint(path)
    cls = model_class(ckpt["arch"], f"model checkpoint {path}")
    if expect is not None and not issubclass(cls, expect):
        raise ValueError(f"model checkpoint {path}: holds a {cls.__name__}, "
                         f"expected a {expect.__name__}")
    try:
        model = cls(**ckpt["arch_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"model checkpoint {path}: its {cls.__name__} cannot be rebuilt "
                         f"({str(exc).splitlines()[0]})") from exc
    model.eval()
    if device is not None:
        model.to(device)
    return model, ckpt
