"""Payne emulator evaluation, the analytic fallback, noise, flux scale, apStar round trip."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.ndimage import maximum_filter1d

from apogee_net.cli import main
from apogee_net.spectra.apstar import aspcap_pixels, read_apstar
from apogee_net.spectra.emulator import evaluate, load_emulator
from apogee_net.spectra.simulate import (
    ANALYTIC,
    H_ZERO_FLUX,
    FallbackWarning,
    analytic_spectra,
    parse_snr,
    simulate_apstar,
    simulate_spectra,
)
from tests.conftest import shared_file

GIANT = [4500.0, 2.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def emulator():
    return load_emulator(shared_file("payne", "NN_unnormalized_spectra.npz"))


def _line_depth(flux: np.ndarray) -> np.ndarray:
    """Mean fractional depth below the upper envelope (51-pixel running maximum)."""
    return np.mean(1.0 - flux / maximum_filter1d(flux, 51, axis=-1), axis=-1)


def test_vectorised_emulator_equals_the_published_formula(emulator):
    rng = np.random.default_rng(3)
    labels = emulator.x_min + (emulator.x_max - emulator.x_min) * rng.random((5, 4))
    flux = evaluate(emulator, labels)
    assert flux.shape == (5, 7214) and np.all(np.isfinite(flux)) and np.all(flux > 0)
    for lab, row in zip(labels, flux, strict=True):  # Ting et al. 2019, one star at a time
        s = (lab - emulator.x_min) / (emulator.x_max - emulator.x_min) - 0.5
        h = np.einsum("ijk,k->ij", emulator.w0, s) + emulator.b0
        ref = (np.einsum("ij,ij->i", emulator.w1, 1 / (1 + np.exp(-h))) + emulator.b1) / 1e6
        np.testing.assert_allclose(row, ref, rtol=1e-12)


@pytest.mark.parametrize("model", ["payne", "analytic"])
def test_lines_deepen_with_metallicity_and_towards_cool_stars(model, emulator):
    def spectra(labels):
        labels = np.array(labels)
        return evaluate(emulator, labels) if model == "payne" else analytic_spectra(labels)

    depth_feh = _line_depth(spectra([[4500, 2.0, feh, 0.0] for feh in (-0.9, -0.4, 0.0, 0.4)]))
    assert np.all(np.diff(depth_feh) > 0)
    depth_teff = _line_depth(spectra([[teff, 2.5, 0.0, 0.0] for teff in (4000, 4800, 5600)]))
    assert np.all(np.diff(depth_teff) < 0)
    # surface flux in the H band grows with Teff
    level = np.median(spectra([[teff, 4.4, 0.0, 0.0] for teff in (4000, 5000, 6500)]), axis=1)
    assert np.all(np.diff(level) > 0)


def test_flux_scale_matches_real_apstar_files():
    """H-band zero point of Cohen et al. 2003 reproduces the real DR17 flux level."""
    for name in ("apStar-dr17-2M17335483-2753043.fits", "apStar-dr17-2M19485057+5005279.fits"):
        sp = read_apstar(shared_file("apogee", name))
        predicted = H_ZERO_FLUX * 10 ** (-0.4 * sp.h)
        assert np.nanmedian(sp.flux) / predicted == pytest.approx(1.0, abs=0.1)


def test_noise_matches_snr_and_layout(emulator):
    sim = simulate_spectra(np.array([GIANT] * 4), emulator=emulator, snr=(60, 120), seed=5,
                           keep_truth=True)
    assert sim.flux.shape == (4, 8575) and sim.flux.dtype == np.float32
    assert sim.model == "payne:NN_unnormalized_spectra.npz"
    live = ~sim.dead[0]
    assert live.sum() == 7214 and np.all(live[aspcap_pixels()])
    assert np.all(np.isnan(sim.flux[:, ~live])) and np.all(np.isnan(sim.error[:, ~live]))
    assert np.all((sim.snr >= 60) & (sim.snr <= 120))
    np.testing.assert_allclose(np.median(sim.truth[:, live] / sim.error[:, live], axis=1),
                               sim.snr, rtol=1e-5)
    pulls = (sim.flux - sim.truth)[:, live] / sim.error[:, live]
    assert np.std(pulls) == pytest.approx(1.0, abs=0.02)
    assert abs(np.mean(pulls)) < 0.02
    np.testing.assert_allclose(np.mean(sim.truth[:, live], axis=1),
                               H_ZERO_FLUX * 10 ** (-0.4 * sim.h), rtol=1e-5)


def test_seed_reproducibility_and_chunk_independence(emulator):
    labels = np.array([GIANT, [5800, 4.4, -0.3, 0.1], [3900, 1.0, 0.2, 0.0]])
    a = simulate_spectra(labels, emulator=emulator, seed=11)
    b = simulate_spectra(labels, emulator=emulator, seed=11)
    c = simulate_spectra(labels, emulator=emulator, seed=12)
    part = simulate_spectra(labels[1:], emulator=emulator, seed=11, star_index=[1, 2])
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_array_equal(a.flux[1:], part.flux)
    assert not np.allclose(np.nan_to_num(a.flux), np.nan_to_num(c.flux))


def test_out_of_range_labels(emulator):
    labels = np.array([GIANT, [3000.0, 4.8, 0.0, 0.0]])
    with pytest.raises(ValueError, match="row1 teff = 3000 not in"):
        simulate_spectra(labels, emulator=emulator)
    with pytest.warns(UserWarning, match="clipped"):
        sim = simulate_spectra(labels, emulator=emulator, out_of_range="clip")
    assert sim.clipped.tolist() == [False, True]
    assert sim.labels[1, 0] == pytest.approx(emulator.x_min[0])
    with pytest.raises(ValueError, match="non-finite"):
        simulate_spectra(np.array([[np.nan, 2.0, 0.0]]), emulator=emulator)


def test_parse_snr():
    assert parse_snr("50:200") == (50.0, 200.0)
    assert parse_snr(80) == (80.0, 80.0)
    for bad in ("a:b", "200:50", (0, 10)):
        with pytest.raises(ValueError, match="SNR range"):
            parse_snr(bad)


def _table(n=4):
    return Table({"apogee_id": [f"2MSIM{i:03d}" for i in range(n)],
                  "teff": np.linspace(4000, 6000, n), "logg": np.linspace(1.5, 4.5, n),
                  "fe_h": np.linspace(-0.7, 0.3, n), "alpha_m": np.zeros(n)})


@pytest.mark.parametrize("convention", ["dr17", "dr13"])
def test_round_trip_through_the_reader(tmp_path, emulator, convention):
    table = _table()
    report = simulate_apstar(table, tmp_path, emulator=emulator, snr=(70, 90), seed=2,
                             convention=convention, progress=False)
    assert report["n_written"] == 4 and report["model"].startswith("payne")
    sim = simulate_spectra(table, emulator=emulator, snr=(70, 90), seed=2)
    for i, star in enumerate(table["apogee_id"]):
        sp = read_apstar(tmp_path / f"apStar-sim-{star}.fits")
        assert sp.apogee_id == star and sp.nvisits == 1 and sp.release == "sim"
        assert sp.snr == pytest.approx(sim.snr[i]) and sp.h == pytest.approx(sim.h[i])
        np.testing.assert_array_equal(sp.dead, sim.dead[i])
        np.testing.assert_array_equal(sp.flux, sim.flux[i])
        np.testing.assert_array_equal(sp.error, sim.error[i])
        assert sp.header["SIMTEFF"] == pytest.approx(table["teff"][i])
    summary = Table.read(tmp_path / "simulated_labels.csv", format="ascii.csv", comment="#")
    np.testing.assert_allclose(summary["snr"], sim.snr)


def test_resume_rewrites_only_missing_files(tmp_path, emulator):
    simulate_apstar(_table(), tmp_path, emulator=emulator, seed=4, progress=False)
    first = fits.getdata(tmp_path / "apStar-sim-2MSIM002.fits", 1)
    (tmp_path / "apStar-sim-2MSIM002.fits").unlink()
    report = simulate_apstar(_table(), tmp_path, emulator=emulator, seed=4, progress=False)
    assert (report["n_written"], report["n_kept"]) == (1, 3)
    np.testing.assert_array_equal(fits.getdata(tmp_path / "apStar-sim-2MSIM002.fits", 1), first)


def test_analytic_fallback_is_labelled(tmp_path):
    with pytest.warns(FallbackWarning, match="ANALYTIC FALLBACK"):
        simulate_apstar(_table(2), tmp_path, emulator="analytic", progress=False)
    header = fits.getheader(tmp_path / "apStar-sim-2MSIM000.fits")
    assert header["SIMMODEL"] == ANALYTIC
    assert np.isfinite(read_apstar(tmp_path / "apStar-sim-2MSIM001.fits").flux).sum() == 7214


def test_cli_simulate(tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    _table(3).write(labels, format="ascii.csv")
    emu = str(shared_file("payne", "NN_unnormalized_spectra.npz"))
    out = tmp_path / "sims"
    assert main(["simulate", "--emulator", emu, "--labels", str(labels), "--out", str(out),
                 "--snr", "80:90", "--seed", "3", "--no-progress"]) == 0
    assert len(list(out.glob("apStar-sim-*.fits"))) == 3
    assert 80 <= read_apstar(out / "apStar-sim-2MSIM001.fits").snr <= 90
    assert main(["simulate", "--labels", str(labels), "--out", str(out), "--snr", "9:1"]) == 1
    assert "SNR range" in capsys.readouterr().err
