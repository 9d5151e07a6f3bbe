"""The hostile-input pass (issue 19): each numbered case of the issue as a test.

1 output equal to / inside an input; 2 replace-after-success for --overwrite; 3 crafted
checkpoints execute nothing; 4 and 7 option validation before any work; 5 resume keyed by a
content fingerprint; 6 label and photometry sanity ranges; 8 clear messages.
"""

from __future__ import annotations

import builtins
import shutil
import sys

import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net.cli import main as apogee_main
from apogee_net.network.model import APOGEENet, Preprocess
from yso_labels.cli import main as yso_main
from yso_labels.core import checkpoint as checkpoint_module
from yso_labels.core.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from yso_labels.core.guards import OptionError, check_outputs
from yso_labels.core.scaling import Standardiser

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tiny_run):
    """(directory with s.h5, labels.csv, run/model.pt; label table)."""
    return tiny_run


def _lamost_model(path, npix=256):
    from apogee_net.lamost.model import BayesianCNN

    model = BayesianCNN(n_targets=3, npix=npix)
    prep = Preprocess(Standardiser(np.zeros(npix), np.ones(npix)),
                      Standardiser([2.9, 4700.0, -0.2], [1.2, 730.0, 0.3]), "none")
    save_checkpoint(path, model, model.arch_kwargs, {"label_names": ["logg", "teff", "fe_h"],
                                                     **prep.to_meta(),
                                                     "model_kind": "lamost-bcnn"})
    return path


def _err(capsys) -> str:
    return capsys.readouterr().err


