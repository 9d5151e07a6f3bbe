"""Model-agnostic streaming prediction into a resumable FITS catalogue.

Inputs are planned into chunks (:func:`apogee_net.inference.chunks.plan_chunks`: a store's
row range, or a list of files), so memory never holds more than one chunk. Each finished
chunk is written atomically to ``OUT.parts/part-NNNNNN.fits``; a rerun with the same model,
inputs and options skips the finished chunks, and the parts are concatenated into ``OUT``
at the end (atomic rename), then removed. Under ``torchrun`` the parts are shared out among
the processes. Used by APOGEE Net (:func:`apogee_net.inference.predict.predict_catalog`) and
by the LAMOST Bayesian CNN (:func:`apogee_net.lamost.predict.predict_lamost`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table, vstack

from yso_labels.core.atomic import atomic_write, write_text
from yso_labels.core.guards import fingerprint
from yso_labels.core.shards import Shards
from yso_labels.core.tables import quiet_units, write_table

log = logging.getLogger(__name__)

__all__ = ["stream_predict", "join_parts", "parts_path", "input_list", "array_sha256"]


def stream_predict(chunks: Sequence, read_fn: Callable[[Any], Any],
                   predict_fn: Callable[[Any, int], Table], out, meta: dict,
                   manifest: dict, progress: bool = True, restart: bool = False) -> Path:
    """Model-agnostic streaming: for each chunk *k* (in order), ``predict_fn(read_fn(chunk),
    offset)`` returns its catalogue rows (``offset``: index of the chunk's first spectrum in
    the whole run: seeds per chunk, as the LAMOST MC passes use); rows go to
    ``OUT.parts/part-k.fits``, finished parts are skipped on a rerun with the same
    ``manifest`` (JSON-able: model, options) and the same inputs (the content fingerprint
    of every store and file of ``chunks``), and the parts are joined into ``out`` (written
    with ``meta`` by :func:`yso_labels.core.tables.write_table`). A rerun with other inputs
    or options is refused; ``restart`` discards the parts instead.

    Under ``torchrun`` each process writes its share of the parts and rank 0 joins them
    (:class:`yso_labels.core.shards.Shards`): the catalogue is the one-process catalogue,
    bit for bit, and a rerun after any process died resumes."""
    from tqdm.auto import tqdm

    out = Path(out)
    parts = parts_path(out)
    plan = json.dumps(list(chunks), default=str, sort_keys=True).encode()
    manifest = json.loads(json.dumps({**manifest, "n_chunks": len(chunks),
                                      "chunks_sha256": hashlib.sha256(plan).hexdigest(),
                                      "inputs_fingerprint": fingerprint(_chunk_sources(chunks))},
                                     default=str))
    names = [parts / f"part-{k:06d}.fits" for k in range(len(chunks))]

    def open_parts() -> list[int]:  # rank 0: the manifest check, then the parts still to do
        man_path = parts / "manifest.json"
        if restart and parts.exists():
            log.info("--restart: discarding %s", parts)
            shutil.rmtree(parts)
        if man_path.exists():
            old = json.loads(man_path.read_text())
            if old != manifest:
                changed = sorted(k for k in set(old) | set(manifest)
                                 if old.get(k) != manifest.get(k))
                raise ValueError(f"{parts} holds the parts of an interrupted run with other "
                                 f"inputs, model or options (changed: {', '.join(changed)}); "
                                 "rerun the same command to resume it, or pass --restart to "
                                 "discard it")
            log.info("resuming from %s", parts)
        else:
            parts.mkdir(parents=True, exist_ok=True)
            write_text(man_path, json.dumps(manifest, indent=1))
        return [k for k in range(len(chunks)) if not names[k].exists()]

    offsets = np.cumsum([0] + [_chunk_len(c) for c in chunks])
    shards = Shards()  # under torchrun: this rank's share of the parts
    todo = shards.from_main(open_parts)
    mine = shards.mine(todo)
    bar = tqdm(total=len(mine), desc="predict" if shards.world == 1 else
               f"predict rank {shards.rank}", unit="chunk", disable=not progress)
    with ThreadPoolExecutor(max_workers=1) as reader:  # reads chunk k+1 during chunk k
        pending = reader.submit(read_fn, chunks[mine[0]]) if mine else None
        for i, k in enumerate(mine):
            data = pending.result()
            if i + 1 < len(mine):
                pending = reader.submit(read_fn, chunks[mine[i + 1]])
            table = predict_fn(data, int(offsets[k]))
            with atomic_write(names[k]) as tmp:
                with quiet_units():
                    table.write(tmp, format="fits", overwrite=True)
            bar.update()
            shards.part_done()
    bar.close()
    shards.wait()  # every rank's parts are written
    if shards.is_main:
        join_parts(names, out, meta)
        shutil.rmtree(parts)
    shards.wait()  # the catalogue is there for every rank
    return out


def join_parts(names: Sequence[Path], out, meta: dict) -> Path:
    """The catalogue ``out`` (written with ``meta``) from the part files ``names``, in order."""
    with quiet_units():  # TUNIT 'dex' is kept as text (see catalog_columns)
        tables = [Table.read(p, mask_invalid=False) for p in names]
    catalogue = vstack(tables, metadata_conflicts="silent") if tables else Table()
    catalogue.meta.clear()
    return write_table(catalogue, out, meta)


def array_sha256(values: np.ndarray) -> str:
    """SHA-256 of an array's float64 bytes (records a table of inputs in a manifest)."""
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()


def _chunk_sources(chunks) -> list[str]:
    """The stores and files of a chunk plan, in order, once each."""
    seen: dict[str, None] = {}
    for chunk in chunks:
        if isinstance(chunk, dict):
            for src in ([chunk["store"]] if "store" in chunk else chunk.get("files", [])):
                seen.setdefault(str(src), None)
    return list(seen)


def parts_path(out) -> Path:
    """Folder of the finished parts of a catalogue being written: ``OUT.parts``."""
    return Path(str(out) + ".parts")


def input_list(inputs) -> list:
    """``inputs`` (a path or a sequence of paths) as a list."""
    return [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)


def _chunk_len(chunk) -> int:
    if isinstance(chunk, dict) and "files" in chunk:
        return len(chunk["files"])
    if isinstance(chunk, dict) and "stop" in chunk:
        return int(chunk["stop"]) - int(chunk["start"])
    return len(chunk)
