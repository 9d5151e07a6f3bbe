"""Shared guards against hostile or mistaken input, used by every command that writes.

* :func:`check_outputs`: an output path never equals an input, nor lies inside an input
  folder (paths resolved, so symlinks and ``./`` spellings are caught).
* :func:`positive_int`, :func:`check_ints`: integer options checked before any work, with
  the option's name in the message; argparse types :func:`pos_int`,
  :func:`nonneg_int`.
* :func:`check_memory`: a size option whose work would need more memory than the machine
  has is refused with the largest value that fits.
* :func:`fingerprint`: a content fingerprint of input files/stores and options, the key
  of every resume (predict parts, ingest ``.part`` files, ``train --resume``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Files up to this size are hashed whole; larger ones (stores) are sampled (see
#: :func:`file_fingerprint`).
FULL_HASH_BYTES = 8 * 2**20
#: Bytes read at each of the sampled offsets of a large file.
SAMPLE_BYTES = 2**16
#: Number of sampled offsets of a large file (plus its head and tail).
N_SAMPLES = 64


class OptionError(ValueError):
    """An option value that cannot work; the message names the option."""


# --------------------------------------------------------------------------- paths
def _paths(values) -> list[Path]:
    if values is None:
        return []
    if isinstance(values, (str, os.PathLike)):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, (str, os.PathLike)) and str(v).strip():
            out.append(Path(v))
    return out


def check_outputs(outputs, inputs) -> None:
    """Raise :class:`OptionError` when an output equals an existing input path or lies
    inside an input folder (the run would overwrite or pollute what it reads).

    ``outputs``, ``inputs``: paths or lists of paths; inputs that do not exist (globs,
    names of options that are not paths) are ignored.
    """
    ins = [(p, p.resolve()) for p in _paths(inputs) if os.path.lexists(p)]
    for out in _paths(outputs):
        target = out.resolve()
        for raw, src in ins:
            if target == src:
                raise OptionError(f"output {out} is also an input ({raw}): the run would "
                                  "overwrite what it reads; choose another output path")
            if src.is_dir() and target.is_relative_to(src):
                raise OptionError(f"output {out} lies inside the input folder {raw}: the run "
                                  "would write among what it reads; choose an output outside it")


# --------------------------------------------------------------------------- integers
def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``; :class:`OptionError` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OptionError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be an integer ≥ {minimum}, got {value!r}") from None
    if number < minimum:
        raise OptionError(f"{name} must be an integer ≥ {minimum}, got {number}")
    return number


def check_ints(**options: tuple[Any, int]) -> None:
    """``check_ints(chunk_size=(value, 1), realizations=(value, 0), ...)``: each value an
    integer ≥ its minimum; ``None`` values (defaults chosen later) are skipped."""
    for name, (value, minimum) in options.items():
        if value is not None:
            positive_int(value, name, minimum)


def _int_arg(minimum: int):
    def parse(text: str) -> int:
        try:
            return positive_int(text, "value", minimum)
        except OptionError:
            raise argparse.ArgumentTypeError(f"expected an integer ≥ {minimum}, got {text!r}") \
                from None
    parse.__name__ = "integer"
    return parse


#: argparse ``type=`` for options that must be ≥ 1 (sizes, counts, epochs).
pos_int = _int_arg(1)
#: argparse ``type=`` for options that may be 0 (workers, realizations).
nonneg_int = _int_arg(0)


# --------------------------------------------------------------------------- memory
def available_memory(device=None) -> int:
    """Bytes that one allocation may take: free GPU memory on a CUDA ``device``, else the
    host's available memory (``MemAvailable`` of /proc/meminfo; physical memory elsewhere)."""
    if device is not None and str(getattr(device, "type", device)).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 2**63 - 1


def _human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1024 or unit == "PB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    return f"{nbytes:.3g} PB"  # pragma: no cover


def check_memory(name: str, value: int, bytes_per_unit: float, device=None,
                 what: str = "") -> None:
    """Refuse option ``name`` = ``value`` when ``value × bytes_per_unit`` bytes exceed the
    memory available (:func:`available_memory`), naming the largest value that fits."""
    need = float(value) * float(bytes_per_unit)
    have = available_memory(device)
    if need > have:
        fits = max(0, int(have // max(bytes_per_unit, 1)))
        raise OptionError(f"{name} {value} needs about {_human(need)} of memory"
                          f"{' ' + what if what else ''}; {_human(have)} is available: use at "
                          f"most {fits}")


# --------------------------------------------------------------------------- fingerprints
def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content: whole for files up to :data:`FULL_HASH_BYTES`, else of its
    size, head, tail and :data:`N_SAMPLES` evenly spaced blocks (a re-written store of the
    same length still differs in its ID and flux blocks). A folder: its files, by name."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(str(p.relative_to(path)).encode() + file_fingerprint(p).encode())
        return h.hexdigest()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        else:
            step = max(1, (size - SAMPLE_BYTES) // (N_SAMPLES + 1))
            for offset in [0, *range(step, size - SAMPLE_BYTES, step), size - SAMPLE_BYTES]:
                fh.seek(offset)
                h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()


def fingerprint(inputs: Iterable = (), options: Mapping | None = None) -> str:
    """One SHA-256 over the content of ``inputs`` (paths; see :func:`file_fingerprint`;
    order kept, names not: a moved store keeps its fingerprint) and the JSON of
    ``options``: equal only for the same data and settings."""
    from concurrent.futures import ThreadPoolExecutor

    def key(p: Path) -> str:  # a missing input (unreadable, flagged) counts by name
        return file_fingerprint(p) if p.exists() else f"missing:{p}"

    paths = _paths(list(inputs))
    h = hashlib.sha256()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for k in pool.map(key, paths):  # hashlib releases the GIL: files hashed in parallel
            h.update(k.encode() + b"\0")
    h.update(json.dumps(dict(options or {}), sort_keys=True, default=str).encode())
    return h.hexdigest()


def table_fingerprint(table) -> str:
    """SHA-256 of an in-memory table's column names and values."""
    import numpy as np

    h = hashlib.sha256()
    for name in table.colnames:
        values = np.asarray(table[name])
        values = values.astype(str) if values.dtype.kind in "OSU" else values
        h.update(name.encode() + b"\0" + str(values.dtype).encode()
                 + np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def content_key(source) -> str | None:
    """Fingerprint of a table given as a path (:func:`fingerprint`) or in memory
    (:func:`table_fingerprint`); None for None."""
    if source is None:
        return None
    if hasattr(source, "colnames"):
        return table_fingerprint(source)
    return fingerprint([source])
