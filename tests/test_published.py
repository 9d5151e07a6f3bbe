"""Published APOGEE Net I and II run exactly through ``import-model`` + ``predict``.

The reference below is written from the published descriptions (Olney et al. 2020 App. B;
Sprague et al. 2022 §3; the peer code of SDSS astra and hutchresearch/ApogeeNet2), not from
the toolkit: a straight-line forward pass over a state dict with the published key names,
the published output constants, photometry fill/z-score constants and uncertainty rules.
The weights are random (the real ones are distributed by SDSS), with the published shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from astropy.io import fits
from astropy.table import Table

from tests.conftest import shared_file

torch.set_num_threads(1)

# ---------------------------------------------------------------- published constants
MEAN1 = np.array([2.880541250669337, 4716.915128138449, -0.22329606176144642])
STD1 = np.array([1.1648147820369943, 733.0099523547299, 0.3004270650813916])
MEAN2 = np.array([2.925783395767212, 3.6705732345581055, -0.13088105618953705])
STD2 = np.array([1.1890668869018555, 0.0917675793170929, 0.25668784976005554])
FILL = np.array([-84.827, 21.40844, 24.53892, 20.26276, 18.439, 24.0, 17.025])
PMEAN = np.array([-0.6959113178296891, 13.630030428758845, 14.5224418320574,
                  12.832448427460813, 11.537019017423619, 10.858717523536697,
                  10.702106344460235])
PSTD = np.array([14.572430555504504, 2.2762944923233883, 2.8342029214199704,
                 2.136884367623457, 1.6793628207779732, 1.4888102872755238,
                 1.5848713221149886])
CHANNELS = [1, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 64, 64]
FILES = ("apStar-dr17-2M17335483-2753043.fits", "apStar-dr17-2M19485057+5005279.fits")


def random_state(version: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the published key names and shapes (He-scaled weights, so
    that the outputs depend on the inputs)."""
    g = torch.Generator().manual_seed(seed)
    state = {}

    def layer(name, shape, fan_in):
        state[f"{name}.weight"] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        state[f"{name}.bias"] = torch.randn(shape[0], generator=g) * 0.01

    for k in range(12):
        layer(f"conv{k + 1}", (CHANNELS[k + 1], CHANNELS[k], 3), 3 * CHANNELS[k])
    state["conv1.weight"] /= 1000.0  # raw apStar flux is ~1e2-1e3: outputs of order 1
    if version == 2:
        widths = [7, 8, 16, 32, 32, 64]
        for k in range(5):
            layer(f"metadata.l{k + 1}", (widths[k + 1], widths[k]), widths[k])
    n_in = 64 * 133 + (64 if version == 2 else 0)
    layer("fc1", (512, n_in), n_in)
    layer("fc2", (512, 512), 512)
    layer("fc3", (3, 512), 512)
    return state


def reference_forward(state, flux: torch.Tensor, meta: torch.Tensor | None = None):
    """Published forward pass, straight line: flux (n, 8575) → standardised outputs (n, 3)."""
    x = flux[:, None, :]
    for k in range(1, 13, 2):
        x = F.relu(F.conv1d(x, state[f"conv{k}.weight"], state[f"conv{k}.bias"], padding=1))
        x = F.relu(F.conv1d(x, state[f"conv{k + 1}.weight"], state[f"conv{k + 1}.bias"],
                            padding=1))
        x = F.max_pool1d(x, 2)
    x = x.reshape(x.shape[0], -1)
    if meta is not None:
        m = meta
        for k in range(1, 6):
            m = F.relu(F.linear(m, state[f"metadata.l{k}.weight"], state[f"metadata.l{k}.bias"]))
        x = torch.hstack((x, m))
    x = F.relu(F.linear(x, state["fc1.weight"], state["fc1.bias"]))
    x = F.relu(F.linear(x, state["fc2.weight"], state["fc2.bias"]))
    return F.linear(x, state["fc3.weight"], state["fc3.bias"])


