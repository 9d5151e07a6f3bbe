"""The LAMOST pipeline's spectral class as a check on the network's Teff
(apogee_net.lamost.sptype, the CLASS_DISAGREE flag of ``apogee-net lamost predict``)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from apogee_net.lamost.sptype import (
    SpType,
    class_check,
    class_interval,
    dwarf_teff,
    giant_teff,
    parse_subclass,
)
from tests.conftest import SHARED_DATA, shared_file

#: Known-wrong row of the converged toy model (benchmarks/README.md, issue 12 third pass):
#: an F9 star (LASP 5,456 K) returned as a 4,640 K giant with flags 0.
WRONG_FILE, WRONG_TEFF = "spec-55862-B6212_sp06-003.fits", 4640.3


def test_published_dwarf_and_giant_teff():
    # Pecaut & Mamajek (2013) Table 5 / Mamajek's table: G2V 5770 K, K0V 5280, F5V 6510,
    # A0V 9700, M0V 3870, M5V 3030; Alonso et al. (1999) Table 1: K0III 4660, G8III 4860
    for name, teff in {"G2V": 5770, "K0V": 5280, "F5V": 6510, "A0V": 9700, "M0V": 3870,
                       "M5V": 3030, "K7V": 4070}.items():
        assert dwarf_teff(parse_subclass(name).code) == teff, name
    assert giant_teff(30.0) == 4660 and giant_teff(28.0) == 4860
    # between tabulated types: linear in type (M0.5V 3800, M1V 3700 -> 3750 at M0.75)
    assert dwarf_teff(40.75) == pytest.approx(3750.0)
    # beyond K5III: the dwarf scale minus the K5 dwarf-giant difference (4410 - 3950 K)
    assert giant_teff(37.0) == pytest.approx(4070 - 460)
    assert np.isnan(dwarf_teff(-1.0)) and np.isnan(dwarf_teff(46.0))


@pytest.mark.parametrize("text, cls, expected", [
    ("G5", "STAR", SpType(25.0, "")), ("A4III", "STAR", SpType(4.0, "III")),
    ("A1IV", "STAR", SpType(1.0, "IV")), ("A5V", "STAR", SpType(5.0, "V")),
    ("dM5", "STAR", SpType(45.0, "V")), ("gK2", "STAR", SpType(32.0, "III")),
    ("K3.5V", "STAR", SpType(33.5, "V")), (" F9 ", "STAR", SpType(19.0, "")),
    ("Non", "QSO", None), ("G5", "GALAXY", None), ("", "STAR", None), ("gM", "STAR", None),
    ("O5", "STAR", None), ("B9", "STAR", None), ("M7", "STAR", None), ("WD", "STAR", None),
    ("carbon", "STAR", None)])
def test_parse_subclass(text, cls, expected):
    assert parse_subclass(text, cls) == expected


def test_real_header_classes_parse():
    """Every STAR class of the real LAMOST files (the 60 DR1 spectra and the 10 of
    formats/) parses; the QSO does not."""
    from apogee_net.lamost.io import find_lamost_files, read_lamost

    shared_file("lamost", "learninglamost", "index_with_lasp_labels.csv")
    seen = {}
    for path in find_lamost_files([SHARED_DATA / "lamost"]):
        sp = read_lamost(path)
        seen[(sp.cls, sp.subclass)] = parse_subclass(sp.subclass, sp.cls)
    assert len(seen) >= 20
    for (cls, sub), parsed in seen.items():
        assert (parsed is None) == (cls != "STAR"), (cls, sub)
    assert seen[("STAR", "A4III")] == SpType(4.0, "III")
    assert seen[("STAR", "dM5")] == SpType(45.0, "V")


def test_interval_rule():
    # class V: dwarf Teff N subtypes either side (G5V, N = 2: G7V 5530 K .. G3V 5720 K)
    assert class_interval(SpType(25.0, "V"), 2) == (5530.0, 5720.0)
    # no luminosity class: the cool end allows a giant N subtypes later (G7III 4920 K)
    assert class_interval(SpType(25.0, ""), 2) == (4920.0, 5720.0)
    # the default N = 5: G5V from K0V 5280 K to G0V 5920 K; G5 down to K0III 4660 K
    assert class_interval(SpType(25.0, "V")) == (5280.0, 5920.0)
    assert class_interval(SpType(25.0, "")) == (4660.0, 5920.0)
    # A0: nothing hotter in the table, the hot end is open
    assert class_interval(SpType(0.0, "V"))[1] == np.inf


def test_class_check_flags_constructed_rows():
    teff = np.array([4640.0, 6000.0, np.nan, 7000.0, 4200.0, 4500.0, 5000.0])
    subclass = ["F9", "F9", "F9", "A4III", "K7", "dM5", "Non"]
    classes = ["STAR"] * 6 + ["QSO"]
    class_teff, disagree, outside = class_check(teff, subclass, classes,
                                                train_range=(4300.0, 5900.0), tol=100.0)
    np.testing.assert_array_equal(class_teff[:6], [6040, 6040, 6040, 8270, 4070, 3030])
    assert np.isnan(class_teff[6])
    # F9 interval (G4III 5180 K .. F4V 6640 K): 4640 K is out, 6000 K in; NaN Teff not
    # judged; A4III called 7000 K: below A9III (A9V 7440 - 174 K); dM5 at 4500 K: above
    # M0V 3870 K; K7 at 4200 K: inside (M2III .. K2V 5040 K); QSO never
    np.testing.assert_array_equal(disagree, [True, False, False, True, False, True, False])
    # whole interval beyond 4300-5900 K +- 100 K: the A star and the M5 dwarf; K7 overlaps
    np.testing.assert_array_equal(outside, [False, False, False, True, False, True, False])


def _stub_model():
    return SimpleNamespace(label_names=["teff", "logg", "fe_h"],
                           label_range=(np.array([4300.0, 1.5, -1.5]),
                                        np.array([5900.0, 5.0, 0.5])))


def test_real_files_through_the_predict_path(tmp_path, caplog):
    """Real LAMOST files read as ``apogee-net lamost predict`` reads them (FITS directly,
    and through an ingested store): the known-wrong row of the converged toy model is now
    flagged CLASS_DISAGREE, the same star at an F9 dwarf's Teff is not, and an A star is
    OUT_OF_RANGE for a model trained on 4,300-5,900 K. A store without the class columns
    (written before they existed) skips the check with a log line."""
    import h5py

    from apogee_net.inference.chunks import read_chunk
    from apogee_net.lamost.ingest import ingest_lamost
    from apogee_net.lamost.io import read_lamost
    from apogee_net.lamost.predict import FLAGS, class_flags, read_lamost_chunk
    from apogee_net.lamost.preprocess import lamost_grid

    wrong = shared_file("lamost", "learninglamost", WRONG_FILE)
    a_star = next(p for p in sorted(wrong.parent.glob("spec-*.fits"))
                  if parse_subclass(read_lamost(p).subclass) in
                  (SpType(4.0, "III"), SpType(5.0, "V")))
    files = [str(wrong), str(wrong), str(a_star)]
    npix = lamost_grid().size
    chunk = read_lamost_chunk(files, npix)
    assert chunk.subclass[:2] == ["F9", "F9"] and chunk.sp_class[0] == "STAR"
    mean = np.array([[WRONG_TEFF, 2.2, -0.86], [6040.0, 4.2, -0.54], [5000.0, 3.0, 0.0]])
    flags = np.zeros(3, np.int32)
    class_teff = class_flags(flags, mean, chunk, _stub_model(), np.array([100.0, 0.1, 0.1]))
    bit, oor = FLAGS["CLASS_DISAGREE"][0], FLAGS["OUT_OF_RANGE"][0]
    assert class_teff[0] == 6040.0
    assert flags[0] & bit and not flags[1] & bit
    assert flags[2] & oor and not flags[0] & oor

    store = tmp_path / "real.h5"
    ingest_lamost([str(wrong), str(a_star)], store, workers=0, progress=False)
    data = read_chunk({"store": str(store), "start": 0, "stop": 2}, npix)
    assert data.subclass[0] == "F9" and data.sp_class == ["STAR", "STAR"]
    flags = np.zeros(2, np.int32)
    class_flags(flags, mean[[0, 2]], data, _stub_model(), np.array([100.0, 0.1, 0.1]))
    assert flags[0] & bit and flags[1] & oor

    with h5py.File(store, "r+") as h5:   # a store of the toolkit before the class was kept
        del h5["lamost_class"], h5["lamost_subclass"]
    old = read_chunk({"store": str(store), "start": 0, "stop": 2}, npix)
    assert old.subclass is None
    flags = np.zeros(2, np.int32)
    with caplog.at_level(logging.INFO, logger="apogee_net.lamost.predict"):
        class_teff = class_flags(flags, mean[[0, 2]], old, _stub_model(), np.zeros(3))
    assert np.isnan(class_teff).all() and not flags.any()
    assert "class check skipped" in caplog.text
    # appending to that old store adds the columns, "" for its older rows
    ingest_lamost([str(wrong.parent / "spec-55862-B6212_sp06-007.fits")], store, workers=0,
                  progress=False)
    with h5py.File(store, "r") as h5:
        assert [s.decode() for s in h5["lamost_subclass"][:]] == ["", "", "K5"]


def test_synthetic_files_carry_no_class(tmp_path):
    """A simulated spectrum has no pipeline class to be judged against."""
    from apogee_net.lamost.io import read_lamost
    from apogee_net.testing.lamost_spectra import write_lamost_fits

    wl = 10 ** (3.5682 + 1e-4 * np.arange(4000))
    path = write_lamost_fits(tmp_path / "s.fits", wl, np.ones(4000), np.ones(4000), 0.0)
    sp = read_lamost(path)
    assert sp.subclass == "" and parse_subclass(sp.subclass, sp.cls) is None
