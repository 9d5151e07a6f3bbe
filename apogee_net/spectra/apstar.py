"""Reading APOGEE apStar files as they are (SDSS DR13–DR17 apStar data model; Olney et al.
2020 §3 used DR14 apStar).

An apStar file holds, in HDU1/HDU2/HDU3, the flux (1e-17 erg/s/cm²/Å), its 1σ error (same
units) and a pixel bit mask on a log-linear vacuum wavelength grid
λ_i = 10**(CRVAL1 + CDELT1·i) Å, CRVAL1 = 4.179, CDELT1 = 6e-6, 8575 pixels
(15100.8–16999.8 Å). Row choice:

- ``NVISITS > 1``: 2-D (NVISITS + 2, 8575); row 0 is the pixel-weighted combined spectrum
  (row 1 the global-weighted one, then one row per visit). Row 0 is read.
- ``NVISITS == 1``: 1-D (8575,) in DR13; (2, 8575) in DR17, whose row 1 is all zeros. Row 0.

:func:`read_apstar_visits` reads the combined row and every visit (visit *v* is row v + 1
with several visits; the combined row itself with one), each with the visit's MJD from the
header (``JD<v>`` − 2400000.5) and its apVisit file (``SFILE<v>``).

File names: ``apStar-<release>-<ID>.fits`` (APO 2.5 m and 1 m) and ``asStar-<release>-<ID>.fits``
(LCO 2.5 m, DR16 and later) have the same format (:data:`APSTAR_PREFIXES`); the telescope is
the header's ``TELESCOP``, else the DR17 directory (``apo25m``, ``apo1m``, ``lco25m``), else
the prefix (:func:`telescope_of`).

Pixels with no data differ by release: DR13 has flux 0 and error 1e10 outside the chips and
interpolated flux with errors ~1e5 in the chip gaps; DR17 has NaN flux and error. The reader
unifies them: ``dead`` marks every pixel with no usable data and both ``flux`` and ``error``
are NaN there (the DR17 convention), whatever the release. :func:`write_apstar` writes the
same format (used by :mod:`apogee_net.spectra.simulate`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apogee_net.spectra.pixels import BAD_ERROR
from yso_labels.core.atomic import atomic_write

log = logging.getLogger(__name__)

#: The apStar wavelength grid (log10 Å): start, step, number of pixels.
CRVAL1 = 4.179
CDELT1 = 6e-6
NPIX = 8575
#: ASPCAP pixels (chip gaps removed; DR12 definition) as half-open apStar pixel ranges.
ASPCAP_RANGES = ((322, 3242), (3648, 6048), (6412, 8306))
NPIX_ASPCAP = sum(b - a for a, b in ASPCAP_RANGES)  # 7214
#: A pixel whose error exceeds this multiple of the spectrum's median error carries no
#: information (DR13 chip-gap interpolation ~1e5, DR17 bad/edge pixels ~1e12).
DEAD_ERROR_RATIO = 1e3
#: File-name prefixes of the apStar format: APO (``apStar``) and LCO (``asStar``, DR16+).
APSTAR_PREFIXES = ("apStar", "asStar")
#: Telescope when neither the header nor the directory names it (SDSS DR17 data model:
#: apStar = APO 2.5 m, or the 1 m in ``stars/apo1m/``; asStar = LCO du Pont 2.5 m).
PREFIX_TELESCOPE = {"apstar": "apo25m", "asstar": "lco25m"}
TELESCOPES = ("apo25m", "apo1m", "lco25m")
#: Julian date of MJD 0.
MJD_ZERO_JD = 2400000.5
#: APOGEE_PIXMASK bit names (SDSS DR17 bitmask documentation; bits 0-14).
PIXMASK_BITS = {
    0: "BADPIX", 1: "CRPIX", 2: "SATPIX", 3: "UNFIXABLE", 4: "BADDARK", 5: "BADFLAT",
    6: "BADERR", 7: "NOSKY", 8: "LITTROW_GHOST", 9: "PERSIST_HIGH", 10: "PERSIST_MED",
    11: "PERSIST_LOW", 12: "SIG_SKYLINE", 13: "SIG_TELLURIC", 14: "NOT_ENOUGH_PSF",
}


class ApStarError(ValueError):
    """A file is not a readable apStar spectrum; the message names the file and the problem."""


@dataclass
class ApStar:
    """One apStar spectrum (the combined row) and its header metadata.

    ``flux`` and ``error`` are in 1e-17 erg/s/cm²/Å, NaN where ``dead``; ``mask`` is the
    APOGEE pixel bit mask; ``wavelength`` in Å (vacuum); ``snr`` the header's median S/N per
    pixel (computed from flux/error when the header lacks it); J, H, K 2MASS magnitudes.
    """

    flux: np.ndarray
    error: np.ndarray
    mask: np.ndarray
    wavelength: np.ndarray
    dead: np.ndarray
    apogee_id: str
    snr: float
    nvisits: int
    ra: float
    dec: float
    j: float
    h: float
    k: float
    release: str
    path: str
    header: dict = field(default_factory=dict, repr=False)
    telescope: str = ""
    #: 0: the combined spectrum; v ≥ 1: visit v (see :func:`read_apstar_visits`).
    visit: int = 0
    #: Modified Julian date of the visit (NaN for the combined spectrum or when unknown).
    mjd: float = float("nan")


def apstar_wavelength(crval1: float = CRVAL1, cdelt1: float = CDELT1,
                      npix: int = NPIX) -> np.ndarray:
    """Vacuum wavelengths (Å) of the apStar grid: λ_i = 10**(CRVAL1 + CDELT1·i) (apStar
    header; SDSS apStar data model)."""
    return 10.0 ** (crval1 + cdelt1 * np.arange(npix, dtype=np.float64))


def aspcap_pixels() -> np.ndarray:
    """Indices (7214,) of the ASPCAP pixels within the 8575-pixel apStar grid."""
    return np.concatenate([np.arange(a, b) for a, b in ASPCAP_RANGES])


def dead_pixels(flux: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels without usable data, for any release's convention.

    Dead: non-finite flux or error (DR17), flux and error both 0 (DR17 visit rows outside
    the chips, the empty second row of single-visit files), error ≥ :data:`BAD_ERROR` (DR13
    off-chip, flux 0 and error 1e10), or error > :data:`DEAD_ERROR_RATIO` × the median error
    of the other pixels (DR13 interpolated chip gaps ~1e5, DR17 edge and bad pixels ~1e12).
    """
    flux = np.asarray(flux)
    error = np.asarray(error)
    with np.errstate(invalid="ignore"):
        dead = (~np.isfinite(flux) | ~np.isfinite(error) | (error >= BAD_ERROR)
                | ((flux == 0) & (error == 0)))
        live = error[~dead]
        live = live[live > 0]
        if live.size:
            dead |= error > DEAD_ERROR_RATIO * np.median(live)
    return dead


