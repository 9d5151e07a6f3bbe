"""The demo pipeline end to end at a tiny size (the README's demo line runs the same code)."""

from __future__ import annotations

import json

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
    assert "ANALYTIC FALLBACK" in capsys.readouterr().out
