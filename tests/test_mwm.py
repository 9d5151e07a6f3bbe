"""SDSS-V mwmStar/mwmVisit files. No real file is at hand: these tests build files to the
SDSS-V astra data model (astra.products.mwm: HDU0 source header; HDU1-4 BOSS/APO, BOSS/LCO,
APOGEE/APO, APOGEE/LCO tables with flux, ivar, pixel_flags per row and CRVAL/CDELT/NPIXELS)
from the spectra of the real DR17 apStar file."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from apogee_net.spectra.apstar import NPIX, ApStarError, read_apstar_visits
from apogee_net.spectra.mwm import count_apogee_rows, is_mwm_name, read_mwm
from tests.conftest import shared_file

MULTI = ("apogee", "apStar-dr17-2M17335483-2753043.fits")
SDSS_ID = 54392544


def _apogee_hdu(observatory, rows, visit=False):
    n = len(rows)
    flux = np.array([r[0] for r in rows], np.float32).reshape(n, NPIX)
    ivar = np.array([r[1] for r in rows], np.float32).reshape(n, NPIX)
    cols = [fits.Column("sdss_id", "K", array=[SDSS_ID] * n),
            fits.Column("telescope", "6A", array=[f"{observatory.lower()}25m"] * n),
            fits.Column("snr", "E", array=[r[2] for r in rows]),
            fits.Column("flux", f"{NPIX}E", dim=f"({NPIX})", array=flux),
            fits.Column("ivar", f"{NPIX}E", dim=f"({NPIX})", array=ivar),
            fits.Column("pixel_flags", f"{NPIX}K", dim=f"({NPIX})",
                        array=np.zeros((n, NPIX), np.int64))]
    if visit:
        cols.insert(3, fits.Column("mjd", "J", array=[r[3] for r in rows]))
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header.update({"EXTNAME": f"APOGEE/{observatory}", "OBSRVTRY": observatory,
                       "INSTRMNT": "APOGEE", "CRVAL": 4.179, "CDELT": 6e-6, "NPIXELS": NPIX})
    return hdu


def _boss_hdu(observatory):
    hdu = fits.BinTableHDU.from_columns([fits.Column("sdss_id", "K", array=[])])
    hdu.header.update({"EXTNAME": f"BOSS/{observatory}", "OBSRVTRY": observatory,
                       "INSTRMNT": "BOSS"})
    return hdu


def _ivar(sp):
    return np.where(np.isfinite(sp.error), 1.0 / np.nan_to_num(sp.error, nan=1.0) ** 2, 0.0)


def _write(path, apo_rows, lco_rows, visit=False):
    primary = fits.PrimaryHDU()
    primary.header.update({"SDSS_ID": SDSS_ID, "RA": 263.478474, "DEC": -27.884539,
                           "APOGEEID": "2M17335483-2753043"})
    fits.HDUList([primary, _boss_hdu("APO"), _boss_hdu("LCO"),
                  _apogee_hdu("APO", apo_rows, visit),
                  _apogee_hdu("LCO", lco_rows, visit)]).writeto(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """mwmStar: APO = the real combined spectrum, LCO = visit 3 (as a stand-in); mwmVisit: the
    three real visits at APO, with their integer MJDs."""
    rows = read_apstar_visits(shared_file(*MULTI))
    out = tmp_path_factory.mktemp("mwm")
    star = _write(out / f"mwmStar-0.6.0-{SDSS_ID}.fits",
                  [(np.nan_to_num(rows[0].flux), _ivar(rows[0]), rows[0].snr)],
                  [(np.nan_to_num(rows[3].flux), _ivar(rows[3]), rows[3].snr)])
    visit = _write(out / f"mwmVisit-0.6.0-{SDSS_ID}.fits",
                   [(np.nan_to_num(r.flux), _ivar(r), r.snr, int(r.mjd)) for r in rows[1:]],
                   [], visit=True)
    return star, visit, rows


def test_mwmstar_apogee_rows(files):
    star, _, rows = files
    assert is_mwm_name(star.name) and count_apogee_rows(star) == 2
    spectra = read_mwm(star)
    assert [s.telescope for s in spectra] == ["apo25m", "lco25m"]
    assert {s.apogee_id for s in spectra} == {str(SDSS_ID)} and spectra[0].visit == 0
    ok = ~rows[0].dead
    np.testing.assert_array_equal(spectra[0].dead, rows[0].dead)
    np.testing.assert_allclose(spectra[0].flux[ok], rows[0].flux[ok], rtol=1e-6)
    np.testing.assert_allclose(spectra[0].error[ok], rows[0].error[ok], rtol=1e-5)  # ivar^-½
    assert spectra[0].ra == pytest.approx(263.478474)


def test_mwmvisit_rows_carry_visit_and_mjd(files):
    _, visit, rows = files
    spectra = read_mwm(visit)
    assert [s.visit for s in spectra] == [1, 2, 3]
    assert [s.mjd for s in spectra] == [56396, 56433, 56434]
    np.testing.assert_allclose([s.snr for s in spectra], [r.snr for r in rows[1:]], rtol=1e-6)


def test_not_an_mwm_file(tmp_path):
    path = tmp_path / "mwmStar-x.fits"
    fits.HDUList([fits.PrimaryHDU(), _boss_hdu("APO")]).writeto(path)
    with pytest.raises(ApStarError, match="no APOGEE table"):
        read_mwm(path)
