"""Writing matplotlib figures: atomically, as PNG, closing the figure.

The library builds :class:`matplotlib.figure.Figure` objects and never picks a backend
(notebooks keep theirs; the ``apogee-net`` CLI and the tests set ``MPLBACKEND=Agg``).
"""

from __future__ import annotations

import os
from pathlib import Path

from yso_labels.core.atomic import atomic_write


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG to ``path`` (:func:`~yso_labels.core.atomic.atomic_write`) and
    close it, also when writing fails."""
    import matplotlib.pyplot as plt

    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)
