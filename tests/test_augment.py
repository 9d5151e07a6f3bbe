"""Real-instrument systematics: what was learnt from the real DR17 files, that the learner
recovers an injected response, and that the augmentation is seeded and does what it says."""

from __future__ import annotations

import numpy as np
import pytest

from apogee_net.spectra.apstar import ASPCAP_RANGES, NPIX, aspcap_pixels
from apogee_net.spectra.augment import AugmentedDataset, Augmenter, resolve_augment
from apogee_net.spectra.systematics import chip_coordinates, load_systematics, measure_spectrum
from tests.conftest import shared_file

CHIPS = [slice(a, b) for a, b in ASPCAP_RANGES]


def _spectrum(seed=0):
    rng = np.random.default_rng(seed)
    flux = np.full(NPIX, np.nan, np.float32)
    pix = aspcap_pixels()
    flux[pix] = 1000 * (1 - 0.3 * (rng.random(pix.size) < 0.05))
    error = np.where(np.isfinite(flux), 5.0, np.nan).astype(np.float32)
    return flux, error


def test_packaged_systematics_hold_the_real_measurements():
    """Both DR17 files (5 spectra with the visits): green and red chips 9-15 % fainter than
    The Payne's model of the same star, sky-line errors ~20-26x the median."""
    s = load_systematics()
    assert len(s) == 5 and all("apStar-dr17" in str(x) for x in s.sources)
    assert np.all((s.response[:, 1:, 0] > 0.85) & (s.response[:, 1:, 0] < 0.91))
    assert np.all((s.sky_error_ratio > 20) & (s.sky_error_ratio < 27))
    assert s.pixmask.shape == (5, NPIX) and s.dead[:, 3330:3530].all()  # chip gap


def test_learner_recovers_an_injected_response():
    emu_path = shared_file("payne", "NN_unnormalized_spectra.npz")
    from apogee_net.spectra.emulator import evaluate, load_emulator

    emu = load_emulator(emu_path)
    chip, x = chip_coordinates()
    truth = np.array([[1.0, -0.03, 0.04], [0.85, 0.02, -0.05], [0.9, -0.04, 0.0]])
    flux = np.full(NPIX, np.nan)
    pix = aspcap_pixels()
    c = truth[chip[pix]]
    flux[pix] = 1e3 * evaluate(emu, np.array([[4600.0, 2.4, -0.1, 0.05]]))[0] \
        * c[:, 0] * (1 + c[:, 1] * x[pix] + c[:, 2] * x[pix] ** 2)
    error = np.where(np.isfinite(flux), 1e-3 * np.nanmedian(flux), np.nan)
    got = measure_spectrum(emu, flux, error, np.zeros(NPIX, np.int32), ~np.isfinite(flux))
    np.testing.assert_allclose(got["response"], truth, atol=2e-3)
    np.testing.assert_allclose(got["payne_labels"][:3], [4600, 2.4, -0.1], rtol=2e-3,
                               atol=0.01)
    assert got["sky_error_ratio"] == 1.0 and got["persist_excess"] == 0.0


def test_augmenter_seeded_bounded_and_masking():
    aug = resolve_augment("default", pixmask_bits=(12,))
    flux, error = _spectrum()
    a = aug.apply_one(flux, error, np.random.default_rng(5))
    b = aug.apply_one(flux, error, np.random.default_rng(5))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)  # same seed, same draw
    ratios = []
    for seed in range(40):
        f, e, m = aug.apply_one(flux, error, np.random.default_rng(seed))
        assert np.isnan(f[(m & 4096) != 0]).all()  # SIG_SKYLINE (chosen bit) dead
        assert np.all(np.isnan(f) == np.isnan(e)) and np.all(e[np.isfinite(e)] >= 0.7 * 5.0)
        ratios.append([np.nanmedian(f[c] / flux[c]) for c in CHIPS])
    ratios = np.array(ratios)
    assert np.all(ratios[:, 1:] > aug.resp_lo[1:, 0] - 0.1)
    assert np.all(ratios[:, 1:] < aug.resp_hi[1:, 0] + 0.1)
    assert ratios[:, 1:].std() > 0.03  # the response varies from draw to draw
    assert np.mean(np.all(np.abs(ratios - 1) < 1e-3, axis=1)) > 0.1  # some stay clean
    off = Augmenter(aug.sys, pixmask_bits=(), p=0.0)
    f, e, m = off.apply_one(flux, error, np.random.default_rng(1))
    np.testing.assert_array_equal(f, flux)  # p = 0: nothing happens
    with pytest.raises(ValueError, match="probability"):
        Augmenter(aug.sys, p=1.5)
    assert resolve_augment("none") is None
    with pytest.raises(FileNotFoundError, match="learn_apstar_systematics"):
        resolve_augment("/nonexistent.npz")


def test_augmented_dataset_fixed_and_random_draws():
    from yso_labels.core.training import ArrayDataset

    flux, error = _spectrum()
    base = ArrayDataset(np.tile(flux, (4, 1)), np.zeros((4, 3)), np.tile(error, (4, 1)))
    aug = resolve_augment("default")
    fixed = AugmentedDataset(base, aug, seed=3, fixed=True)
    np.testing.assert_array_equal(fixed.__getitems__([0, 1])["flux"],
                                  fixed.__getitems__([0, 1])["flux"])
    rand = AugmentedDataset(base, aug, seed=3)
    x, y = rand.__getitems__([0, 1])["flux"], rand.__getitems__([0, 1])["flux"]
    assert not np.array_equal(np.nan_to_num(x), np.nan_to_num(y))  # new draws per batch
    assert len(fixed) == 4 and fixed[2]["flux"].shape == (NPIX,)


def test_simulate_with_augment_writes_flags_and_ingest_masks_them(tmp_path):
    import warnings

    from astropy.table import Table

    from apogee_net.spectra.ingest import ingest_apstar
    from apogee_net.spectra.simulate import simulate_apstar
    from apogee_net.spectra.store import open_store

    table = Table({"apogee_id": ["A", "B"], "teff": [4800.0, 5600.0], "logg": [2.5, 4.3],
                   "fe_h": [-0.2, 0.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simulate_apstar(table, tmp_path / "sim", emulator="analytic", seed=4, progress=False,
                        augment="default")
    ingest_apstar(tmp_path / "sim", tmp_path / "s.h5", workers=0, progress=False)
    with open_store(tmp_path / "s.h5") as h5:
        mask, flux = h5["mask"][:], h5["flux"][:]
    sky = (mask & (1 << 12)) != 0
    assert sky.any() and np.isnan(flux[sky]).all()  # flagged in HDU3, masked by ingest
    tel = mask == (1 << 13)
    assert tel.any() and np.isfinite(flux[tel]).all()  # telluric flag kept by default
