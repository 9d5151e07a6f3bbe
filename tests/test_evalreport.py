"""``apogee-net evaluate`` on a tiny model: every number of the report is recomputed here
from the predictions it wrote, with straight-line code (σ factors per group of the predicted
labels, fitted on 'cal' (+ 'test' by cross-fitting), shrunk to the pooled factor; coverage on
test), the cross-fitting never judges a star with a factor that saw it, and ``predict``
applies the stored per-group factors to the right stars."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from apogee_net.evaluation.report import evaluate_model, format_report, store_sigma_scale
from yso_labels.core.checkpoint import read_checkpoint

NAMES = ["logg", "teff", "fe_h"]


def _in_triangle(teff, logg):
    """Straight-line YSO triangle of Olney et al. 2020 §4.1: same side of all three edges."""
    v = np.array([[2.2, 4.4], [4.5, 3.9], [3.2, 1.7]])  # (Teff/1000, log g)
    p = np.column_stack([np.asarray(teff) / 1000, logg])
    side = []
    for a, b in zip(v, np.roll(v, -1, axis=0), strict=True):
        side.append((b[0] - a[0]) * (p[:, 1] - a[1]) - (b[1] - a[1]) * (p[:, 0] - a[0]))
    side = np.array(side)
    return np.all(side >= 0, axis=0) | np.all(side <= 0, axis=0)


def _group_of(teff, logg):
    """Rule groups: YSO triangle > M dwarf (Teff <= 4000 K, log g >= 3.5) > dwarf (log g >=
    3.5) > giant; 'all' without finite values."""
    teff, logg = np.asarray(teff, float), np.asarray(logg, float)
    with np.errstate(invalid="ignore"):
        out = np.where(logg >= 3.5, np.where(teff <= 4000, "mstar", "dwarf"), "giant")
    out = np.where(_in_triangle(teff, logg), "yso", out)
    return np.where(np.isfinite(teff) & np.isfinite(logg), out, "all")


def _factor(z):
    """68.27th percentile of |z| (the σ factor), by sorting."""
    a = np.sort(np.abs(z[np.isfinite(z)]))
    q = 0.6826894921 * (len(a) - 1)
    i = int(np.floor(q))
    return a[i] + (q - i) * (a[min(i + 1, len(a) - 1)] - a[i])


def _shrunk(z_group, z_all, n0=5, min_stars=10):
    """Group factor shrunk to the pooled one in log with n0 pseudo-stars."""
    k_all = _factor(z_all)
    n = np.isfinite(z_group).sum()
    if n < min_stars:
        return k_all
    return np.exp((n * np.log(_factor(z_group)) + n0 * np.log(k_all)) / (n + n0))


@pytest.fixture(scope="module")
def cal_labels(tiny_run, tmp_path_factory):
    """The tiny run's label table with every group's training stars relabelled 'cal' (enough
    stars per group for a factor of its own)."""
    run_dir, table = tiny_run
    t = table.copy()
    t["split"] = np.where(t["split"] == "train", "cal", t["split"])
    path = tmp_path_factory.mktemp("cal") / "labels.csv"
    t.write(path)
    return path


@pytest.mark.parametrize("method", ["cal", "crossfit"])
def test_per_group_factors_and_test_coverage(tiny_run, cal_labels, tmp_path, method):
    run_dir, _ = tiny_run
    model = tmp_path / "model.pt"
    model.write_bytes((run_dir / "run" / "model.pt").read_bytes())
    out = tmp_path / "eval"
    summary = evaluate_model(model, run_dir / "s.h5", cal_labels, out, realizations=5,
                             device="cpu", apply_calibration=True, calibration=method)
    for name in ("table2_mse.fits", "table3_scatter.csv", "calibration.fits",
                 "predictions.fits", "pred_vs_label.png", "sigma_vs_snr.png", "kiel.png"):
        assert (out / name).stat().st_size > 0, name
    pred = Table.read(out / "predictions.fits")
    src, split = np.asarray(pred["source"]).astype(str), np.asarray(pred["split"]).astype(str)
    z = {n: (np.asarray(pred[f"{n}_pred"]) - pred[n]) / pred[f"{n}_err"] for n in NAMES}
    # Table 3 is the std of prediction - label of the rows written
    sel = (src == "yso") & (split == "dev")
    row = [r for r in summary["table3"] if r["group"] == "YSO" and r["label"] == "teff"][0]
    assert row["dev"] == pytest.approx(np.std(pred["teff_pred"][sel] - pred["teff"][sel]))
    # groups from the PREDICTED labels, the rule predict applies
    assigned = _group_of(pred["teff_pred"], pred["logg_pred"])
    np.testing.assert_array_equal(np.asarray(pred["sigma_group"]).astype(str), assigned)
    # factors: per rule group, fitted on 'cal' (+ 'test' when cross-fitting), never dev/train
    used = (split == "cal") | ((split == "test") if method == "crossfit" else False)
    rec = read_checkpoint(model)["meta"]["sigma_scale"]
    assert rec["split"].startswith("cal") and ("test" in rec["split"]) == (method == "crossfit")
    assert summary["factor_split"] == rec["split"] and rec["grouping"] == "predicted"
    assert rec["n"]["all"] == int(used.sum()) == summary["n_calibration"]
    # (a one-epoch model predicts nearly every star a giant: several groups are exercised by
    # the array-level tests below)
    big = [g for g in set(assigned[used]) if (used & (assigned == g)).sum() >= 10]
    assert big, "the fixture must give a rule group a factor of its own"
    for g in set(assigned[used]):
        s = used & (assigned == g)
        assert rec["n"][g] == int(s.sum())
        for n in NAMES:
            assert rec["groups"][g][n] == pytest.approx(_shrunk(z[n][s], z[n][used]),
                                                        rel=1e-9), (g, n)
    for g in set(src[used]):        # the known-group factors reported beside
        s = used & (src == g)
        assert rec["source_groups"][g]["teff"] == pytest.approx(
            _shrunk(z["teff"][s], z["teff"][used]), rel=1e-9)
    # coverage on test per label-table group: 'cal' -> the stored factors of the rule group;
    # 'crossfit' -> each test star's factor fitted without the fold holding it
    rows = {(r["split"], r["kind"], r["group"], r["label"]): r for r in summary["calibration"]}
    test = split == "test"
    for n in NAMES:
        k_star = np.asarray(pred[f"{n}_sigk"])
        if method == "cal":
            np.testing.assert_allclose(k_star, [rec["groups"].get(a, rec["groups"]["all"])[n]
                                                for a in assigned])
        for g in ("payne", "mstar", "yso"):
            s = test & (src == g)
            r = rows[("test", "source", g, n)]
            assert r["n"] == s.sum() and r["cov1_before"] == pytest.approx(
                np.mean(np.abs(z[n][s]) <= 1))
            assert r["cov1_after"] == pytest.approx(np.mean(np.abs(z[n][s] / k_star[s]) <= 1))
            # the band is judged on the known-group factors for a label-table group
            assert r["cov1_checked"] == r["cov1_source"]
        assert rows[("test", "source", "Full", n)]["cov1_checked"] == rows[
            ("test", "source", "Full", n)]["cov1_after"]
        for g in set(assigned[test]):
            s = test & (assigned == g)
            assert rows[("test", "predicted", g, n)]["cov1_after"] == pytest.approx(
                np.mean(np.abs(z[n][s] / k_star[s]) <= 1))
    # the report (what `apogee-net evaluate` prints) gives the per-group test coverage and
    # names the split of the factors
    text = format_report(summary)
    assert "Table 3" in text and "calibration split 'cal'" in text
    assert ("cross-fitting" in text) == (method == "crossfit")
    line = [ln for ln in text.splitlines() if ln.startswith("test  source    mstar  teff")][0]
    assert float(line.split()[6]) == pytest.approx(
        rows[("test", "source", "mstar", "teff")]["cov1_after"], abs=6e-4)


def test_crossfit_never_judges_a_star_with_a_factor_that_saw_it():
    """Out-of-fold factors: a star's own residual cannot move its own factor, and each fold's
    factors are the straight-line shrunk percentiles of the other folds' stars."""
    from apogee_net.evaluation.groupcal import crossfit_scales, fold_ids

    rng = np.random.default_rng(3)
    groups = np.array(["giant"] * 60 + ["dwarf"] * 30 + ["yso"] * 6)
    z = rng.normal(size=(96, 2)) * np.where(groups == "dwarf", 3.0, 1.0)[:, None]
    k = crossfit_scales(z, groups, folds=4, seed=1)
    fold = fold_ids(groups, 4, seed=1)
    assert sorted(np.bincount(fold[groups == "dwarf"])) == [7, 7, 8, 8]   # stratified
    for f in range(4):
        out = fold != f
        for i in np.flatnonzero(fold == f):
            g = groups[i]
            rows = out & (groups == g)
            assert k[i, 0] == pytest.approx(_shrunk(z[rows, 0], z[out, 0]), rel=1e-12)
    z2 = z.copy()
    z2[5] *= 100.0                      # one star's residual blows up
    k2 = crossfit_scales(z2, groups, folds=4, seed=1)
    np.testing.assert_array_equal(k2[5], k[5])
    assert not np.array_equal(k2[fold != fold[5]], k[fold != fold[5]])