_NAME = re.compile(r"(?i)a[ps]Star-([^-]+)-(.+?)\.fits(\.gz)?$")


def is_apstar_name(name: str) -> bool:
    """True for a file name with an apStar-format prefix (:data:`APSTAR_PREFIXES`)."""
    return name.lower().startswith(tuple(p.lower() for p in APSTAR_PREFIXES))


def telescope_of(path: str | os.PathLike, header: Mapping | None = None) -> str:
    """Telescope of an apStar-format file: ``TELESCOP`` in ``header``, else a DR17 directory
    name on the path (``apo25m``, ``apo1m``, ``lco25m``), else the file-name prefix
    (``apStar`` → apo25m, ``asStar`` → lco25m); ``""`` when none applies."""
    value = str((header or {}).get("TELESCOP", "")).strip().lower()
    if value:
        return value
    path = Path(path)
    for part in reversed(path.parent.parts):
        if part.lower() in TELESCOPES:
            return part.lower()
    return PREFIX_TELESCOPE.get(path.name[:6].lower(), "")


def _release(path: Path, header) -> str:
    match = _NAME.match(path.name)
    if match:
        return match.group(1)
    sfile = str(header.get("SFILE1", ""))
    match = re.match(r"a[ps]Visit-([^-]+)-", sfile)
    return match.group(1) if match else "unknown"


