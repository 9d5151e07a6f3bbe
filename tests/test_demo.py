"""The demo pipeline end to end at a tiny size (the README's demo line runs the same code)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net import demo


@pytest.mark.slow
def test_demo_pipeline_tiny(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    tiny = demo.DemoSize(n_payne=60, n_mstar=25, n_yso=25, n_synth=600, photcnn_epochs=3,
                         max_epochs=1, patience=1, adapt_rounds=1, adapt_epochs=1,
                         eval_realizations=2, realizations=3)
    monkeypatch.setitem(demo.SIZES, "quick", tiny)
    result = demo.run_demo(tmp_path / "d", quick=True, seed=1, device="cpu",
                           emulator="analytic")
    labels = Table.read(result["labels"])
    assert set(labels["source"]) == {"payne", "mstar", "yso"}
    cat = Table.read(result["catalog"])
    assert len(cat) == len(labels)
    assert np.isfinite(cat["teff"]).all() and (cat["teff_err"] > 0).all()
    assert cat.meta["SIGSCALE"] and cat.meta["NREAL"] == 3
    for name in ("evaluation/table3_scatter.csv", "evaluation/kiel.png", "ysos/yso_kiel.png",
                 "ysos/yso_summary.json", "demo_summary.json"):
        assert (tmp_path / "d" / name).exists(), name
    summary = json.loads((tmp_path / "d" / "demo_summary.json").read_text())
    assert summary["spectra_model"] == "analytic"
    out = capsys.readouterr().out
    assert "ANALYTIC FALLBACK" in out
    # splits per group: 80/10/10 (Payne), 60/20/20 (M dwarfs, YSOs; Olney et al. 2020 §3.2),
    # half of each dev split kept apart as the calibration split
    for src, (f_train, f_dev) in {"payne": (0.8, 0.1), "mstar": (0.6, 0.2),
                                  "yso": (0.6, 0.2)}.items():
        sp = np.asarray(labels["split"][labels["source"] == src]).astype(str)
        n, n_dev = len(sp), int(round(f_dev * len(sp)))
        assert (sp == "train").sum() == int(round(f_train * n)), src
        assert (sp == "cal").sum() == int(round(0.5 * n_dev)), src
        assert (sp == "dev").sum() == n_dev - int(round(0.5 * n_dev)), src
    # the catalogue carries the factors fitted on 'cal' and stored in the model
    from yso_labels.core.checkpoint import read_checkpoint

    rec = read_checkpoint(result["model"])["meta"]["sigma_scale"]
    ev = json.loads((tmp_path / "d" / "evaluation" / "summary.json").read_text())
    assert rec["split"] == ev["factor_split"] == cat.meta["SIGSPLIT"] == \
        "cal+test (5-fold cross-fit)"
    g = next(g for g in rec["groups"] if g != "all")
    k = rec["groups"][g]
    assert f"{g}:{k['logg']:.4g},{k['teff']:.4g},{k['fe_h']:.4g}" in cat.meta["SIGSCALE"]
    assert rec["n"]["all"] == int(np.isin(np.asarray(labels["split"]).astype(str),
                                          ["cal", "test"]).sum())
    # ... and applies them: each star's σ is the model's perturbation σ times the factor of
    # its sigma_group, checked against the same spectra predicted again (same seed, so the
    # same draws) by a copy of the model with the factors removed
    from apogee_net.evaluation.report import store_sigma_scale
    from apogee_net.inference.predict import predict_catalog

    bare = tmp_path / "bare.pt"
    bare.write_bytes(Path(result["model"]).read_bytes())
    store_sigma_scale(bare, {})
    plain = Table.read(predict_catalog(bare, [tmp_path / "d" / "store.h5"], tmp_path / "p.fits",
                                       realizations=3, device="cpu", seed=1, progress=False))
    assert list(plain["apogee_id"]) == list(cat["apogee_id"])
    np.testing.assert_allclose(cat["teff"], plain["teff"], rtol=1e-6)
    groups = np.asarray(cat["sigma_group"]).astype(str)
    for n in ("logg", "teff", "fe_h"):
        k = np.array([rec["groups"].get(g, rec["groups"]["all"])[n] for g in groups])
        assert np.ptp(k) > 0 or abs(k[0] - 1) > 1e-3  # the check can tell scaled from not
        np.testing.assert_allclose(cat[f"{n}_err"], k * plain[f"{n}_err"], rtol=1e-5)
    # the adaptation's test report covers every group's test stars
    report = Table.read(tmp_path / "d" / "run_adapted" / "adapt_report.csv")
    for row in report:
        assert row["n_test"] == int(((labels["source"] == row["group"])
                                     & (labels["split"] == "test")).sum())
    assert "test split, input model -> adapted model" in out
