"""Read LAMOST low-resolution (LRS) spectra in both published layouts (LAMOST DR1–DR8
image HDU; DR9+ ``COADD`` table).

* DR1–DR8 "image" layout: primary HDU of shape (5, N), rows flux, inverse variance,
  wavelength (DR1 files name the third row ``Subcontinuum`` instead, see ``EXTEN0``),
  and-mask, or-mask.
* DR9 and later "COADD" layout: a one-row binary table ``COADD`` with columns ``FLUX,
  IVAR, WAVELENGTH, ANDMASK, ORMASK, NORMALIZATION``.

Both are on the log-linear grid λ_i = 10^(COEFF0 + COEFF1·i) Å (vacuum, heliocentric);
the wavelength is recomputed in float64 from the header coefficients when they are present
(the stored float32 row agrees to ~1e−3 Å). Gzipped files (``.fits.gz``) read the same way.
The header gives the redshift ``Z``, the S/N per band (``SNRG``; ``SN_G`` in DR1), ``CLASS``,
``SUBCLASS`` and the identifiers ``OBSID`` (DR2+) and ``DESIG``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["LamostFormatError", "LamostSpectrum", "read_lamost", "find_lamost_files",
           "log_linear_wavelength"]

#: Sentinels LAMOST and APOGEE use for "no value".
MISSING_SENTINELS = (-9999.0, -999.0)
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz")


class LamostFormatError(ValueError):
    """A file is not a LAMOST LRS spectrum in a layout we know; the message names the file."""


@dataclass
class LamostSpectrum:
    """One LAMOST LRS spectrum as stored (observed frame).

    ``wavelength`` in Å (vacuum, heliocentric), ``flux`` in the file's units (relative
    flux-calibrated), ``ivar`` = 1/σ² in flux⁻², masks as integers (0 = good).
    ``z`` is NaN when the header has no usable redshift.
    """

    path: str
    layout: str                       # "image" (DR1–DR8) or "coadd" (DR9+)
    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    andmask: np.ndarray
    ormask: np.ndarray
    obsid: str
    designation: str
    ra: float
    dec: float
    z: float
    z_err: float
    snr: dict[str, float] = field(default_factory=dict)
    cls: str = ""
    subclass: str = ""
    data_release: str = ""

    @property
    def spec_id(self) -> str:
        """Identifier used in the store: the OBSID, else the designation, else the file stem."""
        return self.obsid or self.designation or Path(self.path).name.split(".")[0]

    @property
    def snrg(self) -> float:
        """S/N in the g band (NaN when the header has none)."""
        return self.snr.get("g", math.nan)


def log_linear_wavelength(coeff0: float, coeff1: float, npix: int) -> np.ndarray:
    """LAMOST wavelength grid λ_i = 10^(COEFF0 + COEFF1·i) in Å (LAMOST
    header keywords), float64."""
    return 10.0 ** (float(coeff0) + float(coeff1) * np.arange(npix, dtype=np.float64))


def find_lamost_files(paths) -> list[Path]:
    """Expand files, directories (searched recursively) and globs to the sorted list of
    ``*.fits``/``*.fits.gz`` files (:func:`apogee_net.spectra.inputs.expand_inputs`);
    ``FileNotFoundError`` naming an input that matches nothing."""
    from apogee_net.spectra.inputs import expand_inputs

    return expand_inputs(paths, prefix="", suffixes=FITS_SUFFIXES, what="LAMOST FITS")


def _number(header, *keys: str) -> float:
    for key in keys:
        value = header.get(key)
        if value is None or isinstance(value, str) and not value.strip():
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value) or value in MISSING_SENTINELS:
            return math.nan
        return value
    return math.nan


def _text(header, *keys: str) -> str:
    for key in keys:
        value = header.get(key)
        if value is not None and str(value).strip() not in ("", "NULL", "-9999"):
            return str(value).strip()
    return ""


def _header_wavelength(header, npix: int) -> np.ndarray | None:
    c0 = _number(header, "COEFF0", "CRVAL1")
    c1 = _number(header, "COEFF1", "CD1_1", "CDELT1")
    if math.isnan(c0) or math.isnan(c1):
        return None
    if not (3.3 < c0 < 4.0 and 0 < c1 < 1e-2):
        return None  # not a log10 grid
    return log_linear_wavelength(c0, c1, npix)


def _image_arrays(path: Path, hdu) -> dict[str, np.ndarray]:
    data = np.asarray(hdu.data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise LamostFormatError(
            f"LAMOST spectrum {path}: primary image has shape {data.shape}; expected (5, N) "
            "rows flux, ivar, wavelength, andmask, ormask (DR1–DR8 layout)")
    names = [s.strip().lower() for s in
             str(hdu.header.get("EXTEN0", "")).replace(",", " ").split()]
    rows = {"flux": data[0], "ivar": data[1]}
    if data.shape[0] >= 3:
        third = data[2]
        looks_like_wavelength = bool(np.all(np.diff(third) > 0) and 3000 < third[0] < 11000)
        if names[2:3] == ["wavelength"] or (not names and looks_like_wavelength):
            rows["wavelength"] = third      # DR1 stores a "Subcontinuum" there instead
    if data.shape[0] >= 5:
        rows["andmask"], rows["ormask"] = data[3], data[4]
    return rows


def _coadd_arrays(path: Path, hdu) -> dict[str, np.ndarray]:
    cols = {c.upper(): c for c in hdu.columns.names}
    missing = [c for c in ("FLUX", "IVAR") if c not in cols]
    if missing:
        raise LamostFormatError(
            f"LAMOST spectrum {path}: table HDU {hdu.name!r} lacks column(s) "
            f"{', '.join(missing)}; has {', '.join(hdu.columns.names)}")
    if len(hdu.data) != 1:
        raise LamostFormatError(f"LAMOST spectrum {path}: COADD table has {len(hdu.data)} rows; "
                                "expected one")
    row = hdu.data[0]
    out = {}
    for key in ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK"):
        if key in cols:
            out[key.lower()] = np.asarray(row[cols[key]], dtype=np.float64).ravel()
    return out


def read_lamost(path: str | os.PathLike) -> LamostSpectrum:
    """Read one LAMOST LRS FITS file (either layout, gzipped or not).

    Raises :class:`LamostFormatError` naming the file when the layout is not recognised or
    the arrays are inconsistent; a missing redshift is *not* an error here (``z`` is NaN)
    but is rejected by :func:`apogee_net.lamost.preprocess.prepare_spectrum`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"LAMOST spectrum {path}: no such file")
    try:
        hdul = fits.open(path, memmap=False)
    except Exception as exc:
        raise LamostFormatError(
            f"LAMOST spectrum {path}: not a readable FITS file ({exc})") from exc
    with hdul:
        header = hdul[0].header
        coadd = next((h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)
                      and h.name.upper() == "COADD"), None)
        if coadd is not None:
            layout, arrays = "coadd", _coadd_arrays(path, coadd)
        elif hdul[0].data is not None and np.ndim(hdul[0].data) == 2:
            layout, arrays = "image", _image_arrays(path, hdul[0])
        else:
            kinds = ", ".join(f"{h.name}:{type(h).__name__}" for h in hdul)
            raise LamostFormatError(
                f"LAMOST spectrum {path}: neither a (5, N) primary image (DR1–DR8) nor a "
                f"COADD binary table (DR9+); HDUs are {kinds}")
        flux, ivar = arrays["flux"], arrays["ivar"]
        npix = flux.size
        if ivar.size != npix:
            raise LamostFormatError(f"LAMOST spectrum {path}: flux has {npix} pixels, "
                                    f"ivar {ivar.size}")
        wavelength = _header_wavelength(header, npix)
        stored = arrays.get("wavelength")
        if wavelength is not None and stored is not None and stored.size == npix and \
                np.nanmax(np.abs(stored - wavelength)) > 1.0:
            raise LamostFormatError(
                f"LAMOST spectrum {path}: the header grid (COEFF0/COEFF1) and the stored "
                f"wavelengths differ by up to {np.nanmax(np.abs(stored - wavelength)):.3g} Å")
        if wavelength is None:
            wavelength = stored
            if wavelength is None:
                raise LamostFormatError(f"LAMOST spectrum {path}: no wavelength (no COEFF0/COEFF1 "
                                        "header keywords and no wavelength row/column)")
        if wavelength.size != npix or not np.all(np.diff(wavelength) > 0):
            raise LamostFormatError(f"LAMOST spectrum {path}: wavelength is not increasing "
                                    f"over {npix} pixels")
        zeros = np.zeros(npix)
        snr = {band: _number(header, f"SNR{band.upper()}", f"SN_{band.upper()}")
               for band in "ugriz"}
        obsid = header.get("OBSID")
        return LamostSpectrum(
            path=str(path), layout=layout, wavelength=wavelength, flux=flux, ivar=ivar,
            andmask=arrays.get("andmask", zeros).astype(np.int64),
            ormask=arrays.get("ormask", zeros).astype(np.int64),
            obsid="" if obsid is None else str(obsid).strip(),
            designation=_text(header, "DESIG"),
            ra=_number(header, "RA", "RA_OBS"), dec=_number(header, "DEC", "DEC_OBS"),
            z=_number(header, "Z"), z_err=_number(header, "Z_ERR"),
            snr={k: v for k, v in snr.items() if not math.isnan(v)},
            cls=_text(header, "CLASS"), subclass=_text(header, "SUBCLASS"),
            data_release=_text(header, "DATA_V"))
