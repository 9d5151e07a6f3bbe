"""The apStar pixel bit mask (HDU 3, APOGEE_PIXMASK) as dead pixels.

An apStar file flags pixels in HDU 3 with the APOGEE_PIXMASK bits of
:data:`apogee_net.spectra.apstar.PIXMASK_BITS` (SDSS DR17 bitmask documentation: 0 BADPIX … 14
NOT_ENOUGH_PSF). The toolkit treats the pixels with any bit of a chosen set as dead (flux
and error NaN, i.e. no data) in ingest, training and prediction; the set is recorded in the
store (attribute ``pixmask_bits``) and in the model (``meta["pixmask_bits"]``).

Default set, chosen by measurement on the two real DR17 files of ``../shared/data/apogee``
(the combined rows and the three visits of 2M17335483-2753043; benchmarks/README, "Issue 12"):

- BADPIX, CRPIX, SATPIX, UNFIXABLE, BADDARK, BADFLAT, BADERR and NOT_ENOUGH_PSF mark pixels
  the reader already finds dead (NaN flux or error > 1e3 × the median) in these files:
  masking them costs nothing and protects files where they carry data;
- SIG_SKYLINE (120–390 pixels per spectrum, errors 20–26 × the median: sky-subtraction
  residuals) is what matters: without it a model trained on simulated spectra gave the four
  spectra of one star Teff 1,900–4,000 K (std over the visits 1,287 K with the augmented
  model), with it 4,320–4,490 K (std 48–54 K);
- NOSKY, LITTROW_GHOST, PERSIST_HIGH and PERSIST_MED (light that is not the star's) are
  masked too: with them the visit spread is the smallest (48 K, 0.16 dex in log g) and the
  single-visit dwarf 2M19485057+5005279 gets in-range labels without a flag;
- PERSIST_LOW (~350 pixels) and SIG_TELLURIC (~400 pixels) are kept: masking them moves
  the dwarf by 150–180 K and makes it OOD (too many dead pixels for the training spectra).

The astroNN default (Leung & Bovy 2019, ``apogee_continuum``: bits 0–7 and 12) is this set
without LITTROW_GHOST, persistence and NOT_ENOUGH_PSF.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from apogee_net.spectra.apstar import PIXMASK_BITS

_BY_NAME = {name: bit for bit, name in PIXMASK_BITS.items()}
#: Default bits treated as dead (module docstring for the measurement behind the choice).
DEFAULT_PIXMASK_BITS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14)


def parse_pixmask_bits(spec: str | int | Iterable | None) -> tuple[int, ...]:
    """Bit numbers from ``spec``: ``None`` or ``"default"`` (:data:`DEFAULT_PIXMASK_BITS`),
    ``"none"`` (no bit), a comma-separated string of bit numbers or names
    (``"0,1,SIG_SKYLINE"``), or an iterable of those. Returns sorted unique bits 0–14;
    ``ValueError`` names an unknown bit."""
    if spec is None:
        return DEFAULT_PIXMASK_BITS
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "default":
            return DEFAULT_PIXMASK_BITS
        if text.lower() in ("none", ""):
            return ()
        items: Iterable = [t.strip() for t in text.split(",") if t.strip()]
    elif isinstance(spec, (int, np.integer)):
        items = [int(spec)]
    else:
        items = list(spec)
    bits = set()
    for item in items:
        if isinstance(item, str) and item.upper() in _BY_NAME:
            bits.add(_BY_NAME[item.upper()])
            continue
        try:
            bit = int(item)
        except (TypeError, ValueError):
            bit = -1
        if bit not in PIXMASK_BITS:
            raise ValueError(f"pixel mask bit {item!r}: expected a number 0-14 or one of "
                             f"{', '.join(PIXMASK_BITS.values())}")
        bits.add(bit)
    return tuple(sorted(bits))


def bits_value(bits: Iterable[int]) -> int:
    """The bit mask value Σ 2**bit of ``bits``."""
    return int(sum(1 << int(b) for b in set(bits)))


def format_bits(bits: Iterable[int]) -> str:
    """``"0,1,12"``-style text of ``bits`` (what the store and model record)."""
    return ",".join(str(b) for b in sorted(set(int(b) for b in bits)))


def masked_pixels(mask: np.ndarray, bits: Iterable[int]) -> np.ndarray:
    """Boolean array: pixels of the bit mask ``mask`` (any shape) with any of ``bits`` set."""
    value = bits_value(bits)
    return (np.asarray(mask, dtype=np.int64) & value) != 0


def apply_pixmask(flux: np.ndarray, error: np.ndarray, mask: np.ndarray | None,
                  bits: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``flux`` and ``error`` with NaN (no data) where ``mask`` has any of
    ``bits``; unchanged copies when ``mask`` is None or ``bits`` empty."""
    flux = np.array(flux, dtype=np.float32)
    error = np.array(error, dtype=np.float32)
    bits = tuple(bits)
    if mask is None or not bits:
        return flux, error
    dead = masked_pixels(mask, bits)
    if dead.shape != flux.shape:
        raise ValueError(f"pixel mask has shape {dead.shape}, flux {flux.shape}")
    flux[dead] = np.nan
    error[dead] = np.nan
    return flux, error


def bit_counts(mask: np.ndarray, live: np.ndarray | None = None) -> dict[str, int]:
    """Number of pixels (with data, where ``live`` is given) carrying each PIXMASK bit."""
    mask = np.asarray(mask, dtype=np.int64)
    sel = np.ones(mask.shape, bool) if live is None else np.asarray(live, bool)
    return {name: int((((mask >> bit) & 1).astype(bool) & sel).sum())
            for bit, name in PIXMASK_BITS.items()}
