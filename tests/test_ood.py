"""Out-of-distribution score and flags: the Mahalanobis term against a straight-line
reference, the dev threshold, and the issue's "done when" on the real DR17 apStar files
with a model trained on simulated spectra through the library defaults."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net.inference.predict import (
    FLAGS,
    PHYSICAL_RANGES,
    flag_value,
    predict_catalog,
    quality_flags,
    unphysical,
)
from apogee_net.network.ood import (
    RANGE_SIGMAS,
    combine,
    dev_scatter,
    fit_features,
    mahalanobis,
    range_tolerance,
)
from apogee_net.spectra.apstar import NPIX, read_apstar, write_apstar
from tests.conftest import shared_file

torch.set_num_threads(1)
REAL = ("apStar-dr17-2M17335483-2753043.fits", "apStar-dr17-2M19485057+5005279.fits")


def test_mahalanobis_matches_full_covariance_reference():
    """With all but one principal component kept, the PCA + isotropic-rest distance is the
    exact Mahalanobis distance √((x−μ)ᵀ Σ⁻¹ (x−μ)) (the rest is the last eigenvalue)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    train = rng.normal(size=(4000, 5)) @ a + 3.0
    stats = fit_features(train, n_components=4)
    x = rng.normal(size=(7, 5)) * 3
    cov = np.cov(train, rowvar=False)
    d = x - train.mean(0)
    ref = np.sqrt(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d))
    np.testing.assert_allclose(mahalanobis(x, stats), ref, rtol=1e-6)


def test_combined_score_threshold_and_flag_bits():
    stats = {"scales": [2.0, 0.01, 0.1], "threshold": 1.5}
    np.testing.assert_allclose(combine([2.0, 1.0, 0.0], [0.0, 0.03, 0.0], [0.0, 0.0, 0.3],
                                       stats), [1 / 1.5, 3 / 1.5, 3 / 1.5])
    values = [v[0] for v in FLAGS.values()]
    assert len(set(values)) == len(values) and all(v & (v - 1) == 0 for v in values)
    from apogee_net.lamost.predict import FLAGS as LAMOST_FLAGS

    assert LAMOST_FLAGS["SNR_BELOW_10"][0] == 128 and FLAGS["OOD"][0] == 32
    rows = np.array([[4.0, 5000.0, 0.0], [4.0, 1500.0, 0.0], [6.5, 5000.0, 0.0],
                     [4.0, 5000.0, 1.6], [np.nan, 5000.0, 0.0]])
    np.testing.assert_array_equal(unphysical(rows, ["logg", "teff", "fe_h"]),
                                  [False, True, True, True, True])
    assert PHYSICAL_RANGES["teff"] == (2000.0, 50000.0)


def test_out_of_range_tolerance_is_two_dev_scatters_and_unphysical_always_flagged():
    """OUT_OF_RANGE fires beyond the training range by more than RANGE_SIGMAS dev scatters
    (straight-line reference below), never inside it; UNPHYSICAL fires outside the
    physically possible range even where the tolerance would allow the value."""
    pred = np.array([[5000.0, 4.5], [5000.0, 5.0]])
    truth = np.array([[5100.0, 4.4], [4900.0, 5.1]])
    np.testing.assert_allclose(dev_scatter(pred, truth), [100.0, 0.1])
    stats = {"dev_scatter": [100.0, 0.1]}
    tol = range_tolerance(stats, 2)
    assert RANGE_SIGMAS == 2.0
    np.testing.assert_allclose(tol, [200.0, 0.2])
    np.testing.assert_array_equal(range_tolerance({}, 2), [0.0, 0.0])
    np.testing.assert_array_equal(range_tolerance({"dev_scatter": [1.0]}, 2), [0.0, 0.0])
    lrange = np.array([[4000.0, 1.0], [6000.0, 5.9]])
    rows = np.array([[5000.0, 3.0],      # inside
                     [3850.0, 3.0],      # 150 K below: within 200 K
                     [3790.0, 3.0],      # 210 K below: flagged
                     [6000.0, 5.95],     # 0.05 above: within 0.2
                     [5000.0, 6.05],     # within 0.2 of 5.9, but log g > 6: UNPHYSICAL
                     [5000.0, 6.2]])     # beyond both
    lo, hi = lrange[0] - tol, lrange[1] + tol
    ref = ((rows < lo) | (rows > hi)).any(axis=1)
    flags = quality_flags(np.full(6, 50.0), np.full(6, 100), np.ones(6, bool), rows, lrange,
                          100, label_names=["teff", "logg"], range_tol=tol)
    out = (flags & flag_value("OUT_OF_RANGE")) != 0
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out, [False, False, True, False, False, True])
    np.testing.assert_array_equal((flags & flag_value("UNPHYSICAL")) != 0,
                                  [False, False, False, False, True, True])
    strict = quality_flags(np.full(6, 50.0), np.full(6, 100), np.ones(6, bool), rows, lrange,
                           100)  # no tolerance: the plain range check
    np.testing.assert_array_equal((strict & flag_value("OUT_OF_RANGE")) != 0,
                                  [False, True, True, True, True, True])


