"""Prediction and ingest under ``torchrun`` (2 CPU processes, gloo): the merged catalogue or
store equals the one-process output bit for bit, and a run in which one rank dies mid-run
resumes without lost or duplicated rows (``yso_labels.core.shards``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from astropy.table import Table

from apogee_net.cli import main
from yso_labels.core.shards import FAULT_EXIT_STATUS, Shards

#: Run by torchrun: the CLI commands of a JSON file, with ingest parts of 2 files (so that
#: a handful of files makes several parts); the fault hook is set for command ``fault_at``.
SCRIPT = """
import json, os, sys
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
import apogee_net.spectra.ingest as ingest
ingest.PART_FILES = 2
from apogee_net.cli import main
cfg = json.loads(open(sys.argv[1]).read())
for i, argv in enumerate(cfg["commands"]):
    if i == cfg.get("fault_at"):
        os.environ["YSO_FAULT_EXIT_AFTER_PARTS"] = "1:1"
    else:
        os.environ.pop("YSO_FAULT_EXIT_AFTER_PARTS", None)
    rc = main(argv)
    if rc:
        sys.exit(rc)
"""


def torchrun(tmp: Path, commands: list[list[str]], fault_at: int | None = None):
    script, cfg = tmp / "run.py", tmp / f"cfg-{fault_at}.json"
    script.write_text(SCRIPT.format(root=str(Path(__file__).resolve().parents[1])))
    cfg.write_text(json.dumps({"commands": commands, "fault_at": fault_at}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("YSO_FAULT_EXIT_AFTER_PARTS", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), str(cfg)],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """7 simulated apStar files (one of them broken), an mwmStar file with two APOGEE
    spectra, 7 LAMOST files (one without redshift), an untrained
    APOGEE Net and an untrained LAMOST Bayesian CNN."""
    from apogee_net.lamost.labels import LABELS
    from apogee_net.lamost.model import BayesianCNN
    from apogee_net.lamost.preprocess import lamost_grid
    from apogee_net.network.model import APOGEENet, Preprocess
    from apogee_net.spectra.simulate import simulate_apstar
    from apogee_net.testing.lamost_spectra import simulate_lamost, write_lamost_fits
    from yso_labels.core.checkpoint import save_checkpoint
    from yso_labels.core.scaling import Standardiser

    tmp = tmp_path_factory.mktemp("survey")
    rng = np.random.default_rng(0)
    n = 6
    labels = Table({"apogee_id": [f"2M0000000{i}+0000000" for i in range(n)],
                    "teff": rng.uniform(3900, 6200, n), "logg": rng.uniform(1, 4.6, n),
                    "fe_h": rng.uniform(-0.6, 0.2, n)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simulate_apstar(labels, tmp / "apstar", emulator="analytic", seed=2, progress=False)
    (tmp / "apstar" / "apStar-dr17-2M00000003+0000001.fits").write_text("not FITS")  # broken
    from apogee_net.spectra.apstar import read_apstar
    from tests.test_mwm import _ivar, _write

    sp = read_apstar(next((tmp / "apstar").glob("apStar-sim-*.fits")))
    row = (np.nan_to_num(sp.flux), _ivar(sp), sp.snr)
    _write(tmp / "apstar" / "mwmStar-0.6.0-54392544.fits", [row], [row])  # SDSS-V: 2 rows
    torch.manual_seed(0)
    model = APOGEENet()
    prep = Preprocess(Standardiser(np.ones(model.npix), np.full(model.npix, 0.2)),
                      Standardiser([2.88, 4716.9, -0.22], [1.16, 733.0, 0.30]), "median")
    save_checkpoint(tmp / "apogee.pt", model, model.arch_kwargs, {
        "label_names": ["logg", "teff", "fe_h"], **prep.to_meta(),
        "label_range": [[0.0, 3000.0, -2.0], [6.0, 8000.0, 1.0]]})

    lab = {k: rng.uniform(-0.1, 0.2, n + 1) for k in LABELS}
    lab.update(teff=rng.uniform(3900, 5300, n + 1), logg=rng.uniform(0.8, 3.6, n + 1))
    sim = simulate_lamost(lab, seed=3)
    for i in range(n + 1):
        write_lamost_fits(tmp / "lamost" / f"s{i:03d}.fits", sim.wavelength, sim.flux[i],
                          sim.ivar[i], None if i == 4 else sim.z[i], float(sim.snr[i]),
                          obsid=7000 + i)  # file 4: no redshift, a failure
    npix = lamost_grid().size
    bcnn = BayesianCNN(n_targets=len(LABELS), npix=npix, filters=(2, 2, 2), hidden=(16, 8))
    lprep = Preprocess(Standardiser(np.ones(npix), np.full(npix, 0.1)),
                       Standardiser(np.zeros(len(LABELS)), np.ones(len(LABELS))), "none")
    save_checkpoint(tmp / "lamost.pt", bcnn, bcnn.arch_kwargs, {
        "model_kind": "lamost-bcnn", "label_names": list(LABELS), **lprep.to_meta(),
        "label_range": [[-9.0] * len(LABELS), [9e4] * len(LABELS)]})
    return tmp


def commands(tmp: Path, out: Path) -> dict[str, list[str]]:
    return {
        "ingest": ["ingest", str(tmp / "apstar"), "--out", str(out / "apstar.h5"),
                   "--workers", "0", "--no-progress"],
        "predict": ["predict", str(tmp / "apstar"), "--model", str(tmp / "apogee.pt"),
                    "--out", str(out / "cat.fits"), "--realizations", "4",
                    "--chunk-size", "2", "--device", "cpu"],
        "lamost ingest": ["lamost", "ingest", str(tmp / "lamost"), "--out",
                          str(out / "lamost.h5"), "--workers", "0", "--no-progress"],
        "lamost predict": ["lamost", "predict", str(tmp / "lamost"), "--model",
                           str(tmp / "lamost.pt"), "--out", str(out / "lamost.fits"),
                           "--passes", "4", "--chunk-size", "2", "--device", "cpu",
                           "--no-progress"],
    }


@pytest.fixture(scope="module")
def single(survey):
    """The outputs of one process."""
    out = survey / "single"
    torch.set_num_threads(1)
    for argv in commands(survey, out).values():
        assert main(argv) == 0, argv
    return out


def assert_same_catalogue(a: Path, b: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta, tb = Table.read(a, mask_invalid=False), Table.read(b, mask_invalid=False)
    assert ta.colnames == tb.colnames and len(ta) == len(tb)
    for name in ta.colnames:
        x, y = np.asarray(ta[name]), np.asarray(tb[name])
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name  # bit for bit
    for key in ("NREAL", "PASSES", "LABELS", "MODELSHA"):
        assert ta.meta.get(key) == tb.meta.get(key)


def assert_same_store(a: Path, b: Path) -> None:
    with h5py.File(a, "r") as ha, h5py.File(b, "r") as hb:
        assert set(ha) == set(hb)
        for name in ha:
            assert np.array_equal(ha[name][:], hb[name][:], equal_nan=ha[name].dtype.kind
                                  == "f"), name
        for key in ("failures", "n_rows", "complete", "kind", "settings", "pixmask_bits"):
            assert ha.attrs.get(key) == hb.attrs.get(key), key
        assert len(set(ha["source"][:])) == ha["source"].shape[0]  # no duplicated row


def test_two_processes_equal_one(survey, single):
    out = survey / "two"
    cmds = commands(survey, out)
    proc = torchrun(survey, list(cmds.values()))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with h5py.File(single / "apstar.h5", "r") as h5:  # 6 good apStar files, 2 mwm rows
        assert h5["flux"].shape[0] == 8 and "not FITS" not in h5.attrs["failures"]
        assert "apStar-dr17-2M00000003+0000001.fits" in h5.attrs["failures"]
    assert_same_store(single / "apstar.h5", out / "apstar.h5")
    assert_same_store(single / "lamost.h5", out / "lamost.h5")
    assert_same_catalogue(single / "cat.fits", out / "cat.fits")
    assert_same_catalogue(single / "lamost.fits", out / "lamost.fits")
    # input order (a straight-line reference, not just the one-process run): the files sorted
    files = sorted(str(f) for f in (survey / "apstar").glob("apStar-*.fits"))
    mwm = str(next((survey / "apstar").glob("mwmStar-*.fits")))
    cat = Table.read(out / "cat.fits")  # the broken file is an UNREADABLE row
    assert list(np.asarray(cat["file"]).astype(str)) == [*files, mwm, mwm]
    with h5py.File(out / "apstar.h5", "r") as h5:
        assert [s.decode() for s in h5["source"][:]] == [
            *(f for f in files if "dr17" not in f), f"{mwm}[0]", f"{mwm}[1]"]
    lamost = Table.read(out / "lamost.fits")
    assert list(np.asarray(lamost["spec_id"]).astype(str)) == [
        str(7000 + i) if i != 4 else "s004" for i in range(7)]
    assert not list(out.glob("*.parts"))


def test_killed_rank_resumes_without_lost_or_duplicated_rows(survey, single):
    out = survey / "killed"
    cmds = commands(survey, out)
    run = [cmds["ingest"], cmds["predict"]]
    killed = torchrun(survey, run, fault_at=0)  # rank 1 dies after its first ingest part
    assert killed.returncode != 0 and not (out / "apstar.h5").exists()
    assert re.search(rf"rank\s*: 1 .*\n\s*exitcode\s*: {FAULT_EXIT_STATUS}", killed.stderr)
    assert (out / "apstar.h5.parts" / "manifest.json").exists()
    with h5py.File(out / "apstar.h5.part", "r") as h5:  # closed while the ranks worked: valid
        assert h5.attrs["n_rows"] == 0
    # 9 files, 5 parts: rank 1 had parts 1 and 3 and died after part 1; part 3 as a rank
    # killed in the middle of writing it would leave it
    assert not (out / "apstar.h5.parts" / "part-000003.json").exists()
    (out / "apstar.h5.parts" / "part-000003.h5.part").write_bytes(b"killed mid-write")
    killed = torchrun(survey, run, fault_at=1)  # ingest resumes; rank 1 dies in predict
    assert killed.returncode != 0 and (out / "apstar.h5").exists(), killed.stderr[-3000:]
    assert "ingest: resuming from" in killed.stderr  # the finished parts were kept
    assert "ingest part 3: " in killed.stderr and "writing the part again" in killed.stderr
    assert not (out / "cat.fits").exists() and list((out / "cat.fits.parts").glob("part-*"))
    assert_same_store(single / "apstar.h5", out / "apstar.h5")
    resumed = torchrun(survey, [cmds["predict"]])  # (a rerun of ingest retries the broken file)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    assert_same_catalogue(single / "cat.fits", out / "cat.fits")
    assert_same_store(single / "apstar.h5", out / "apstar.h5")


def test_shards_share_out_every_part_once():
    shards = Shards()  # one process: everything is this rank's
    assert shards.world == 1 and shards.mine([3, 5, 8]) == [3, 5, 8]
    assert shards.from_main(lambda: 7) == 7
    shards.rank, shards.world = 1, 3
    assert shards.mine(list(range(8))) == [1, 4, 7]
    seen = []
    for r in range(3):
        shards.rank = r
        seen += shards.mine(list(range(8)))
    assert sorted(seen) == list(range(8))
