"""HDF5 store: round trip, atomic finish, resume, ingest, lazy Dataset, label join."""

from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net.cli import main
from apogee_net.spectra import store
from apogee_net.spectra.apstar import read_apstar
from apogee_net.spectra.dataset import SpectraDataset, collate_batch, join_labels
from apogee_net.spectra.ingest import ingest_apstar
from apogee_net.spectra.simulate import simulate_apstar
from apogee_net.spectra.store import StoreError, StoreWriter, open_store, part_path, store_info
from tests.conftest import shared_file

NPIX = 50


def _rows(n, start=0, seed=0):
    rng = np.random.default_rng(seed + start)
    flux = rng.normal(100, 5, (n, NPIX)).astype(np.float32)
    error = rng.uniform(1, 2, (n, NPIX)).astype(np.float32)
    flux[:, :3], error[:, :3] = np.nan, np.nan
    return {"flux": flux, "error": error,
            "mask": rng.integers(0, 2**14, (n, NPIX)).astype(np.int32),
            "apogee_id": [f"2M{start + i:05d}" for i in range(n)],
            "snr": rng.uniform(50, 200, n).astype(np.float32),
            "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-90, 90, n),
            "source": [f"/data/apStar-{start + i}.fits" for i in range(n)]}


def _writer(path, **kw):
    return StoreWriter(path, NPIX, np.linspace(15000, 17000, NPIX), meta={"STEP": "test"}, **kw)


def test_round_trip_and_atomic_finish(tmp_path):
    path = tmp_path / "s.h5"
    data = _rows(70)
    with _writer(path, chunk_rows=8) as w:
        w.append(**{k: v[:40] for k, v in data.items()})
        w.append(**{k: v[40:] for k, v in data.items()})
        assert part_path(path).exists() and not path.exists()  # nothing final before close
        with pytest.raises(StoreError, match="not finished.*writing it now"):
            open_store(path)
    assert path.exists() and not part_path(path).exists()
    with open_store(path) as h5:
        for key in ("flux", "error", "mask", "snr", "ra", "dec"):
            np.testing.assert_array_equal(h5[key][:], data[key])
        assert h5["apogee_id"].asstr()[:].tolist() == data["apogee_id"]
        assert h5["source"].asstr()[:].tolist() == data["source"]
        assert h5["flux"].chunks == (8, NPIX) and h5["flux"].maxshape == (None, NPIX)
        assert h5.attrs["kind"] == "apstar" and h5.attrs["npix"] == NPIX
        assert bool(h5.attrs["complete"]) and h5.attrs["version"] == store.STORE_VERSION
    info = store_info(path)
    assert info["n_rows"] == 70 and info["provenance"]["STEP"] == "test"


def test_bad_rows_are_refused(tmp_path):
    data = _rows(3)
    with _writer(tmp_path / "s.h5") as w:
        w.append(**data)
        with pytest.raises(ValueError, match="already stored"):
            w.append(**_rows(1))
        bad = _rows(1, start=10)
        bad["error"][0, 10] = 0.0
        with pytest.raises(ValueError, match="non-positive error"):
            w.append(**bad)
        with pytest.raises(ValueError, match="shape"):
            w.append(**{**_rows(2, start=20), "flux": np.zeros((2, NPIX + 1))})


def test_resume_after_interruption_drops_uncommitted_rows(tmp_path):
    path = tmp_path / "s.h5"
    data = _rows(30)
    with pytest.raises(KeyboardInterrupt), _writer(path) as w:
        w.append(**{k: v[:10] for k, v in data.items()})
        raise KeyboardInterrupt
    assert part_path(path).exists() and not path.exists()
    with h5py.File(part_path(path), "r+") as h5:  # a batch killed half-way: 4 stray rows
        assert not h5.attrs["complete"]
        for name in ("flux", "apogee_id"):
            h5[name].resize(14, axis=0)
    with pytest.raises(StoreError, match="incomplete"):
        open_store(part_path(path))
    with _writer(path) as w:
        assert len(w) == 10 and w.stored_sources() == set(data["source"][:10])
        w.append(**{k: v[10:] for k, v in data.items()})
    with open_store(path) as h5:
        np.testing.assert_array_equal(h5["flux"][:], data["flux"])
        assert h5["source"].asstr()[:].tolist() == data["source"]


def test_open_store_refuses_foreign_files(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(StoreError, match="not a spectra store"):
        open_store(other)
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "none.h5")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sims")
    n = 12
    table = Table({"apogee_id": [f"2MSTORE{i:03d}" for i in range(n)],
                   "teff": np.linspace(4200, 6200, n), "logg": np.linspace(1.0, 4.6, n),
                   "fe_h": np.linspace(-0.8, 0.3, n)})
    simulate_apstar(table, folder, emulator=shared_file("payne", "NN_unnormalized_spectra.npz"),
                    progress=False)
    return folder


