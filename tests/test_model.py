"""APOGEE Net architecture (Olney et al. 2020 App. B) and input/target standardisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apogee_net.network.model import APOGEENet, Preprocess, count_parameters, model_input
from apogee_net.spectra.pixels import valid_pixels
from yso_labels.core.checkpoint import load_checkpoint, save_checkpoint
from yso_labels.core.scaling import Moments, Standardiser

torch.set_num_threads(1)


def test_published_parameter_count_and_shapes():
    model = APOGEENet()
    # 4,655,275 parameters for 1 channel and 3 targets (astra peer code)
    assert count_parameters(model) == 4_655_275
    assert model.n_flat == 64 * 133
    assert [c.out_channels for c in model.convs] == [8, 8, 16, 16, 16, 16, 32, 32, 32, 32,
                                                      64, 64]
    assert all(c.kernel_size == (3,) and c.padding == (1,) for c in model.convs)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 8575))
    assert out.shape == (2, 3)


def test_configurable_channels_targets_and_pixels():
    model = APOGEENet(in_channels=2, n_targets=5, npix=640)
    assert model.n_flat == 64 * 10  # ⌊640 / 2⁶⌋ = 10
    assert model(torch.zeros(3, 2, 640)).shape == (3, 5)
    with pytest.raises(ValueError, match=r"expects input \(batch, 2, 640\)"):
        model(torch.zeros(3, 1, 640))


def test_kaiming_init_scale_and_seed():
    torch.manual_seed(3)
    a = APOGEENet()
    torch.manual_seed(3)
    b = APOGEENet()
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    # He et al. 2015: std = sqrt(2 / fan_in) for ReLU layers
    assert a.fc1.weight.std().item() == pytest.approx(np.sqrt(2 / 8512), rel=0.01)
    assert a.convs[5].weight.std().item() == pytest.approx(np.sqrt(2 / 48), rel=0.1)
    assert torch.all(a.fc1.bias == 0)


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = APOGEENet(npix=256, dropout=0.5)
    x = torch.randn(4, 1, 256)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_standardiser_round_trip_and_moments():
    rng = np.random.default_rng(1)
    x = rng.normal([2.9, 4700.0, -0.2], [1.2, 730.0, 0.3], size=(500, 3))
    s = Standardiser.fit(x)
    z = s.transform(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-12)
    np.testing.assert_allclose(s.inverse(z), x, rtol=1e-12)
    t = torch.tensor(x, dtype=torch.float64)
    np.testing.assert_allclose(s.inverse(s.transform(t)).numpy(), x, rtol=1e-12)
    back = Standardiser.from_dict(s.to_dict())
    np.testing.assert_array_equal(back.mean, s.mean)
    # streaming moments over uneven chunks with NaNs equal the one-pass values
    x[::5, 1] = np.nan
    m = Moments(3)
    for i in range(0, 500, 37):
        m.add(x[i:i + 37])
    one = Standardiser.fit(x)
    np.testing.assert_allclose(m.standardiser().mean, np.nanmean(x, 0), rtol=1e-12)
    np.testing.assert_allclose(m.standardiser().std, np.nanstd(x, 0), rtol=1e-12)
    np.testing.assert_allclose(one.std, np.nanstd(x, 0), rtol=1e-12)


def test_standardiser_empty_and_constant_columns():
    x = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0]])
    with pytest.raises(ValueError, match=r"column\(s\) \[1\]"):
        Standardiser.fit(x)
    s = Standardiser.fit(x, empty_ok=True)
    np.testing.assert_array_equal(s.mean, [2.0, 0.0, 5.0])
    np.testing.assert_array_equal(s.std, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="finite and positive"):
        Standardiser([0.0], [0.0])


def test_model_input_standardises_and_zeroes_dead_pixels():
    scaler = Standardiser(np.full(6, 10.0), np.full(6, 2.0))
    flux = torch.tensor([[12.0, 8.0, np.nan, 10.0, 14.0, 10.0]])
    error = torch.tensor([[1.0, 1.0, 1.0, 1e10, 1.0, np.nan]])
    x = model_input(flux, error, scaler)
    assert x.shape == (1, 1, 6)
    np.testing.assert_allclose(x[0, 0].numpy(), [1.0, -1.0, 0.0, 0.0, 2.0, 0.0])
    assert valid_pixels(flux, error).tolist() == [[True, True, False, False, True, False]]
    # median scaling removes the star's brightness: 10× brighter gives the same input
    unit = Standardiser(np.ones(6), np.full(6, 0.1))
    a = model_input(flux, error, unit, "median")
    b = model_input(10 * flux, 10 * error, unit, "median")
    torch.testing.assert_close(a, b)
    np.testing.assert_allclose(a[0, 0, :2].numpy(), [(12 / 12 - 1) / 0.1, (8 / 12 - 1) / 0.1],
                               rtol=1e-6)


def test_preprocess_meta_round_trip():
    prep = Preprocess(Standardiser(np.zeros(4), np.ones(4)),
                      Standardiser([2.88, 4716.9, -0.22], [1.16, 733.0, 0.30]), "median")
    back = Preprocess.from_meta(prep.to_meta())
    assert back.flux_norm == "median"
    z = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(back.labels(z).numpy(), [[4.04, 3983.9, -0.22]], rtol=1e-9)
    with pytest.raises(ValueError, match="flux_norm"):
        Preprocess(prep.flux_scaler, None, "continuum")


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = APOGEENet(npix=256)
    path = save_checkpoint(tmp_path / "m.pt", model, model.arch_kwargs, {"label_names": ["a"]})
    again, ckpt = load_checkpoint(path, expect=APOGEENet)
    model.eval()
    x = torch.randn(2, 1, 256)
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    assert ckpt["arch_kwargs"]["npix"] == 256