@pytest.fixture(scope="module")
def sim_model(tmp_path_factory):
    """200 simulated stars (The Payne), a model trained two epochs with the defaults of
    ``apogee-net train`` (augmentation on, OOD statistics and fit-check thresholds fitted),
    the held-out test spectra."""
    from apogee_net.network.train import train_apogee_net
    from apogee_net.spectra.ingest import ingest_apstar
    from apogee_net.spectra.simulate import simulate_apstar

    emu = shared_file("payne", "NN_unnormalized_spectra.npz")
    tmp = tmp_path_factory.mktemp("oodsim")
    rng = np.random.default_rng(1)
    n = 200
    table = Table({"apogee_id": [f"S{i:04d}" for i in range(n)],
                   "teff": rng.uniform(3800, 6400, n), "logg": rng.uniform(1.0, 4.8, n),
                   "fe_h": rng.uniform(-0.8, 0.4, n)})
    table["split"] = ["train"] * 140 + ["dev"] * 30 + ["test"] * 30
    table["source"] = "payne"
    simulate_apstar(table, tmp / "spectra", emulator=emu, seed=3, progress=False)
    ingest_apstar(tmp / "spectra", tmp / "s.h5", workers=0, progress=False)
    table.write(tmp / "labels.fits")
    train_apogee_net(tmp / "s.h5", tmp / "labels.fits", tmp / "run", max_epochs=2,
                     device="cpu", progress=False, emulator=emu)
    test = [tmp / "spectra" / f"apStar-sim-{i}.fits" for i in table["apogee_id"][170:]]
    return tmp / "run" / "model.pt", test, table[170:]


def _constructed(tmp, name):
    """The issue's constructed out-of-domain inputs, built from a real spectrum."""
    sp = read_apstar(shared_file("apogee", name))
    live = ~sp.dead
    rng = np.random.default_rng(0)
    cases = {"flat": np.where(live, np.nanmedian(sp.flux), np.nan),
             "noise": np.where(live, rng.normal(0, np.nanmedian(sp.error), NPIX), np.nan),
             "reversed": sp.flux[::-1], "zeroed_chip": np.where(np.arange(NPIX) > 6200, 0.0,
                                                                sp.flux)}
    paths = {}
    for key, flux in cases.items():
        error = sp.error[::-1] if key == "reversed" else sp.error
        paths[key] = write_apstar(tmp / f"apStar-test-{key}.fits", flux, error,
                                  header={"OBJID": key, "SNR": float(sp.snr)})
    return paths


def test_real_spectra_trusted_or_flagged_and_constructed_inputs_flagged_ood(sim_model,
                                                                            tmp_path):
    model, test, truth = sim_model
    files = [shared_file("apogee", n) for n in REAL]
    made = _constructed(tmp_path, REAL[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = Table.read(predict_catalog(model, [*files, *made.values(), *test],
                                         tmp_path / "c.fits", realizations=5,
                                         device="cpu", progress=False), mask_invalid=False)
    ckpt = torch.load(model, weights_only=False)
    lo, hi = np.asarray(ckpt["meta"]["label_range"])
    stats = ckpt["meta"]["ood"]
    assert ckpt["meta"]["augment"] != "none" and "threshold" in stats
    assert len(stats["dev_scatter"]) == 3
    tol = range_tolerance(stats, 3)
    assert np.all(tol > 0)  # 2 dev scatters per label
    names = ["logg", "teff", "fe_h"]
    labels = np.column_stack([cat[n] for n in names])
    inside = np.all((labels >= lo - tol) & (labels <= hi + tol), axis=1)
    bad = unphysical(labels, names)
    flags = np.asarray(cat["flags"])
    assert np.all(np.isfinite(cat["ood_score"]))
    # every row: physically possible and inside the training range, or flagged
    assert np.all((inside & ~bad) | (flags != 0))
    assert np.all(((flags & flag_value("UNPHYSICAL")) != 0) == bad)
    assert np.all(((flags & flag_value("OUT_OF_RANGE")) != 0) == ~inside)
    ood = dict(zip(cat["apogee_id"], (flags & flag_value("OOD")) != 0, strict=True))
    assert all(ood[k] for k in made), {k: ood[k] for k in made}
    is_sim = np.array([str(i).startswith("S") for i in cat["apogee_id"]])
    assert is_sim.sum() == len(test)
    sim = flags[is_sim] & ~flag_value("LOW_SNR", "FIT_DISAGREE")
    assert np.mean(sim != 0) <= 0.1, flags[is_sim]
    # the independent-fit check ran: its columns, its flag where |label - fit| > threshold
    from apogee_net.network.fitcheck import COMPARED, FIT_COLUMNS

    thr = np.asarray(ckpt["meta"]["fit_check"]["thresholds"])
    assert cat.meta["FITCHECK"].startswith("Payne fit"), cat.meta["FITCHECK"]
    fit = np.column_stack([cat[c] for c in FIT_COLUMNS])
    net = np.column_stack([cat[c] for c in COMPARED])
    assert np.isfinite(fit[is_sim]).all()  # simulated stars lie inside the emulator's range
    # on emulator spectra the fit recovers the truth, whatever the (2-epoch) network says,
    # so FIT_DISAGREE marks the rows the network got wrong by more than the threshold
    sim_truth = np.column_stack([truth[c] for c in COMPARED])
    miss = np.abs(fit[is_sim] - sim_truth)
    assert np.all(miss < [60.0, 0.1, 0.05]), miss.max(axis=0)
    with np.errstate(invalid="ignore"):
        ref = (np.abs(net - fit) > thr).any(axis=1)
    np.testing.assert_array_equal((flags & flag_value("FIT_DISAGREE")) != 0, ref)
