"""YSO selection (Olney et al. 2020 §4.1 triangle), log g age bins (§4.2), region matching
and impostors, bad input and the ``ysos select`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from apogee_net.cli import main as cli_main
from apogee_net.yso import report as ysos_report
from apogee_net.yso import selection as ysos
from yso_labels.core.tables import TableError, read_meta, read_table
from yso_labels.regions import default_regions

TRI = np.array([(2200.0, 4.4), (4500.0, 3.9), (3200.0, 1.7)])


def _catalogue(teff, logg, ra=None, dec=None, **cols) -> Table:
    n = len(teff)
    t = Table({"apogee_id": [f"2M{i:08d}" for i in range(n)],
               "ra": np.full(n, 83.82) if ra is None else ra,
               "dec": np.full(n, -5.39) if dec is None else dec,
               "teff": np.asarray(teff, float), "logg": np.asarray(logg, float)})
    for k, v in cols.items():
        t[k] = v
    return t


# ---------------------------------------------------------------- triangle

def test_published_triangle_vertices():
    assert np.array_equal(np.asarray(ysos.YSO_TRIANGLE), TRI)  # Olney 2020 §4.1


def test_vertices_and_edge_midpoints_are_inside():
    assert ysos.in_polygon(TRI[:, 0], TRI[:, 1]).all()
    mid = (TRI + np.roll(TRI, -1, axis=0)) / 2
    assert ysos.in_polygon(mid[:, 0], mid[:, 1]).all()


@pytest.mark.parametrize("edge", range(3))
def test_points_on_each_side_of_every_edge(edge):
    a, b = TRI[edge], TRI[(edge + 1) % 3]
    opposite = TRI[(edge + 2) % 3]
    mid = (a + b) / 2
    # unit normal of the edge in (Teff/1000, log g), pointing away from the opposite vertex
    d = (b - a) / [1000.0, 1.0]
    normal = np.array([d[1], -d[0]]) / np.hypot(*d)
    if np.dot(normal, (opposite - mid) / [1000.0, 1.0]) > 0:
        normal = -normal
    for eps in (1e-3, 0.05):
        out = mid + eps * normal * [1000.0, 1.0]
        inn = mid - eps * normal * [1000.0, 1.0]
        assert not ysos.in_polygon(out[0], out[1])[0], (edge, eps, out)
        assert ysos.in_polygon(inn[0], inn[1])[0], (edge, eps, inn)


def test_hand_picked_points():
    # a 1 Myr M star, the cool and hot vertices' neighbourhood, a dwarf, a giant, a hot star
    teff = [3300, 2250, 4450, 3500, 4600, 6000, 3200, 3200]
    logg = [3.8, 4.38, 3.905, 4.8, 2.5, 4.0, 1.69, 1.71]
    expect = [True, True, True, False, False, False, False, True]
    assert ysos.in_polygon(teff, logg).tolist() == expect


def test_orientation_and_nonfinite():
    assert ysos.in_polygon([3300], [3.8], TRI[::-1])[0]
    assert not ysos.in_polygon([np.nan, 3300], [3.8, np.nan]).any()


def test_custom_polygon_and_bad_vertices():
    square = [(3000, 3.0), (4000, 3.0), (4000, 4.0), (3000, 4.0)]
    assert ysos.in_polygon([3500, 3500, 4100], [3.5, 4.1, 3.5], square).tolist() == \
        [True, False, False]
    with pytest.raises(ValueError, match="convex"):
        ysos.check_vertices([(3000, 3.0), (4000, 4.0), (4000, 3.0), (3000, 4.0)])  # bow tie
    with pytest.raises(ValueError, match="convex"):
        ysos.check_vertices([(2000, 1.0), (3000, 2.0), (4000, 3.0)])  # collinear
    with pytest.raises(ValueError, match="at least 3"):
        ysos.check_vertices([(2000, 1.0), (3000, 2.0)])


# ---------------------------------------------------------------- age bins

def test_age_bin_edges_and_ranges():
    bins = ysos.age_bin_table()
    assert bins["logg_max"][:-1].tolist() == [3.6, 3.8, 4.0, 4.2]  # Olney 2020 §4.2
    assert bins["logg_min"][1:].tolist() == [3.6, 3.8, 4.0, 4.2]
    assert bins["age_max_myr"][:4].tolist() == [1.0, 2.0, 3.0, 5.0]
    assert bins["age_min_myr"][1:].tolist() == [1.0, 2.0, 3.0, 5.0]
    logg = [3.0, 3.5999, 3.6, 3.7999, 3.8, 3.9, 4.0, 4.1999, 4.2, 4.4, np.nan]
    out = ysos.age_bins(_catalogue(np.full(len(logg), 3300.0), logg))
    assert out["age_bin"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, -1]
    assert out["age_range"].tolist()[:3] == ["<~1 Myr", "<~1 Myr", "1-2 Myr"]
    assert out["age_range"][8] == ">~5 Myr" and out["age_range"][10] == ""


def test_age_bins_as_data_are_checked():
    rows = [dict(r) for r in ysos.AGE_BINS]
    rows[2]["logg_min"] = 3.85  # gap between bins 1 and 2
    with pytest.raises(ValueError, match="contiguous"):
        ysos.age_bin_table(rows)


# ---------------------------------------------------------------- regions and impostors

def test_region_matching_at_known_positions():
    regions = default_regions()
    onc = regions[regions["name"] == "ONC"][0]
    ngc = regions[regions["name"] == "NGC 2264"][0]
    c = SkyCoord(ngc["ra"] * u.deg, ngc["dec"] * u.deg)
    just_in = c.directional_offset_by(0 * u.deg, 0.97 * ngc["radius"] * u.deg)
    just_out = c.directional_offset_by(0 * u.deg, 1.03 * ngc["radius"] * u.deg)
    ra = [onc["ra"], 56.13, 52.29, just_in.ra.deg, just_out.ra.deg, 68.0 + 6.0, 200.0]
    dec = [onc["dec"], 32.16, 31.32, just_in.dec.deg, just_out.dec.deg, 25.0, 60.0]
    out = ysos.match_regions(_catalogue(np.full(7, 3300.0), np.full(7, 3.8), ra, dec))
    assert out["region"].tolist()[:5] == ["ONC", "IC 348", "NGC 1333", "NGC 2264", "NGC 2264"]
    assert out["region_complex"][1] == "Perseus"
    assert out["impostor"].tolist() == [False, False, False, False, True, False, True]
    assert out["region_sep_deg"][0] == pytest.approx(0.0, abs=1e-6)
    assert out["region_sep_deg"][4] == pytest.approx(1.03 * ngc["radius"], rel=1e-6)


def test_impostor_fraction_on_constructed_sky():
    """30 stars at region centres, 6 stars at least 20 deg from every region, 2 without a
    position: impostor fraction 6 / 36, the NaN positions neither impostors nor counted."""
    regions = default_regions()
    idx = np.arange(30) % len(regions)
    ra = list(np.asarray(regions["ra"])[idx])
    dec = list(np.asarray(regions["dec"])[idx])
    far = [(180.0, 60.0), (150.0, -40.0), (10.0, 20.0), (300.0, 45.0), (0.0, -70.0),
           (120.0, 20.0)]
    centres = SkyCoord(np.asarray(regions["ra"]) * u.deg, np.asarray(regions["dec"]) * u.deg)
    for r, d in far:
        sep = SkyCoord(r * u.deg, d * u.deg).separation(centres).deg
        assert np.all(sep - np.asarray(regions["radius"]) > 10), (r, d)
    ra += [f[0] for f in far] + [np.nan, np.nan]
    dec += [f[1] for f in far] + [np.nan, 5.0]
    cands = ysos.match_regions(_catalogue(np.full(38, 3300.0), np.full(38, 3.8), ra, dec))
    assert int(cands["impostor"].sum()) == 6
    assert ysos.impostor_fraction(cands) == pytest.approx(6 / 36)
    summary = ysos.summarize(ysos.select(cands), ysos.age_bins(cands))
    assert summary["n_impostors"] == 6 and summary["n_without_position"] == 2
    assert summary["impostor_fraction"] == pytest.approx(6 / 36)
    onc = next(r for r in summary["regions"] if r["region"] == "ONC")
    assert onc["n"] == int(np.sum(np.asarray(cands["region"]) == "ONC")) > 0


def test_impostor_fraction_empty_is_nan():
    empty = ysos.match_regions(_catalogue([], []))
    assert np.isnan(ysos.impostor_fraction(empty))


# ---------------------------------------------------------------- cuts

def test_quality_cuts():
    cat = _catalogue([3300.0] * 5, [3.8] * 5, teff_err=[20.0, 150.0, 20.0, 20.0, np.nan],
                     logg_err=[0.05] * 5, snr=[100.0, 100.0, 5.0, 100.0, 100.0],
                     flags=np.array([0, 0, 0, 4, 0], np.int32))
    sel = ysos.select(cat, max_teff_err=100.0, min_snr=10.0)
    assert sel["in_yso_region"].all()
    assert sel["yso_candidate"].tolist() == [True, False, False, False, False]
    # bit mask: bit 2 (value 4) kept when only bit 0 is bad; flags ignored with 0
    sel = ysos.select(cat, bad_flags=1)
    assert sel["yso_candidate"][3]
    assert not ysos.select(cat)["yso_candidate"][3]
    with pytest.raises(TableError, match="min_snr|snr"):
        ysos.select(cat["teff", "logg"], min_snr=10.0)


# ---------------------------------------------------------------- files and bad input

def _write(table: Table, path):
    table.write(path, overwrite=True)
    return path


def test_select_file_writes_candidates_with_provenance(tmp_path):
    cat = _catalogue([3300.0, 5000.0, 3000.0], [3.8, 4.5, 4.1], flags=np.zeros(3, np.int16))
    cat.meta["STEP"] = "predict"
    src = _write(cat, tmp_path / "pred.fits")
    out = tmp_path / "cands.fits"
    rc = cli_main(["ysos", "select", str(src), "--out", str(out)])
    assert rc == 0
    cands = read_table(out)
    assert cands["apogee_id"].astype(str).tolist() == ["2M00000000", "2M00000002"]
    assert cands["age_bin"].tolist() == [2, 3]
    meta = read_meta(out)
    assert meta["STEP"] == "ysos" and meta["CATSTEP"] == "predict"
    assert json.loads(meta["OPTIONS"])["vertices"] == TRI.tolist()


def test_custom_vertices_from_cli(tmp_path):
    src = _write(_catalogue([3300.0, 5000.0], [3.8, 4.5]), tmp_path / "pred.fits")
    out = tmp_path / "c.fits"
    assert cli_main(["ysos", "select", str(src), "--out", str(out), "--vertices",
                     "4000,4.0", "6000,4.0", "6000,5.0"]) == 0
    assert read_table(out)["teff"].tolist() == [5000.0]


def test_missing_columns_give_clear_errors(tmp_path, capsys):
    no_sky = _write(_catalogue([3300.0], [3.8])["apogee_id", "teff", "logg"],
                    tmp_path / "nosky.fits")
    with pytest.raises(TableError, match=r"missing column\(s\) ra, dec.*--no-sky"):
        ysos_report.select_file(no_sky, tmp_path / "x.fits")
    assert cli_main(["ysos", "select", str(no_sky), "--out", str(tmp_path / "x.fits")]) == 1
    assert "ra, dec" in capsys.readouterr().err
    summary = ysos_report.select_file(no_sky, tmp_path / "x.fits", sky=False)
    assert summary["n_candidates"] == 1 and "impostor_fraction" not in summary
    no_labels = _write(_catalogue([3300.0], [3.8])["apogee_id", "ra", "dec", "teff"],
                       tmp_path / "nolabels.fits")
    with pytest.raises(TableError, match=r"missing column\(s\) logg"):
        ysos_report.read_catalogue(no_labels)
    text = _catalogue([3300.0], [3.8])
    text["teff"] = ["hot"]
    with pytest.raises(TableError, match="teff must be numeric"):
        ysos.select(text)


def test_zero_candidates_is_a_result(tmp_path):
    src = _write(_catalogue([5000.0, 5500.0], [4.5, 2.5], flags=np.zeros(2, np.int16)),
                 tmp_path / "pred.fits")
    summary = ysos_report.select_file(src, tmp_path / "c.fits")
    assert summary["n_candidates"] == 0 and summary["impostor_fraction"] is None
    assert len(read_table(tmp_path / "c.fits")) == 0
    assert "zero YSO candidates" in " ".join(summary["notes"])
    out = tmp_path / "rep"
    # the report of nothing still writes every file and says what it found
    assert cli_main(["ysos", "report", str(src), "--out", str(out)]) == 0
    on_disk = json.loads((out / "yso_summary.json").read_text())
    assert on_disk["n_candidates"] == 0 and on_disk["n_catalogue"] == 2
    assert all(b["n"] == 0 for b in on_disk["age_bins"])
    for name in ("yso_kiel.png", "yso_sky.png", "yso_age_maps.png", "yso_logg_kde.png"):
        assert (out / name).stat().st_size > 1000


def test_report_with_positionless_candidates(tmp_path):
    """Candidates without ra/dec are neither members nor impostors and do not break maps."""
    ra = np.array([83.82, 83.9, np.nan, 200.0])
    dec = np.array([-5.39, -5.3, np.nan, 60.0])
    src = _write(_catalogue([3300.0] * 4, [3.7, 3.9, 3.8, 3.85], ra, dec), tmp_path / "p.fits")
    summary = ysos_report.report(src, tmp_path / "rep")
    assert summary["n_candidates"] == 4 and summary["n_without_position"] == 1
    assert summary["impostor_fraction"] == pytest.approx(1 / 3)
    assert (tmp_path / "rep" / "yso_age_maps.png").exists()