def test_per_group_crossfit_calibration_covers_each_group_where_pooled_does_not():
    """Two groups whose σ is 1× and 3× too small: one pooled factor leaves the minority far
    under-covered; per-group cross-fitted factors bring both to 68.3 % (binomial error
    0.015 on 1000 stars)."""
    from apogee_net.evaluation.groupcal import calibrate

    rng = np.random.default_rng(0)
    n = 4000
    source = np.where(np.arange(n) < 3000, "payne", "mstar")
    assigned = np.where(source == "payne", "giant", "mstar")
    label = np.zeros((n, 1))
    sigma = np.ones((n, 1))
    pred = rng.normal(size=(n, 1)) * np.where(source == "mstar", 3.0, 1.0)[:, None]
    split = rng.choice(["cal", "test"], n)
    rec, k_rule, k_src, used = calibrate(pred, label, sigma, source, split, assigned, ["x"])
    assert used.all() and rec["groups"]["mstar"]["x"] == pytest.approx(3.0, rel=0.08)
    for g in ("payne", "mstar"):
        s = (split == "test") & (source == g)
        assert np.mean(np.abs(pred[s, 0] / k_rule[s, 0]) <= 1) == pytest.approx(0.683, abs=0.04)
    pooled = rec["groups"]["all"]["x"]
    s = (split == "test") & (source == "mstar")
    assert np.mean(np.abs(pred[s, 0] / pooled) <= 1) < 0.5


