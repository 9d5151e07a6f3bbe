"""Li et al. §2.2.1 label treatment, §2.2.2 [Fe/H] weights, Table 1/2 ranges, cross-match."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.table import Table

from apogee_net.lamost.labels import (
    LABELS,
    apply_weights,
    crossmatch_lamost_apogee,
    crossmatch_sky,
    feh_weights,
    from_dr12_columns,
    label_ranges,
    recommended_flags,
    treat_labels,
    weight_table,
)
from apogee_net.lamost.training import assign_splits
from tests.conftest import shared_file


def test_ranges_table_holds_the_papers_numbers():
    r = label_ranges()
    assert tuple(r["label"]) == LABELS
    # Table 1 effective ranges
    assert (r.loc["teff"]["eff_min"], r.loc["teff"]["eff_max"]) == (3500, 5500)
    assert (r.loc["alpha_m"]["eff_min"], r.loc["alpha_m"]["eff_max"]) == (-0.15, 0.40)
    assert (r.loc["n_fe"]["eff_min"], r.loc["n_fe"]["eff_max"]) == (-0.40, 0.70)
    assert (r.loc["ni_fe"]["eff_min"], r.loc["ni_fe"]["eff_max"]) == (-0.20, 0.20)
    assert r.loc["mn_fe"]["n_paper"] == 72573
    # §2.2.1 uncertainty limits: 0.20 dex for alpha, C, N, O, Mg, Al, Si, Ca; 0.05 Mn, Ni
    limits = dict(zip(r["label"], r["err_max"], strict=True))
    for name in ("alpha_m", "c_fe", "n_fe", "o_fe", "mg_fe", "al_fe", "si_fe", "ca_fe"):
        assert limits[name] == 0.20
    assert limits["mn_fe"] == limits["ni_fe"] == 0.05
    assert all(np.isnan(limits[n]) for n in ("teff", "logg", "fe_h", "m_h"))
    # Table 2 recommended ranges, §3.1 and §3.3
    assert (r.loc["o_fe"]["rec_min"], r.loc["o_fe"]["rec_max"]) == (-0.05, 0.45)
    assert (r.loc["mn_fe"]["rec_min"], r.loc["mn_fe"]["rec_max"]) == (-0.26, 0.20)
    assert (r.loc["teff"]["rec_min"], r.loc["teff"]["rec_max"]) == (3700, 5400)
    assert (r.loc["alpha_m"]["rec_min"], r.loc["alpha_m"]["rec_max"]) == (-0.03, 0.32)


def _allstar(rows: list[dict]) -> Table:
    r = label_ranges()
    base = {str(r.loc[n]["allstar"]): v for n, v in zip(
        LABELS, (4800, 2.5, -0.3, -0.3, 0.1, 0, 0.2, 0.1, 0.1, 0, 0.1, 0, -0.1, 0), strict=True)}
    t = Table(rows=[{**base, **{f"{k}_ERR": 0.01 for k in base}, "APOGEE_ID": f"2M{i}", **row}
                    for i, row in enumerate(rows)])
    return t


def test_treatment_sets_single_labels_to_nan_and_keeps_every_star():
    table = _allstar([
        {},                                   # clean
        {"MN_FE_ERR": 0.06},                  # Mn uncertainty over 0.05 dex
        {"ALPHA_M": 0.45},                    # outside −0.15..0.40
        {"TEFF": 5600.0, "NI_FE": -9999.0},   # Teff outside range, Ni missing
        {"O_FE_ERR": 0.20, "ALPHA_M": 0.40},  # limits are inclusive: both kept
        {"C_FE_ERR": 0.25, "N_FE": np.nan},
    ])
    out = treat_labels(table)
    assert len(out) == len(table) and list(out["apogee_id"]) == list(table["APOGEE_ID"])
    assert np.isfinite([out[n][0] for n in LABELS]).all() and out["n_labels"][0] == 14
    assert np.isnan(out["mn_fe"][1]) and np.isnan(out["mn_fe_err"][1])
    assert out["n_labels"][1] == 13 and out["fe_h"][1] == pytest.approx(-0.3)
    assert np.isnan(out["alpha_m"][2]) and out["mg_fe"][2] == pytest.approx(0.1)
    assert np.isnan(out["teff"][3]) and np.isnan(out["ni_fe"][3]) and not out["core_complete"][3]
    assert out["o_fe"][4] == pytest.approx(0.1) and out["alpha_m"][4] == pytest.approx(0.40)
    assert np.isnan(out["c_fe"][5]) and np.isnan(out["n_fe"][5]) and out["n_labels"][5] == 12
    counts = out.meta["TREATED"]
    assert counts["mn_fe"]["err_over_limit"] == 1 and counts["alpha_m"]["outside_range"] == 1
    assert counts["ni_fe"]["missing"] == 1 and counts["teff"]["kept"] == 5


def test_all_nan_star_is_flagged_not_dropped():
    nan_row = {k: np.nan for k in _allstar([{}]).colnames if k != "APOGEE_ID"}
    out = treat_labels(_allstar([{}, nan_row]))
    assert len(out) == 2 and out["n_labels"][1] == 0 and not out["core_complete"][1]


def test_missing_label_column_is_a_clear_error():
    table = _allstar([{}])
    table.remove_column("MG_FE")
    with pytest.raises(ValueError, match="MG_FE"):
        treat_labels(table)


def test_real_dr12_allstar_subset_treatment_invariants():
    path = shared_file("labels", "allStar-v603-hipparcos-subset.fits.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = Table.read(path)
    table = from_dr12_columns(raw)
    out = treat_labels(table)
    assert len(out) == len(raw)
    r = label_ranges()
    for name in LABELS:
        col = str(r.loc[name]["allstar"])
        v = np.asarray(table[col], float)
        e = np.asarray(table[f"{col}_ERR"], float)
        kept = np.isfinite(out[name])
        ok = (v >= r.loc[name]["eff_min"]) & (v <= r.loc[name]["eff_max"]) & (v != -9999)
        if np.isfinite(r.loc[name]["err_max"]):
            ok &= e <= r.loc[name]["err_max"]
        np.testing.assert_array_equal(kept, ok, err_msg=name)
    # Mn has the tightest limit (0.05 dex): it loses most labels to it
    assert out.meta["TREATED"]["mn_fe"]["err_over_limit"] > 100


def _paper_like_feh() -> np.ndarray:
    """[Fe/H] with the counts quoted in §2.2.2: 14 stars below −2.4, 38 in −2.4..−2.3,
    293 in −1.5..−1.4, 410 per bin in −1.4..−0.9, 756 in −0.9..−0.8, and a dense disc."""
    rng = np.random.default_rng(0)
    parts = [rng.uniform(-2.499, -2.401, 14), rng.uniform(-2.399, -2.301, 38),
             rng.uniform(-1.499, -1.401, 293)]
    parts += [rng.uniform(lo + 0.001, lo + 0.099, 410) for lo in (-1.4, -1.3, -1.2, -1.1, -1.0)]
    parts += [rng.uniform(-0.899, -0.801, 756), rng.uniform(-0.5, 0.5, 5000)]
    return np.concatenate(parts)


def test_feh_weights_follow_section_2_2_2():
    fe = _paper_like_feh()
    table = weight_table(fe)
    assert len(table) == 30 and table["lo"][0] == -2.5 and table["hi"][-1] == 0.5
    w = apply_weights(fe, table)
    assert np.all(w[:14] == 10.0) and np.all(w[14:52] == 10.0)    # 410/14, 410/38 capped
    np.testing.assert_allclose(w[52:345], 410 / 293)
    assert np.all(w[345:345 + 5 * 410 + 756] == 1.0)              # plateau and buffer: 1
    probe = np.array([-1.4, -0.5, -0.4999, 0.0999, 0.1, 0.3, 0.5, -0.7])
    np.testing.assert_allclose(apply_weights(probe, table),
                               [1.0, 1.0, 0.95, 0.95, 1.0, 1.0, 1.0, 1.0])
    auto = weight_table(fe, standard="auto")
    assert auto.meta["standard"] == pytest.approx(410.0)
    np.testing.assert_allclose(feh_weights(fe)[52:345], 410 / 293)


def test_weight_table_not_covering_a_star_is_an_error():
    table = weight_table(_paper_like_feh())
    with pytest.raises(ValueError, match=r"star-b \(\[Fe/H\]=-2.7\)"):
        apply_weights(np.array([-0.2, -2.7, np.nan]), table, ids=["star-a", "star-b", "c"])
    with pytest.raises(ValueError, match="2 star"):
        apply_weights(np.array([0.51, np.nan]), table)


def test_recommended_range_flags():
    values = np.tile([4500, 2.0, -0.5, -0.5, 0.1, 0, 0.2, 0.1, 0.1, 0, 0.1, 0, 0, 0.0], (3, 1))
    values[1, 0] = 5450.0          # Teff above 5400 K
    values[2, 12] = -0.3           # [Mn/Fe] below −0.26
    flags = recommended_flags(values)
    assert not flags[0].any() and flags[1, 0] and flags[1].sum() == 1 and flags[2, 12]


def test_crossmatch_by_position_and_by_id():
    ra = np.array([10.0, 20.0, 30.0])
    dec = np.array([5.0, -5.0, 60.0])
    idx, sep = crossmatch_sky(ra + np.array([1, 5, 0]) / 3600 / np.cos(np.radians(dec)), dec,
                              ra[::-1], dec[::-1], max_sep=3.0)
    np.testing.assert_array_equal(idx, [2, -1, 0])
    assert sep[0] == pytest.approx(1.0, abs=1e-3) and sep[1] == pytest.approx(5.0, abs=1e-3)
    lamost = Table({"apogee_id": ["101", "102", "103"], "ra": ra, "dec": dec,
                    "tmass": ["2MA", "2MX", "2MC"]})
    apogee = Table({"APOGEE_ID": ["2MC", "2MA"], "RA": ra[[2, 0]], "DEC": dec[[2, 0]],
                    "TEFF": [4000.0, 5000.0]})
    by_pos = crossmatch_lamost_apogee(lamost, apogee)
    assert list(by_pos["spec_id"]) == ["101", "103"] and list(by_pos["TEFF"]) == [5000, 4000]
    by_id = crossmatch_lamost_apogee(lamost, apogee, how="id", lamost_key="tmass")
    assert list(by_id["spec_id"]) == ["101", "103"] and np.isnan(by_id["match_sep"]).all()


def test_splits_are_stratified_and_reproducible():
    fe = _paper_like_feh()
    split = assign_splits(fe, seed=1)
    frac = [np.mean(split == s) for s in ("train", "dev", "test")]
    np.testing.assert_allclose(frac, [0.81, 0.09, 0.10], atol=0.01)
    poor = fe < -2.3           # 52 stars: every split gets its share
    assert np.sum(split[poor] == "test") in (5, 6)
    np.testing.assert_array_equal(split, assign_splits(fe, seed=1))


def test_repeat_spectra_of_one_star_share_a_split():
    rng = np.random.default_rng(2)
    stars = np.repeat(np.arange(300), rng.integers(1, 5, 300))       # 1-4 spectra per star
    fe = rng.uniform(-1.5, 0.4, 300)[stars]
    split = assign_splits(fe, seed=3, groups=stars)
    for s in np.unique(stars):
        assert len(set(split[stars == s])) == 1
    # fractions hold for stars, not spectra
    first = np.unique(stars, return_index=True)[1]
    frac = [np.mean(split[first] == s) for s in ("train", "dev", "test")]
    np.testing.assert_allclose(frac, [0.81, 0.09, 0.10], atol=0.03)
    # one spectrum per star: the same as without groups
    np.testing.assert_array_equal(assign_splits(fe[first], seed=3, groups=np.arange(300)),
                                  assign_splits(fe[first], seed=3))
    with pytest.raises(ValueError, match="one key per row"):
        assign_splits(fe, groups=stars[:-1])


def test_label_table_splits_by_matched_apogee_star(tmp_path):
    """Three LAMOST spectra per star (positions within 0.5"): one split per APOGEE star."""
    from apogee_net.lamost.training import build_training_labels
    from apogee_net.spectra.store import StoreWriter

    rng = np.random.default_rng(4)
    n_star, rep = 40, 3
    ra0, dec0 = rng.uniform(10, 200, n_star), rng.uniform(-5, 50, n_star)
    ra = np.repeat(ra0, rep) + rng.normal(0, 0.1 / 3600, n_star * rep)
    dec = np.repeat(dec0, rep) + rng.normal(0, 0.1 / 3600, n_star * rep)
    npix, n = 16, n_star * rep
    with StoreWriter(tmp_path / "s.h5", npix, np.arange(npix, dtype=float), kind="lamost",
                     overwrite=True) as w:
        w.append(np.ones((n, npix), np.float32), np.full((n, npix), 0.01, np.float32),
                 np.zeros((n, npix), np.int32), [str(9000 + i) for i in range(n)],
                 np.full(n, 50.0), ra, dec, [f"f{i}" for i in range(n)])
    ranges = label_ranges()
    allstar = Table({"APOGEE_ID": [f"2M{i:04d}" for i in range(n_star)], "RA": ra0,
                     "DEC": dec0})
    for name in LABELS:
        col = str(ranges.loc[name]["allstar"])
        allstar[col] = rng.uniform(4000, 5000, n_star) if name == "teff" else \
            rng.uniform(2.0, 3.0, n_star) if name == "logg" else rng.uniform(-0.5, 0.2, n_star)
        allstar[f"{col}_ERR"] = np.full(n_star, 0.01)
    out = build_training_labels(allstar, tmp_path / "s.h5", tmp_path / "labels.fits",
                                weights="none", seed=1)
    table = Table.read(out)
    assert len(table) == n
    names = np.asarray(table["apogee_name"]).astype(str)
    split = np.asarray(table["split"]).astype(str)
    assert len(set(names)) == n_star
    for s in set(names):
        assert len(set(split[names == s])) == 1, s
    assert {"train", "test"} <= set(split)