def reference_labels(version: int, z: np.ndarray) -> np.ndarray:
    """De-standardise; version II's log10 Teff back to K."""
    if version == 1:
        return z * STD1 + MEAN1
    out = z * STD2 + MEAN2
    out[..., 1] = 10.0 ** out[..., 1]
    return out


def reference_photometry(raw: np.ndarray) -> np.ndarray:
    raw = np.array(raw, dtype=float)
    with np.errstate(invalid="ignore"):
        raw = np.where(raw < 98, raw, FILL)  # NaN compares False: replaced too
    raw = np.where(np.isfinite(raw), raw, FILL)
    return (raw - PMEAN) / PSTD


def reference_spectrum(version: int, path) -> tuple[np.ndarray, np.ndarray]:
    """Row 0 of HDU1/HDU2 as the peers read it: nan_to_num; version I (astra): pixels with
    bad flux or error take the median flux of the others."""
    with fits.open(path) as hdul:
        flux = np.atleast_2d(hdul[1].data)[0].astype(np.float32)
        error = np.atleast_2d(hdul[2].data)[0].astype(np.float32)
    if version == 1:
        bad = ~np.isfinite(flux) | ~np.isfinite(error) | (error >= 1e10)
        flux = np.where(bad, np.median(flux[~bad]), flux).astype(np.float32)
    return np.nan_to_num(flux), np.nan_to_num(error)


def reference_sigma(version: int, flux: np.ndarray, error: np.ndarray) -> np.ndarray:
    cap = 5 * np.median(error)
    if version == 2:
        error = np.where(error == 1e10, flux, error)
    return np.where(error < cap, error, cap).astype(np.float32)


# ---------------------------------------------------------------- helpers
def _import(tmp_path, version: int, seed: int = 0):
    from apogee_net.cli import main

    state = random_state(version, seed)
    peer = tmp_path / f"peer{version}.pt"
    torch.save(state, peer)
    out = tmp_path / f"model{version}.pt"
    assert main(["import-model", str(peer), "--arch", f"apogeenet{version}", "--out",
                 str(out)]) == 0
    return state, out


def _phot_table(tmp_path):
    """fetch-photometry columns: the first star measured, the second without Gaia (NaN) and
    with a 99.999 placeholder in K."""
    t = Table({"apogee_id": ["2M17335483-2753043", "2M19485057+5005279"],
               "ra": [263.478474, 297.210723], "dec": [-27.884539, 50.091099],
               "g": [15.0, 14.0], "r": [14.0, 13.0],  # SDSS g, r: must not be taken for G
               "G": [12.1, np.nan], "BP": [13.0, np.nan], "RP": [11.2, np.nan],
               "J": [9.8, 10.4], "H": [9.1, 9.9], "K": [8.9, 99.999],
               "W1": [8.7, 9.5], "W2": [8.7, 9.5], "W3": [8.6, 9.4],
               "parallax": [1.35, np.nan], "parallax_error": [0.02, np.nan]})
    path = tmp_path / "phot.csv"
    t.write(path)
    return t, path


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("version", [1, 2])
def test_import_predict_matches_reference_on_dr17_files(tmp_path, version):
    from apogee_net.cli import main

    paths = [shared_file("apogee", f) for f in FILES]
    state, model = _import(tmp_path, version)
    phot, phot_path = _phot_table(tmp_path)
    args = ["predict", str(paths[0].parent), "--model", str(model), "--device", "cpu",
            "--realizations", "0"]
    if version == 2:
        args += ["--photometry", str(phot_path), "--arch", "apogeenet2"]
    assert main([*args, "--out", str(tmp_path / "cat.fits")]) == 0
    cat = Table.read(tmp_path / "cat.fits")
    assert list(cat["apogee_id"]) == [p.name[12:-5] for p in paths]

    flux = torch.tensor(np.stack([reference_spectrum(version, p)[0] for p in paths]))
    meta = None
    if version == 2:
        raw = np.column_stack([phot[c] for c in ("parallax", "G", "BP", "RP", "J", "H", "K")])
        meta = torch.tensor(reference_photometry(raw), dtype=torch.float32)
    with torch.no_grad():
        z = reference_forward(state, flux, meta).double().numpy()
    expect = reference_labels(version, z)
    got = np.column_stack([cat[c] for c in ("logg", "teff", "fe_h")])
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    assert np.ptp(got[:, 1]) > 1.0  # the two stars differ: the test has teeth
    no_phot = (np.asarray(cat["flags"]) & 64) > 0
    assert list(no_phot) == ([False, True] if version == 2 else [False, False])
    assert cat.meta["METHOD"].startswith(f"published apogeenet{version}")


