"""Stratified adaptation (Olney et al. 2020 §3.4): resampling and the round logic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net.network import adapt as adapt_mod
from apogee_net.network.adapt import adapt, draw_subset
from yso_labels.core.checkpoint import read_checkpoint
from yso_labels.core.training import FitResult

torch.set_num_threads(1)


def test_draw_subset_fraction_and_reproducibility():
    idx = np.arange(1000, 3000)
    a = draw_subset(idx, 0.05, seed=1, round_=1)
    assert len(a) == 100 and len(np.unique(a)) == 100 and np.isin(a, idx).all()
    assert (draw_subset(idx, 0.05, seed=1, round_=1) == a).all()
    assert len(np.intersect1d(a, draw_subset(idx, 0.05, seed=1, round_=2))) < 30
    assert len(draw_subset(np.arange(5), 0.05, 0, 1)) == 1
    with pytest.raises(ValueError):
        draw_subset(idx, 0.0, 0, 1)


def test_round_logic_keeps_best_and_reloads(tiny_run, monkeypatch, tmp_path):
    run_dir, table = tiny_run
    schedule = iter([1.0, 0.5, 0.7])  # start, round 1 (better), round 2 (worse): stop
    calls = []

    def fake_fit(model, train_set, dev_set, loss_fn, out, options, meta, prepare, init_state,
                 best_loss=None):
        calls.append({"rows": np.array(train_set.rows), "init": {k: v.clone() for k, v in
                                                                init_state.items()}})
        model.load_state_dict(init_state)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * len(calls))
        return FitResult(best_state=model.state_dict(), best_loss=0.0, best_epoch=1,
                         history=[{"epoch": 1}])

    def fake_predict(model, dataset, prep, device="auto"):
        level = next(schedule)
        tgt = np.asarray(dataset.targets, float)
        return tgt + np.sqrt(level) * np.asarray(prep.label_scaler.std), tgt

    monkeypatch.setattr(adapt_mod, "fit", fake_fit)
    monkeypatch.setattr(adapt_mod, "predict_dataset", fake_predict)
    log = adapt(run_dir / "run", tmp_path / "adapted", fraction=0.25, seed=3, max_rounds=5,
                round_patience=1,
                device="cpu", progress=False)
    assert list(log["round"]) == [0, 1, 2] and list(log["kept"]) == [1, 1, 0]
    assert log["rare_dev"][1] == pytest.approx(0.5)
    n_rare_train = int(((table["source"] != "payne") & (table["split"] == "train")).sum())
    n_payne_train = int(((table["source"] == "payne") & (table["split"] == "train")).sum())
    assert list(log["n_train"][1:]) == [n_rare_train + round(0.25 * n_payne_train)] * 2
    assert not np.array_equal(calls[0]["rows"], calls[1]["rows"])  # a new Payne draw
    # round 2 starts from the best model (round 1), and model.pt holds it
    saved = read_checkpoint(tmp_path / "adapted" / "model.pt")["state_dict"]
    for k, v in calls[1]["init"].items():
        assert torch.equal(saved[k], v)
    first = read_checkpoint(run_dir / "run" / "model.pt")["state_dict"]
    k = next(iter(first))
    assert torch.allclose(saved[k], first[k] + 0.01) if first[k].is_floating_point() else True
    assert (tmp_path / "adapted" / "adapt_log.csv").exists()


def test_adapt_runs_on_a_tiny_model(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    log = adapt(run_dir / "run", tmp_path / "ad", fraction=0.5, max_rounds=1, max_epochs=1,
                device="cpu", progress=False)
    assert isinstance(log, Table) and len(log) == 2
    assert {"dev_payne", "dev_mstar", "dev_yso"} <= set(log.colnames)
    ckpt = read_checkpoint(tmp_path / "ad" / "model.pt")
    assert ckpt["meta"]["label_names"] == ["logg", "teff", "fe_h"]
