"""Stratified adaptation (Olney et al. 2020 §3.4): resampling, rounds decided on dev only,
the majority-group guard, and the test-split report of the input vs the kept model."""

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
TAG = 1000.0  # fake_fit writes TAG + round into one weight: the model state names its round


def test_draw_subset_fraction_and_reproducibility():
    idx = np.arange(1000, 3000)
    a = draw_subset(idx, 0.05, seed=1, round_=1)
    assert len(a) == 100 and len(np.unique(a)) == 100 and np.isin(a, idx).all()
    assert (draw_subset(idx, 0.05, seed=1, round_=1) == a).all()
    assert len(np.intersect1d(a, draw_subset(idx, 0.05, seed=1, round_=2))) < 30
    assert len(draw_subset(np.arange(5), 0.05, 0, 1)) == 1
    with pytest.raises(ValueError):
        draw_subset(idx, 0.0, 0, 1)


def _scripted(monkeypatch, run_dir, table, levels):
    """Replace ``fit`` and ``predict_dataset``: round r leaves the model in state r, and the
    prediction of state r on (split, group) has standardised MSE ``levels[r][split][group]``
    (state 0 = the input model). Returns the list of fit calls."""
    from apogee_net.spectra.dataset import join_labels

    rows, joined, _ = join_labels(run_dir / "s.h5", table, label_columns=["logg", "teff",
                                                                           "fe_h"])
    where = {int(r): (str(sp), str(src)) for r, sp, src in
             zip(rows, joined["split"], joined["source"], strict=True)}
    calls = []

    def state_of(model):
        w = next(model.parameters()).detach().reshape(-1)[0].item()
        return int(round(w - TAG)) if w > TAG / 2 else 0

    def fake_fit(model, train_set, dev_set, loss_fn, out, options, meta, prepare, init_state,
                 best_loss=None):
        calls.append({"rows": np.array(train_set.rows), "init": state_of_dict(init_state)})
        model.load_state_dict(init_state)
        with torch.no_grad():
            next(model.parameters()).reshape(-1)[0] = TAG + len(calls)
        return FitResult(best_state=model.state_dict(), best_loss=0.0, best_epoch=1,
                         history=[{"epoch": 1}])

    def state_of_dict(state):
        w = next(iter(state.values())).reshape(-1)[0].item()
        return int(round(w - TAG)) if w > TAG / 2 else 0

    def fake_predict(model, dataset, prep, device="auto"):
        r = min(state_of(model), max(levels))  # a round past the script repeats the last
        tgt = np.asarray(dataset.targets, float)
        lev = np.array([levels[r][where[int(i)][0]][where[int(i)][1]] for i in dataset.rows])
        return tgt + np.sqrt(lev)[:, None] * np.asarray(prep.label_scaler.std), tgt

    monkeypatch.setattr(adapt_mod, "fit", fake_fit)
    monkeypatch.setattr(adapt_mod, "predict_dataset", fake_predict)
    return calls


def _levels(dev, test):
    return {"dev": dict(zip(("payne", "mstar", "yso"), dev, strict=True)),
            "test": dict(zip(("payne", "mstar", "yso"), test, strict=True))}


