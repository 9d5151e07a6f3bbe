"""Command options as dataclasses: one definition per command.

Each command's options are one dataclass whose fields carry their type, default and help
text. The command line is generated from it (:func:`add_dataclass_arguments`), the parsed
arguments are turned back into it (:func:`from_namespace`), and the library function takes
it, or the same names as keyword arguments (:func:`resolve_options`): every option of the
command line is a keyword argument of the library, with the same default.

A field declared with :func:`option` is a command-line option; a plain field is a
library-only keyword (e.g. ``progress`` where the command has no ``--no-progress``). The
flag is ``--name-with-dashes`` unless :func:`option` names another; a ``bool`` field is a
switch: ``--name`` sets it when its default is False, ``--no-name`` clears it when True.

This module also holds :class:`TrainOptions`, the options of the one training loop
(:func:`yso_labels.core.training.fit`), so that the options of the training commands can
extend it without importing torch when the command line is built.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: The ``type=`` argparse uses for a field annotated with these names (others: strings).
_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float}


def option(default: Any = MISSING, help: str | None = None, *, flag: str | None = None,
           type: Callable[[str], Any] | None = None, choices: tuple | None = None,
           metavar: str | tuple[str, ...] | None = None, nargs: str | int | None = None,
           action: str | None = None) -> Any:
    """A dataclass field that is also a command-line option.

    ``default``: the library's and the command line's default (a tuple for a sequence);
    without one the option is required. ``help``: the ``--help`` text. ``flag``: the
    option's spelling when not ``--name-with-dashes`` (e.g. ``--keep-cosmics`` for
    ``reject_cosmics``). ``type``: the argparse converter (default from the annotation:
    ``int``, ``float``, else the string itself); ``choices``, ``metavar``, ``nargs``,
    ``action`` (e.g. ``append``): as in argparse.
    """
    meta = {"cli": True, "help": help, "flag": flag, "type": type, "choices": choices,
            "metavar": metavar, "nargs": nargs, "action": action}
    return field(default=default, metadata=meta)


def cli_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of the dataclass ``cls`` that are command-line options, in order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli")]


def flag_of(f: dataclasses.Field) -> str:
    """The command-line spelling of the option field ``f``."""
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    name = f.name.replace("_", "-")
    return f"--no-{name}" if f.default is True else f"--{name}"


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type,
                            exclude: tuple[str, ...] = ()) -> None:
    """Add one argparse option per :func:`option` field of ``cls`` (``dest`` = the field's
    name, default = the field's default), leaving out the names in ``exclude``."""
    for f in cli_fields(cls):
        if f.name in exclude:
            continue
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        if f.default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        if isinstance(f.default, bool):
            kwargs["action"] = "store_false" if f.default else "store_true"
        else:
            annotation = str(f.type).replace(" | None", "").strip()
            convert = meta["type"] or _TYPES.get(annotation)
            if convert is not None:
                kwargs["type"] = convert
            for key in ("choices", "metavar", "nargs", "action"):
                if meta[key] is not None:
                    kwargs[key] = meta[key]
        parser.add_argument(flag_of(f), **kwargs)


def from_namespace(cls: type[T], ns: argparse.Namespace) -> T:
    """The options ``cls`` from parsed arguments: every field the namespace holds."""
    values = vars(ns)
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)
                  if f.name in values})


def resolve_options(cls: type[T], options: T | None, kwargs: Mapping[str, Any]) -> T:
    """The options of a library call: ``options`` (a ``cls``, or None for the defaults)
    with the keyword arguments ``kwargs`` in place of its fields. An unknown keyword is a
    ``TypeError`` naming the valid ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; the options "
                        f"of {cls.__name__} are {', '.join(sorted(names))}")
    if options is None:
        return cls(**kwargs)
    if not isinstance(options, cls):
        raise TypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
    return dataclasses.replace(options, **kwargs) if kwargs else options


def narrow(cls: type[T], options: Any, **changes: Any) -> T:
    """The fields of ``cls`` taken from ``options`` (an instance of a subclass, such as a
    command's options extending :class:`TrainOptions`), with ``changes``."""
    return cls(**{**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls)},
                  **changes})


# --------------------------------------------------------------------------- training loop
#: Per-batch reductions of weighted losses (:mod:`yso_labels.core.training`).
WEIGHT_NORMS = ("sum_w", "batch")
#: Optimizers of the training loop (``torch.optim`` Adam, AdamW, SGD).
OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
#: Learning-rate schedules (:func:`yso_labels.core.training.lr_factor`).
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainOptions:
    """Training options of :func:`yso_labels.core.training.fit`; defaults are the paper's
    (Olney et al. 2020 §3.3): batch 128, learning rate 1e-3, dropout 0.1, early stopping
    after 5 epochs without a better dev loss.

    ``batch_size`` is the global batch (split over the processes under ``torchrun``);
    ``optimizer``: ``adam`` (default here), ``adamw`` (Adam with decoupled weight decay,
    Loshchilov & Hutter 2019) or ``sgd`` (the paper's text); ``weight_decay``: L2 penalty
    (``adam``/``sgd``) or decoupled decay (``adamw``); ``schedule``: ``constant`` learning
    rate (the paper's) or ``cosine``: linear warm-up over the first ``warmup`` epochs, then
    half a cosine from ``lr`` to 0 at ``max_epochs`` (Loshchilov & Hutter 2017, SGDR eq. 5,
    one cycle), set every optimizer step (:func:`yso_labels.core.training.lr_factor`);
    ``amp``: bf16 (fp16 with loss scaling where bf16 is unsupported) autocast on GPUs,
    ignored on the CPU; ``workers``: DataLoader worker processes; ``lr_plateau``: halve the
    learning rate after this many epochs without a better dev loss (0: constant learning
    rate); ``weight_norm``: per-batch reduction of weighted losses, ``sum_w`` (Σwl/Σw) or
    ``batch`` (Σwl/n, Keras/astroNN).

    A command's options extend this class, redeclaring with :func:`option` the fields its
    command line offers (with the command's defaults); :func:`narrow` takes this class's
    fields back out for :func:`~yso_labels.core.training.fit`.
    """

    batch_size: int = 128
    lr: float = 1e-3
    dropout: float = 0.1
    patience: int = 5
    max_epochs: int = 100
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    workers: int = 0
    resume: bool = False
    optimizer: str = "adam"
    progress: bool = True
    lr_plateau: int = 0
    weight_norm: str = "sum_w"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.0

    def __post_init__(self):
        checks = {"batch_size": self.batch_size >= 1, "lr": self.lr > 0,
                  "dropout": 0 <= self.dropout < 1, "patience": self.patience >= 1,
                  "max_epochs": self.max_epochs >= 1, "workers": self.workers >= 0,
                  "optimizer": self.optimizer in OPTIMIZER_NAMES,
                  "lr_plateau": self.lr_plateau >= 0 and not (
                      self.lr_plateau and self.schedule != "constant"),
                  "weight_decay": self.weight_decay >= 0,
                  "schedule": self.schedule in SCHEDULES,
                  "warmup": 0 <= self.warmup <= self.max_epochs,
                  "weight_norm": self.weight_norm in WEIGHT_NORMS}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid training option(s): "
                             + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
