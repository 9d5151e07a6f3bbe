"""LAMOST cosmic-ray detector (issue 12): hits found, stellar/sky lines and high-S/N spectra
spared, on constructed spectra and on a real DR1 file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apogee_net.lamost.cosmics import (
    SKY_LINES,
    cosmic_ray_mask,
    line_mask,
    lsf_sharpness,
    lsf_sigma_pixels,
)
from apogee_net.lamost.io import log_linear_wavelength, read_lamost
from apogee_net.lamost.preprocess import lamost_grid, prepare_spectrum
from tests.conftest import shared_file

WL = log_linear_wavelength(3.5682, 1e-4, 3909)


def test_lsf_width_and_sharpness_from_the_resolution():
    # R = 1800 on the 1e-4 dex grid: FWHM = 1/(1800 ln10 1e-4) = 2.413 px, sigma 1.025 px
    sigma = lsf_sigma_pixels(1800.0, 1e-4)
    assert sigma == pytest.approx(2.41274 / 2.35482, rel=1e-4)
    # independent check: a sampled Gaussian of that sigma, height above the pixels 2 away
    x = np.arange(-3, 4)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    lap = g[3] - 0.5 * (g[2] + g[4])
    assert lsf_sharpness(sigma) == pytest.approx(lap / (g[3] - g[1]), rel=1e-12)
    assert 0.4 < lsf_sharpness(sigma) < 0.5
    with pytest.raises(ValueError, match="resolution"):
        lsf_sigma_pixels(0.0)


def _lsf_spectrum(snr: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Continuum 1000 with LSF-wide absorption pairs 3-7 px apart and emission lines; noise
    that matches ivar at S/N ``snr``."""
    sigma = lsf_sigma_pixels()
    idx = np.arange(WL.size, dtype=float)
    model = np.full(WL.size, 1000.0)
    for k, centre in enumerate(range(200, 3700, 40)):
        sep = 3.0 + (k % 5)                          # pairs 3..7 px apart
        depth = 0.3 + 0.5 * rng.uniform()
        for c in (centre + 0.3, centre + 0.3 + sep):
            model *= 1 - depth * np.exp(-0.5 * ((idx - c) / sigma) ** 2)
    for c in (1010.2, 2510.7, 3330.0):               # emission lines, 2x the continuum
        model += 2000.0 * np.exp(-0.5 * ((idx - c) / sigma) ** 2)
    sharp = lsf_sigma_pixels(2200.0)                 # LSF where LAMOST's R is highest
    for c in (1810.0, 3010.4):
        model += 3000.0 * np.exp(-0.5 * ((idx - c) / sharp) ** 2)
    err = np.sqrt(model * 1000.0) / snr
    return model + err * rng.standard_normal(WL.size), 1 / err**2


@pytest.mark.parametrize("snr", [20.0, 150.0, 400.0, 2000.0])
def test_lines_spared_and_hits_found_at_any_snr(snr):
    rng = np.random.default_rng(int(snr))
    flux, ivar = _lsf_spectrum(snr, rng)
    _, n_clean = cosmic_ray_mask(flux, ivar, grow=0)
    assert n_clean == 0
    hits = np.array([660, 1540, 2940])               # continuum pixels between line groups
    spiked = flux.copy()
    spiked[hits] += 30 / np.sqrt(ivar[hits])         # 30 sigma
    mask, n = cosmic_ray_mask(spiked, ivar, grow=0)
    assert n == 3 and set(np.flatnonzero(mask)) == set(hits)


def test_errors_too_small_do_not_turn_noise_into_hits():
    """ivar 400x too large (what scaling a S/N-20 spectrum to S/N 400 does): the measured
    pixel scatter takes over, so noise is not flagged and a real 30-sigma hit still is."""
    rng = np.random.default_rng(3)
    flux, ivar = _lsf_spectrum(20.0, rng)
    flux[1523] += 30 / np.sqrt(ivar[1523])
    mask, n = cosmic_ray_mask(flux, ivar * 400.0, grow=0)
    assert n == 1 and mask[1523]


def test_spikes_at_sky_and_emission_line_positions_are_not_hits():
    rng = np.random.default_rng(5)
    flux = 1000 + rng.normal(0, 1, WL.size)
    ivar = np.ones(WL.size)
    z = 0.001
    halpha = int(np.argmin(np.abs(WL - 6564.60 * (1 + z))))
    oi = int(np.argmin(np.abs(WL - SKY_LINES[3])))   # [O I] 5577 (vacuum 5578.89)
    free = halpha + 25
    flux[[halpha, oi, free]] += 50
    mask, n = cosmic_ray_mask(flux, ivar, wavelength=WL, z=z, grow=0)
    assert n == 1 and mask[free]
    assert line_mask(WL, z)[[halpha, oi]].all() and not line_mask(WL, z)[free]
    # without the redshift, H-alpha is not excluded (only sky lines are)
    mask, n = cosmic_ray_mask(flux, ivar, wavelength=WL, z=None, grow=0)
    assert n == 2 and mask[halpha] and not mask[oi]


def test_real_high_snr_spectrum_ingests_and_injected_hit_is_masked(tmp_path):
    """A real DR1 spectrum (S/N_g 71) with ivar scaled to S/N_g 400 goes through ``lamost
    ingest``; the same with one injected 25-sigma hit has exactly that pixel masked."""
    from apogee_net.lamost.ingest import MASK_COSMIC, ingest_lamost
    from apogee_net.spectra.store import open_store
    from apogee_net.testing.lamost_spectra import write_lamost_fits

    path = shared_file("lamost", "learninglamost", "spec-55862-B6212_sp06-003.fits")
    sp = read_lamost(path)
    assert sp.snrg > 50
    ivar = sp.ivar * (400.0 / sp.snrg) ** 2
    prep = prepare_spectrum(sp.wavelength, sp.flux, ivar, sp.z, sp.andmask)
    assert prep.n_cosmic <= 2                       # was 200+ before issue 12 (rejected)
    rest = sp.wavelength / (1 + sp.z)
    pix = int(np.argmin(np.abs(rest - 6060.0)))      # continuum, away from listed lines
    spiked = sp.flux.copy()
    spiked[pix] += 25 / math.sqrt(sp.ivar[pix])      # 25 sigma of the real scatter
    write_lamost_fits(tmp_path / "in" / "clean.fits", sp.wavelength, sp.flux, ivar, sp.z,
                      snr_g=400.0, layout="image", obsid=1)
    write_lamost_fits(tmp_path / "in" / "hit.fits", sp.wavelength, spiked, ivar, sp.z,
                      snr_g=400.0, layout="image", obsid=2)
    report = ingest_lamost(tmp_path / "in", tmp_path / "s.h5", workers=0, progress=False)
    assert report["n_ingested"] == 2 and report["n_failed"] == 0
    grid = lamost_grid()
    hit_grid = np.abs(grid - rest[pix]) < 2.0
    with open_store(tmp_path / "s.h5") as h5:
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in h5["apogee_id"][:]]
        mask = h5["mask"][:]
    clean, hit = mask[ids.index("1")], mask[ids.index("2")]
    assert (hit[hit_grid] & MASK_COSMIC).all()
    assert not (clean[hit_grid] & MASK_COSMIC).any()
    flagged = grid[(hit & MASK_COSMIC) > 0]
    assert np.all(np.abs(flagged - rest[pix]) < 4.0)  # the hit ±1 native pixel (1.4 Å)
