"""Robust loss (astroNN test vector), the Bayesian CNN, MC-dropout inference, and the
LAMOST ingest → labels → train → predict chain through the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net.lamost.losses import robust_loss
from apogee_net.lamost.mc import combine_passes, mc_dropout, mc_passes, mc_predict
from apogee_net.lamost.model import BayesianCNN, MCDropout, split_output

NAN = float("nan")


def _facts_vector():
    y = torch.tensor([[1.0, 2.0, -9999.0], [0.5, NAN, -1.0]], dtype=torch.float64)
    y_pred = torch.tensor([[1.5, 1.0, 0.3], [0.0, 0.2, -0.5]], dtype=torch.float64)
    log_var = torch.tensor([[0.0, -1.0, 0.5], [0.3, 0.0, -2.0]], dtype=torch.float64)
    y_err = torch.tensor([[0.1, 0.0, 0.2], [0.0, 0.3, 0.5]], dtype=torch.float64)
    return y, y_pred, log_var, y_err


def test_robust_loss_reproduces_the_facts_test_vector():
    y, y_pred, log_var, y_err = _facts_vector()
    loss = robust_loss(y, y_pred, log_var, y_err)
    np.testing.assert_allclose(loss.numpy(), [0.49393922, 0.04508719], rtol=1e-6)
    weighted = robust_loss(y, y_pred, log_var, y_err, weight=torch.tensor([1.0, 2.0]))
    np.testing.assert_allclose(weighted.numpy(), [0.49393922, 0.09017438], rtol=1e-6)
    # NaN and −9999 are the same "missing"
    y2 = y.clone()
    y2[0, 2] = NAN
    y2[1, 1] = -9999.0
    np.testing.assert_allclose(robust_loss(y2, y_pred, log_var, y_err).numpy(), loss.numpy())


def test_robust_loss_matches_the_formula_and_ignores_missing_labels():
    rng = np.random.default_rng(0)
    y, yp, s, e = (rng.normal(size=(50, 5)) for _ in range(4))
    e = np.abs(e)
    y[rng.random(y.shape) < 0.3] = np.nan
    y[7] = np.nan                                   # a star with no label at all
    v = np.exp(s) + e**2
    per = np.where(np.isnan(y), 0.0, 0.5 * ((np.nan_to_num(y) - yp) ** 2 / v + np.log(v)))
    n = (~np.isnan(y)).sum(1)
    expected = np.where(n > 0, per.sum(1) / np.maximum(n, 1), 0.0)
    yt = torch.tensor(y)
    ypt = torch.tensor(yp, requires_grad=True)
    st = torch.tensor(s, requires_grad=True)
    loss = robust_loss(yt, ypt, st, torch.tensor(e))
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-12)
    loss.sum().backward()
    assert torch.isfinite(ypt.grad).all() and torch.isfinite(st.grad).all()
    assert (ypt.grad[torch.isnan(yt)] == 0).all()   # a missing label pulls on nothing
    with pytest.raises(ValueError, match="shape"):
        robust_loss(yt, ypt[:, :3], st, None)


def test_network_layout_follows_li_et_al():
    net = BayesianCNN(n_targets=14, filters=(2, 4, 4), hidden=(32, 16), dropout=0.3)
    drops = [m for m in net.modules() if isinstance(m, MCDropout)]
    assert len(drops) == 3                          # not after conv3, not after FC2
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 3 and net.n_flat == 4 * ((4501 - 21) // 4)
    x = torch.randn(5, 1, 4501)
    out = net.eval()(x)
    assert out.shape == (5, 28)
    value, log_var = split_output(out)
    assert value.shape == log_var.shape == (5, 14)
    assert torch.equal(net(x), out)                 # eval: deterministic
    with mc_dropout(net):
        assert not torch.equal(net(x), out)         # MC dropout on at prediction time
    assert all(not m.mc for m in drops)             # and off again after the block
    with pytest.raises(ValueError, match="expects input"):
        net(torch.randn(2, 1, 100))


class _Toy(torch.nn.Module):
    """Output = mean of MCDropout(x) and a constant log variance: with p = ½ each kept unit
    is 2x, so for x = c·1 (m units) the mean is c and the variance over passes c²/m."""

    def __init__(self, log_var: float = 0.0):
        super().__init__()
        self.drop = MCDropout(0.5)
        self.log_var = log_var

    def forward(self, x):
        v = self.drop(x).mean(dim=(1, 2))[:, None]
        return torch.cat([v, torch.full_like(v, self.log_var)], dim=1)


def test_batched_mc_passes_have_the_right_statistics_and_order():
    torch.manual_seed(0)
    m = 16
    x = torch.stack([torch.full((1, m), 1.0), torch.full((1, m), 3.0)])
    values, log_vars = mc_passes(_Toy(math.log(0.5)), x, passes=4000, max_rows=1000)
    assert values.shape == (4000, 2, 1)
    res = combine_passes(values.numpy(), log_vars.numpy())
    np.testing.assert_allclose(res.mean[:, 0], [1.0, 3.0], rtol=0.02)   # pass-major order
    np.testing.assert_allclose(res.var_model[:, 0], [1 / m, 9 / m], rtol=0.08)
    np.testing.assert_allclose(res.var_pred, 0.5)
    # replicas inside one forward call are independent draws
    assert len(np.unique(values[:, 0, 0].numpy())) > 5


def test_combine_passes_and_label_units():
    values = np.array([[[1.0]], [[3.0]]])            # T = 2 passes, 1 star, 1 label
    log_vars = np.array([[[0.0]], [[2.0]]])
    res = combine_passes(values, log_vars)
    assert res.mean[0, 0] == 2.0 and res.var_model[0, 0] == 1.0  # ddof 0
    assert res.var_pred[0, 0] == pytest.approx(math.e)           # exp(mean log_var)
    assert res.sigma[0, 0] == pytest.approx(math.sqrt(1 + math.e))
    units = res.to_units(mean=np.array([10.0]), scale=np.array([2.0]))
    assert units.mean[0, 0] == 14.0 and units.sigma[0, 0] == pytest.approx(
        2 * math.sqrt(1 + math.e))


def test_mc_predict_seeded_and_in_label_units():
    net = BayesianCNN(n_targets=3, npix=200, filters=(2, 2, 2), hidden=(8, 8)).eval()
    x = torch.randn(4, 1, 200)
    torch.manual_seed(5)
    a = mc_predict(net, x, passes=30, label_mean=[1, 2, 3], label_scale=[10, 1, 0.1])
    torch.manual_seed(5)
    b = mc_predict(net, x, passes=30, label_mean=[1, 2, 3], label_scale=[10, 1, 0.1])
    np.testing.assert_array_equal(a.mean, b.mean)
    std = mc_predict(net, x, passes=30)
    assert np.all(a.var_model > 0) and a.var_pred[0, 0] / std.var_pred[0, 0] == pytest.approx(
        100, rel=1e-6)   # log-variance head starts at 0: exp(0)·scale²


def test_ingest_labels_train_predict_through_the_cli(tmp_path):
    from apogee_net.cli import main
    from apogee_net.lamost.labels import LABELS, label_ranges
    from apogee_net.testing.lamost_spectra import simulate_lamost, write_lamost_fits

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    n = 40
    lab = {k: rng.uniform(-0.1, 0.2, n) for k in LABELS}
    lab.update(teff=rng.uniform(3900, 5300, n), logg=rng.uniform(0.8, 3.6, n),
               fe_h=rng.uniform(-1.2, 0.3, n))
    lab["m_h"] = lab["fe_h"]
    sim = simulate_lamost(lab, seed=2)
    ra, dec = rng.uniform(0, 360, n), rng.uniform(-10, 60, n)
    for i in range(n):
        write_lamost_fits(tmp_path / "fits" / f"s{i:03d}.fits.gz", sim.wavelength, sim.flux[i],
                          sim.ivar[i], sim.z[i], float(sim.snr[i]),
                          layout=("coadd", "image")[i % 2], obsid=5000 + i, ra=ra[i], dec=dec[i])
    ranges = label_ranges()
    allstar = Table({"APOGEE_ID": [f"2M{i:04d}" for i in range(n)], "RA": ra, "DEC": dec})
    for name in LABELS:
        col = str(ranges.loc[name]["allstar"])
        allstar[col], allstar[f"{col}_ERR"] = lab[name], np.full(n, 0.02)
    allstar["MN_FE_ERR"][:5] = 0.2                  # over the 0.05 dex limit: NaN for Mn
    allstar.write(tmp_path / "allstar.fits")
    store, labels, run = tmp_path / "s.h5", tmp_path / "labels.fits", tmp_path / "run"
    assert main(["lamost", "ingest", str(tmp_path / "fits"), "--out", str(store),
                 "--workers", "0", "--no-progress"]) == 0
    assert main(["lamost", "labels", "--allstar", str(tmp_path / "allstar.fits"), "--store",
                 str(store), "--out", str(labels), "--weight-standard", "auto"]) == 0
    table = Table.read(labels)
    assert len(table) == n and np.isnan(np.ma.filled(table["mn_fe"], np.nan)).sum() == 5
    # the same stars by ID through a LAMOST–APOGEE ID table
    Table({"spec_id": [str(5000 + i) for i in range(n)],
           "tmass": [f"2M{i:04d}" for i in range(n)]}).write(tmp_path / "ids.csv")
    assert main(["lamost", "labels", "--allstar", str(tmp_path / "allstar.fits"), "--store",
                 str(store), "--out", str(tmp_path / "by_id.fits"), "--how", "id",
                 "--id-table", str(tmp_path / "ids.csv"), "--lamost-key", "tmass"]) == 0
    by_id = Table.read(tmp_path / "by_id.fits")
    np.testing.assert_array_equal(by_id["apogee_name"], table["apogee_name"])
    assert set(np.char.decode(table["split"].astype("S"))) <= {"train", "dev", "test"}
    assert main(["lamost", "train", "--store", str(store), "--labels", str(labels), "--out",
                 str(run), "--max-epochs", "2", "--filters", "2,2,2", "--hidden", "16,8",
                 "--device", "cpu", "--no-progress"]) == 0
    _check_input_is_centred_not_standardised(store, labels, run / "model.pt")
    # Li et al. trained with astroNN, whose weighted loss under Keras' SUM_OVER_BATCH_SIZE is
    # the batch mean of w_i*l_i, not sum(w*l)/sum(w): the CLI default reaches the training loop
    # (the two reductions themselves: test_train.py::test_weighted_mean_reduction)
    from yso_labels.core.checkpoint import read_checkpoint

    assert read_checkpoint(run / "model.pt")["meta"]["train_options"]["weight_norm"] == "batch"
    cats = []
    for k in range(2):
        out = tmp_path / f"cat{k}.fits"
        assert main(["lamost", "predict", str(store), "--model", str(run / "model.pt"),
                     "--out", str(out), "--passes", "8", "--device", "cpu",
                     "--no-progress"]) == 0
        cats.append(Table.read(out))
    cat = cats[0]
    assert len(cat) == n and cat.meta["PASSES"] == 8
    # survey-neutral key: the LAMOST OBSID is spec_id in the labels and the catalogue
    assert table.colnames[:2] == ["spec_id", "apogee_name"] and "apogee_id" not in cat.colnames
    from apogee_net.inference.catalog_columns import undocumented

    assert undocumented(cat.colnames) == []  # docs/CATALOG.md describes every column
    assert sorted(np.asarray(cat["spec_id"]).astype(str)) == sorted(
        np.asarray(table["spec_id"]).astype(str))
    np.testing.assert_array_equal(cat["teff"], cats[1]["teff"])   # same seed, same numbers
    for name in LABELS:
        # total σ: strictly between the larger part and the sum of the parts (quadrature;
        # a plain sum or the larger part alone would fail); the formula itself is pinned by
        # test_combine_passes_and_label_units
        tot, mod, pre = (np.asarray(cat[f"{name}{s}"], float) for s in
                         ("_err", "_err_model", "_err_pred"))
        assert np.all(mod > 0) and np.all(pre > 0)
        assert np.all(tot > np.maximum(mod, pre)) and np.all(tot < mod + pre)
    # flags against Li et al.'s published recommended ranges (§3.1: 3700-5400 K and log g
    # 0.6-3.5; §3.3: [alpha/M] -0.03 to 0.32; Table 2: [Ni/Fe] -0.05 to 0.12)
    for name, lo, hi in (("teff", 3700, 5400), ("logg", 0.6, 3.5), ("alpha_m", -0.03, 0.32),
                         ("ni_fe", -0.05, 0.12)):
        v = np.asarray(cat[name], float)
        np.testing.assert_array_equal(np.asarray(cat[f"{name}_flag"], bool),
                                      ~((v >= lo) & (v <= hi)))
    # a plain ValueError from the library becomes a one-line CLI error
    assert main(["lamost", "train", "--store", str(store), "--labels", str(labels), "--out",
                 str(run), "--weights", "column", "--max-epochs", "1", "--device", "cpu",
                 "--filters", "2,2", "--no-progress"]) == 1
    # a weight table that does not cover a training star is an error naming it
    from apogee_net.lamost.training import train_lamost

    table = Table.read(labels)
    table.convert_bytestring_to_unicode()
    first_train = int(np.flatnonzero(table["split"] == "train")[0])
    table["weight"][first_train] = np.nan
    with pytest.raises(ValueError, match=f"does not cover 1 .*{table['spec_id'][first_train]}"):
        train_lamost(store, table, tmp_path / "run2", max_epochs=1, device="cpu",
                     progress=False)


def _check_input_is_centred_not_standardised(store, labels, model):
    """The network input of a model trained with the defaults is the flux minus its
    per-pixel mean over the training split, not divided by the per-pixel std (astroNN's
    input_norm_mode 3, which Li et al. trained with): the stored scaler against a
    straight-line mean of the store's training rows."""
    import h5py

    from apogee_net.inference.predict import load_model
    from apogee_net.lamost.model import BayesianCNN
    from apogee_net.spectra.pixels import valid_pixels

    meta = load_model(model, expect=BayesianCNN).checkpoint["meta"]
    assert meta["input_norm"] == "center"
    table = Table.read(labels)
    table.convert_bytestring_to_unicode()
    train_ids = {str(k) for k in table["spec_id"][table["split"] == "train"]}
    with h5py.File(store, "r") as h5:
        key = "spec_id" if "spec_id" in h5 else "apogee_id"
        ids = [k.decode() if isinstance(k, bytes) else str(k) for k in h5[key][:]]
        rows = [i for i, k in enumerate(ids) if k in train_ids]
        flux, err = h5["flux"][:][rows], h5["error"][:][rows]
    assert 0 < len(rows) < len(ids)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(valid_pixels(flux, err), flux, np.nan), axis=0)
    covered = np.isfinite(mean)
    assert covered.mean() > 0.9
    np.testing.assert_allclose(np.asarray(meta["flux_scaler"]["mean"])[covered],
                               mean[covered], rtol=1e-5)
    np.testing.assert_array_equal(meta["flux_scaler"]["std"], 1.0)


def test_lamost_flag_bits_are_distinct_from_the_apogee_ones():
    from apogee_net.lamost.predict import FLAGS

    bits = [v[0] for v in FLAGS.values()]
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)
