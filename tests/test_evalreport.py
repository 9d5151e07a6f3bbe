"""``apogee-net evaluate`` on a tiny model: the tables agree with the predictions written,
σ calibration is stored in the checkpoint and applied by ``predict``."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from apogee_net.cli import main
from apogee_net.evaluation.report import evaluate_model
from yso_labels.core.checkpoint import read_checkpoint


def test_evaluate_tables_figures_and_calibration(tiny_run, tmp_path, capsys):
    run_dir, table = tiny_run
    model = tmp_path / "model.pt"
    model.write_bytes((run_dir / "run" / "model.pt").read_bytes())
    out = tmp_path / "eval"
    summary = evaluate_model(model, run_dir / "s.h5", run_dir / "labels.csv", out,
                             realizations=5, device="cpu", apply_calibration=True)
    for name in ("table2_mse.fits", "table3_scatter.csv", "calibration.fits",
                 "predictions.fits", "pred_vs_label.png", "sigma_vs_snr.png", "kiel.png"):
        assert (out / name).stat().st_size > 0, name
    pred = Table.read(out / "predictions.fits")
    assert len(pred) == len(table)
    # Table 3 is the std of prediction - label of the rows written
    sel = (pred["source"] == "yso") & (pred["split"] == "dev")
    expect = np.std(pred["teff_pred"][sel] - pred["teff"][sel])
    row = [r for r in summary["table3"] if r["group"] == "YSO" and r["label"] == "teff"][0]
    assert row["dev"] == pytest.approx(expect)
    # calibration: dev coverage after scaling by sqrt(mean z^2) sits near 68% for each label
    scale = read_checkpoint(model)["meta"]["sigma_scale"]
    assert set(scale) == {"logg", "teff", "fe_h"}
    assert scale == pytest.approx(summary["sigma_scale"])
    dev = [r for r in summary["calibration"] if r["split"] == "dev"]
    assert all(r["scale"] > 0 for r in dev)
    # the CLI prints the tables
    assert main(["evaluate", "--model", str(model), "--store", str(run_dir / "s.h5"),
                 "--labels", str(run_dir / "labels.csv"), "--out", str(tmp_path / "e2"),
                 "--realizations", "3", "--device", "cpu"]) == 0
    assert "Table 3" in capsys.readouterr().out


def test_evaluate_without_dev_split(tiny_run, tmp_path):
    run_dir, table = tiny_run
    t = table.copy()
    t["split"] = "train"
    t.write(tmp_path / "labels.csv")
    with pytest.raises(ValueError, match="dev"):
        evaluate_model(run_dir / "run" / "model.pt", run_dir / "s.h5", tmp_path / "labels.csv",
                       tmp_path / "e", realizations=2, device="cpu")


def test_predict_applies_stored_sigma_scale_and_hot_policy(tiny_run, tmp_path):
    from apogee_net.evaluation.report import store_sigma_scale
    from apogee_net.inference.predict import FLAGS, TEFF_MAX, predict_catalog

    run_dir, _ = tiny_run
    plain = run_dir / "run" / "model.pt"
    scaled = tmp_path / "scaled.pt"
    scaled.write_bytes(plain.read_bytes())
    store_sigma_scale(scaled, {"logg": 2.0, "teff": 3.0, "fe_h": 4.0})
    kw = {"realizations": 4, "device": "cpu", "progress": False}
    a = Table.read(predict_catalog(plain, [run_dir / "s.h5"], tmp_path / "a.fits", **kw))
    b = Table.read(predict_catalog(scaled, [run_dir / "s.h5"], tmp_path / "b.fits", **kw))
    np.testing.assert_allclose(b["teff"], a["teff"])
    np.testing.assert_allclose(b["teff_err"], 3 * a["teff_err"], rtol=1e-6)
    np.testing.assert_allclose(b["fe_h_err"], 4 * a["fe_h_err"], rtol=1e-6)
    assert b.meta["SIGSCALE"] == "2,3,4"
    hot_bit = FLAGS["HOT"][0]
    assert ((a["flags"] & hot_bit) > 0).tolist() == (a["teff"] > TEFF_MAX).tolist()
    c = Table.read(predict_catalog(plain, [run_dir / "s.h5"], tmp_path / "c.fits", hot="drop",
                                   **kw))
    assert len(c) == int((a["teff"] <= TEFF_MAX).sum()) and (c["teff"] <= TEFF_MAX).all()
