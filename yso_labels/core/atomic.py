"""The one atomic write of the toolkit: write under a temporary name, rename on success.

Every output file (tables, checkpoints, figures, logs, JSON reports, apStar files, cache
entries) is written through :func:`atomic_write`, so a reader never sees a half-written
file and a failure (an exception, Ctrl-C) leaves no partial file behind: the temporary
file lives in the target's directory (so the final :func:`os.replace` is atomic on POSIX
file systems) and is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of a finished file: those ``open()`` would give (``mkstemp`` makes 0600).
_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary path beside ``path`` to write to.

    On a normal exit the temporary file is renamed to ``path`` (replacing it); on an
    exception it is deleted and ``path`` is left as it was. The parent directory is created.
    The temporary name is hidden (``.NAME.XXXX.part``) and is never picked up as an input.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _FILE_MODE)
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`); return the path."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1) -> Path:
    """Write ``obj`` as JSON (non-JSON values via ``str``) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, default=str) + "\n")
