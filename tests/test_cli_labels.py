"""``yso-labels mdwarf`` and ``yso-labels merge`` end to end, including bad input."""

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from tests.conftest import shared_file
from yso_labels.cli import main
from yso_labels.core.tables import read_meta, read_table

PAYNE = Path(__file__).parent / "data" / "payne_sample.txt"


@pytest.fixture()
def photometry(tmp_path):
    src = Table.read(shared_file("mdwarf", "mdwarf_labels_olney2020_subset.csv"),
                     format="ascii.csv")
    t = Table({"apogee_id": src["ap_id"], "ra": src["ra_APOGEE"], "dec": src["dec_APOGEE"],
               "g": src["g"], "r": src["r"], "J": src["J_app"], "H": src["H_app"],
               "K": src["K_app"], "parallax": src["parallax"],
               "parallax_error": src["parallax"] / 20})
    path = tmp_path / "phot.csv"
    t.write(path)
    return path, src


def test_mdwarf_cli_reproduces_published(photometry, tmp_path):
    path, src = photometry
    out = tmp_path / "mdwarf.fits"
    assert main(["mdwarf", str(path), str(out)]) == 0
    t = read_table(out)
    assert np.max(np.abs(t["teff"] - src["T_eff"])) < 0.05
    assert {"hejazi_valid", "mann_valid", "veyette_valid", "bad_photometry"} <= set(t.colnames)
    meta = read_meta(out)
    assert meta["COEFSET"] == "released" and meta["VERSION"]


def test_mdwarf_cli_select_and_csv(photometry, tmp_path):
    path, _ = photometry
    out = tmp_path / "mdwarf.csv"
    assert main(["mdwarf", str(path), str(out), "--select", "--coefficients", "paper"]) == 0
    t = read_table(out)
    assert 300 < len(t) <= 400
    jk = t["J"] - t["K"]
    assert np.all((jk > 0.7) & (jk < 1.05))
    assert read_meta(out)["COEFSET"] == "paper"


def test_mdwarf_cli_missing_columns(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    Table({"g": [17.0], "r": [15.0], "J": [12.0]}).write(bad)
    assert main(["mdwarf", str(bad), str(tmp_path / "o.fits")]) != 0
    err = capsys.readouterr().err
    assert "bad.csv" in err and "H" in err and "K" in err and "Traceback" not in err
    assert not (tmp_path / "o.fits").exists()


def test_mdwarf_cli_empty_selection(tmp_path, capsys):
    p = tmp_path / "giants.csv"
    Table({"g": [14.0], "r": [13.0], "J": [11.0], "H": [10.3], "K": [10.1],
           "parallax": [0.2], "parallax_error": [0.1]}).write(p)
    assert main(["mdwarf", str(p), str(tmp_path / "o.fits"), "--select"]) != 0
    assert "no stars left" in capsys.readouterr().err


def test_merge_cli(photometry, tmp_path):
    path, _ = photometry
    mstar = tmp_path / "mdwarf.fits"
    main(["mdwarf", str(path), str(mstar)])
    out = tmp_path / "labels.fits"
    assert main(["merge", "--payne", str(PAYNE), "--mstar", str(mstar), "--out", str(out),
                 "--seed", "7"]) == 0
    t = read_table(out)
    assert set(t["source"]) == {"payne", "mstar"}
    assert (t["source"] == "payne").sum() == 4
    assert set(t["split"]) <= {"train", "dev", "cal", "test"}
    meta = read_meta(out)
    assert '"seed": 7' in meta["OPTIONS"] and meta["MCOEFSET"] == "released"