# --------------------------------------------------------------------------- 3 checkpoints
class _Marker:
    """Unpickling this object creates the file ``path`` (what a crafted checkpoint does)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def test_crafted_pickle_executes_nothing(run, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "yso-apogee-net/1", "arch": "APOGEENet", "arch_kwargs": {},
                "state_dict": {}, "payload": _Marker(marker)}, evil)
    with pytest.raises(ValueError, match="refused.*builtins.open|refused.*io.open"):
        read_checkpoint(evil)
    assert not marker.exists()
    code = apogee_main(["predict", "--model", str(evil), str(run[0] / "s.h5"), "--out",
                        str(tmp_path / "o.fits"), "--device", "cpu"])
    assert code == 1 and "refused" in _err(capsys)
    assert not marker.exists()


def test_arch_comes_from_the_registry_never_from_an_import_path(run, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    ckpt = read_checkpoint(run[0] / "run" / "model.pt")
    assert ckpt["arch"] == "APOGEENet"
    assert checkpoint_module.MODELS["APOGEENet"] is APOGEENet
    # any importable callable with constructor kwargs that would run a command
    ckpt.update(arch="subprocess:call",
                arch_kwargs={"args": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]})
    torch.save(ckpt, tmp_path / "call.pt")
    with pytest.raises(ValueError, match="unknown architecture 'subprocess:call'"):
        load_checkpoint(tmp_path / "call.pt")
    assert not marker.exists()
    # a non-class arch (was: TypeError from issubclass, a traceback)
    ckpt.update(arch="os:getcwd", arch_kwargs={})
    torch.save(ckpt, tmp_path / "getcwd.pt")
    code = apogee_main(["predict", "--model", str(tmp_path / "getcwd.pt"),
                        str(run[0] / "s.h5"), "--out", str(tmp_path / "o.fits")])
    assert code == 1 and "unknown architecture 'os:getcwd'" in _err(capsys)
    # checkpoints of earlier versions (arch = module:Class) still load, by class name
    ckpt.update(arch="apogee_net.network.model:APOGEENet",
                arch_kwargs=read_checkpoint(run[0] / "run" / "model.pt")["arch_kwargs"])
    torch.save(ckpt, tmp_path / "legacy.pt")
    model, _ = load_checkpoint(tmp_path / "legacy.pt", expect=APOGEENet)
    assert isinstance(model, APOGEENet)


def test_checkpoints_store_plain_types_only(tmp_path):
    model = APOGEENet(npix=64)
    save_checkpoint(tmp_path / "m.pt", model, model.arch_kwargs,
                    {"label_range": np.zeros((2, 3)), "n": np.int64(3), "x": np.float32(1.5)})
    meta = torch.load(tmp_path / "m.pt", weights_only=True)["meta"]
    assert meta == {"label_range": [[0.0] * 3] * 2, "n": 3, "x": 1.5}


# --------------------------------------------------------------------------- 4, 7 options
@pytest.mark.parametrize("option,value", [("--chunk-size", "-1"), ("--chunk-size", "0"),
                                          ("--batch-size", "-1"), ("--realizations", "-2"),
                                          ("--workers", "-1")])
def test_predict_integer_options_checked_before_any_work(run, tmp_path, capsys, option,
                                                         value):
    out = tmp_path / "o.fits"
    with pytest.raises(SystemExit) as exc:
        apogee_main(["predict", "--model", str(run[0] / "run" / "model.pt"),
                     str(run[0] / "s.h5"), "--out", str(out), option, value])
    assert exc.value.code == 2
    assert f"argument {option}: expected an integer" in _err(capsys)
    assert not out.exists() and not (tmp_path / "o.fits.parts").exists()


def test_library_calls_check_the_same_options(run, tmp_path):
    from apogee_net.inference.chunks import plan_chunks
    from apogee_net.inference.predict import predict_catalog
    from apogee_net.lamost.predict import predict_lamost

    model = run[0] / "run" / "model.pt"
    for kw in ({"chunk_size": 0}, {"chunk_size": -1}, {"batch_size": -1},
               {"realizations": -1}):
        with pytest.raises(OptionError, match=list(kw)[0]):
            predict_catalog(model, [run[0] / "s.h5"], tmp_path / "o.fits", device="cpu",
                            progress=False, **kw)
    with pytest.raises(OptionError, match="chunk_size must be an integer ≥ 1, got 0"):
        plan_chunks([run[0] / "s.h5"], chunk_size=0)
    with pytest.raises(OptionError, match="chunk_size"):
        predict_lamost(_lamost_model(tmp_path / "l.pt"), [run[0] / "s.h5"],
                       tmp_path / "o.fits", chunk_size=-1, device="cpu", progress=False)
    assert not list(tmp_path.glob("o.fits*"))


def test_memory_caps_name_the_largest_value_that_fits(run, tmp_path, capsys):
    out = tmp_path / "o.fits"
    code = apogee_main(["predict", "--model", str(run[0] / "run" / "model.pt"),
                        str(run[0] / "s.h5"), "--out", str(out), "--realizations",
                        "1000000000", "--device", "cpu"])
    err = _err(capsys)
    assert code == 1 and "realizations 1000000000 needs about" in err and "use at most" in err
    assert not (tmp_path / "o.fits.parts").exists()
    code = apogee_main(["lamost", "predict", "--model", str(_lamost_model(tmp_path / "l.pt")),
                        str(run[0] / "s.h5"), "--out", str(out), "--passes", "1000000000",
                        "--device", "cpu", "--no-progress"])
    assert code == 1 and "passes 1000000000 needs about" in _err(capsys)
    code = yso_main(["synth", "--n", str(10**12), "--seed", "0", "--out",
                     str(tmp_path / "syn.fits")])
    assert code == 1 and "n 1000000000000 needs about" in _err(capsys)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_one_line(run, tmp_path, capsys):
    for argv in (["predict", "--model", str(run[0] / "run" / "model.pt"), str(run[0] / "s.h5"),
                  "--out", str(tmp_path / "o.fits")],
                 ["train", "--store", str(run[0] / "s.h5"), "--labels",
                  str(run[0] / "labels.csv"), "--out", str(tmp_path / "r")]):
        with pytest.raises(SystemExit) as exc:
            apogee_main([*argv, "--device", "cuda"])
        assert exc.value.code == 2
        err = _err(capsys)
        assert "torch sees no CUDA GPU" in err and "Traceback" not in err
    from apogee_net.inference.predict import predict_catalog

    with pytest.raises(ValueError, match="no CUDA GPU"):  # the library says the same
        predict_catalog(run[0] / "run" / "model.pt", [run[0] / "s.h5"], tmp_path / "o.fits",
                        device="cuda")


# --------------------------------------------------------------------------- 1 output guard
def test_output_equal_to_or_inside_an_input_is_refused(run, tmp_path, capsys):
    apstar = tmp_path / "apStar-dr17-2M00000000+0000000.fits"
    apstar.write_bytes(b"x" * 2880)
    before = apstar.read_bytes()
    cat = tmp_path / "cat.csv"
    Table({"apogee_id": ["a"], "teff": [3000.0], "logg": [4.5]}).write(cat)
    phot = tmp_path / "p.csv"
    phot.write_text("apogee_id,g,r,J,H,K\nA,15.0,13.6,10.9,10.35,10.05\n")
    cases = [
        (apogee_main, ["predict", "--model", str(run[0] / "run" / "model.pt"), str(apstar),
                       "--out", str(apstar), "--realizations", "0", "--device", "cpu"]),
        (apogee_main, ["ysos", "select", str(cat), "--out", str(cat), "--no-sky"]),
        (yso_main, ["mdwarf", str(phot), str(phot)]),
        # a symlink (resolved paths) and an output inside an input folder
        (yso_main, ["mdwarf", str(tmp_path / "link.csv"), str(phot)]),
        (apogee_main, ["ingest", str(tmp_path), "--out", str(tmp_path / "s.h5")]),
        (apogee_main, ["predict", "--model", str(run[0] / "run" / "model.pt"),
                       str(run[0] / "s.h5"), "--out", str(run[0] / "run" / "model.pt")]),
    ]
    (tmp_path / "link.csv").symlink_to(phot)
    phot_before = phot.read_text()
    for main, argv in cases:
        assert main(argv) == 1, argv
        err = _err(capsys)
        assert "is also an input" in err or "inside the input folder" in err, err
    assert apstar.read_bytes() == before and phot.read_text() == phot_before
    assert len(Table.read(cat)) == 1 and not (tmp_path / "s.h5").exists()
    with pytest.raises(OptionError, match="is also an input"):
        check_outputs([tmp_path / "." / "p.csv"], [str(phot)])
    check_outputs([tmp_path / "other.csv"], [str(phot), "not-a-path", "*.fits"])


# --------------------------------------------------------------------------- 2 stores
def _lamost_store(path):
    from apogee_net.lamost.ingest import ingest_lamost
    from tests.conftest import shared_file

    shared_file("lamost", "learninglamost", "spec-55862-B6212_sp06-003.fits")
    src = path.parent / "lamost_in"
    src.mkdir(exist_ok=True)
    for name in ("spec-55862-B6212_sp06-003.fits", "spec-55862-B6212_sp06-007.fits"):
        shutil.copyfile(shared_file("lamost", "learninglamost", name), src / name)
    ingest_lamost(src, path, workers=0, progress=False)
    return src


def test_overwrite_replaces_only_after_success(tmp_path, capsys):
    store = tmp_path / "l.h5"
    _lamost_store(store)
    before = store.read_bytes()
    (tmp_path / "bad.fits").write_text("not a FITS file")
    code = apogee_main(["lamost", "ingest", str(tmp_path / "bad.fits"), "--out", str(store),
                        "--overwrite", "--workers", "0", "--no-progress"])
    assert code == 1 and "is unchanged" in _err(capsys)
    assert store.read_bytes() == before  # the old store is intact
    assert not (tmp_path / "l.h5.part").exists() and not (tmp_path / "l.h5.lock").exists()


def test_foreign_store_leaves_no_orphan_part(tmp_path, capsys):
    from tests.conftest import shared_file

    store = tmp_path / "l.h5"
    _lamost_store(store)
    before = store.read_bytes()
    apstar = shared_file("apogee", "apStar-dr17-2M19485057+5005279.fits")
    code = apogee_main(["ingest", str(apstar), "--out", str(store), "--workers", "0",
                        "--no-progress"])
    assert code == 1 and "holds 'lamost' spectra" in _err(capsys)
    assert not (tmp_path / "l.h5.part").exists() and store.read_bytes() == before


# --------------------------------------------------------------------------- 8 messages
def test_csv_with_byte_order_mark(tmp_path):
    from yso_labels.core.tables import read_table

    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfapogee_id,teff\n2M1,3500\n")
    assert read_table(path, required=["apogee_id"])["apogee_id"][0] == "2M1"


def test_concurrent_ingest_is_told_to_wait_not_to_delete(run, tmp_path):
    from apogee_net.spectra.store import StoreError, StoreWriter, lock_store

    store = tmp_path / "x.h5"
    held = lock_store(store)  # another ingest holds the store
    try:
        with pytest.raises(StoreError, match="being written by another process .*do not "
                                             "delete"):
            StoreWriter(store, 4, np.arange(4.0))
    finally:
        held.release()
    with StoreWriter(store, 4, np.arange(4.0)) as w:  # free again: works, lock released
        w.append(np.ones((1, 4)), np.ones((1, 4)), np.zeros((1, 4)), ["a"], [1.0], [0.0],
                 [0.0], ["f"])
    assert store.exists() and not (tmp_path / "x.h5.lock").exists()


def test_file_names_with_brackets_and_unfinished_stores(run, tmp_path, capsys):
    from apogee_net.spectra.inputs import expand_inputs

    odd = tmp_path / "apStar-dr17-2M1[1].fits"
    odd.write_bytes(b"x")
    assert expand_inputs([odd]) == [odd.resolve()]
    shutil.copyfile(run[0] / "s.h5", tmp_path / "u.h5.part")
    code = apogee_main(["predict", "--model", str(run[0] / "run" / "model.pt"),
                        str(tmp_path / "u.h5"), "--out", str(tmp_path / "o.fits")])
    assert code == 1 and "is not finished" in _err(capsys)


def test_ingest_exit_status_when_most_inputs_fail(tmp_path, capsys):
    from tests.conftest import shared_file

    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(shared_file("apogee", "apStar-dr17-2M19485057+5005279.fits"),
                    src / "apStar-dr17-2M19485057+5005279.fits")
    for i in range(3):
        (src / f"apStar-dr17-2M0000000{i}.fits").write_text("junk")
    code = apogee_main(["ingest", str(src), "--out", str(tmp_path / "a.h5"), "--workers", "0",
                        "--no-progress"])
    assert code == 3
    assert "ingest: 3 of 4 new input files failed; most inputs failed" in _err(capsys)
    (src / "apStar-dr17-2M00000009.fits").write_text("junk")  # 1 of 1 new: all fail
    code = apogee_main(["ingest", str(src), "--out", str(tmp_path / "a.h5"), "--workers", "0",
                        "--no-progress"])
    assert code == 3


# --------------------------------------------------------------------------- 5 resume keys
def _other_store(path, n=120, npix=256):
    """A store of the same length and layout with other stars (other IDs and spectra)."""
    import h5py

    from tests.test_train import make_store

    path.unlink(missing_ok=True)
    table = make_store(path, n=n, npix=npix, seed=7)
    table["apogee_id"] = [f"2M9{i:07d}" for i in range(n)]
    with h5py.File(path, "r+") as h5:
        h5["apogee_id"][:] = np.asarray(table["apogee_id"], dtype=object)
    return table


def test_predict_resume_refuses_changed_inputs(run, tmp_path, monkeypatch):
    import apogee_net.inference.predict as P

    store = tmp_path / "s.h5"
    shutil.copyfile(run[0] / "s.h5", store)
    model, out = run[0] / "run" / "model.pt", tmp_path / "o.fits"
    real, calls = P.catalog_rows, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(P, "catalog_rows", interrupted)
    kw = {"realizations": 2, "device": "cpu", "chunk_size": 50, "progress": False}
    with pytest.raises(KeyboardInterrupt):
        P.predict_catalog(model, [store], out, **kw)
    monkeypatch.setattr(P, "catalog_rows", real)
    assert len(list((tmp_path / "o.fits.parts").glob("part-*.fits"))) == 1
    _other_store(store)  # the input store is rebuilt with other stars, same length
    with pytest.raises(ValueError, match="changed: inputs_fingerprint.*--restart"):
        P.predict_catalog(model, [store], out, **kw)
    cat = Table.read(P.predict_catalog(model, [store], out, restart=True, **kw))
    assert len(cat) == 120 and all(str(i).startswith("2M9") for i in cat["apogee_id"])


def test_train_resume_refuses_another_store_or_labels(run, tmp_path, capsys):
    from tests.test_train import make_store

    table = make_store(tmp_path / "s.h5", n=60, npix=128)
    table.write(tmp_path / "labels.csv")
    other = _other_store(tmp_path / "s2.h5", n=60, npix=128)
    other.write(tmp_path / "labels2.csv")
    base = ["train", "--out", str(tmp_path / "run"), "--batch-size", "16", "--device", "cpu",
            "--warmup", "0"]
    assert apogee_main([*base, "--store", str(tmp_path / "s.h5"), "--labels",
                        str(tmp_path / "labels.csv"), "--max-epochs", "1"]) == 0
    last = (tmp_path / "run" / "last.pt").read_bytes()
    for store, labels, extra in (("s2.h5", "labels2.csv", []), ("s.h5", "labels2.csv", []),
                                 ("s.h5", "labels.csv", ["--lr", "0.01"])):
        code = apogee_main([*base, "--store", str(tmp_path / store), "--labels",
                            str(tmp_path / labels), "--max-epochs", "2", "--resume", *extra])
        assert code == 1 and "cannot resume" in _err(capsys)
        assert (tmp_path / "run" / "last.pt").read_bytes() == last  # untouched
    # the same inputs resume; --restart starts over on the other ones
    assert apogee_main([*base, "--store", str(tmp_path / "s.h5"), "--labels",
                        str(tmp_path / "labels.csv"), "--max-epochs", "2", "--resume"]) == 0
    assert apogee_main([*base, "--store", str(tmp_path / "s2.h5"), "--labels",
                        str(tmp_path / "labels2.csv"), "--max-epochs", "1", "--restart"]) == 0
    assert read_checkpoint(tmp_path / "run" / "model.pt")["meta"]["store"].endswith("s2.h5")


def test_ingest_part_refuses_other_settings(tmp_path):
    from apogee_net.spectra.store import StoreError, StoreWriter

    w = StoreWriter(tmp_path / "x.h5", 4, np.arange(4.0), "lamost", settings={"L": 50.0})
    w.append(np.ones((1, 4)), np.ones((1, 4)), np.zeros((1, 4)), ["a"], [1.0], [0.0], [0.0],
             ["f1"])
    w.close(complete=False)  # interrupted
    with pytest.raises(StoreError, match="unfinished store .* other settings.*--restart"):
        StoreWriter(tmp_path / "x.h5", 4, np.arange(4.0), "lamost", settings={"L": 30.0})
    with StoreWriter(tmp_path / "x.h5", 4, np.arange(4.0), "lamost", settings={"L": 30.0},
                     restart=True) as w:
        assert len(w) == 0
        w.append(np.ones((1, 4)), np.ones((1, 4)), np.zeros((1, 4)), ["b"], [1.0], [0.0],
                 [0.0], ["f2"])
    with pytest.raises(StoreError, match="store .* other settings.*--overwrite"):
        StoreWriter(tmp_path / "x.h5", 4, np.arange(4.0), "lamost", settings={"L": 50.0})


# --------------------------------------------------------------------------- 6 labels
def _mdwarf_photometry(n=30):
    from tests.conftest import shared_file

    t = Table.read(shared_file("mdwarf", "mdwarf_labels_olney2020_subset.csv"))[:n]
    phot = Table({"apogee_id": [str(x) for x in t["ap_id"]], "g": t["g"], "r": t["r"],
                  "J": t["J_app"], "H": t["H_app"], "K": t["K_app"],
                  "parallax": t["parallax"]})
    return phot, t


def test_missing_magnitude_codes_never_become_labels(tmp_path):
    from yso_labels.mdwarf import mdwarf_labels

    g, r, J, H, K = ([15.0] * 4, [13.6] * 4, [10.9] * 4, [10.35] * 4, [10.05] * 4)
    g, K = [15.0, 99.0, 15.0, 35.0], [10.05, 10.05, -99.0, 5.0]
    out = mdwarf_labels(g, r, J, H, K)
    assert out["bad_photometry"].tolist() == [False, True, True, False]
    assert out["implausible_labels"].tolist() == [False, False, False, True]
    assert np.isfinite(out["teff"][0]) and 3000 < out["teff"][0] < 4000
    assert np.isnan(out["teff"][1:]).all() and np.isnan(out["logg"][1:]).all()


def test_merge_honours_the_validity_columns(tmp_path):
    from yso_labels.cli.labels import run_mdwarf, run_merge

    phot, published = _mdwarf_photometry(60)
    phot.add_row(["2M_MISSING_G", 99.0, 13.6, 10.9, 10.35, 10.05, 50.0])
    phot.write(tmp_path / "p.csv")
    labels = run_mdwarf(str(tmp_path / "p.csv"), str(tmp_path / "m.csv"))
    valid = labels["hejazi_valid"] & labels["mann_valid"] & labels["veyette_valid"]
    assert labels["bad_photometry"][-1] and 0 < (~valid[:-1]).sum() < 60
    payne = str(__import__("pathlib").Path(__file__).parent / "data" / "payne_sample.txt")
    merged = run_merge(payne, str(tmp_path / "l.csv"), mstar=str(tmp_path / "m.csv"))
    mstar = set(merged["apogee_id"][merged["source"] == "mstar"])
    assert mstar == set(labels["apogee_id"][valid])  # invalid and 99-mag rows left out
    kept = run_merge(payne, str(tmp_path / "l2.csv"), mstar=str(tmp_path / "m.csv"),
                     keep_invalid=True)
    mstar = set(kept["apogee_id"][kept["source"] == "mstar"])
    assert mstar == set(phot["apogee_id"][:-1])  # all published stars, never the 99 row
    # the kept labels are the published ones (released coefficients)
    by_id = {str(a): b for a, b in zip(published["ap_id"], published["T_eff"], strict=True)}
    sel = kept["source"] == "mstar"
    np.testing.assert_allclose(kept["teff"][sel], [by_id[i] for i in kept["apogee_id"][sel]],
                               atol=0.01)


@pytest.mark.parametrize("value", [1e30, np.inf, -np.inf, 50.0])
def test_train_refuses_impossible_labels_before_the_first_epoch(tmp_path, value):
    from apogee_net.network.train import train_apogee_net
    from tests.test_train import make_store

    table = make_store(tmp_path / "s.h5", n=40, npix=64)
    table["teff"][7] = value
    table.write(tmp_path / "labels.csv")
    with pytest.raises(ValueError, match=r"impossible labels.*2M00000007 teff="):
        train_apogee_net(tmp_path / "s.h5", tmp_path / "labels.csv", tmp_path / "run",
                         max_epochs=1, batch_size=8, device="cpu", progress=False, warmup=0.0)
    assert not (tmp_path / "run" / "last.pt").exists()  # no epoch ran


def test_label_sanity_ranges():
    from yso_labels.core.sanity import check_labels, implausible, missing_magnitudes

    assert missing_magnitudes([12.0, 99.0, -99.0, np.nan, -9999.0, 99.999]).tolist() == \
        [False, True, True, True, True, True]
    assert implausible([np.nan, 5000.0, 3e9, np.inf], "teff").tolist() == \
        [False, False, True, True]
    assert implausible([0.3, 7.0], "mg_fe").tolist() == [False, True]  # [X/Fe], dex
    check_labels([[4.5, 3500.0, np.nan]], ["logg", "teff", "fe_h"], ["a"], "t")  # NaN ok
    with pytest.raises(ValueError, match="b logg=12"):
        check_labels([[4.5, 3500.0, 0.0], [12.0, 3500.0, 0.0]], ["logg", "teff", "fe_h"],
                     ["a", "b"], "t")


def test_photometric_cnn_reads_missing_value_codes_as_undetected():
    from yso_labels.photcnn import build_inputs
    from yso_labels.synthetic import LIMITS

    table = Table({"G": [15.0, -99.0, 15.0], "J": [12.0, 12.0, 99.0],
                   "K": [11.0, 11.0, -99.0], "distance": [300.0, 300.0, 300.0]})
    x, problems = build_inputs(table, ["G", "J", "K"], use_radius_lum=False)
    assert problems["no G"].tolist() == [False, True, False]
    assert x[2, 1] == LIMITS["J"] and x[2, 2] == LIMITS["K"]  # undetected, not 99 or -99
