"""The one input expander of the toolkit: files, directories (searched recursively) and glob
patterns to a sorted list of files. Both ingests (apStar, LAMOST) and both predictors use it.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path


def expand_inputs(inputs, prefix: str | tuple[str, ...] = ("apStar", "asStar"),
                  suffixes=(".fits", ".fits.gz"), what: str = "apStar") -> list[Path]:
    """Files from a directory (its files named with one of the prefixes ``prefix`` (a string
    or a tuple; default the apStar format's APO ``apStar`` and LCO ``asStar``) and one of
    ``suffixes``, case ignored, recursively), a glob, a file or a list of those; resolved,
    sorted, without repeats; ``FileNotFoundError`` naming what matched nothing (``what``:
    the file kind).

    Never returned: hidden files, temporary files of :func:`~yso_labels.core.atomic.atomic_write`
    or of a store being written (``*.part``), and the finished chunks of an interrupted
    prediction (``OUT.parts/``)."""
    suffixes = tuple(x.lower() for x in suffixes)
    prefixes = tuple(x.lower() for x in ((prefix,) if isinstance(prefix, str) else prefix))

    def wanted(p: Path) -> bool:
        name = p.name.lower()
        return name.startswith(prefixes) and name.endswith(suffixes)

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: dict[str, Path] = {}
    for item in inputs:
        item_str = str(item)
        if Path(item_str).is_dir():
            matches = [p for p in Path(item_str).rglob("*") if wanted(p)]
        elif Path(item_str).exists():  # before globbing: names may hold [ ] * ?
            matches = [Path(item_str)]
        elif any(c in item_str for c in "*?["):
            matches = [Path(p) for p in glob.glob(item_str, recursive=True)]
        else:
            from apogee_net.spectra.store import StoreError, missing_input_message, part_path

            if part_path(item_str).exists():  # an unfinished store, not a missing file
                raise StoreError(missing_input_message(item_str))
            raise FileNotFoundError(f"{item_str}: no such input file or directory")
        matches = [p for p in matches if p.is_file() and not p.name.startswith(".")
                   and not p.name.endswith(".part")
                   and not any(d.endswith(".parts") for d in p.parent.parts)]
        if not matches:
            raise FileNotFoundError(f"{item_str}: no {what} files found")
        for p in matches:
            found.setdefault(str(p.resolve()), p.resolve())
    return [found[k] for k in sorted(found)]
