"""The shared training loop (Olney et al. 2020 §3.3) and ``apogee-net train``: falling loss,
seeding, exact resume, early stopping keeping the best model, the weighted loss reduction,
a 2-process gloo DDP step, and the store/label-table pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net.network.model import APOGEENet
from yso_labels.core.checkpoint import read_checkpoint
from yso_labels.core.training import ArrayDataset, TrainOptions, fit, read_log, standardised_mse

torch.set_num_threads(1)
NPIX = 256


def toy_spectra(labels: np.ndarray, npix: int, snr: float, seed: int):
    """Toy spectra whose shape encodes [log g, Teff, Fe/H] (n, 3): the continuum slope
    follows Teff, line depths [Fe/H], line widths log g; brightness varies 10× between stars."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, npix)
    logg, teff, feh = labels.T
    cont = 1 + (teff[:, None] - 4700) / 2000 * (x - 0.5)
    centres = np.linspace(0.05, 0.95, 12)
    width = 0.006 * (1 + (logg[:, None, None] - 3) / 4)
    depth = 0.4 * (1 + 0.8 * feh[:, None, None])
    lines = (1 - depth * np.exp(-0.5 * ((x[None, None] - centres[None, :, None]) / width) ** 2))
    flux = 100 * rng.uniform(1, 10, (len(labels), 1)) * cont * lines.prod(1)
    error = flux / snr
    return (flux + error * rng.standard_normal(flux.shape)).astype(np.float32), \
        error.astype(np.float32)


def toy_labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(1, 5, n), rng.uniform(3500, 6000, n),
                            rng.uniform(-1, 0.4, n)])


def toy_sets(n_train=96, n_dev=32, seed=0):
    from yso_labels.core.scaling import Standardiser

    out = []
    for n, s in ((n_train, seed), (n_dev, seed + 1)):
        labels = toy_labels(n, s)
        flux, error = toy_spectra(labels, NPIX, 100, s)
        out.append((flux, error, labels))
    scaler = Standardiser.fit(out[0][2])
    return [ArrayDataset(f, scaler.transform(lab), e) for f, e, lab in out]


def per_pixel_prepare(train: ArrayDataset):
    from apogee_net.network.model import Preprocess
    from yso_labels.core.scaling import Standardiser

    return Preprocess(Standardiser.fit(train.flux / np.median(train.flux, 1, keepdims=True)),
                      None, "median")


def options(**kw) -> TrainOptions:
    base = {"batch_size": 16, "max_epochs": 3, "patience": 5, "seed": 1, "device": "cpu",
            "progress": False}
    return TrainOptions(**{**base, **kw})


def new_model(seed=0, dropout=0.1):
    torch.manual_seed(seed)
    return APOGEENet(npix=NPIX, dropout=dropout)


def test_loss_falls_and_run_directory(tmp_path):
    train, dev = toy_sets()
    prep = per_pixel_prepare(train)
    model = new_model()
    result = fit(model, train, dev, standardised_mse, tmp_path, options(max_epochs=4),
                 {"label_names": ["logg", "teff", "fe_h"]}, prepare=prep)
    losses = [h["dev_loss"] for h in result.history]
    assert len(losses) == 4
    assert min(losses[1:]) < 0.7 * losses[0]  # the dev loss falls
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_loss == min(losses)
    log = read_log(tmp_path / "train_log.csv")
    assert [row["epoch"] for row in log] == [1, 2, 3, 4]
    best = read_checkpoint(tmp_path / "model.pt")
    assert best["meta"]["label_names"] == ["logg", "teff", "fe_h"]
    assert best["meta"]["train_options"]["batch_size"] == 16
    assert best["training"]["epoch"] == result.best_epoch
    for k, v in best["state_dict"].items():  # the model holds the best weights on return
        assert torch.equal(model.state_dict()[k], v)
    assert "optimizer" in read_checkpoint(tmp_path / "last.pt")["training"]


def test_same_seed_same_weights_and_exact_resume(tmp_path):
    train, dev = toy_sets(48, 16)
    prep = per_pixel_prepare(train)
    a = fit(new_model(), train, dev, standardised_mse, tmp_path / "a", options(max_epochs=2),
            prepare=prep)
    fit(new_model(), train, dev, standardised_mse, tmp_path / "b", options(max_epochs=2),
            prepare=prep)
    fit(new_model(), train, dev, standardised_mse, tmp_path / "c", options(max_epochs=1),
        prepare=prep)
    c = fit(new_model(5), train, dev, standardised_mse, tmp_path / "c",
            options(max_epochs=2, resume=True), prepare=prep)
    last = {k: read_checkpoint(tmp_path / k / "last.pt")["state_dict"] for k in "abc"}
    for key in last["a"]:
        assert torch.equal(last["a"][key], last["b"][key])  # same seed, same weights
        assert torch.equal(last["a"][key], last["c"][key])  # resumed = uninterrupted
    assert [h["dev_loss"] for h in c.history] == [h["dev_loss"] for h in a.history]
    d = fit(new_model(), train, dev, standardised_mse, tmp_path / "d",
            options(max_epochs=1, seed=2), prepare=prep)
    assert d.history[0]["dev_loss"] != a.history[0]["dev_loss"]


