"""Streaming catalogue prediction: real apStar files, stores vs files, flags, resume after an
interruption, and clear errors for foreign models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from astropy.units import UnitsWarning

from apogee_net.inference.chunks import plan_chunks, read_chunk
from apogee_net.inference.predict import FLAGS, flag_value, predict_catalog
from apogee_net.inference.streaming import stream_predict
from apogee_net.network.model import APOGEENet, Preprocess
from apogee_net.spectra.simulate import simulate_apstar, simulate_spectra, write_apstar
from tests.conftest import shared_file
from yso_labels.core.checkpoint import save_checkpoint
from yso_labels.core.scaling import Standardiser
from yso_labels.core.tables import read_meta

torch.set_num_threads(1)
COLUMNS = ["apogee_id", "ra", "dec", "logg", "teff", "fe_h", "logg_err", "teff_err",
           "fe_h_err", "snr", "ood_score", "fit_teff", "fit_logg", "fit_fe_h", "flags",
           "sigma_group", "telescope", "file"]
LABELS = np.array([[4700.0, 2.5, -0.2, 0.0], [5600.0, 4.3, 0.1, 0.0], [4000.0, 1.5, -0.6, 0.2],
                   [6200.0, 4.1, -0.3, 0.0], [3900.0, 4.6, 0.0, 0.0]])


def _read(path) -> Table:
    with warnings.catch_warnings():  # TUNIT 'dex' is not a FITS unit: kept as text
        warnings.simplefilter("ignore", UnitsWarning)
        return Table.read(path, mask_invalid=False)  # NaN stays NaN (no masked columns)


def _analytic(labels, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate_spectra(labels, emulator="analytic", **kw)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An (untrained) full-grid APOGEE Net checkpoint with a flux standardisation fitted on
    simulated spectra; enough for finiteness, flags and plumbing."""
    sim = _analytic(LABELS, seed=1)
    torch.manual_seed(0)
    model = APOGEENet()
    flux = sim.flux / np.nanmedian(sim.flux, axis=1, keepdims=True)
    prep = Preprocess(Standardiser.fit(flux, empty_ok=True),
                      Standardiser([2.88, 4716.9, -0.22], [1.16, 733.0, 0.30]), "median")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, model, model.arch_kwargs, {
        "label_names": ["logg", "teff", "fe_h"], **prep.to_meta(),
        "label_range": [[0.0, 3000.0, -2.0], [6.0, 8000.0, 1.0]]})
    return path


