"""APOGEE Net's default training recipe against a ridge regression fitted in the same test on
the same data (issue 14): a small fixed run on Payne-emulated spectra (a 1024-pixel window
of the blue chip, 1500 training stars, 12 epochs, about 40 s on two quiet cores).

With the paper's recipe (constant learning rate, batch 128) the same run loses to ridge on
Teff and [Fe/H] too; on log g the default recipe still loses at this size (and at 2,000
full spectra, benchmarks/README.md), so that comparison is a strict xfail: it starts
failing, and must be promoted, the day the recipe beats ridge there.
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


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Train with the library defaults (but ``EPOCHS``) and fit ridge on the same split:
    ``(cnn test metrics, ridge test metrics)``."""
    from apogee_net.evaluation.baselines import store_baselines
    from apogee_net.inference.predict import load_model
    from apogee_net.network.train import train_apogee_net
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
    torch.set_num_threads(1)
    train_apogee_net(tmp / "s.h5", table, tmp / "run", max_epochs=EPOCHS, device="cpu",
                     progress=False)
    cnn = json.loads((tmp / "run" / "test_metrics.json").read_text())
    prep = load_model(tmp / "run" / "model.pt", device="cpu").preprocess
    ridge = store_baselines(tmp / "s.h5", table, prep, methods=("ridge",))["ridge"]
    print({k: (cnn[k]["scatter"], ridge[k]["scatter"]) for k in ("teff", "logg", "fe_h")})
    return cnn, ridge


#: Required CNN/ridge test-scatter ratios. Measured against ridge's 128 K / 0.084 dex: the
#: default recipe 89 K / 0.072 dex (0.69, 0.86; with dropout 0.1: 86 K / 0.078 dex); the
#: paper's recipe 106 K / 0.085 dex (0.83, 1.01).
MAX_RATIO = {"teff": 0.8, "fe_h": 0.97}


@pytest.mark.parametrize("label", ["teff", "fe_h"])
def test_default_recipe_beats_ridge(small_run, label):
    cnn, ridge = small_run
    assert cnn[label]["n"] == N_TEST
    assert cnn[label]["scatter"] < MAX_RATIO[label] * ridge[label]["scatter"]


@pytest.mark.xfail(strict=True, reason="log g: the recipe does not yet beat ridge at this "
                   "size (issue 14, benchmarks/README.md)")
def test_default_recipe_beats_ridge_logg(small_run):
    cnn, ridge = small_run
    assert cnn["logg"]["scatter"] < ridge["logg"]["scatter"]


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