@pytest.mark.parametrize("version", [1, 2])
def test_published_uncertainty_matches_reference(tmp_path, version):
    from apogee_net.inference.predict import predict_catalog
    from apogee_net.inference.uncertainty import spectrum_keys, star_seed
    from apogee_net.spectra.apstar import read_raw_apstar

    paths = [shared_file("apogee", f) for f in FILES]
    state, model = _import(tmp_path, version, seed=3)
    n_draws = 6
    predict_catalog(model, paths, tmp_path / "cat.fits", realizations=n_draws, seed=11,
                    device="cpu", progress=False)
    cat = Table.read(tmp_path / "cat.fits")
    for row_index, path in enumerate(paths):
        flux, error = reference_spectrum(version, path)
        sigma = reference_sigma(version, flux, error)
        key = spectrum_keys(*(a[None] for a in read_raw_apstar(path, 0)))[0]  # row as stored
        gen = torch.Generator().manual_seed(star_seed(11, key))
        noise = torch.empty((n_draws, flux.size)).normal_(generator=gen)
        if version == 1:
            noise[0] = 0.0  # astra: draw 0 is the spectrum itself
        draws = torch.tensor(flux) + noise * torch.tensor(sigma)
        meta = None
        if version == 2:  # no photometry table: every input filled
            meta = torch.tensor(reference_photometry(np.full((n_draws, 7), np.nan)),
                                dtype=torch.float32)
        with torch.no_grad():
            out = reference_labels(version, reference_forward(state, draws, meta).double()
                                   .numpy())
            plain = reference_labels(version, reference_forward(
                state, torch.tensor(flux)[None], None if meta is None else meta[:1])
                .double().numpy())[0]
        label = out.mean(0) if version == 1 else plain
        row = cat[row_index]
        np.testing.assert_allclose([row["logg"], row["teff"], row["fe_h"]], label, rtol=1e-5)
        np.testing.assert_allclose([row["logg_err"], row["teff_err"], row["fe_h_err"]],
                                   out.std(0, ddof=1), rtol=2e-3)
        assert row["teff_err"] > 0


def test_export_round_trip_and_cli(tmp_path):
    from apogee_net.cli import main

    state, model = _import(tmp_path, 2)
    assert main(["export-model", str(model), "--out", str(tmp_path / "back.pt")]) == 0
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert list(back) == list(state)
    for k in state:
        assert torch.equal(back[k], state[k]), k


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.pop("conv7.bias"), "key 'conv7.bias' of the published apogeenet1 layout is "
                                    "missing"),
    (lambda s: s.__setitem__("fc2.weight", torch.zeros(512, 256)),
     r"key 'fc2.weight' has shape \(512, 256\)"),
    (lambda s: s.__setitem__("metadata.l1.weight", torch.zeros(8, 7)),
     "unexpected key 'metadata.l1.weight'"),
])
def test_wrong_layout_names_the_first_bad_key(tmp_path, capsys, edit, message):
    from apogee_net.cli import main

    state = random_state(1)
    edit(state)
    torch.save(state, tmp_path / "peer.pt")
    code = main(["import-model", str(tmp_path / "peer.pt"), "--arch", "apogeenet1", "--out",
                 str(tmp_path / "m.pt")])
    assert code != 0
    err = capsys.readouterr().err
    assert len(__import__("re").findall(message, err)) == 1, err
    assert not (tmp_path / "m.pt").exists()