def _check_against_files(path):
    from apogee_net.spectra.pixmask import DEFAULT_PIXMASK_BITS, apply_pixmask, format_bits

    with open_store(path) as h5:
        sources = h5["source"].asstr()[:].tolist()
        assert len(sources) == len(set(sources))
        assert h5.attrs["pixmask_bits"] == format_bits(DEFAULT_PIXMASK_BITS)
        for row, source in enumerate(sources):
            sp = read_apstar(source)
            flux, error = apply_pixmask(sp.flux, sp.error, sp.mask, DEFAULT_PIXMASK_BITS)
            np.testing.assert_array_equal(h5["flux"][row], flux)
            np.testing.assert_array_equal(h5["error"][row], error)
            np.testing.assert_array_equal(h5["mask"][row], sp.mask)
            assert h5["apogee_id"].asstr()[row] == sp.apogee_id
            assert h5["snr"][row] == pytest.approx(sp.snr, rel=1e-6)
    return sources


def test_ingest_real_and_simulated_files(tmp_path, sim_dir):
    out = tmp_path / "all.h5"
    real = shared_file("apogee", "apStar-dr17-2M17335483-2753043.fits").parent
    first = ingest_apstar(str(real / "apStar-*.fits"), out, workers=0, progress=False)
    assert (first["n_inputs"], first["n_ingested"], first["n_rows"]) == (2, 2, 2)
    # a finished store grows when new files come: copied to .part, appended, renamed
    report = ingest_apstar([sim_dir, str(real / "apStar-*.fits")], out, workers=2,
                           progress=False)
    assert (report["n_inputs"], report["n_already_stored"], report["n_ingested"],
            report["n_failed"]) == (14, 2, 12, 0)
    assert len(_check_against_files(out)) == 14 and not part_path(out).exists()
    assert store_info(out)["provenance"]["resumed"]
    again = ingest_apstar([sim_dir], out, workers=0, progress=False)
    assert again["n_already_stored"] == 12 and again["n_ingested"] == 0


def test_ingest_resumes_after_interruption(tmp_path, sim_dir, monkeypatch):
    out = tmp_path / "s.h5"
    original, calls = StoreWriter.append, []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, "append", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest_apstar(sim_dir, out, workers=0, batch_size=4, progress=False)
    assert part_path(out).exists() and not out.exists()
    assert store_info(out)["n_rows"] == 8 and not store_info(out)["complete"]
    monkeypatch.setattr(StoreWriter, "append", original)
    report = ingest_apstar(sim_dir, out, workers=0, batch_size=4, progress=False)
    assert (report["n_already_stored"], report["n_ingested"], report["n_rows"]) == (8, 4, 12)
    assert out.exists() and not part_path(out).exists()
    assert len(_check_against_files(out)) == 12