def test_without_cal_split_factors_come_from_dev_with_a_warning(tiny_run, tmp_path, caplog):
    run_dir, _ = tiny_run
    summary = evaluate_model(run_dir / "run" / "model.pt", run_dir / "s.h5",
                             run_dir / "labels.csv", tmp_path / "e", realizations=2,
                             device="cpu")
    assert summary["factor_split"].startswith("dev") and "optimistic" in caplog.text
    t = Table.read(run_dir / "labels.csv")
    t["split"] = "train"
    t.write(tmp_path / "labels.csv")
    with pytest.raises(ValueError, match="dev"):
        evaluate_model(run_dir / "run" / "model.pt", run_dir / "s.h5", tmp_path / "labels.csv",
                       tmp_path / "e", realizations=2, device="cpu")


def test_predict_applies_the_assigned_groups_factor_and_hot_policy(tiny_run, tmp_path):
    from apogee_net.inference.predict import FLAGS, TEFF_MAX, predict_catalog

    run_dir, _ = tiny_run
    plain = run_dir / "run" / "model.pt"
    scaled = tmp_path / "scaled.pt"
    scaled.write_bytes(plain.read_bytes())
    factors = {"all": {"logg": 7.0, "teff": 7.0, "fe_h": 7.0},
               "giant": {"logg": 2.0, "teff": 3.0, "fe_h": 4.0},
               "dwarf": {"logg": 2.2, "teff": 3.3, "fe_h": 4.4},
               "mstar": {"logg": 5.0, "teff": 6.0, "fe_h": 0.5},
               "yso": {"logg": 1.5, "teff": 2.5, "fe_h": 3.5}}
    store_sigma_scale(scaled, {"split": "cal", "grouping": "predicted", "groups": factors,
                               "n": {}})
    kw = {"realizations": 4, "device": "cpu", "progress": False}
    a = Table.read(predict_catalog(plain, [run_dir / "s.h5"], tmp_path / "a.fits", **kw))
    b = Table.read(predict_catalog(scaled, [run_dir / "s.h5"], tmp_path / "b.fits", **kw))
    np.testing.assert_allclose(b["teff"], a["teff"])
    group = _group_of(a["teff"], a["logg"])
    np.testing.assert_array_equal(np.asarray(b["sigma_group"]).astype(str), group)
    for n in NAMES:
        k = np.array([factors[g][n] for g in group])
        np.testing.assert_allclose(b[f"{n}_err"], k * a[f"{n}_err"], rtol=1e-6)
    assert b.meta["SIGSPLIT"] == "cal" and "giant:2,3,4" in b.meta["SIGSCALE"]
    assert "triangle" in b.meta["SIGGROUP"]
    assert a.meta["SIGSCALE"].startswith("none")
    # a record of the source-keyed kind (before the dwarf/giant split): 'payne' for both
    legacy = {g: factors[g] for g in ("all", "mstar", "yso")} | {"payne": factors["giant"]}
    store_sigma_scale(scaled, {"split": "cal", "groups": legacy, "n": {}})
    e = Table.read(predict_catalog(scaled, [run_dir / "s.h5"], tmp_path / "e.fits", **kw))
    k = np.array([legacy.get(g, legacy["payne"])["teff"] for g in group])
    np.testing.assert_allclose(e["teff_err"], k * a["teff_err"], rtol=1e-6)
    # a legacy flat record scales every star alike
    store_sigma_scale(scaled, {"logg": 2.0, "teff": 3.0, "fe_h": 4.0})
    c = Table.read(predict_catalog(scaled, [run_dir / "s.h5"], tmp_path / "c.fits", **kw))
    np.testing.assert_allclose(c["fe_h_err"], 4 * a["fe_h_err"], rtol=1e-6)
    hot_bit = FLAGS["HOT"][0]
    assert ((a["flags"] & hot_bit) > 0).tolist() == (a["teff"] > TEFF_MAX).tolist()
    d = Table.read(predict_catalog(plain, [run_dir / "s.h5"], tmp_path / "d.fits", hot="drop",
                                   **kw))
    assert len(d) == int((a["teff"] <= TEFF_MAX).sum()) and (d["teff"] <= TEFF_MAX).all()


def test_assign_group_rules_on_known_points():
    from apogee_net.evaluation.groupcal import assign_group

    teff = [3300.0, 3500.0, 4800.0, 5800.0, 3900.0, np.nan, 2300.0, 2300.0, 2300.0, 3000.0,
            5000.0, 5000.0]
    logg = [3.5, 4.9, 2.5, 4.4, 3.4, 4.0, 4.30, 4.39, 3.8, 3.4, 3.5, 3.49]
    # triangle, M dwarf, giant, hot dwarf, triangle, NaN, just inside / above the top edge,
    # left of the triangle with log g 3.8 (M-dwarf region from log g 3.5), log g just < 3.5,
    # 5000 K at log g 3.5 (dwarf) and just below (giant)
    expect = _group_of(teff, logg)
    assert list(expect) == ["yso", "mstar", "giant", "dwarf", "yso", "all", "yso", "mstar",
                            "mstar", "yso", "dwarf", "giant"]
    assert list(assign_group(teff, logg)) == list(expect)