def test_version_two_weights_as_version_one_are_refused(tmp_path):
    from apogee_net.network.published import import_model

    torch.save(random_state(2), tmp_path / "peer.pt")
    with pytest.raises(ValueError, match="fc1.weight' has shape"):
        import_model(tmp_path / "peer.pt", "apogeenet1", tmp_path / "m.pt")
    # a DataParallel save ("module." prefix) imports as the plain one
    torch.save({f"module.{k}": v for k, v in random_state(2).items()}, tmp_path / "dp.pt")
    import_model(tmp_path / "dp.pt", "apogeenet2", tmp_path / "m.pt")


def test_photometry_rules_and_fetch_photometry_columns(tmp_path):
    from apogee_net.network.photometry import PhotometryTable, fill_photometry, photometry_input

    raw = np.array([[1.0, 12.0, 13.0, 11.0, 10.0, 9.5, 9.0],
                    [np.nan, 98.0, 97.9, np.inf, -np.inf, 99.999, 9.0]])
    filled, replaced = fill_photometry(raw)
    assert replaced.tolist() == [[False] * 7, [True, True, False, True, True, True, False]]
    np.testing.assert_allclose(photometry_input(raw).numpy(), reference_photometry(raw),
                               rtol=1e-6)
    table, path = _phot_table(tmp_path)
    got = PhotometryTable(path).lookup(["2M19485057+5005279", "2M17335483-2753043", "2Mnone"])
    np.testing.assert_array_equal(got[1], [1.35, 12.1, 13.0, 11.2, 9.8, 9.1, 8.9])  # not g
    assert np.isnan(got[2]).all()
    gaia = Table({"apogee_id": ["a"], "parallax": [1.0], "phot_g_mean_mag": [12.0],
                  "phot_bp_mean_mag": [13.0], "phot_rp_mean_mag": [11.0], "j_m": [10.0],
                  "h_m": [9.0], "ks_m": [8.0]})
    np.testing.assert_array_equal(PhotometryTable(gaia).lookup(["a"])[0],
                                  [1, 12, 13, 11, 10, 9, 8])
    with pytest.raises(ValueError, match="no column for BP, RP"):
        PhotometryTable(Table({"apogee_id": ["a"], "parallax": [1.0], "G": [1.0], "J": [1.0],
                               "H": [1.0], "K": [1.0]}), "phot.fits")


@pytest.mark.parametrize("version", [1, 2])
def test_dr13_conventions_flux_and_sigma(version):
    """DR13 off-chip pixels (flux 0, error 1e10) and DR17 NaNs, against the reference rules."""
    from apogee_net.network.published import PublishedPreprocess

    rng = np.random.default_rng(0)
    flux = rng.uniform(100, 200, (2, 8575)).astype(np.float32)
    error = rng.uniform(1, 3, (2, 8575)).astype(np.float32)
    flux[0, :300], error[0, :300] = 0.0, 1e10       # DR13 off-chip
    error[0, 400:410] = 40.0                         # noisy pixels above the cap
    flux[1, :300], error[1, :300] = np.nan, np.nan   # DR17 off-chip
    prep = PublishedPreprocess(f"apogeenet{version}")
    clean, sigma = prep.clean(torch.tensor(flux), torch.tensor(error))
    for i in range(2):
        f, e = np.nan_to_num(flux[i]), np.nan_to_num(error[i])
        if version == 1:
            bad = ~np.isfinite(flux[i]) | ~np.isfinite(error[i]) | (error[i] >= 1e10)
            f = np.where(bad, np.median(flux[i][~bad]), f)
        np.testing.assert_allclose(clean[i].numpy(), f, rtol=1e-6)
        np.testing.assert_allclose(sigma[i].numpy(), reference_sigma(version, f, e), rtol=1e-6)
    # version II: σ = flux where error is 1e10 (flux 0 here), version I: the cap
    expect = 0.0 if version == 2 else 5 * np.median(error[0])
    np.testing.assert_allclose(sigma[0, :300].numpy(), expect, rtol=1e-6)