@pytest.fixture(scope="module")
def apstar_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("apstar")
    table = Table({"apogee_id": [f"2M0000000{i}+0000000" for i in range(len(LABELS))],
                   "teff": LABELS[:, 0], "logg": LABELS[:, 1], "fe_h": LABELS[:, 2]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simulate_apstar(table, out, emulator="analytic", seed=2, progress=False)
    return out


def _straight_line(model_path, flux, error, mask=None):
    """Plain prediction written out step by step (independent of Preprocess): pixels with
    data = finite flux and 0 < error < 1e9, no default PIXMASK bit (bits 0-10, 12, 14) in
    ``mask``, covered by the training spectra (standardiser not mean 0, std 1); flux /
    median over those; per-pixel standardisation; pixels without data -> 0; network;
    labels de-standardised."""
    ckpt = torch.load(model_path, weights_only=False)
    meta = ckpt["meta"]
    model = APOGEENet(**ckpt["arch_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    fm, fs = (np.asarray(meta["flux_scaler"][k]) for k in ("mean", "std"))
    lm, ls = (np.asarray(meta["label_scaler"][k]) for k in ("mean", "std"))
    out = []
    masks = np.zeros(np.shape(flux), np.int64) if mask is None else np.asarray(mask, np.int64)
    bits = sum(1 << b for b in (*range(11), 12, 14))
    for f, e, m in zip(np.asarray(flux, float), np.asarray(error, float), masks, strict=True):
        ok = np.isfinite(f) & np.isfinite(e) & (e > 0) & (e < 1e9)
        ok &= ((m & bits) == 0) & ~((fm == 0) & (fs == 1))
        x = np.zeros_like(f)
        med = np.sort(f[ok])[(ok.sum() - 1) // 2]  # torch.nanmedian: the lower middle value
        x[ok] = (f[ok] / med - fm[ok]) / fs[ok]
        with torch.no_grad():
            z = model(torch.tensor(x, dtype=torch.float32)[None, None]).double().numpy()[0]
        out.append(z * ls + lm)
    return np.array(out)


def test_real_apstar_files_give_the_networks_labels(model_path, tmp_path):
    files = [shared_file("apogee", "apStar-dr17-2M17335483-2753043.fits"),
             shared_file("apogee", "apStar-dr17-2M19485057+5005279.fits")]
    out = predict_catalog(model_path, files, tmp_path / "cat.fits", realizations=10,
                          device="cpu", progress=False)
    cat = _read(out)
    assert cat.colnames == COLUMNS
    assert list(cat["apogee_id"]) == ["2M17335483-2753043", "2M19485057+5005279"]
    for col in COLUMNS[1:COLUMNS.index("ood_score")]:
        assert np.all(np.isfinite(cat[col])), col
    assert np.all(np.isnan(cat["ood_score"]))  # a model without OOD statistics
    assert read_meta(out)["OODTHR"] == "no OOD statistics in model"
    assert list(cat["telescope"]) == ["apo25m", "apo25m"]  # apStar prefix: APO 2.5 m
    assert cat["ra"].unit == "deg" and cat["teff"].unit == "K" and cat["teff_err"].unit == "K"
    assert str(cat["logg"].unit) == "dex" and cat["snr"].unit is None  # docs/CATALOG.md
    assert [str(f) for f in cat["file"]] == [str(f) for f in files]
    assert np.all(cat["teff_err"] > 0)
    # the catalogue's labels are this network's output for these spectra: the plain
    # prediction equals a straight-line forward pass (without and with the default pixel
    # mask), and the 10-realization mean lies near it
    from apogee_net.spectra.apstar import read_apstar

    spectra = [read_apstar(f) for f in files]
    ref = _straight_line(model_path, [s.flux for s in spectra], [s.error for s in spectra])
    plain = _read(predict_catalog(model_path, files, tmp_path / "plain.fits", realizations=0,
                                  device="cpu", progress=False, pixmask_bits="none"))
    masked = _read(predict_catalog(model_path, files, tmp_path / "masked.fits",
                                   realizations=0, device="cpu", progress=False))
    ref_masked = _straight_line(model_path, [s.flux for s in spectra],
                                [s.error for s in spectra], [s.mask for s in spectra])
    for j, name in enumerate(("logg", "teff", "fe_h")):
        np.testing.assert_allclose(plain[name], ref[:, j], rtol=1e-4, atol=1e-6 * abs(
            ref[:, j]).max())
        np.testing.assert_allclose(masked[name], ref_masked[:, j], rtol=1e-4,
                                   atol=1e-6 * abs(ref_masked[:, j]).max())  # default mask
        # the mean of perturbed copies through a non-linear network is not the plain pass:
        # it differs by a fraction of the spread σ (here up to 1.7 standard errors on the
        # real files), so the bound is 2σ
        assert np.all(np.abs(cat[name] - ref_masked[:, j]) < 2 * cat[f"{name}_err"]
                      + 1e-3 * np.abs(ref_masked[:, j]))
    np.testing.assert_allclose(cat["snr"], [154, 137], atol=1)  # header SNR (SOURCES.md)
    assert np.all(cat["flags"] & flag_value("UNREADABLE", "BAD_PIXELS", "LOW_SNR") == 0)
    meta = read_meta(out)
    assert meta["STEP"] == "apogee-net predict" and meta["NREAL"] == 10
    assert meta["LABELS"] == "logg,teff,fe_h" and len(meta["MODELSHA"]) == 16
    assert not (tmp_path / "cat.fits.parts").exists()


def test_store_and_files_agree_and_seeded(model_path, apstar_dir, tmp_path):
    from apogee_net.spectra.ingest import ingest_apstar

    store = tmp_path / "s.h5"
    ingest_apstar(apstar_dir, store, workers=0, progress=False)
    a = _read(predict_catalog(model_path, [store], tmp_path / "a.fits", realizations=0,
                                   device="cpu", progress=False))
    b = _read(predict_catalog(model_path, [apstar_dir], tmp_path / "b.fits",
                                   realizations=0, device="cpu", progress=False))
    assert len(a) == len(b) == len(LABELS)
    b = b[[list(b["apogee_id"]).index(i) for i in a["apogee_id"]]]
    for col in ("logg", "teff", "fe_h", "snr", "ra"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-5)
    assert np.all(np.isnan(a["teff_err"]))  # no realizations, no uncertainty
    c1, c2 = (_read(predict_catalog(model_path, [store], tmp_path / f"c{k}.fits",
                                         realizations=8, seed=4, device="cpu",
                                         chunk_size=k, progress=False)) for k in (2, 5))
    np.testing.assert_allclose(c1["teff_err"], c2["teff_err"], rtol=1e-5)  # chunking-free


def test_flags(model_path, tmp_path):
    sim = _analytic(LABELS[:3], seed=3)
    flux, error = sim.flux.copy(), sim.error.copy()
    spectra = tmp_path / "in"  # the catalogue goes beside, never inside, the input folder
    spectra.mkdir()
    flux[1, 1000:] = np.nan  # most pixels without data
    error[1, 1000:] = np.nan
    for i in range(3):
        write_apstar(spectra / f"apStar-sim-S{i}.fits", flux[i], error[i],
                     header={"OBJID": f"S{i}", "SNR": [0.0, 80.0, 80.0][i], "RA": 10.0,
                             "DEC": 20.0})
    (spectra / "apStar-sim-BROKEN.fits").write_text("not a FITS file")
    cat = _read(predict_catalog(model_path, [spectra], tmp_path / "out" / "c.fits",
                                     realizations=4, device="cpu", progress=False))
    flags = dict(zip(cat["apogee_id"], cat["flags"], strict=True))
    assert flags["S0"] & FLAGS["LOW_SNR"][0]
    assert flags["S1"] & FLAGS["BAD_PIXELS"][0] and not flags["S1"] & FLAGS["LOW_SNR"][0]
    assert flags["S2"] & (FLAGS["LOW_SNR"][0] | FLAGS["BAD_PIXELS"][0]) == 0
    assert flags["BROKEN"] & FLAGS["UNREADABLE"][0]
    broken = cat[cat["apogee_id"] == "BROKEN"][0]
    assert np.isnan(broken["teff"]) and np.isnan(broken["teff_err"])
    # labels outside the training range are flagged
    ckpt = torch.load(model_path, weights_only=False)
    ckpt["meta"]["label_range"] = [[0.0, 9000.0, -2.0], [6.0, 9999.0, 1.0]]
    narrow = tmp_path / "narrow.pt"
    torch.save(ckpt, narrow)
    cat = _read(predict_catalog(narrow, [spectra / "apStar-sim-S2.fits"],
                                     tmp_path / "n.fits", realizations=0, device="cpu",
                                     progress=False))
    assert cat["flags"][0] & FLAGS["OUT_OF_RANGE"][0]


def test_interrupted_run_resumes_without_losing_or_duplicating_rows(tmp_path):
    chunks = [{"files": [f"x{i}", f"y{i}"]} for i in range(4)]
    calls = []

    def predict_fn(data, offset, fail_at=None):
        calls.append(offset)
        if offset == fail_at:
            raise KeyboardInterrupt
        return Table({"apogee_id": data["files"], "v": [offset, offset + 1]})

    out = tmp_path / "cat.fits"
    with pytest.raises(KeyboardInterrupt):
        stream_predict(chunks, lambda c: c, lambda d, o: predict_fn(d, o, 4), out, {},
                       {"m": 1}, progress=False)
    assert not out.exists() and len(list((tmp_path / "cat.fits.parts").glob("part-*"))) == 2
    with pytest.raises(ValueError, match=r"other inputs, model or options \(changed: m\)"):
        stream_predict(chunks, lambda c: c, predict_fn, out, {}, {"m": 2}, progress=False)
    calls.clear()
    stream_predict(chunks, lambda c: c, predict_fn, out, {"STEP": "t"}, {"m": 1},
                   progress=False)
    assert calls == [4, 6]  # finished chunks skipped
    cat = _read(out)
    assert list(cat["v"]) == list(range(8))
    assert not (tmp_path / "cat.fits.parts").exists()


def test_plan_and_errors(model_path, apstar_dir, tmp_path):
    files = sorted(apstar_dir.glob("*.fits"))
    plan = plan_chunks([apstar_dir], chunk_size=2)
    assert [len(c["files"]) for c in plan] == [2, 2, 1]
    assert [f for c in plan for f in c["files"]] == [str(f) for f in files]
    data = read_chunk(plan[0], 8575)
    assert data.flux.shape == (2, 8575) and data.readable.all()
    with pytest.raises(FileNotFoundError, match="no such input"):
        plan_chunks([tmp_path / "missing.fits"])
    # a model of another architecture, and one for another pixel grid
    other = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "lin.pt", other, {"in_features": 2, "out_features": 2}, {})
    with pytest.raises(ValueError, match="unknown architecture 'Linear'"):
        predict_catalog(tmp_path / "lin.pt", files, tmp_path / "x.fits", device="cpu")
    small = APOGEENet(npix=512)
    prep = Preprocess(Standardiser(np.zeros(512), np.ones(512)),
                      Standardiser(np.zeros(3), np.ones(3)))
    save_checkpoint(tmp_path / "small.pt", small, small.arch_kwargs,
                    {"label_names": ["logg", "teff", "fe_h"], **prep.to_meta()})
    with pytest.raises(ValueError, match="8575 pixels, the model expects 512"):
        predict_catalog(tmp_path / "small.pt", files, tmp_path / "x.fits", device="cpu",
                        progress=False)
    save_checkpoint(tmp_path / "names.pt", small, small.arch_kwargs,
                    {"label_names": ["logg", "teff"], **prep.to_meta()})
    with pytest.raises(ValueError, match="3 outputs but 2 label names"):
        predict_catalog(tmp_path / "names.pt", files, tmp_path / "x.fits", device="cpu")


def test_cli_predict(model_path, apstar_dir, tmp_path, capsys):
    from apogee_net.cli import main

    out = tmp_path / "cat.fits"
    code = main(["predict", "--model", str(model_path), str(apstar_dir), "--out", str(out),
                 "--realizations", "3", "--device", "cpu", "--seed", "1"])
    assert code == 0 and len(_read(out)) == len(LABELS)
    with fits.open(out) as hdul:
        assert "MODELSHA" in hdul[1].header
    code = main(["predict", "--model", str(tmp_path / "none.pt"), str(apstar_dir), "--out",
                 str(out)])
    assert code == 1 and "no such file" in capsys.readouterr().err


def test_predict_visits_on_the_real_three_visit_file(model_path, tmp_path, capsys):
    """--visits: the combined row plus one row per visit (3 + 1 for the real DR17 file,
    1 + 1 for the single-visit one), with visit index, MJD (header JD<v> − 2400000.5),
    telescope and file; a single visit is the combined spectrum, so its labels are equal."""
    from apogee_net.cli import main

    multi = shared_file("apogee", "apStar-dr17-2M17335483-2753043.fits")
    single = shared_file("apogee", "apStar-dr17-2M19485057+5005279.fits")
    out = tmp_path / "visits.fits"
    assert main(["predict", "--model", str(model_path), str(multi), str(single), "--out",
                 str(out), "--realizations", "0", "--device", "cpu", "--visits"]) == 0
    cat = _read(out)
    assert list(cat["visit"]) == [0, 1, 2, 3, 0, 1]
    from apogee_net.inference.catalog_columns import undocumented

    assert undocumented(cat.colnames) == []  # docs/CATALOG.md describes every column
    assert list(cat["apogee_id"]) == ["2M17335483-2753043"] * 4 + ["2M19485057+5005279"] * 2
    with fits.open(multi) as hdul:
        jd = [hdul[0].header[f"JD{v}"] for v in (1, 2, 3)]
    np.testing.assert_allclose(cat["mjd"][1:4], np.array(jd) - 2400000.5)
    assert np.isnan(cat["mjd"][0]) and np.isnan(cat["mjd"][4])
    assert set(cat["telescope"]) == {"apo25m"} and cat["file"][2] == str(multi)
    teff = np.asarray(cat["teff"])
    assert np.all(np.isfinite(teff))
    assert teff[5] == pytest.approx(teff[4], rel=1e-6)  # single visit = combined spectrum
    assert len(np.unique(teff[:4])) == 4  # three different visit spectra and their combination
    # the combined row equals a run without --visits
    plain = _read(predict_catalog(model_path, [multi], tmp_path / "plain.fits",
                                  realizations=0, device="cpu", progress=False))
    assert plain["teff"][0] == pytest.approx(teff[0], rel=1e-6)  # batch size: float32 sums
    assert "visit" not in plain.colnames


def test_predict_mwmstar_and_mwmvisit(model_path, tmp_path):
    """SDSS-V files (built to the astra data model, see tests/test_mwm.py): one row per
    APOGEE spectrum, keyed by sdss_id; the APO row holds the real combined spectrum, so its
    labels equal those of the apStar file; mwmVisit rows carry visit and MJD with --visits."""
    from apogee_net.spectra.apstar import read_apstar_visits
    from tests.test_mwm import MULTI, SDSS_ID, _ivar, _write

    apstar = shared_file(*MULTI)
    rows = read_apstar_visits(apstar)
    star = _write(tmp_path / f"mwmStar-0.6.0-{SDSS_ID}.fits",
                  [(np.nan_to_num(rows[0].flux), _ivar(rows[0]), rows[0].snr)],
                  [(np.nan_to_num(rows[3].flux), _ivar(rows[3]), rows[3].snr)])
    visit = _write(tmp_path / f"mwmVisit-0.6.0-{SDSS_ID}.fits",
                   [(np.nan_to_num(r.flux), _ivar(r), r.snr, int(r.mjd)) for r in rows[1:]],
                   [], visit=True)
    cat = _read(predict_catalog(model_path, [apstar, star], tmp_path / "c.fits",
                                realizations=0, device="cpu", progress=False,
                                pixmask_bits="none"))  # mwmStar files carry no PIXMASK
    cat.sort(["apogee_id", "telescope"])  # input files are taken in path order
    assert list(cat["apogee_id"]) == ["2M17335483-2753043", str(SDSS_ID), str(SDSS_ID)]
    assert list(cat["telescope"]) == ["apo25m", "apo25m", "lco25m"]
    assert "visit" not in cat.colnames
    np.testing.assert_allclose(cat["teff"][1], cat["teff"][0], rtol=1e-5)
    vis = _read(predict_catalog(model_path, [apstar, visit], tmp_path / "v.fits",
                                realizations=0, device="cpu", progress=False, visits=True,
                                pixmask_bits="none"))
    vis.sort(["apogee_id", "visit"])
    assert list(vis["visit"]) == [0, 1, 2, 3, 1, 2, 3]
    assert list(vis["mjd"][4:]) == [56396, 56433, 56434]
    np.testing.assert_allclose(vis["teff"][4:], vis["teff"][1:4], rtol=1e-5)


def test_ingest_takes_mwm_files_beside_apstar(model_path, tmp_path):
    """``apogee-net ingest`` on a folder with an apStar file and SDSS-V mwmStar/mwmVisit files
    (built to the astra data model, tests/test_mwm.py): one store row per APOGEE spectrum
    (source ``PATH[k]``, keyed by sdss_id), the spectra as in the files, a rerun finds them
    all stored, and predict on the store gives the labels and telescopes of predict on the
    files."""
    from apogee_net.spectra.apstar import read_apstar_visits
    from apogee_net.spectra.ingest import ingest_apstar
    from apogee_net.spectra.store import decode_strings, open_store
    from tests.test_mwm import MULTI, SDSS_ID, _ivar, _write

    apstar = shared_file(*MULTI)
    rows = read_apstar_visits(apstar)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / apstar.name).symlink_to(apstar)
    star = _write(folder / f"mwmStar-0.6.0-{SDSS_ID}.fits",
                  [(np.nan_to_num(rows[0].flux), _ivar(rows[0]), rows[0].snr)],
                  [(np.nan_to_num(rows[3].flux), _ivar(rows[3]), rows[3].snr)])
    visit = _write(folder / f"mwmVisit-0.6.0-{SDSS_ID}.fits",
                   [(np.nan_to_num(r.flux), _ivar(r), r.snr, int(r.mjd)) for r in rows[1:]],
                   [], visit=True)
    store = tmp_path / "s.h5"
    report = ingest_apstar(folder, store, workers=0, progress=False, pixmask_bits="none")
    assert (report["n_inputs"], report["n_ingested"], report["n_failed"],
            report["n_rows"]) == (3, 3, 0, 6)
    with open_store(store) as h5:
        sources = decode_strings(h5["source"][:])
        ids = decode_strings(h5["apogee_id"][:])
        flux = h5["flux"][:]
    by = dict(zip(sources, range(len(sources)), strict=True))
    assert set(by) == {str(apstar), f"{star}[0]", f"{star}[1]", f"{visit}[0]",
                       f"{visit}[1]", f"{visit}[2]"}
    assert ids[by[f"{star}[1]"]] == ids[by[f"{visit}[2]"]] == str(SDSS_ID)
    for source, ref in ((str(apstar), rows[0]), (f"{star}[0]", rows[0]),
                        (f"{star}[1]", rows[3]), (f"{visit}[1]", rows[2])):
        ok = np.isfinite(ref.flux) & ~ref.dead
        np.testing.assert_allclose(flux[by[source]][ok], ref.flux[ok], rtol=1e-6,
                                   err_msg=source)
    again = ingest_apstar(folder, store, workers=0, progress=False, pixmask_bits="none")
    assert (again["n_already_stored"], again["n_rows"]) == (3, 6)

    from_store = _read(predict_catalog(model_path, [store], tmp_path / "s.fits",
                                       realizations=0, device="cpu", progress=False,
                                       pixmask_bits="none"))
    from_files = _read(predict_catalog(model_path, [apstar, star], tmp_path / "f.fits",
                                       realizations=0, device="cpu", progress=False,
                                       pixmask_bits="none"))
    got = {str(f): (t, v) for f, t, v in zip(from_store["file"], from_store["telescope"],
                                             from_store["teff"], strict=True)}
    assert [got[f"{star}[{k}]"][0] for k in (0, 1)] == ["apo25m", "lco25m"]
    assert got[str(apstar)][0] == "apo25m"
    from_files.sort(["apogee_id", "telescope"])
    np.testing.assert_allclose([got[str(apstar)][1], got[f"{star}[0]"][1],
                                got[f"{star}[1]"][1]], from_files["teff"], rtol=1e-5)


def test_amp_bf16_close_to_float32_and_recorded(model_path, apstar_dir, tmp_path):
    """``amp="bf16"`` (CPU autocast) changes labels by a small fraction of σ, the same draws
    (seeds) are used, and the header says which precision ran; an unknown precision is
    refused before any work."""
    from yso_labels.core.runtime import autocast

    kw = dict(realizations=4, device="cpu", seed=3, progress=False)
    files = sorted(apstar_dir.glob("*.fits"))[:2]
    ref = _read(predict_catalog(model_path, files, tmp_path / "fp32.fits", **kw))
    cat = _read(predict_catalog(model_path, files, tmp_path / "bf16.fits", amp="bf16", **kw))
    assert cat.meta["AMP"] == "bf16" and ref.meta["AMP"] == "none"
    for name in ("logg", "teff", "fe_h"):
        d = np.abs(np.asarray(cat[name]) - np.asarray(ref[name]))
        assert 0 < d.max() and np.all(d < 0.5 * np.asarray(ref[f"{name}_err"]))
    with pytest.raises(ValueError, match="amp must be one of none, bf16, fp16"):
        predict_catalog(model_path, files, tmp_path / "x.fits", amp="fp8", **kw)
    with autocast("cpu", "bf16"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16


def test_same_spectrum_same_draws_wherever_it_appears(model_path, tmp_path):
    """The noise draws are seeded by the spectrum's content: the real single-visit file's
    combined row and its visit row (the same spectrum) get equal labels AND σ with 8
    realizations, and a file gives the same numbers alone or after another file."""
    multi = shared_file("apogee", "apStar-dr17-2M17335483-2753043.fits")
    single = shared_file("apogee", "apStar-dr17-2M19485057+5005279.fits")
    kw = {"realizations": 8, "device": "cpu", "progress": False, "seed": 5}
    both = _read(predict_catalog(model_path, [multi, single], tmp_path / "b.fits",
                                 visits=True, **kw))
    alone = _read(predict_catalog(model_path, [single], tmp_path / "a.fits", **kw))
    for col in ("teff", "logg", "fe_h", "teff_err", "logg_err", "fe_h_err"):
        assert both[col][5] == pytest.approx(both[col][4], rel=1e-6)  # visit 1 = combined row
        assert alone[col][0] == pytest.approx(both[col][4], rel=1e-6)
    assert both["teff_err"][4] > 0


def test_known_groups_get_their_own_sigma_factor(model_path, apstar_dir, tmp_path):
    """predict --groups: a star listed with a group the model has known-group factors for is
    scaled by that factor (sigma_group known:<group>, header SIGKNOWN); the others keep the
    factor of their predicted group, and so does a star listed with a group without factors."""
    from apogee_net.evaluation.groupcal import assign_group
    from apogee_net.evaluation.report import store_sigma_scale

    model = tmp_path / "calibrated.pt"
    model.write_bytes(model_path.read_bytes())
    rule = {g: {"logg": 2.0, "teff": 3.0, "fe_h": 4.0} for g in ("all", "yso", "mstar",
                                                                   "dwarf", "giant")}
    store_sigma_scale(model, {"grouping": "predicted", "split": "cal", "rule": "test",
                              "groups": rule, "source_groups": {
                                  "yso": {"logg": 5.0, "teff": 7.0, "fe_h": 11.0}}})
    ids = [f"2M0000000{i}+0000000" for i in range(len(LABELS))]
    groups = tmp_path / "groups.csv"
    Table({"apogee_id": ids[:2], "source": ["yso", "other"]}).write(groups)
    kw = {"realizations": 4, "device": "cpu", "progress": False}
    plain = _read(predict_catalog(model_path, [apstar_dir], tmp_path / "p.fits", **kw))
    cat = _read(predict_catalog(model, [apstar_dir], tmp_path / "k.fits", groups=groups, **kw))
    assert list(cat["apogee_id"]) == ids
    rule_group = assign_group(plain["teff"], plain["logg"])
    assert list(cat["sigma_group"]) == ["known:yso", *rule_group[1:]]
    for name, k_rule, k_yso in (("logg", 2.0, 5.0), ("teff", 3.0, 7.0), ("fe_h", 4.0, 11.0)):
        ratio = np.asarray(cat[f"{name}_err"]) / np.asarray(plain[f"{name}_err"])
        np.testing.assert_allclose(ratio, [k_yso] + [k_rule] * (len(ids) - 1), rtol=1e-6)
    assert cat.meta["SIGKNOWN"].startswith("known:yso:5,7,11")