def _apogee_id(path: Path, header) -> str:
    objid = str(header.get("OBJID", "")).strip()
    if objid:
        return objid
    match = _NAME.match(path.name)
    if match:
        return match.group(2)
    raise ApStarError(f"{path}: no OBJID in the primary header and no APOGEE ID in the file "
                      "name (expected apStar-<release>-<ID>.fits or asStar-<release>-<ID>.fits)")


def _float(header, key: str) -> float:
    try:
        value = float(header.get(key, np.nan))
    except (TypeError, ValueError):
        return float("nan")
    return value if value > -9999 else float("nan")  # -9999.99 means missing in APOGEE


def _check_grid(path: Path, headers) -> None:
    """Validate CRVAL1, CDELT1 and the pixel count against the apStar grid."""
    for key, expected in (("CRVAL1", CRVAL1), ("CDELT1", CDELT1)):
        value = next((h[key] for h in headers if key in h), None)
        if value is None:
            raise ApStarError(f"{path}: no {key} keyword; not an apStar file "
                              f"(expected {key} = {expected})")
        if not np.isclose(float(value), expected, rtol=1e-9, atol=1e-12):
            raise ApStarError(f"{path}: {key} = {value}, expected {expected} "
                              "(not the apStar wavelength grid)")


def _select_row(path: Path, data: np.ndarray, what: str, row: int | None):
    if data is None:
        raise ApStarError(f"{path}: HDU with the {what} is empty; not an apStar file")
    if data.ndim == 1:
        if row not in (None, 0):
            raise ApStarError(f"{path}: 1-D {what}, no row {row}")
        out = data
    elif data.ndim == 2:
        r = 0 if row is None else row
        if not 0 <= r < data.shape[0]:
            raise ApStarError(f"{path}: {what} has {data.shape[0]} rows, no row {r}")
        out = data[r]
    else:
        raise ApStarError(f"{path}: {what} has shape {data.shape}; expected (8575,) or "
                          "(nrows, 8575)")
    if out.shape[-1] != NPIX:
        raise ApStarError(f"{path}: {what} has {out.shape[-1]} pixels, expected {NPIX} "
                          "(apStar grid)")
    return out


def _load(path: Path):
    """(header dict, flux, error, mask arrays as stored, nvisits) of one apStar-format file."""
    from astropy.io import fits

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such apStar file")
    try:
        with fits.open(path, memmap=False) as hdul:
            if len(hdul) < 4:
                raise ApStarError(f"{path}: {len(hdul)} HDU(s); an apStar file has flux, "
                                  "error and mask in HDU1-3")
            header = hdul[0].header
            _check_grid(path, [hdul[1].header, header])
            nvisits = int(header.get("NVISITS", 1) or 1)
            arrays = []
            for i, what in ((1, "flux (HDU1)"), (2, "error (HDU2)"), (3, "mask (HDU3)")):
                if hdul[i].data is None:
                    raise ApStarError(f"{path}: HDU with the {what} is empty; not an apStar "
                                      "file")
                arrays.append(np.asarray(hdul[i].data))
            meta = {k: header[k] for k in header if k not in ("COMMENT", "HISTORY", "")}
    except ApStarError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise ApStarError(f"{path}: not a readable apStar FITS file ({exc})") from exc
    return meta, arrays[0], arrays[1], arrays[2], nvisits