def test_ingest_lists_failures_and_duplicates(tmp_path, sim_dir, capsys):
    folder = tmp_path / "in"
    shutil.copytree(sim_dir, folder)
    (folder / "apStar-dr17-2MBROKEN.fits").write_bytes(b"SIMPLE  = garbage")
    shutil.copy(folder / "apStar-sim-2MSTORE001.fits", folder / "apStar-sim-copy.fits")
    out = tmp_path / "s.h5"
    assert main(["ingest", str(folder), "--out", str(out), "--workers", "0",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "13 new" in printed and "1 failed" in printed and "2MBROKEN" in printed
    report = ingest_apstar(folder, tmp_path / "t.h5", workers=0, progress=False)
    assert report["failures"][0]["file"].endswith("apStar-dr17-2MBROKEN.fits")
    assert "not a readable" in report["failures"][0]["reason"]
    assert report["duplicate_ids"] == ["2MSTORE001"]


def test_dataset_is_lazy_and_batches_equal_rows(tmp_path, sim_dir):
    out = tmp_path / "s.h5"
    ingest_apstar(sim_dir, out, workers=0, progress=False)
    rows = np.array([7, 2, 9, 4, 0, 11])
    targets = np.arange(18, dtype=np.float32).reshape(6, 3)
    ds = SpectraDataset(out, rows=rows, targets=targets, weights=np.linspace(0.5, 1, 6))
    assert ds._h5 is None and len(ds) == 6
    ds = pickle.loads(pickle.dumps(ds))  # what DataLoader workers receive
    item = ds[1]
    assert ds._h5 is not None
    assert item["flux"].shape == (8575,) and item["flux"].dtype == torch.float32
    assert item["index"].item() == 2 and item["target"].tolist() == [3.0, 4.0, 5.0]
    assert item["weight"].shape == () and item["index"].dtype == torch.int64
    with open_store(out) as h5:
        np.testing.assert_array_equal(item["flux"].numpy(), h5["flux"][2])
    order = [5, 1, 1, 3, 0]  # unsorted, with a repeat
    batch = ds.__getitems__(order)
    for j, i in enumerate(order):
        single = ds[i]
        for key in single:
            np.testing.assert_array_equal(batch.collated[key][j].numpy(), single[key].numpy())
    loaders = [torch.utils.data.DataLoader(ds, batch_size=4, **kw)
               for kw in ({}, {"collate_fn": collate_batch},
                          {"collate_fn": collate_batch, "num_workers": 1})]
    batches = [next(iter(loader)) for loader in loaders]
    for other in batches[1:]:
        for key in batches[0]:
            np.testing.assert_array_equal(batches[0][key].numpy(), other[key].numpy())
    plain = SpectraDataset(out)
    assert len(plain) == 12 and plain[0]["target"].shape == (0,)
    assert plain[0]["weight"].item() == 1.0
    with pytest.raises(ValueError, match="targets have 2 rows for 6"):
        SpectraDataset(out, rows=rows, targets=np.zeros((2, 3)))
    with pytest.raises(IndexError):
        SpectraDataset(out, rows=[12])


def test_join_labels_reports_both_sides(tmp_path, sim_dir, caplog):
    out = tmp_path / "s.h5"
    ingest_apstar(sim_dir, out, workers=0, progress=False)
    ids = [f"2MSTORE{i:03d}" for i in range(2, 12)] + ["2MNOSPEC1", "2MNOSPEC2"]
    labels = Table({"apogee_id": ids, "teff": np.linspace(4000, 5000, 12),
                    "logg": np.linspace(1, 4, 12), "fe_h": np.zeros(12),
                    "split": ["train"] * 12, "source": ["payne"] * 12})
    labels["fe_h"][3] = np.nan
    path = tmp_path / "labels.csv"
    labels.write(path, format="ascii.csv")
    with caplog.at_level("INFO"):
        rows, joined, report = join_labels(out, path)
    assert "2 without spectra" in caplog.text
    assert report["n_joined"] == 10 and report["n_labels_without_spectra"] == 2
    assert report["labels_without_spectra"] == ["2MNOSPEC1", "2MNOSPEC2"]
    assert report["spectra_without_labels"] == ["2MSTORE000", "2MSTORE001"]
    assert report["n_nonfinite_labels"] == 1
    assert np.all(np.diff(rows) > 0) and joined["row"].tolist() == rows.tolist()
    with open_store(out) as h5:
        assert h5["apogee_id"].asstr()[rows].tolist() == joined["apogee_id"].tolist()
    assert joined["teff"][joined["apogee_id"] == "2MSTORE004"][0] == labels["teff"][2]
    rows2, _, report2 = join_labels(out, labels, require_finite=True)
    assert len(rows2) == 9 and report2["n_joined"] == 9
    with pytest.raises(ValueError, match="missing column"):
        join_labels(out, labels[["apogee_id", "teff"]])


def test_ingest_of_only_unreadable_files_fails_and_leaves_nothing(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "apStar-dr17-2MBROKEN.fits").write_bytes(b"SIMPLE  = garbage")
    out = tmp_path / "s.h5"
    with pytest.raises(ValueError, match="no input file could be used.*2MBROKEN"):
        ingest_apstar(folder, out, workers=0, progress=False)
    assert not out.exists() and not store.part_path(out).exists()


def test_folder_mixing_apstar_and_asstar_ingests_both(tmp_path, sim_dir):
    """LCO spectra (asStar, DR16+) are apStar-format files: the folder expander takes both."""
    from apogee_net.spectra.inputs import expand_inputs

    folder = tmp_path / "mixed"
    (folder / "lco25m").mkdir(parents=True)
    shutil.copy(sim_dir / "apStar-sim-2MSTORE001.fits", folder)
    shutil.copy(sim_dir / "apStar-sim-2MSTORE002.fits",
                folder / "lco25m" / "asStar-sim-2MSTORE002.fits")
    (folder / "notes.fits").write_bytes(b"")  # other names are left alone
    assert [p.name for p in expand_inputs(folder)] == ["apStar-sim-2MSTORE001.fits",
                                                      "asStar-sim-2MSTORE002.fits"]
    report = ingest_apstar(folder, tmp_path / "s.h5", workers=0, progress=False)
    assert (report["n_inputs"], report["n_ingested"], report["n_failed"]) == (2, 2, 0)
    with open_store(tmp_path / "s.h5") as h5:
        assert sorted(h5["apogee_id"].asstr()[:]) == ["2MSTORE001", "2MSTORE002"]
