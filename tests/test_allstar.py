"""allStar quality cuts and duplicates (real DR12 subset and constructed tables), SDSS-V
astra summary tables (constructed to the astra data model: HDU1 BOSS, HDU2 APOGEE, e_*
error columns), and both through `apogee-net lamost labels`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from apogee_net.lamost.allstar import best_snr_rows, prepare_allstar, quality_mask
from apogee_net.lamost.labels import LABELS, label_ranges
from tests.conftest import shared_file
from yso_labels.core.tables import TableError, read_meta, read_table

ALLSTAR = ("labels", "allStar-v603-hipparcos-subset.fits.gz")


def test_default_cuts_and_duplicates_on_the_real_allstar():
    table = read_table(shared_file(*ALLSTAR))
    aspcap = np.asarray(table["ASPCAPFLAG"], np.int64)
    star_bad = (aspcap // 2**23) % 2 == 1  # bit 23, written out independently
    keep, report = quality_mask(table)
    assert report["ASPCAPFLAG"]["dropped"] == int(star_bad.sum()) == 1531
    assert not np.any(keep & star_bad)
    starflag = np.asarray(table["STARFLAG"], np.int64)
    assert not np.any(keep & ((starflag & 0b11011) != 0))  # bits 0, 1, 3, 4
    out, rep = prepare_allstar(table, cuts="none")
    ids = np.char.strip(np.asarray(table["APOGEE_ID"]).astype(str))
    assert rep["duplicates_dropped"] == len(ids) - len(set(ids)) and len(out) == len(set(ids))
    snr = np.asarray(table["SNR"], float)
    for star in set(ids[np.unique(ids, return_counts=True)[1][np.searchsorted(
            np.unique(ids), ids)] > 1]):
        kept = np.asarray(out["SNR"])[np.asarray(out["APOGEE_ID"]).astype(str) == star]
        assert kept.size == 1 and kept[0] == snr[ids == star].max()
    # the rows dropped are the ones APOGEE marks EXTRATARG DUPLICATE (bit 4, lower S/N)
    kept_rows = set(zip(np.asarray(out["APOGEE_ID"]).astype(str), np.asarray(out["SNR"]),
                        strict=True))
    dropped = np.array([(i, s) not in kept_rows for i, s in zip(ids, snr, strict=True)])
    dup_bit = (np.asarray(table["EXTRATARG"], np.int64) & 16) != 0
    np.testing.assert_array_equal(dropped, dup_bit)  # exactly: 229 rows
    assert dropped.sum() == 229


def test_best_snr_rows_ties_and_nan():
    keep, n = best_snr_rows(["a", "b", "a", "a", "b"], [10, np.nan, 30, 30, 5])
    assert list(keep) == [2, 4] and n == 3


def _astra_summary(path):
    """astraAllStarASPCAP-like file: HDU1 BOSS (rows with other columns), HDU2 APOGEE."""
    ranges = label_ranges()
    n = 3
    cols = {"sdss_id": np.arange(1, n + 1), "sdss4_apogee_id": ["2MA", "2MB", "2MC"],
            "ra": [10.0, 20.0, 30.0], "dec": [1.0, 2.0, 3.0], "snr": [100.0, 80.0, 60.0],
            "teff": [4500.0, 4700.0, 4900.0], "e_teff": [20.0] * n,
            "logg": [2.5, 2.6, 2.7], "e_logg": [0.05] * n,
            "fe_h": [-0.3, -0.2, -0.1], "e_fe_h": [0.02] * n,
            "m_h_atm": [-0.3, -0.2, -0.1], "e_m_h_atm": [0.02] * n,
            "alpha_m_atm": [0.1, 0.1, 0.1], "e_alpha_m_atm": [0.01, 0.25, 0.01]}
    for label in LABELS[5:]:
        elem = label.split("_")[0]
        cols[f"{elem}_h"] = np.array(cols["fe_h"]) + 0.05
        cols[f"e_{elem}_h"] = [0.01, 0.01, 0.01]
    cols["e_mg_h"] = [0.01, 0.01, 0.3]  # over the 0.20 dex limit of [Mg/Fe] (Li et al. 2.2.1)
    apogee = fits.BinTableHDU(Table(cols), name="APOGEE")
    boss = fits.BinTableHDU(Table({"sdss_id": [9, 10], "teff": [6000.0, 6100.0],
                                   "e_teff": [100.0, 100.0]}), name="BOSS")
    fits.HDUList([fits.PrimaryHDU(), boss, apogee]).writeto(path)
    assert ranges.loc["mg_fe"]["err_max"] == 0.2
    return path


def test_astra_summary_read_with_error_limits(tmp_path):
    path = _astra_summary(tmp_path / "astraAllStarASPCAP-0.6.0.fits")
    table = read_table(path, required=["teff_err"])
    assert "sdss4_apogee_id" in table.colnames and len(table) == 3  # HDU2, not HDU1 (BOSS)
    assert "e_teff" not in table.colnames and "alpha_m_atm_err" in table.colnames
    out, _ = prepare_allstar(table)
    from apogee_net.lamost.labels import treat_labels

    treated = treat_labels(out)
    assert list(treated["apogee_id"]) == ["2MA", "2MB", "2MC"]
    np.testing.assert_allclose(treated["mg_fe"][:2], [0.05, 0.05])
    assert np.isnan(treated["mg_fe"][2])  # e_mg_h 0.3 > 0.2: removed
    assert np.isnan(treated["alpha_m"][1]) and treated["alpha_m"][0] == pytest.approx(0.1)
    np.testing.assert_allclose(treated["teff_err"], 20.0)
    with pytest.raises(TableError, match="no table HDU has"):
        read_table(path, required=["no_such_column"])


def test_lamost_labels_cuts_duplicates_and_astra(tmp_path):
    """Three LAMOST spectra at the positions of A, B, C. allStar: A twice at the same
    position (S/N 50: Teff 4400; S/N 200: Teff 4600), B STAR_BAD: A gets the S/N-200 labels,
    B is dropped, the header says so."""
    from apogee_net.lamost.training import build_training_labels
    from apogee_net.spectra.store import StoreWriter

    store = tmp_path / "lamost.h5"
    npix = 8
    with StoreWriter(store, npix, np.linspace(4000, 8500, npix), kind="lamost") as w:
        w.append(np.ones((3, npix)), np.full((3, npix), 0.1), np.zeros((3, npix), int),
                 ["L1", "L2", "L3"], [50.0] * 3, [10.0, 20.0, 30.0], [1.0, 2.0, 3.0],
                 ["f1", "f2", "f3"])
    rows = {"APOGEE_ID": ["2MA", "2MA", "2MB", "2MC"], "RA": [10.0, 10.0, 20.0, 30.0],
            "DEC": [1.0, 1.0, 2.0, 3.0], "SNR": [50.0, 200.0, 100.0, 100.0],
            "ASPCAPFLAG": [0, 0, 2**23, 0], "STARFLAG": [0] * 4, "EXTRATARG": [16, 0, 0, 0],
            "TEFF": [4400.0, 4600.0, 4700.0, 4800.0]}
    for label in LABELS[1:]:
        name = label_ranges().loc[label]["allstar"]
        rows[name] = [0.0 if label != "logg" else 2.5] * 4
        rows[f"{name}_ERR"] = [0.01] * 4
    rows["TEFF_ERR"] = [10.0] * 4
    allstar = tmp_path / "allStar.fits"
    Table(rows).write(allstar)
    out = build_training_labels(allstar, store, tmp_path / "labels.fits", weights="none")
    lab = read_table(out)
    assert list(lab["apogee_name"]) == ["2MA", "2MC"]
    assert lab["teff"][0] == 4600.0  # the S/N-200 copy
    meta = read_meta(out)
    q = json.loads(meta["QCUTS"])
    assert q["cuts"]["ASPCAPFLAG"]["dropped"] == 1 and q["duplicates_dropped"] == 1
    assert json.loads(meta["OPTIONS"])["duplicates"] == "best-snr"
    # the astra summary file goes through the same command (ID column sdss4_apogee_id)
    astra = _astra_summary(tmp_path / "astraAllStarASPCAP.fits")
    lab2 = read_table(build_training_labels(astra, store, tmp_path / "l2.fits",
                                            weights="none", require_core=False))
    assert list(lab2["apogee_name"]) == ["2MA", "2MB", "2MC"]
    mg = np.ma.filled(lab2["mg_fe"], np.nan)
    assert np.isnan(mg[2]) and mg[0] == pytest.approx(0.05)
