"""SDSS-V Milky Way Mapper spectrum files: ``mwmStar`` and ``mwmVisit`` (APOGEE part).

Layout (SDSS-V astra data model, ``astra.products.mwm``; one file per ``sdss_id``):

- HDU0: primary header with the source (``SDSS_ID``, ``RA``, ``DEC``, ``APOGEEID``, ...);
- HDU1 ``BOSS/APO``, HDU2 ``BOSS/LCO``, HDU3 ``APOGEE/APO``, HDU4 ``APOGEE/LCO``: binary
  tables, one row per spectrum (``mwmStar``: the co-added spectrum of that observatory;
  ``mwmVisit``: one row per visit), each with the header ``OBSRVTRY``, ``INSTRMNT`` and the
  log-linear grid ``CRVAL``, ``CDELT``, ``NPIXELS`` (APOGEE: 4.179, 6e-6, 8575, the apStar
  grid, rest frame); columns ``sdss_id``, ``telescope``, ``snr``, ``mjd`` (visits), ``flux``
  (1e-17 erg/s/cm²/Å), ``ivar`` (its inverse variance), ``pixel_flags``.

An APOGEE HDU is found by its ``EXTNAME``/``INSTRMNT`` (``APOGEE``), else by content (a
``flux`` column of 8575 pixels). Every APOGEE row becomes an
:class:`~apogee_net.spectra.apstar.ApStar`
with ``error = ivar**-0.5`` (NaN where ivar ≤ 0) and ``apogee_id`` = the ``sdss_id`` (the
SDSS-V key), ``visit`` 0 for mwmStar rows and 1..n for mwmVisit rows. BOSS HDUs are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from apogee_net.spectra.apstar import (
    CDELT1,
    CRVAL1,
    NPIX,
    ApStar,
    ApStarError,
    apstar_wavelength,
)

#: File-name prefixes of the SDSS-V Milky Way Mapper spectrum files.
MWM_PREFIXES = ("mwmStar", "mwmVisit")


def is_mwm_name(name: str) -> bool:
    """True for an ``mwmStar``/``mwmVisit`` file name."""
    return Path(name).name.lower().startswith(tuple(p.lower() for p in MWM_PREFIXES))


def _columns(hdu) -> dict[str, str]:
    return {n.lower(): n for n in (hdu.columns.names if hdu.columns is not None else [])}


def _is_apogee(hdu) -> bool:
    header = hdu.header
    label = f"{header.get('EXTNAME', '')} {header.get('INSTRMNT', '')}".upper()
    if "APOGEE" in label:
        return True
    if "BOSS" in label:
        return False
    cols = _columns(hdu)
    if "flux" not in cols or hdu.data is None or len(hdu.data) == 0:
        return False
    return np.atleast_2d(hdu.data[cols["flux"]]).shape[-1] == NPIX


def _value(row, cols, name, default):
    if name not in cols:
        return default
    value = row[cols[name]]
    return value.decode() if isinstance(value, bytes) else value


def read_mwm(path: str | os.PathLike) -> list[ApStar | ApStarError]:
    """Every APOGEE spectrum of an mwmStar/mwmVisit file (see module doc), in HDU then row
    order. A row without data is returned as its :class:`ApStarError` in its place; a file
    without any APOGEE table raises :class:`ApStarError` naming it."""
    from astropy.io import fits

    from apogee_net.spectra.apstar import dead_pixels

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such mwmStar/mwmVisit file")
    visits = path.name.lower().startswith("mwmvisit")
    out: list[ApStar | ApStarError] = []
    try:
        with fits.open(path, memmap=False) as hdul:
            primary = {k: hdul[0].header[k] for k in hdul[0].header
                       if k not in ("COMMENT", "HISTORY", "")}
            tables = [h for h in hdul[1:] if isinstance(h, fits.BinTableHDU) and _is_apogee(h)]
            if not tables:
                raise ApStarError(f"{path}: no APOGEE table (EXTNAME APOGEE/APO or "
                                  "APOGEE/LCO, or a flux column of 8575 pixels); not an "
                                  "mwmStar/mwmVisit file with APOGEE spectra")
            for hdu in tables:
                header, cols = hdu.header, _columns(hdu)
                for key, expected in (("CRVAL", CRVAL1), ("CDELT", CDELT1)):
                    if key in header and not np.isclose(float(header[key]), expected):
                        raise ApStarError(f"{path}: HDU {header.get('EXTNAME', '?')} {key} = "
                                          f"{header[key]}, expected {expected} (apStar grid)")
                missing = [c for c in ("flux", "ivar") if c not in cols]
                if missing:
                    raise ApStarError(f"{path}: HDU {header.get('EXTNAME', '?')} lacks "
                                      f"column(s) {', '.join(missing)}")
                obs = str(header.get("OBSRVTRY", "")).strip().lower()
                for row in hdu.data:  # visits are numbered across the APO and LCO tables
                    out.append(_row_spectrum(path, primary, row, cols, obs, len(out), visits,
                                             dead_pixels))
    except ApStarError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise ApStarError(f"{path}: not a readable mwmStar/mwmVisit FITS file ({exc})") from exc
    return out


def _row_spectrum(path, primary, row, cols, obs, index, visits, dead_pixels):
    flux = np.asarray(row[cols["flux"]], np.float64).ravel()
    ivar = np.asarray(row[cols["ivar"]], np.float64).ravel()
    where = f"{path}: row {index}"
    if flux.size != NPIX or ivar.size != NPIX:
        return ApStarError(f"{where}: {flux.size} pixels, expected {NPIX} (apStar grid)")
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.where(ivar > 0, 1.0 / np.sqrt(ivar), np.nan)
    dead = dead_pixels(flux, error)
    if not (~dead).any() or np.all(flux[~dead] == 0):
        return ApStarError(f"{where}: no pixel with data (ivar all 0 or flux all 0/NaN)")
    flux[dead], error[dead] = np.nan, np.nan
    mask = (np.asarray(row[cols["pixel_flags"]]).ravel().astype(np.int64)
            if "pixel_flags" in cols else np.zeros(NPIX, np.int64))
    sdss_id = _value(row, cols, "sdss_id", primary.get("SDSS_ID", ""))
    telescope = str(_value(row, cols, "telescope", "") or "").strip().lower() or (
        {"apo": "apo25m", "lco": "lco25m"}.get(obs, obs))
    snr = float(_value(row, cols, "snr", np.nan))
    if not np.isfinite(snr) or snr <= 0:
        snr = float(np.median(flux[~dead] / error[~dead]))
    mjd = float(_value(row, cols, "mjd", np.nan)) if visits else float("nan")

    def num(key):
        try:
            return float(primary.get(key, np.nan))
        except (TypeError, ValueError):
            return float("nan")

    return ApStar(
        flux=flux.astype(np.float32), error=error.astype(np.float32),
        mask=(mask & 0x7FFFFFFF).astype(np.int32), wavelength=apstar_wavelength(), dead=dead,
        apogee_id=str(sdss_id), snr=snr, nvisits=1, ra=num("RA"), dec=num("DEC"),
        j=num("J_MAG"), h=num("H_MAG"), k=num("K_MAG"),
        release=str(_value(row, cols, "v_astra", primary.get("V_ASTRA", "sdss5"))),
        path=str(path), header=primary, telescope=telescope,
        visit=index + 1 if visits else 0, mjd=mjd)


def count_apogee_rows(path: str | os.PathLike) -> int:
    """Number of APOGEE spectra in an mwmStar/mwmVisit file (0 when unreadable: reading it
    reports why)."""
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            return sum(len(h.data) for h in hdul[1:]
                       if isinstance(h, fits.BinTableHDU) and _is_apogee(h))
    except (OSError, ValueError, TypeError):
        return 0


def row_source(path: str | os.PathLike, index: int) -> str:
    """The store ``source`` of APOGEE spectrum ``index`` (0-based, :func:`read_mwm` order) of
    an mwmStar/mwmVisit file: ``PATH[index]`` (an apStar file is stored as ``PATH``)."""
    return f"{path}[{int(index)}]"


def split_row_source(source: str) -> tuple[str, int] | None:
    """``(path, index)`` of a :func:`row_source` string; None for any other source."""
    base, sep, rest = str(source).rpartition("[")
    if not sep or not rest.endswith("]") or not rest[:-1].isdigit() or not is_mwm_name(base):
        return None
    return base, int(rest[:-1])


def row_telescopes(path: str | os.PathLike) -> list[str]:
    """Telescope of each APOGEE spectrum of an mwmStar/mwmVisit file, in :func:`read_mwm`
    order, from the ``telescope`` column (else the HDU's ``OBSRVTRY``), without reading the
    spectra; ``[]`` when the file cannot be read."""
    from astropy.io import fits

    out: list[str] = []
    try:
        with fits.open(path) as hdul:
            for hdu in hdul[1:]:
                if not (isinstance(hdu, fits.BinTableHDU) and _is_apogee(hdu)):
                    continue
                cols = _columns(hdu)
                obs = str(hdu.header.get("OBSRVTRY", "")).strip().lower()
                default = {"apo": "apo25m", "lco": "lco25m"}.get(obs, obs)
                values = (hdu.data[cols["telescope"]] if "telescope" in cols
                          else [""] * len(hdu.data))
                out += [(v.decode() if isinstance(v, bytes) else str(v)).strip().lower()
                        or default for v in values]
    except (OSError, ValueError, TypeError, KeyError):
        return []
    return out
