"""apStar reader on the two real DR17 files and on synthetic files with each convention."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from apogee_net.spectra.apstar import (
    ASPCAP_RANGES,
    NPIX,
    ApStarError,
    apstar_wavelength,
    aspcap_pixels,
    dead_pixels,
    mask_bits,
    read_apstar,
    write_apstar,
)
from apogee_net.spectra.simulate import simulate_spectra
from tests.conftest import shared_file

MULTI = ("apogee", "apStar-dr17-2M17335483-2753043.fits")
SINGLE = ("apogee", "apStar-dr17-2M19485057+5005279.fits")


def test_grid_and_aspcap_pixels():
    wave = apstar_wavelength()
    assert wave.shape == (NPIX,)
    assert wave[0] == pytest.approx(15100.8, abs=0.05)
    assert wave[-1] == pytest.approx(16999.8, abs=0.05)
    assert aspcap_pixels().size == 7214
    assert [(a, b) for a, b in ASPCAP_RANGES] == [(322, 3242), (3648, 6048), (6412, 8306)]


def test_aspcap_grid_matches_payne_wavelengths():
    payne = np.load(shared_file("payne", "apogee_wavelength.npz"))["wavelength"]
    np.testing.assert_allclose(apstar_wavelength()[aspcap_pixels()], payne, atol=1e-6)


def test_real_multivisit_file():
    path = shared_file(*MULTI)
    sp = read_apstar(path)
    assert sp.apogee_id == "2M17335483-2753043"
    assert sp.nvisits == 3 and sp.release == "dr17"
    assert sp.snr == pytest.approx(154.1551207216066)
    assert (sp.ra, sp.dec) == pytest.approx((263.478474, -27.884539))
    assert (sp.j, sp.h, sp.k) == pytest.approx((11.682, 10.318, 9.811), abs=1e-3)
    assert sp.flux.dtype == np.float32 and sp.error.dtype == np.float32
    assert sp.mask.dtype == np.int32 and sp.flux.shape == sp.mask.shape == (NPIX,)
    assert sp.wavelength[0] == pytest.approx(15100.8, abs=0.05)
    assert sp.wavelength[-1] == pytest.approx(16999.8, abs=0.05)
    with fits.open(path) as hdul:  # row 0 (combined) is what the reader returns
        raw_flux, raw_mask = hdul[1].data[0], hdul[3].data[0]
    live = ~sp.dead
    np.testing.assert_array_equal(sp.flux[live], raw_flux[live].astype(np.float32))
    np.testing.assert_array_equal(sp.mask, raw_mask)
    # no data before the blue chip, in both chip gaps and after the red chip (DR17 NaN)
    for pix in (0, 200, 3400, 3500, 6200, 8400, 8574):
        assert sp.dead[pix] and np.isnan(sp.flux[pix]) and np.isnan(sp.error[pix])
    assert live[aspcap_pixels()].mean() > 0.98
    # the header SNR is the median S/N per pixel: the arrays agree within 15 %
    assert np.median(sp.flux[live] / sp.error[live]) == pytest.approx(sp.snr, rel=0.15)
    assert "BADPIX" in mask_bits(sp.mask)


def test_visit_rows_of_multivisit_file():
    path = shared_file(*MULTI)
    combined, visit = read_apstar(path), read_apstar(path, row=2)
    assert not np.allclose(np.nan_to_num(combined.flux), np.nan_to_num(visit.flux))
    with pytest.raises(ApStarError, match="no row 7"):
        read_apstar(path, row=7)


def test_real_single_visit_file_with_zero_second_row():
    path = shared_file(*SINGLE)
    sp = read_apstar(path)
    assert sp.apogee_id == "2M19485057+5005279" and sp.nvisits == 1
    assert sp.snr == pytest.approx(137.4889561519403)
    assert np.nanmedian(sp.flux) > 100  # row 0, not the all-zero row 1
    with pytest.raises(ApStarError, match="all-zero flux|no pixel with data"):
        read_apstar(path, row=1)


def _write(path, flux, error, header=None, **kw):
    write_apstar(path, flux, error, header=header or {"OBJID": "2MTEST", "NVISITS": 1,
                                                     "SNR": 100.0}, **kw)
    return path


@pytest.fixture(scope="module")
def sim():
    return simulate_spectra(np.array([[4800.0, 2.5, 0.0, 0.0]]), emulator="analytic", seed=1)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dr13_conventions_become_dead_pixels(tmp_path, sim):
    path = _write(tmp_path / "apStar-r6-2MTEST.fits", sim.flux[0], sim.error[0],
                  convention="dr13")
    with fits.open(path) as hdul:
        assert hdul[1].data.ndim == 1  # 1-D single-visit DR13 layout
        assert hdul[1].data[0] == 0 and hdul[2].data[0] == 1e10
        assert hdul[2].data[3400] == 1e5 and np.isfinite(hdul[1].data[3400])
    sp = read_apstar(path)
    np.testing.assert_array_equal(sp.dead, sim.dead[0])
    np.testing.assert_array_equal(sp.flux[~sp.dead], sim.flux[0][~sim.dead[0]])
    assert sp.release == "r6"


def test_dead_pixels_rules():
    flux = np.full(10, 100.0)
    error = np.full(10, 2.0)
    flux[0], error[1], error[2], error[3] = np.nan, 1e10, 1e5, 50.0
    dead = dead_pixels(flux, error)
    assert dead.tolist() == [True, True, True] + [False] * 7


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bad_files_give_clear_errors(tmp_path, sim):
    flux, error = sim.flux[0], sim.error[0]
    text = tmp_path / "apStar-x-NOTFITS.fits"
    text.write_text("not a fits file")
    with pytest.raises(ApStarError, match="NOTFITS.*not a readable"):
        read_apstar(text)
    with pytest.raises(FileNotFoundError):
        read_apstar(tmp_path / "missing.fits")
    short = tmp_path / "short.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones(10))]).writeto(short)
    with pytest.raises(ApStarError, match="HDU"):
        read_apstar(short)
    wrong = tmp_path / "wrong.fits"
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(np.ones(8000, np.float32)) for _ in range(3)]
    for h in hdus:
        h.header["CRVAL1"], h.header["CDELT1"] = 4.179, 6e-6
    fits.HDUList(hdus).writeto(wrong)
    with pytest.raises(ApStarError, match="8000 pixels, expected 8575"):
        read_apstar(wrong)
    grid = _write(tmp_path / "grid.fits", flux, error)
    with fits.open(grid, mode="update") as hdul:
        for h in hdul:
            h.header["CRVAL1"] = 4.2
    with pytest.raises(ApStarError, match="CRVAL1 = 4.2, expected 4.179"):
        read_apstar(grid)
    with pytest.raises(ApStarError, match="no pixel with data"):
        read_apstar(_write(tmp_path / "nan.fits", np.full(NPIX, np.nan), error))
    with pytest.raises(ApStarError, match="all-zero flux"):
        read_apstar(_write(tmp_path / "zero.fits", np.where(np.isnan(flux), np.nan, 0.0), error))
    neg = error.copy()
    neg[1000] = -1.0
    with pytest.raises(ApStarError, match="non-positive error.*pixel 1000"):
        read_apstar(_write(tmp_path / "neg.fits", flux, neg))


def test_visits_of_the_real_three_visit_file():
    """Rows 0 (combined), then visits in rows 2..4 (row 1 global-weighted); MJD = JD − 2400000.5
    from the header's JD<v>; visit S/N from SNRVIS<v>."""
    from apogee_net.spectra.apstar import read_apstar_visits

    path = shared_file(*MULTI)
    rows = read_apstar_visits(path)
    assert [r.visit for r in rows] == [0, 1, 2, 3]
    with fits.open(path) as hdul:
        flux = hdul[1].data
        jd = [hdul[0].header[f"JD{v}"] for v in (1, 2, 3)]
    for r, array_row in zip(rows, (0, 2, 3, 4), strict=True):
        ok = ~r.dead
        np.testing.assert_allclose(r.flux[ok], flux[array_row][ok], rtol=1e-6)
    assert np.isnan(rows[0].mjd)
    np.testing.assert_allclose([r.mjd for r in rows[1:]], np.array(jd) - 2400000.5)
    assert rows[1].mjd == pytest.approx(56396.49199)  # apVisit-dr17-5815-56396-212
    np.testing.assert_allclose([r.snr for r in rows], [154.155, 67.202, 90.562, 105.896],
                               atol=1e-3)
    assert {r.telescope for r in rows} == {"apo25m"}
    assert not np.allclose(rows[1].flux[~rows[1].dead], rows[0].flux[~rows[1].dead])


def test_single_visit_is_the_combined_row():
    from apogee_net.spectra.apstar import read_apstar_visits

    rows = read_apstar_visits(shared_file(*SINGLE))
    assert [r.visit for r in rows] == [0, 1]
    np.testing.assert_array_equal(rows[0].flux, rows[1].flux)
    assert rows[1].snr == rows[0].snr and rows[1].mjd == pytest.approx(56804.43183)


def test_asstar_name_and_telescope(tmp_path):
    from apogee_net.spectra.apstar import telescope_of

    flux = np.full(NPIX, 100.0)
    path = write_apstar(tmp_path / "asStar-dr17-2M00000001+0000001.fits", flux, flux / 50,
                        header={"NVISITS": 1})  # no OBJID: the ID comes from the name
    sp = read_apstar(path)
    assert (sp.apogee_id, sp.release, sp.telescope) == ("2M00000001+0000001", "dr17", "lco25m")
    assert telescope_of("/sas/dr17/stars/apo1m/M67/apStar-dr17-X.fits") == "apo1m"
    assert telescope_of("apStar-dr17-X.fits") == "apo25m"
    assert telescope_of("apStar-dr17-X.fits", {"TELESCOP": "LCO25M"}) == "lco25m"
