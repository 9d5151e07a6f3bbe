"""Payne trust region (Olney et al. 2020 §2.2) and the merged label table."""

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from yso_labels.core.tables import TableError
from yso_labels.merge import assign_split, merge_labels
from yso_labels.payne import payne_labels, read_payne, trusted

PAYNE = Path(__file__).parent / "data" / "payne_sample.txt"


def test_read_payne_text_format():
    t = read_payne(PAYNE)
    assert len(t) == 6
    assert t["apogee_id"][0] == "2M00000002+7417074"
    assert t["teff"][0] == pytest.approx(4605.1) and t["fe_h"][0] == pytest.approx(-0.10)


def test_trust_region_and_quality_flag():
    t = payne_labels(read_payne(PAYNE))
    # 3850 K/4.70 is a cool dwarf (untrusted); 3900 K/1.20 a cool giant (trusted);
    # 4950 K has quality_flag bad
    assert sorted(t["apogee_id"]) == ["2M00000002+7417074", "2M00000019-1924498",
                                      "2M00000035-7323394", "2M00000222+5625359"]
    assert trusted([4000.0, 4000.1, 3000.0], [4.0, 4.0, 3.49]).tolist() == [False, True, True]


def test_read_payne_missing_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    Table({"APOGEE_ID": ["a"], "TEFF": [5000.0]}).write(bad)
    with pytest.raises(TableError, match=r"bad.csv.*logg"):
        read_payne(bad)


def test_split_fractions_and_determinism():
    ids = [f"2M{i:08d}" for i in range(1000)]
    s = assign_split(ids, (0.8, 0.1, 0.1), seed=3)
    assert [(s == k).sum() for k in ("train", "dev", "test")] == [800, 100, 100]
    # order of the input does not matter, the seed does
    rev = assign_split(ids[::-1], (0.8, 0.1, 0.1), seed=3)[::-1]
    assert (rev == s).all()
    assert (assign_split(ids, (0.8, 0.1, 0.1), seed=4) != s).any()
    # the calibration split is carved from dev: train and test unchanged
    c = assign_split(ids, (0.8, 0.1, 0.1), seed=3, cal_fraction=0.5)
    assert [(c == k).sum() for k in ("train", "dev", "cal", "test")] == [800, 50, 50, 100]
    assert ((c == "train") == (s == "train")).all() and ((c == "test") == (s == "test")).all()
    assert (np.isin(c, ("dev", "cal")) == (s == "dev")).all()


def _labels(ids, teff, source):
    n = len(ids)
    return Table({"apogee_id": ids, "teff": np.full(n, teff), "logg": np.full(n, 4.5),
                  "fe_h": np.zeros(n)})


def test_merge_priority_groups_and_splits():
    payne = _labels([f"P{i:04d}" for i in range(500)] + ["X1", "X2"], 5000.0, "payne")
    mstar = _labels([f"M{i:04d}" for i in range(100)] + ["X1", "X2"], 3500.0, "mstar")
    yso = Table({"apogee_id": [f"Y{i:04d}" for i in range(50)] + ["X2"],
                 "teff": np.full(51, 3800.0), "logg": np.full(51, 3.9)})
    m = merge_labels(payne, mstar, yso, seed=1)
    assert len(m) == 500 + 100 + 2 + 50
    row = {r["apogee_id"]: r for r in m}
    assert row["X2"]["source"] == "yso" and row["X2"]["dropped_sources"] == "mstar,payne"
    assert row["X1"]["source"] == "mstar" and row["X1"]["dropped_sources"] == "payne"
    # YSO rows without [Fe/H] get the solar value of the PARSEC grid, flagged
    assert row["Y0001"]["fe_h"] == 0.0 and row["Y0001"]["fe_h_assumed"]
    # half of each dev split is the calibration split 'cal' (CAL_FRACTION)
    for source, frac in (("payne", (0.8, 0.05, 0.05, 0.1)), ("mstar", (0.6, 0.1, 0.1, 0.2))):
        sel = m["source"] == source
        got = [np.mean(m["split"][sel] == k) for k in ("train", "dev", "cal", "test")]
        assert np.allclose(got, frac, atol=0.01)
    again = merge_labels(payne, mstar, yso, seed=1)
    assert (again["split"] == m["split"]).all()


def test_merge_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        merge_labels(None, None, None)