def test_early_stopping_keeps_best_model(tmp_path):
    train, dev = toy_sets(48, 16)
    dev.target = -dev.target  # what the model learns on train makes dev worse
    model = new_model()
    result = fit(model, train, dev, standardised_mse, tmp_path,
                 options(max_epochs=20, patience=2, lr=3e-3), prepare=per_pixel_prepare(train))
    epochs = [h["epoch"] for h in result.history]
    assert result.stopped_early
    assert epochs[-1] == result.best_epoch + 2 < 20
    best = read_checkpoint(tmp_path / "model.pt")["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())
    # a finished run is not trained further by --resume
    again = fit(new_model(), train, dev, standardised_mse, tmp_path,
                options(max_epochs=20, patience=2, lr=3e-3, resume=True),
                prepare=per_pixel_prepare(train))
    assert len(again.history) == len(result.history)


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.arch_kwargs = {}
        self.lin = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(x[:, 0])


@pytest.mark.parametrize("weight_norm", ["sum_w", "batch"])
def test_weighted_mean_reduction(tmp_path, weight_norm):
    rng = np.random.default_rng(0)
    flux = rng.normal(size=(8, 4)).astype(np.float32)
    target = rng.normal(size=(8, 1)).astype(np.float32)
    weight = np.array([1, 0, 2, 0.5, 0, 3, 1, 1], np.float32)
    ds = ArrayDataset(flux, target, weight=weight)
    torch.manual_seed(0)
    model = Linear()
    ref = Linear()
    ref.load_state_dict(model.state_dict())
    fit(model, ds, None, standardised_mse, tmp_path,
        options(batch_size=8, max_epochs=1, optimizer="sgd", lr=0.1,
                weight_norm=weight_norm))
    # one full-batch SGD step on Σ wᵢ lᵢ / Σ wᵢ, or on Σ wᵢ lᵢ / n (Keras/astroNN)
    per = ((ref(torch.from_numpy(flux)[:, None]) - torch.from_numpy(target)) ** 2)[:, 0]
    w = torch.from_numpy(weight)
    ((w * per).sum() / (w.sum() if weight_norm == "sum_w" else len(w))).backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= 0.1 * p.grad
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_bad_loss_and_options(tmp_path):
    train, dev = toy_sets(16, 16)
    with pytest.raises(ValueError, match="one loss per sample"):
        fit(new_model(), train, dev, lambda out, b: (out - b["target"]) ** 2, tmp_path,
            options(max_epochs=1))
    with pytest.raises(ValueError, match="patience=0"):
        options(patience=0)


DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from test_train import ddp_run
    ddp_run(sys.argv[1], sys.argv[2])
""")


def ddp_run(out_dir: str, state_path: str) -> None:
    """One epoch of 2 SGD steps (32 spectra, global batch 16), dropout off; saves this rank's
    final weights (used by the DDP test, in each process and in the reference run). SGD,
    not Adam, whose first step ≈ lr·sign(g) would amplify rounding in near-zero gradients."""
    train, dev = toy_sets(32, 16)
    train.weight = np.linspace(0.5, 2, 32).astype(np.float32)  # exercises the weighted mean
    model = new_model(dropout=0.0)
    fit(model, train, dev, standardised_mse, out_dir,
        options(max_epochs=1, optimizer="sgd", lr=0.05),
        prepare=per_pixel_prepare(train))
    torch.save(model.state_dict(), state_path.format(rank=os.environ.get("RANK", "single")))


def test_ddp_two_processes_gloo(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    state = str(tmp_path / "state-{rank}.pt")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), str(tmp_path / "ddp"), state],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_run(str(tmp_path / "single"), state)  # one process, same global batch
    s0, s1, single = (torch.load(state.format(rank=r)) for r in ("0", "1", "single"))
    for key in s0:
        assert torch.equal(s0[key], s1[key])  # both ranks end identical
        torch.testing.assert_close(s0[key], single[key], rtol=1e-5, atol=1e-6)
    changed = sum(not torch.equal(s0[k], new_model(dropout=0.0).state_dict()[k]) for k in s0)
    assert changed == len(s0)  # the step did move every tensor
    assert (tmp_path / "ddp" / "model.pt").exists()  # rank 0 wrote the run


# ----------------------------------------------------------------- store + label table
def make_store(path: Path, n: int = 96, npix: int = 512, seed: int = 0) -> Table:
    from apogee_net.spectra.store import StoreWriter

    labels = toy_labels(n, seed)
    flux, error = toy_spectra(labels, npix, 100, seed)
    ids = [f"2M{i:08d}" for i in range(n)]
    with StoreWriter(path, npix, np.linspace(15100, 17000, npix), "apstar", {}) as w:
        w.append(flux, error, np.zeros_like(flux, dtype=np.int32), ids, np.full(n, 100.0),
                 np.zeros(n), np.zeros(n), [f"f{i}.fits" for i in range(n)])
    split = np.array(["train"] * n, dtype="U5")
    split[n * 6 // 10: n * 8 // 10] = "dev"
    split[n * 8 // 10:] = "test"
    return Table({"apogee_id": ids, "logg": labels[:, 0], "teff": labels[:, 1],
                  "fe_h": labels[:, 2], "source": ["payne"] * n, "split": split})


def test_train_apogee_net_cli(tmp_path):
    from apogee_net.cli import main
    from apogee_net.network.train import train_apogee_net
    from yso_labels.core.scaling import Standardiser

    table = make_store(tmp_path / "s.h5")
    table.write(tmp_path / "labels.csv")
    run = tmp_path / "run"
    code = main(["train", "--store", str(tmp_path / "s.h5"), "--labels",
                 str(tmp_path / "labels.csv"), "--out", str(run), "--max-epochs", "2",
                 "--batch-size", "16", "--device", "cpu", "--seed", "3"])
    assert code == 0
    ckpt = read_checkpoint(run / "model.pt")
    meta = ckpt["meta"]
    assert meta["label_names"] == ["logg", "teff", "fe_h"]
    train = table[table["split"] == "train"]
    # target standardisation from the training split only (§3.1)
    expect = Standardiser.fit(np.column_stack([train[c] for c in ("logg", "teff", "fe_h")]))
    np.testing.assert_allclose(meta["label_scaler"]["mean"], expect.mean, rtol=1e-12)
    np.testing.assert_allclose(meta["label_range"][1], [np.max(train[c]) for c in
                                                        ("logg", "teff", "fe_h")])
    assert meta["n_split"] == {"train": 57, "dev": 19, "cal": 0, "test": 20}
    assert ckpt["arch_kwargs"]["npix"] == 512
    assert (run / "test_metrics.json").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train_apogee_net(tmp_path / "s.h5", table, run, max_epochs=1, device="cpu")
    bad = table.copy()
    bad["split"] = bad["split"].astype("U10")
    bad["split"][0] = "validation"
    with pytest.raises(ValueError, match="validation"):
        train_apogee_net(tmp_path / "s.h5", bad, tmp_path / "run2", max_epochs=2,
                         device="cpu")
    # resume continues to a larger max_epochs without repeating epochs
    result = train_apogee_net(tmp_path / "s.h5", tmp_path / "labels.csv", run, max_epochs=3,
                              batch_size=16, device="cpu", seed=3, resume=True,
                              progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


class TwoHeads(torch.nn.Module):
    """Value and log-variance heads, as the LAMOST Bayesian CNN (Li et al. §2.1)."""

    def __init__(self):
        super().__init__()
        self.arch_kwargs = {}
        self.body = torch.nn.Linear(NPIX, 6)

    def forward(self, x):
        out = self.body(x[:, 0])
        return out[:, :3], out[:, 3:]


def test_tuple_outputs_batch_keys_and_best_loss_to_beat(tmp_path):
    train, dev = toy_sets(32, 16)
    prep = per_pixel_prepare(train)

    def gaussian_nll(output, batch):  # uses the batch dict beyond the target
        value, log_var = output
        assert "error" in batch and "weight" in batch
        return (0.5 * ((value - batch["target"]) ** 2 / log_var.exp() + log_var)).mean(1)

    torch.manual_seed(0)
    model = TwoHeads()
    result = fit(model, train, dev, gaussian_nll, tmp_path / "a", options(max_epochs=3),
                 prepare=prep)
    assert result.history[-1]["dev_loss"] < result.history[0]["dev_loss"]
    # a round that must beat an unreachable loss keeps its starting weights (adaptation)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    again = fit(model, train, dev, gaussian_nll, tmp_path / "b",
                options(max_epochs=5, patience=2), prepare=prep, init_state=start,
                best_loss=-1e9)
    assert again.stopped_early and again.best_epoch == 0 and again.model_path is None
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())
