"""Which pixels of a stored spectrum carry data: the one convention of every store.

Readers put NaN where a pixel has no data; apStar files mark such pixels with an error of
``1e9`` or more instead (:data:`BAD_ERROR`), which the readers keep.
A pixel has data when its flux is finite and its error finite, positive and below
:data:`BAD_ERROR`.
"""

from __future__ import annotations

import numpy as np
import torch

#: Errors at or above this are "no data" (the apogee reduction's BADERR = 1e10, DR13
#: off-chip pixels).
BAD_ERROR = 1e9


def valid_pixels(flux, error):
    """Pixels with data: finite flux, finite error with 0 < error < :data:`BAD_ERROR`.

    Works on numpy arrays and torch tensors of the same shape.
    """
    if isinstance(flux, torch.Tensor):
        return (torch.isfinite(flux) & torch.isfinite(error) & (error > 0)
                & (error < BAD_ERROR))
    with np.errstate(invalid="ignore"):
        return np.isfinite(flux) & np.isfinite(error) & (error > 0) & (error < BAD_ERROR)