# round 1: rare dev loss halves, Payne dev +2 % (within 5 %): kept, although the rare TEST
# loss gets worse (decisions never look at test). Round 2: rare dev better still, but Payne
# dev +10 %: the majority guard rejects it. Round 3: nothing better: stop (round_patience 2).
LEVELS = {0: _levels((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
          1: _levels((1.02, 0.5, 0.5), (1.1, 1.5, 1.5)),
          2: _levels((1.10, 0.3, 0.3), (0.9, 0.2, 0.2)),
          3: _levels((1.0, 0.9, 0.9), (1.0, 0.1, 0.1))}


def test_rounds_decided_on_dev_majority_guard_and_test_report(tiny_run, monkeypatch,
                                                              tmp_path):
    run_dir, table = tiny_run
    calls = _scripted(monkeypatch, run_dir, table, LEVELS)
    log = adapt(run_dir / "run", tmp_path / "adapted", fraction=0.25, seed=3, max_rounds=5,
                round_patience=2, device="cpu", progress=False)
    assert list(log["round"]) == [0, 1, 2, 3]
    assert list(log["kept"]) == [1, 1, 0, 0] and list(log["guard"]) == [0, 0, 1, 0]
    assert log["majority_dev_ratio"][2] == pytest.approx(1.10)
    assert log["rare_dev"][1] == pytest.approx(0.5)
    assert log["test_mstar"][2] == pytest.approx(0.2)  # test is logged, not used
    # every round starts from the best model so far (round 1), and model.pt holds it
    assert [c["init"] for c in calls] == [0, 1, 1]
    saved = read_checkpoint(tmp_path / "adapted" / "model.pt")["state_dict"]
    assert next(iter(saved.values())).reshape(-1)[0].item() == TAG + 1
    n_rare = int(((table["source"] != "payne") & (table["split"] == "train")).sum())
    n_payne = int(((table["source"] == "payne") & (table["split"] == "train")).sum())
    assert list(log["n_train"][1:]) == [n_rare + round(0.25 * n_payne)] * 3
    assert not np.array_equal(calls[0]["rows"], calls[1]["rows"])  # a new Payne draw
    # the report: TEST split, input model (state 0) vs the kept model (state 1, not 3)
    report = {r["group"]: r for r in log.meta["test_report"]}
    for g in ("payne", "mstar", "yso"):
        assert report[g]["mse_before"] == pytest.approx(LEVELS[0]["test"][g])
        assert report[g]["mse_after"] == pytest.approx(LEVELS[1]["test"][g])
        n_test = int(((table["source"] == g) & (table["split"] == "test")).sum())
        assert report[g]["n_test"] == n_test
    csv = Table.read(tmp_path / "adapted" / "adapt_report.csv")
    assert list(csv["mse_after"]) == pytest.approx([report[g]["mse_after"]
                                                    for g in csv["group"]])


def test_majority_tolerance_option(tiny_run, monkeypatch, tmp_path):
    run_dir, table = tiny_run
    _scripted(monkeypatch, run_dir, table, LEVELS)
    log = adapt(run_dir / "run", tmp_path / "a2", fraction=0.25, seed=3, max_rounds=3,
                round_patience=2, device="cpu", progress=False, majority_tolerance=0.2)
    assert list(log["kept"]) == [1, 1, 1, 0] and not any(log["guard"])
    report = {r["group"]: r for r in log.meta["test_report"]}
    assert report["mstar"]["mse_after"] == pytest.approx(LEVELS[2]["test"]["mstar"])
    with pytest.raises(ValueError, match="majority_tolerance"):
        adapt(run_dir / "run", tmp_path / "a3", majority_tolerance=-0.1, device="cpu")


def test_adapt_runs_on_a_tiny_model(tiny_run, tmp_path):
    """The real loop: the test report equals the standardised MSE of the input model and of
    the written model on the test stars, recomputed here from plain forward passes."""
    from apogee_net.network.model import Preprocess
    from apogee_net.network.train import predict_dataset
    from apogee_net.spectra.dataset import SpectraDataset, join_labels

    run_dir, _ = tiny_run
    log = adapt(run_dir / "run", tmp_path / "ad", fraction=0.5, max_rounds=1, max_epochs=1,
                device="cpu", progress=False)
    assert len(log) == 2 and {"dev_payne", "test_yso", "guard"} <= set(log.colnames)
    names = ["logg", "teff", "fe_h"]
    rows, joined, _ = join_labels(run_dir / "s.h5", run_dir / "labels.csv", label_columns=names)
    test = np.asarray(joined["split"]) == "test"
    src = np.asarray(joined["source"])[test]
    tgt = np.column_stack([np.asarray(joined[c], float) for c in names])[test]
    report = {r["group"]: r for r in log.meta["test_report"]}
    for key, path in (("mse_before", run_dir / "run" / "model.pt"),
                      ("mse_after", tmp_path / "ad" / "model.pt")):
        from yso_labels.core.checkpoint import load_checkpoint

        model, ckpt = load_checkpoint(path)
        prep = Preprocess.from_meta(ckpt["meta"])
        pred, _ = predict_dataset(model, SpectraDataset(run_dir / "s.h5", rows=rows[test],
                                                        targets=tgt), prep, device="cpu")
        z2 = ((pred - tgt) / np.asarray(ckpt["meta"]["label_scaler"]["std"])) ** 2
        for g in ("payne", "mstar", "yso"):
            assert report[g][key] == pytest.approx(z2[src == g].mean(), rel=1e-5), (key, g)
    ckpt = read_checkpoint(tmp_path / "ad" / "model.pt")
    assert ckpt["meta"]["label_names"] == names



def test_adapt_augments_as_training_did(tiny_run, tmp_path, monkeypatch):
    """A model trained with augmentation adapts on augmented spectra (the round's training
    and dev stars, so the dev losses that decide change) but reports on plain test spectra
    (the test report of the input model is the same with and without augmentation). The
    augmenter is replaced by one that adds a per-draw offset to the flux."""
    import apogee_net.spectra.augment as augment

    calls = []

    def shift(flux, error, rngs):
        calls.append(len(rngs))
        return flux + np.array([r.uniform(0.5, 1.0) for r in rngs], np.float32)[:, None], error

    run_dir, _ = tiny_run
    logs = {}
    for name, aug in (("plain", None), ("augmented", shift)):
        monkeypatch.setattr(augment, "augmenter_from_meta", lambda meta, a=aug: a)
        logs[name] = adapt(run_dir / "run", tmp_path / name, fraction=0.5, max_rounds=1,
                           max_epochs=1, device="cpu", progress=False)
    assert sum(calls) > 0
    plain, aug = logs["plain"], logs["augmented"]
    assert plain["dev_payne"][0] != aug["dev_payne"][0]      # dev augmented
    before = {k: {r["group"]: r["mse_before"] for r in v.meta["test_report"]}
              for k, v in logs.items()}
    assert before["plain"] == pytest.approx(before["augmented"], rel=1e-9)  # test plain
