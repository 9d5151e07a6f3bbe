"""apStar pixel mask (APOGEE_PIXMASK, HDU 3): bit parsing, masking in ingest and prediction,
and the numbers it rests on in the real DR17 files."""

from __future__ import annotations

import numpy as np
import pytest

from apogee_net.spectra.apstar import NPIX, read_apstar, write_apstar
from apogee_net.spectra.pixmask import (
    DEFAULT_PIXMASK_BITS,
    apply_pixmask,
    bit_counts,
    bits_value,
    format_bits,
    masked_pixels,
    parse_pixmask_bits,
)
from tests.conftest import shared_file

REAL = ("apStar-dr17-2M17335483-2753043.fits", "apStar-dr17-2M19485057+5005279.fits")


def test_parse_bits():
    assert parse_pixmask_bits(None) == DEFAULT_PIXMASK_BITS == parse_pixmask_bits("default")
    assert parse_pixmask_bits("none") == ()
    assert parse_pixmask_bits("12, BADPIX,sig_telluric") == (0, 12, 13)
    assert parse_pixmask_bits([3, "CRPIX"]) == (1, 3)
    assert format_bits((12, 0, 12)) == "0,12" and bits_value((0, 12)) == 4097
    for bad in ("15", "SKY", "-1"):
        with pytest.raises(ValueError, match="0-14"):
            parse_pixmask_bits(bad)


def test_apply_pixmask_kills_only_chosen_bits():
    flux, error = np.ones((2, 5)), np.full((2, 5), 0.1)
    mask = np.array([[0, 1, 4096, 8192, 4097], [2, 0, 0, 0, 1 << 14]])
    f, e = apply_pixmask(flux, error, mask, (0, 12))
    np.testing.assert_array_equal(np.isnan(f), [[0, 1, 1, 0, 1], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(np.isnan(f), np.isnan(e))
    assert np.all(apply_pixmask(flux, error, mask, ())[0] == 1)  # no bits: untouched
    assert not np.isnan(flux).any()  # inputs are not modified


def test_real_files_bits_the_default_rests_on():
    """The counts quoted in apogee_net/pixmask.py: on the combined rows, BADPIX-type pixels
    are already dead by the reader's rules, SIG_SKYLINE pixels are live with errors ~20x
    the median, SIG_TELLURIC marks ~400 live pixels (kept by default)."""
    for name in REAL:
        sp = read_apstar(shared_file("apogee", name))
        live = bit_counts(sp.mask, ~sp.dead)
        assert live["BADPIX"] == live["BADDARK"] == live["BADFLAT"] == 0
        assert 100 <= live["SIG_SKYLINE"] <= 200 and 380 <= live["SIG_TELLURIC"] <= 450
        sky = masked_pixels(sp.mask, (12,)) & ~sp.dead
        assert np.median(sp.error[sky]) > 15 * np.nanmedian(sp.error)
        f, _ = apply_pixmask(sp.flux, sp.error, sp.mask, DEFAULT_PIXMASK_BITS)
        telluric_only = (sp.mask == 1 << 13) & ~sp.dead
        assert np.isnan(f[sky]).all() and not np.isnan(f[telluric_only]).any()


def test_ingest_and_predict_read_apply_the_bits(tmp_path):
    from apogee_net.inference.chunks import read_chunk
    from apogee_net.spectra.ingest import ingest_apstar
    from apogee_net.spectra.store import open_store

    rng = np.random.default_rng(0)
    flux = np.full(NPIX, np.nan, np.float32)
    flux[300:8300] = 1000 + rng.normal(0, 5, 8000)
    error = np.where(np.isfinite(flux), 5.0, np.nan).astype(np.float32)
    mask = np.zeros(NPIX, np.int32)
    mask[1000:1010] = 1 << 12      # SIG_SKYLINE: masked by default
    mask[2000:2010] = 1 << 13      # SIG_TELLURIC: kept by default
    src = tmp_path / "spectra"  # inputs apart from outputs (outputs inside inputs are refused)
    src.mkdir()
    write_apstar(src / "apStar-sim-A.fits", flux, error, mask,
                 header={"OBJID": "A", "SNR": 200.0})
    store = tmp_path / "s.h5"
    ingest_apstar(src, store, workers=0, progress=False)
    with open_store(store) as h5:
        stored = h5["flux"][0]
        assert h5.attrs["pixmask_bits"] == format_bits(DEFAULT_PIXMASK_BITS)
        np.testing.assert_array_equal(h5["mask"][0], mask)  # the mask itself is kept whole
    assert np.isnan(stored[1000:1010]).all() and np.isfinite(stored[2000:2010]).all()
    with pytest.raises(ValueError, match="mix two masks"):
        ingest_apstar(src, store, workers=0, progress=False, pixmask_bits="none")
    data = read_chunk({"files": [str(src / "apStar-sim-A.fits")]}, NPIX,
                      pixmask_bits=(13,))
    assert np.isnan(data.flux[0, 2000:2010]).all()
    assert np.isfinite(data.flux[0, 1000:1010]).all()
