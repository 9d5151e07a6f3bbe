"""LAMOST readers (both layouts, gzip, headers) and ingest into the store."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from apogee_net.lamost.ingest import MASK_COSMIC, ingest_lamost
from apogee_net.lamost.io import LamostFormatError, find_lamost_files, read_lamost
from apogee_net.lamost.preprocess import LamostDataError, prepare_spectrum
from apogee_net.testing.lamost_spectra import simulate_lamost, write_lamost_fits
from tests.conftest import shared_file

FORMATS = ("lamost", "formats")


def _synthetic(n=3, seed=0, cosmic_rate=0.0):
    rng = np.random.default_rng(seed)
    from apogee_net.lamost.labels import LABELS

    labels = {k: rng.uniform(-0.1, 0.2, n) for k in LABELS}
    labels.update(teff=rng.uniform(4000, 5200, n), logg=rng.uniform(1, 3.5, n),
                  fe_h=rng.uniform(-1, 0.3, n))
    labels["m_h"] = labels["fe_h"]
    return simulate_lamost(labels, seed=seed, cosmic_rate=cosmic_rate)


def test_same_star_in_dr5_dr7_dr9_layouts_reads_the_same():
    dr5 = read_lamost(shared_file(*FORMATS, "spec-55859-F5902_sp01-005_dr5.fits.gz"))
    dr9 = read_lamost(shared_file(*FORMATS, "spec-55859-F5902_sp01-005_dr9.fits.gz"))
    assert (dr5.layout, dr9.layout) == ("image", "coadd")
    assert dr5.obsid == dr9.obsid == "101005" and dr5.spec_id == "101005"
    np.testing.assert_array_equal(dr5.wavelength, dr9.wavelength)
    # DR9 re-reduced the red arm: half the pixels are identical, the rest within ~0.3 %
    rel = np.abs(dr5.flux - dr9.flux) / np.maximum(np.abs(dr9.flux), 1e-9)
    assert np.mean(dr5.flux == dr9.flux) > 0.45 and np.median(rel) < 0.005
    assert dr5.snrg == pytest.approx(8.08) and dr5.cls == "STAR" and dr5.subclass == "G0"
    # the header's Z differs between the DR5 and DR9 reductions, as published
    assert dr5.z == pytest.approx(-0.00025044) and dr9.z == pytest.approx(-0.00025064)
    # DR7 image and DR9 table of one reduction: identical arrays
    dr7 = read_lamost(shared_file(*FORMATS, "spec-55859-F5902_sp01-001_dr7.fits.gz"))
    dr9b = read_lamost(shared_file(*FORMATS, "spec-55859-F5902_sp01-001.fits.gz"))
    np.testing.assert_array_equal(dr7.flux, dr9b.flux)
    np.testing.assert_array_equal(dr7.ivar, dr9b.ivar)


def test_wavelength_from_header_matches_stored_wavelength():
    path = shared_file(*FORMATS, "spec-60591-LN042429N340750BM01_sp01-001.fits.gz")
    sp = read_lamost(path)
    with fits.open(path) as h:
        stored = np.asarray(h["COADD"].data["WAVELENGTH"][0], float)
    assert sp.wavelength.size == 3909
    np.testing.assert_allclose(sp.wavelength, stored, atol=0.01)
    assert sp.wavelength[0] == pytest.approx(10**3.5682)
    assert sp.snrg == pytest.approx(102.45) and sp.subclass == "G5"


def test_dr1_file_without_wavelength_row_and_obsid():
    """DR1 files keep a 'Subcontinuum' in row 3 and SN_G instead of SNRG, no OBSID."""
    sp = read_lamost(shared_file("lamost", "learninglamost", "spec-55862-B6212_sp06-003.fits"))
    assert sp.layout == "image" and sp.wavelength.size == 3904
    assert np.all(np.diff(sp.wavelength) > 0)
    assert sp.wavelength[0] == pytest.approx(3699.985, abs=1e-3)
    assert sp.snrg == pytest.approx(71.41)
    assert sp.obsid == "" and sp.spec_id == "LAMOST J063715.90+271356.5"


def test_every_shared_spectrum_reads_and_prepares(shared_data):
    files = find_lamost_files(shared_data / "lamost")
    assert len(files) == 70
    for path in files:
        sp = read_lamost(path)
        prep = prepare_spectrum(sp.wavelength, sp.flux, sp.ivar, sp.z, sp.andmask,
                                what=str(path))
        assert prep.flux.size == 4501 and prep.valid_fraction > 0.6, path


def test_gzip_and_plain_files_and_both_layouts_agree(tmp_path):
    sim = _synthetic(1)
    out = []
    for name, layout in (("a.fits", "coadd"), ("b.fits.gz", "coadd"), ("c.fits.gz", "image")):
        write_lamost_fits(tmp_path / name, sim.wavelength, sim.flux[0], sim.ivar[0],
                          sim.z[0], 42.0, layout=layout, obsid=7)
        out.append(read_lamost(tmp_path / name))
    for sp in out[1:]:
        np.testing.assert_array_equal(sp.flux, out[0].flux)
        np.testing.assert_array_equal(sp.ivar, out[0].ivar)
        assert sp.z == pytest.approx(sim.z[0]) and sp.snrg == 42.0 and sp.spec_id == "7"


def test_wrong_layouts_raise_errors_naming_the_file(tmp_path):
    one_d = tmp_path / "one_d.fits"
    fits.PrimaryHDU(np.ones(100, np.float32)).writeto(one_d)
    with pytest.raises(LamostFormatError, match="one_d.fits"):
        read_lamost(one_d)
    table = tmp_path / "coadd_no_flux.fits"
    col = fits.Column(name="IVAR", format="10E", array=np.ones((1, 10)))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([col], name="COADD")]
                 ).writeto(table)
    with pytest.raises(LamostFormatError, match="lacks column.*FLUX"):
        read_lamost(table)
    junk = tmp_path / "junk.fits"
    junk.write_text("not a fits file")
    with pytest.raises(LamostFormatError, match="junk.fits"):
        read_lamost(junk)
    with pytest.raises(FileNotFoundError):
        read_lamost(tmp_path / "absent.fits")


def test_missing_redshift_is_read_but_rejected(tmp_path):
    sim = _synthetic(1)
    path = write_lamost_fits(tmp_path / "noz.fits", sim.wavelength, sim.flux[0], sim.ivar[0],
                             None)
    sp = read_lamost(path)
    assert np.isnan(sp.z)
    with pytest.raises(LamostDataError, match="no redshift"):
        prepare_spectrum(sp.wavelength, sp.flux, sp.ivar, sp.z, what=str(path))


def test_ingest_store_conventions_failures_and_resume(tmp_path):
    sim = _synthetic(4, cosmic_rate=3.0)
    src = tmp_path / "spectra"
    for i in range(4):
        write_lamost_fits(src / f"s{i}.fits.gz", sim.wavelength, sim.flux[i], sim.ivar[i],
                          sim.z[i], float(sim.snr[i]), obsid=100 + i, ra=10 + i, dec=-5.0)
    write_lamost_fits(src / "noz.fits", sim.wavelength, sim.flux[0], sim.ivar[0], None,
                      obsid=999)
    red = write_lamost_fits(src / "red.fits", sim.wavelength * 2.6, sim.flux[0], sim.ivar[0],
                            0.0, obsid=998)
    fits.setval(red, "COEFF0", value=3.5682 + np.log10(2.6))  # 9620–23650 Å: nothing in range
    odd = write_lamost_fits(src / "odd.fits", sim.wavelength + 50, sim.flux[0], sim.ivar[0],
                            0.0, obsid=997)  # stored wavelengths disagree with the header
    store = tmp_path / "lamost.h5"
    report = ingest_lamost(src, store, workers=0, progress=False)
    assert report["n_ingested"] == 4 and report["n_failed"] == 3
    reasons = " ".join(f["reason"] for f in report["failures"])
    assert "no redshift" in reasons and "no valid pixel" in reasons
    assert f"{odd}: the header grid" in reasons
    from apogee_net.spectra.store import open_store

    with open_store(store) as h5:
        assert h5.attrs["kind"] == "lamost" and h5["flux"].shape == (4, 4501)
        np.testing.assert_array_equal(h5["wavelength"][[0, -1]], [4000.0, 8500.0])
        flux, err, mask = h5["flux"][:], h5["error"][:], h5["mask"][:]
        ids = [x.decode() for x in h5["apogee_id"][:]]
    assert sorted(ids) == ["100", "101", "102", "103"]
    # error NaN exactly where flux is NaN; normalised flux near 1; cosmic rays flagged
    np.testing.assert_array_equal(np.isnan(err), np.isnan(flux))
    assert 0.9 < np.nanmedian(flux) < 1.05
    assert (mask & MASK_COSMIC).any()
    again = ingest_lamost(src, store, workers=0, progress=False)
    assert again["n_already_stored"] == 4 and again["n_rows"] == 4


def test_cli_ingest_of_the_shared_files(tmp_path, shared_data):
    from apogee_net.cli import main

    out = tmp_path / "real.h5"
    assert main(["lamost", "ingest", str(shared_data / "lamost" / "formats"), "--out",
                 str(out), "--workers", "0", "--no-progress"]) == 0
    from apogee_net.spectra.store import store_table

    table = store_table(out)
    assert len(table) == 10 and "1247301005" in set(table["apogee_id"])  # the QSO too
    assert np.all(table["snr"] > 0)
