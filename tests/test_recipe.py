"""APOGEE Net against a ridge regression fitted in the same test on the same data (issue 14):
small fixed runs on Payne-emulated spectra (a 1024-pixel window of the blue chip, 1500
training stars, 12 epochs, about 25 s of one core each).

- The default recipe (the paper's architecture) must beat ridge on Teff and [Fe/H] (at this
  size and at 2,000 full spectra it still trails ridge on log g, benchmarks/README.md).
- With the ``linear_skip`` option on log g and [Fe/H] (a ridge path plus the network trained
  on its cross-fitted residuals) the network must beat ridge on all three labels.

Measured CNN / ridge test-scatter ratios, Teff / log g / [Fe/H] (ridge: 128 K / 0.146 /
0.084 dex): default recipe 0.69 / 1.08 / 0.78; with linear_skip on log g, [Fe/H] 0.76 / 0.91
/ 0.83. Without the option (the default run), the previous default (no noise augmentation:
0.69 / 1.21 / 0.86), the paper's recipe (0.83 / 1.42 / 1.01) or linear_skip on every label
(1.00 / 0.97 / 0.90) the every-label test fails. Training the network on the in-sample
ridge residuals instead of the cross-fitted ones still passes here (0.76 / 0.95 / 0.86: with
more stars than pixels the ridge does not interpolate its training set); the cross-fitting
itself is checked in tests/test_linear_path.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table

from tests.conftest import shared_file

REPO = Path(__file__).resolve().parents[1]
WINDOW = slice(322, 322 + 1024)  # apStar pixels: start of the blue chip
N_TRAIN, N_DEV, N_TEST, EPOCHS = 1500, 100, 200, 12
LABELS = ("teff", "logg", "fe_h")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Store of the emulated spectra and their label table (train/dev/test)."""
    from apogee_net.spectra.apstar import apstar_wavelength
    from apogee_net.spectra.simulate import simulate_spectra
    from apogee_net.spectra.store import StoreWriter

    emulator = shared_file("payne", "NN_unnormalized_spectra.npz")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from apogee_net_recovery import draw_labels

    tmp = tmp_path_factory.mktemp("recipe")
    n = N_TRAIN + N_DEV + N_TEST
    labels = draw_labels(n, 1)
    sim = simulate_spectra(labels, emulator=str(emulator), snr=(50, 200), seed=1)
    flux, error = sim.flux[:, WINDOW], sim.error[:, WINDOW]
    ids = [f"2M{i:08d}" for i in range(n)]
    with StoreWriter(tmp / "s.h5", flux.shape[1], apstar_wavelength()[WINDOW], "apstar",
                     {}) as w:
        w.append(flux, error, np.zeros(flux.shape, np.int32), ids, sim.snr, sim.ra, sim.dec,
                 [f"f{i}" for i in ids])
    split = ["train"] * N_TRAIN + ["dev"] * N_DEV + ["test"] * N_TEST
    table = Table({"apogee_id": ids, "teff": labels[:, 0], "logg": labels[:, 1],
                   "fe_h": labels[:, 2], "source": ["payne"] * n, "split": split})
    return tmp, table


def _run(small_data, name, **recipe):
    """Train with the library defaults (but ``EPOCHS`` and ``recipe``) and fit ridge on the
    same split and inputs: ``(cnn test metrics, ridge test metrics)``."""
    from apogee_net.evaluation.baselines import store_baselines
    from apogee_net.inference.predict import load_model
    from apogee_net.network.train import train_apogee_net

    tmp, table = small_data
    torch.set_num_threads(1)
    train_apogee_net(tmp / "s.h5", table, tmp / name, max_epochs=EPOCHS, device="cpu",
                     progress=False, **recipe)
    cnn = json.loads((tmp / name / "test_metrics.json").read_text())
    prep = load_model(tmp / name / "model.pt", device="cpu").preprocess
    ridge = store_baselines(tmp / "s.h5", table, prep, methods=("ridge",))["ridge"]
    print(name, {k: (cnn[k]["scatter"], ridge[k]["scatter"]) for k in LABELS})
    return cnn, ridge


@pytest.fixture(scope="module")
def default_run(small_data):
    return _run(small_data, "default")


@pytest.fixture(scope="module")
def skip_run(small_data):
    return _run(small_data, "linear_skip", linear_skip="logg,fe_h")


#: Required CNN/ridge test-scatter ratios (measured values: module docstring).
MAX_RATIO = {"default": {"teff": 0.8, "fe_h": 0.9},
             "linear_skip": {"teff": 0.85, "logg": 0.97, "fe_h": 0.92}}


@pytest.mark.parametrize("label", ["teff", "fe_h"])
def test_default_recipe_beats_ridge(default_run, label):
    cnn, ridge = default_run
    assert cnn[label]["n"] == N_TEST
    assert cnn[label]["scatter"] < MAX_RATIO["default"][label] * ridge[label]["scatter"]


@pytest.mark.parametrize("label", LABELS)
def test_linear_skip_beats_ridge_on_every_label(skip_run, label):
    cnn, ridge = skip_run
    assert cnn[label]["n"] == N_TEST
    assert cnn[label]["scatter"] < MAX_RATIO["linear_skip"][label] * ridge[label]["scatter"]


def test_cosine_schedule_and_options():
    from yso_labels.core.training import TrainOptions, lr_factor

    opt = TrainOptions(max_epochs=10, schedule="cosine", warmup=2)
    steps = 5  # per epoch
    f = [lr_factor(opt, s, steps) for s in range(50)]
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # linear warm-up
    assert f[10] == pytest.approx(1.0)
    assert f[30] == pytest.approx(0.5 * (1 + np.cos(np.pi * 20 / 40)))  # SGDR eq. 5
    assert f[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 39 / 40)))
    assert np.all(np.diff(f[10:]) < 0)
    assert lr_factor(TrainOptions(), 123, steps) == 1.0  # constant
    for bad in ({"schedule": "step"}, {"optimizer": "lion"}, {"weight_decay": -1},
                {"warmup": 11, "max_epochs": 10}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainOptions(**bad)


def test_noise_augment_draws_the_spectrum_error():
    from apogee_net.network.train import NoiseAugment

    flux = torch.full((4000, 3), 10.0)
    error = torch.tensor([0.5, 2.0, 1e10]).expand(4000, 3).clone()  # last: no data
    seen = NoiseAugment(lambda b: b, scale=1.0)({"flux": flux.clone(), "error": error})
    noise = seen["flux"] - flux
    assert noise[:, 0].std().item() == pytest.approx(0.5, rel=0.05)
    assert noise[:, 1].std().item() == pytest.approx(2.0, rel=0.05)
    assert torch.all(noise[:, 2] == 0)
    assert abs(noise[:, 1].mean().item()) < 0.1
