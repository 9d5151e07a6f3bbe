"""APOGEE Net II (Sprague et al. 2022) end to end through the CLI: train, predict, evaluate,
adapt with ``--arch apogeenet2``; photometry from the label table or ``--photometry``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.table import Table

from yso_labels.core.checkpoint import read_checkpoint

torch.set_num_threads(1)
BANDS = ("parallax", "G", "BP", "RP", "J", "H", "K")


def test_parameter_count_and_published_layout():
    from apogee_net.network.apogeenet2 import APOGEENet2
    from apogee_net.network.model import count_parameters
    from apogee_net.network.published import published_shapes, to_published_state

    model = APOGEENet2()
    # version I's 4,655,275 + fc1's 64 extra inputs (64 x 512) + l1..l5 (3,920)
    assert count_parameters(model) == 4_655_275 + 64 * 512 + 3_920
    state = to_published_state(model.state_dict(), "apogeenet2")
    assert {k: tuple(v.shape) for k, v in state.items()} == published_shapes("apogeenet2")
    with pytest.raises(ValueError, match="expects input"):
        model(torch.zeros(1, 1, 8575))  # photometry columns missing


def test_photometry_changes_the_output_and_log_teff_round_trip():
    from apogee_net.network.apogeenet2 import LogLabels, PhotPreprocess
    from yso_labels.core.scaling import Standardiser

    torch.manual_seed(0)
    from apogee_net.network.apogeenet2 import APOGEENet2

    model = APOGEENet2(npix=256, dropout=0.0).eval()
    prep = PhotPreprocess(Standardiser(np.zeros(256), np.ones(256)),
                          Standardiser([3.0, 3.7, 0.0], [1.0, 0.1, 0.3]), "none")
    flux = torch.rand(2, 256) + 1
    a = prep.labels(model(prep.inputs(flux, None, np.full((2, 7), np.nan))))
    b = prep.labels(model(prep.inputs(flux, None, np.tile([1, 12, 13, 11, 10, 9, 9.0],
                                                          (2, 1)))))
    assert not torch.allclose(a, b)
    y = np.array([[4.4, 25000.0, -0.1]])
    z = prep.targets(torch.tensor(y))
    np.testing.assert_allclose(z[0, 1].item(), (np.log10(25000) - 3.7) / 0.1, rtol=1e-6)
    np.testing.assert_allclose(prep.labels(z).numpy(), y, rtol=1e-6)
    std = LogLabels(["logg", "teff", "fe_h"]).physical_std(Standardiser([3, 3.7, 0],
                                                                        [1, 0.1, 0.3]))
    np.testing.assert_allclose(std[1], np.log(10) * 10 ** 3.7 * 0.1)


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory):
    from apogee_net.cli import main
    from tests.test_train import make_store

    tmp = tmp_path_factory.mktemp("v2")
    table = make_store(tmp / "s.h5", n=90, npix=256)
    rng = np.random.default_rng(1)
    table["teff"][:6] = rng.uniform(9000, 30000, 6)  # hot stars are allowed (version II)
    source = np.array(["payne"] * 60 + ["mstar"] * 15 + ["yso"] * 15)
    split = np.array(["train"] * 90, dtype="U5")
    for grp in ("payne", "mstar", "yso"):
        i = np.flatnonzero(source == grp)
        split[i[int(0.6 * len(i)):int(0.8 * len(i))]] = "dev"
        split[i[int(0.8 * len(i)):]] = "test"
    table["source"], table["split"] = source, split
    phot = rng.normal([1.0, 13, 14, 12, 11, 10.5, 10.3], 0.5, (90, 7))
    for j, band in enumerate(BANDS):
        table[band] = phot[:, j]
    table["G"][7] = np.nan  # filled by the published rule, not an error
    table.write(tmp / "labels.csv")
    code = main(["train", "--arch", "apogeenet2", "--store", str(tmp / "s.h5"), "--labels",
                 str(tmp / "labels.csv"), "--out", str(tmp / "run"), "--max-epochs", "1",
                 "--batch-size", "16", "--device", "cpu"])
    assert code == 0
    return tmp, table


def test_train_records_arch_and_log_teff_scaler(v2_run):
    tmp, table = v2_run
    ckpt = read_checkpoint(tmp / "run" / "model.pt")
    assert ckpt["arch"].endswith("APOGEENet2") and ckpt["meta"]["arch"] == "apogeenet2"
    assert ckpt["meta"]["preprocess"] == "apogeenet2"
    train = table[table["split"] == "train"]
    np.testing.assert_allclose(ckpt["meta"]["label_scaler"]["mean"][1],
                               np.mean(np.log10(train["teff"])), rtol=1e-10)
    assert ckpt["meta"]["label_range"][1][1] > 9000  # hot stars kept


def test_predict_evaluate_adapt_through_the_cli(v2_run, tmp_path, capsys):
    from apogee_net.cli import main

    tmp, table = v2_run
    # fetch-photometry columns, star 3 absent from the table, star 4 with a 99.999 K
    phot = Table({"apogee_id": table["apogee_id"], "g": np.full(90, 99.0)})
    for band in BANDS:
        phot[band] = table[band]
    phot["K"][4] = 99.999
    phot.remove_row(3)
    phot.write(tmp_path / "phot.fits")
    args = ["predict", str(tmp / "s.h5"), "--model", str(tmp / "run" / "model.pt"),
            "--realizations", "4", "--device", "cpu", "--arch", "apogeenet2"]
    assert main([*args, "--photometry", str(tmp_path / "phot.fits"),
                 "--out", str(tmp_path / "cat.fits")]) == 0
    cat = Table.read(tmp_path / "cat.fits")
    flagged = np.flatnonzero(np.asarray(cat["flags"]) & 64)
    assert flagged.tolist() == [3, 4, 7]
    assert np.all((cat["teff"] > 1000) & (cat["teff"] < 1e5)) and np.all(cat["teff_err"] > 0)
    assert main([*args, "--out", str(tmp_path / "nophot.fits")]) == 0  # no table: all filled
    nophot = Table.read(tmp_path / "nophot.fits")
    assert np.all(np.asarray(nophot["flags"]) & 64)
    assert not np.allclose(nophot["teff"], cat["teff"])

    assert main(["evaluate", "--arch", "apogeenet2", "--model", str(tmp / "run" / "model.pt"),
                 "--store", str(tmp / "s.h5"), "--labels", str(tmp / "labels.csv"),
                 "--out", str(tmp_path / "ev"), "--realizations", "3",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "ev" / "table3_scatter.csv").exists()
    assert main(["adapt", "--arch", "apogeenet2", "--run", str(tmp / "run"), "--out",
                 str(tmp_path / "ad"), "--max-rounds", "1", "--max-epochs", "1",
                 "--device", "cpu"]) == 0
    assert read_checkpoint(tmp_path / "ad" / "model.pt")["arch"].endswith("APOGEENet2")
    capsys.readouterr()
    assert main([*args[:-1], "apogeenet1", "--out", str(tmp_path / "x.fits")]) != 0
    assert "holds an apogeenet2 model, not apogeenet1" in capsys.readouterr().err


def test_train_without_photometry_is_a_clear_error(tmp_path):
    from apogee_net.network.train import train_apogee_net
    from tests.test_train import make_store

    table = make_store(tmp_path / "s.h5", n=30, npix=256)
    table.write(tmp_path / "labels.csv")
    with pytest.raises(ValueError, match="needs photometry.*--photometry"):
        train_apogee_net(tmp_path / "s.h5", tmp_path / "labels.csv", tmp_path / "run",
                         max_epochs=1, device="cpu", arch="apogeenet2", progress=False)
