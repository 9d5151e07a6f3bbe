"""``apogee-net evaluate`` on a tiny model: every number of the report is recomputed here
from the predictions it wrote, with straight-line code (per-group σ factors on the 'cal'
split, coverage on test with the factor of the group assigned from the predicted labels), and
``predict`` applies the stored per-group factors to the right stars."""

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
    teff, logg = np.asarray(teff, float), np.asarray(logg, float)
    out = np.where((teff <= 4000) & (logg >= 3.5), "mstar", "payne")
    return np.where(_in_triangle(teff, logg), "yso", out)


def _factor(z):
    """68.27th percentile of |z| (the σ factor), by sorting."""
    a = np.sort(np.abs(z[np.isfinite(z)]))
    q = 0.6826894921 * (len(a) - 1)
    i = int(np.floor(q))
    return a[i] + (q - i) * (a[min(i + 1, len(a) - 1)] - a[i])


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


def test_per_group_factors_from_cal_and_test_coverage(tiny_run, cal_labels, tmp_path):
    run_dir, _ = tiny_run
    model = tmp_path / "model.pt"
    model.write_bytes((run_dir / "run" / "model.pt").read_bytes())
    out = tmp_path / "eval"
    summary = evaluate_model(model, run_dir / "s.h5", cal_labels, out, realizations=5,
                             device="cpu", apply_calibration=True)
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
    # factors: per group, fitted on the 'cal' rows only (not dev, not pooled)
    assert summary["factor_split"] == "cal"
    rec = read_checkpoint(model)["meta"]["sigma_scale"]
    assert rec["split"] == "cal" and set(rec["groups"]) == {"all", "payne", "mstar", "yso"}
    cal = split == "cal"
    for g in ("payne", "mstar", "yso"):
        assert rec["n"][g] == int((cal & (src == g)).sum()) >= 10
        for n in NAMES:
            assert rec["groups"][g][n] == pytest.approx(_factor(z[n][cal & (src == g)]),
                                                        rel=1e-9), (g, n)
    assert rec["groups"]["all"]["teff"] == pytest.approx(_factor(z["teff"][cal]), rel=1e-9)
    # the groups' factors differ (else the per-group bookkeeping would be untested)
    assert len({round(rec["groups"][g]["teff"], 6) for g in ("payne", "mstar", "yso")}) == 3
    # coverage on test: factor of the group assigned from the PREDICTED labels
    assigned = _group_of(pred["teff_pred"], pred["logg_pred"])
    np.testing.assert_array_equal(np.asarray(pred["sigma_group"]).astype(str), assigned)
    rows = {(r["split"], r["group"], r["label"]): r for r in summary["calibration"]}
    test = split == "test"
    for g in ("payne", "mstar", "yso"):
        s = test & (src == g)
        for n in NAMES:
            k = np.array([rec["groups"][a][n] for a in assigned[s]])
            expect = np.mean(np.abs(z[n][s] / k) <= 1)
            r = rows[("test", g, n)]
            assert r["n"] == s.sum() and r["cov1_after"] == pytest.approx(expect), (g, n)
            assert r["cov1_before"] == pytest.approx(np.mean(np.abs(z[n][s]) <= 1))
            kt = rec["groups"][g][n]
            assert r["cov1_true_group"] == pytest.approx(np.mean(np.abs(z[n][s] / kt) <= 1))
        # on the cal rows, the own-group factor gives 68.3 % by construction (±1 star)
        c = cal & (src == g)
        assert rows[("cal", g, "teff")]["cov1_true_group"] == pytest.approx(
            0.6827, abs=1.01 / c.sum())
    # the report (what `apogee-net evaluate` prints) gives the per-group test coverage and
    # names the split of the factors
    text = format_report(summary)
    assert "Table 3" in text and "calibration split 'cal'" in text
    line = [ln for ln in text.splitlines() if ln.startswith("test  mstar  teff")][0]
    assert float(line.split()[6]) == pytest.approx(rows[("test", "mstar", "teff")]["cov1_after"],
                                                   abs=6e-4)


def test_without_cal_split_factors_come_from_dev_with_a_warning(tiny_run, tmp_path, caplog):
    run_dir, _ = tiny_run
    summary = evaluate_model(run_dir / "run" / "model.pt", run_dir / "s.h5",
                             run_dir / "labels.csv", tmp_path / "e", realizations=2,
                             device="cpu")
    assert summary["factor_split"] == "dev" and "optimistic" in caplog.text
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
               "payne": {"logg": 2.0, "teff": 3.0, "fe_h": 4.0},
               "mstar": {"logg": 5.0, "teff": 6.0, "fe_h": 0.5},
               "yso": {"logg": 1.5, "teff": 2.5, "fe_h": 3.5}}
    store_sigma_scale(scaled, {"split": "cal", "groups": factors, "n": {}})
    kw = {"realizations": 4, "device": "cpu", "progress": False}
    a = Table.read(predict_catalog(plain, [run_dir / "s.h5"], tmp_path / "a.fits", **kw))
    b = Table.read(predict_catalog(scaled, [run_dir / "s.h5"], tmp_path / "b.fits", **kw))
    np.testing.assert_allclose(b["teff"], a["teff"])
    group = _group_of(a["teff"], a["logg"])
    np.testing.assert_array_equal(np.asarray(b["sigma_group"]).astype(str), group)
    for n in NAMES:
        k = np.array([factors[g][n] for g in group])
        np.testing.assert_allclose(b[f"{n}_err"], k * a[f"{n}_err"], rtol=1e-6)
    assert b.meta["SIGSPLIT"] == "cal" and "payne:2,3,4" in b.meta["SIGSCALE"]
    assert "triangle" in b.meta["SIGGROUP"]
    assert a.meta["SIGSCALE"].startswith("none")
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

    teff = [3300.0, 3500.0, 4800.0, 5800.0, 3900.0, np.nan, 2300.0, 2300.0, 2300.0, 3000.0]
    logg = [3.5, 4.9, 2.5, 4.4, 3.4, 4.0, 4.30, 4.39, 3.8, 3.4]
    # triangle, M dwarf, giant, hot dwarf, triangle, NaN, just inside / above the top edge,
    # left of the triangle with log g 3.8 (M-dwarf region from log g 3.5), log g just < 3.5
    expect = _group_of(teff, logg)
    assert list(expect) == ["yso", "mstar", "payne", "payne", "yso", "payne", "yso", "mstar",
                            "mstar", "yso"]
    assert list(assign_group(teff, logg)) == list(expect)