def _spectrum(path: Path, meta: dict, flux2d, error2d, mask2d, nvisits: int,
              row: int | None, visit: int = 0, mjd: float = float("nan")) -> ApStar:
    """Validate row ``row`` of the arrays and build the :class:`ApStar`."""
    flux = _select_row(path, flux2d, "flux (HDU1)", row)
    error = _select_row(path, error2d, "error (HDU2)", row)
    mask = _select_row(path, mask2d, "mask (HDU3)", row)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ApStarError(f"{path}: mask (HDU3) has dtype {mask.dtype}; expected integers")
    if mask.size and (mask.min() < np.iinfo(np.int32).min or mask.max() > np.iinfo(np.int32).max):
        raise ApStarError(f"{path}: mask values do not fit 32 bits")
    r = 0 if row is None else row
    flux = np.array(flux, dtype=np.float64)
    error = np.array(error, dtype=np.float64)
    dead = dead_pixels(flux, error)
    live = ~dead
    if not live.any():
        raise ApStarError(f"{path}: no pixel with data (flux or error all NaN or flagged); "
                          f"row {r} is empty")
    if np.all(flux[live] == 0):
        raise ApStarError(f"{path}: all-zero flux in row {r}")
    bad = live & (error <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ApStarError(f"{path}: {int(bad.sum())} pixel(s) with data have non-positive "
                          f"error (first at pixel {first}: {error[first]}); errors must be > 0")
    flux[dead] = np.nan
    error[dead] = np.nan

    # a visit's own S/N (SNRVIS<v>) only where it differs from the combined spectrum
    snr = _float(meta, f"SNRVIS{visit}") if visit and nvisits > 1 else _float(meta, "SNR")
    if not np.isfinite(snr):
        snr = float(np.median(flux[live] / error[live]))
    return ApStar(
        flux=flux.astype(np.float32), error=error.astype(np.float32),
        mask=np.asarray(mask, dtype=np.int32), wavelength=apstar_wavelength(), dead=dead,
        apogee_id=_apogee_id(path, meta), snr=snr, nvisits=nvisits,
        ra=_float(meta, "RA"), dec=_float(meta, "DEC"),
        j=_float(meta, "J"), h=_float(meta, "H"), k=_float(meta, "K"),
        release=_release(path, meta), path=str(path), header=meta,
        telescope=telescope_of(path, meta), visit=visit, mjd=mjd,
    )


def read_apstar(path: str | os.PathLike, row: int | None = None) -> ApStar:
    """Read one apStar (or asStar) file; ``row=None`` picks the combined spectrum (row 0,
    see module doc).

    Raises :class:`ApStarError` (a ``ValueError``) naming the file for a non-apStar or corrupt
    FITS file, a wrong wavelength grid or pixel count, a spectrum without data (all NaN or all
    zero flux) and non-positive errors on pixels with data.
    """
    path = Path(path)
    meta, flux, error, mask, nvisits = _load(path)
    nrows = 1 if flux.ndim == 1 else flux.shape[0]
    if nvisits > 1 and nrows < nvisits + 2:
        log.warning("%s: NVISITS = %d but %d rows (expected %d); reading row 0",
                    path, nvisits, nrows, nvisits + 2)
    return _spectrum(path, meta, flux, error, mask, nvisits, row)


def visit_rows(nvisits: int, nrows: int) -> list[int]:
    """Array row of each visit 1..``nvisits`` (SDSS apStar data model: with several visits,
    rows 0 and 1
    are the pixel- and global-weighted combinations, then one row per visit; with one visit
    the combined row 0 is that visit)."""
    if nvisits <= 1:
        return [0]
    if nrows < nvisits + 2:
        raise ApStarError(f"NVISITS = {nvisits} but {nrows} rows (expected {nvisits + 2})")
    return [v + 1 for v in range(1, nvisits + 1)]


def visit_mjd(header: Mapping, visit: int) -> float:
    """MJD of visit ``visit`` from the header's ``JD<visit>`` (MJD = JD − 2400000.5); NaN
    when absent."""
    jd = _float(header, f"JD{visit}")
    return jd - MJD_ZERO_JD if np.isfinite(jd) else float("nan")


def read_apstar_visits(path: str | os.PathLike) -> list[ApStar | ApStarError]:
    """The combined spectrum (``visit`` 0) and every visit (``visit`` 1..NVISITS, with
    ``mjd`` and ``snr`` = ``SNRVIS<v>`` from the header; a single visit is the combined row,
    with its S/N) of one apStar/asStar file.

    A visit row that cannot be used (no data, say) is returned as its
    :class:`ApStarError` in its place, so the other rows survive; a file that cannot be read
    at all raises.
    """
    path = Path(path)
    meta, flux, error, mask, nvisits = _load(path)
    nrows = 1 if flux.ndim == 1 else flux.shape[0]
    out: list[ApStar | ApStarError] = []
    try:
        out.append(_spectrum(path, meta, flux, error, mask, nvisits, None))
    except ApStarError as exc:
        out.append(exc)
    try:
        rows = visit_rows(nvisits, nrows)
    except ApStarError as exc:
        raise ApStarError(f"{path}: {exc}") from None
    for visit, row in enumerate(rows, start=1):
        try:
            out.append(_spectrum(path, meta, flux, error, mask, nvisits, row, visit=visit,
                                 mjd=visit_mjd(meta, visit)))
        except ApStarError as exc:
            out.append(exc)
    return out


def mask_bits(mask: np.ndarray | int) -> list[str]:
    """Names of the PIXMASK bits set anywhere in ``mask``."""
    combined = int(np.bitwise_or.reduce(np.atleast_1d(np.asarray(mask, dtype=np.int64))))
    return [name for bit, name in PIXMASK_BITS.items() if combined & (1 << bit)]


def write_apstar(path: str | os.PathLike, flux: np.ndarray, error: np.ndarray,
                 mask: np.ndarray | None = None, header: Mapping | None = None,
                 convention: str = "dr17") -> Path:
    """Write one spectrum as a real-format apStar file (atomically).

    HDU0: header keywords (``OBJID NVISITS SNR RA DEC J H K TELESCOP`` ...) and the grid
    (CRVAL1, CDELT1, CRPIX1, NWAVE); HDU1 flux, HDU2 error, HDU3 bit mask, each with CRVAL1,
    CDELT1 and BUNIT. ``convention="dr17"``: (2, 8575) rows (row 1 all zeros, as single-visit
    DR17 files) with NaN where ``flux`` is NaN; ``"dr13"``: 1-D (8575,) with flux 0 and
    error 1e10 outside the chips and linearly interpolated flux with error 1e5 in the gaps.
    """
    from astropy.io import fits

    flux = np.asarray(flux, np.float32).copy()
    error = np.asarray(error, np.float32).copy()
    mask = np.zeros(NPIX, np.int32) if mask is None else np.asarray(mask, np.int32)
    if flux.shape != (NPIX,) or error.shape != (NPIX,) or mask.shape != (NPIX,):
        raise ValueError(f"{path}: flux, error and mask must have shape ({NPIX},)")
    if convention == "dr13":
        empty = ~np.isfinite(flux)
        live = np.flatnonzero(~empty)
        inside = (np.arange(NPIX) > live[0]) & (np.arange(NPIX) < live[-1])
        gaps = empty & inside
        flux[gaps] = np.interp(np.flatnonzero(gaps), live, flux[live])
        error[gaps] = 1e5
        flux[empty & ~inside], error[empty & ~inside] = 0.0, 1e10
        data = (flux, error, mask)
    elif convention == "dr17":
        data = tuple(np.vstack([a, np.zeros_like(a)]) for a in (flux, error, mask))
    else:
        raise ValueError(f"convention must be 'dr17' or 'dr13', got {convention!r}")
    grid = {"CRVAL1": (CRVAL1, "Start log10(wavelength) in subsequent HDUs"),
            "CDELT1": (CDELT1, "Dispersion in log10(wave) in subsequent HDUs"),
            "CRPIX1": (1, "Pixel of starting wavelength in subsequent HDUs"),
            "CTYPE1": ("LOG-LINEAR", "Logarithmic wavelength scale")}
    primary = fits.PrimaryHDU()
    for key, value in grid.items():
        primary.header[key] = value
    primary.header["NWAVE"] = NPIX
    for key, value in (header or {}).items():
        primary.header[key[:8]] = value
    hdus = [primary]
    for array, unit in zip(data, ("Flux (10^-17 erg/s/cm^2/Ang)", "Err (10^-17 erg/s/cm^2/Ang)",
                                  "Pixel bitmask"), strict=True):
        hdu = fits.ImageHDU(array)
        for key, value in grid.items():
            hdu.header[key] = value[0]
        hdu.header["BUNIT"] = unit
        hdus.append(hdu)
    with atomic_write(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return Path(path)


def read_raw_apstar(path: str | os.PathLike, visit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """apStar HDU1/HDU2 row of ``visit`` (0: the combined row 0; see
    :func:`visit_rows`) as stored (float32, NaN/1e10 left as they are), as the peer
    pipelines read them."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        flux, error = hdul[1].data, hdul[2].data
        if flux.ndim != 1:
            nvisits = int(hdul[0].header.get("NVISITS", 1) or 1)
            row = 0 if visit == 0 else visit_rows(nvisits, flux.shape[0])[visit - 1]
            flux, error = flux[row], error[row]
        return np.asarray(flux, np.float32).copy(), np.asarray(error, np.float32).copy()
