"""YSO report figures and the report files on a realistic synthetic prediction catalogue:
YSO clusters at the real region positions with PARSEC (Teff, log g) at each cluster's age,
field dwarfs and giants over the sky, and a few impostors (young-looking field stars)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

from apogee_net.cli import main as cli_main
from apogee_net.yso import maps as ysomaps
from apogee_net.yso import report as ysos_report
from yso_labels.core.tables import read_meta, read_table
from yso_labels.isochrones import interpolate, load_isochrones
from yso_labels.regions import default_regions

#: (region, number of YSOs, median age in Myr) of the synthetic clusters.
CLUSTERS = (("ONC", 260, 1.5), ("Orion A", 160, 2.5), ("Orion B", 90, 1.2),
            ("sigma Ori", 60, 3.0), ("lambda Ori", 70, 5.0), ("NGC 1333", 50, 1.0),
            ("IC 348", 70, 2.5), ("NGC 2264", 80, 2.5), ("Taurus", 40, 2.0),
            ("Pleiades", 6, 60.0))
N_IMPOSTORS = 40


@pytest.fixture(scope="module")
def grid() -> Table:
    return load_isochrones()


def _isotropic(rng, n):
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return ra, dec


def _far_from_regions(rng, n, regions):
    ra, dec = np.empty(0), np.empty(0)
    centres = SkyCoord(np.asarray(regions["ra"]) * u.deg, np.asarray(regions["dec"]) * u.deg)
    while len(ra) < n:
        r, d = _isotropic(rng, 4 * n)
        sep = SkyCoord(r * u.deg, d * u.deg)[:, None].separation(centres[None, :]).deg
        far = np.all(sep > np.asarray(regions["radius"]) + 5.0, axis=1)
        ra, dec = np.concatenate([ra, r[far]]), np.concatenate([dec, d[far]])
    return ra[:n], dec[:n]


def synthetic_catalogue(grid: Table, seed: int = 1, n_field: int = 1500) -> Table:
    """A prediction catalogue (columns of ``apogee_net.inference.predict``) plus ``disk``
    (Class II or III) and ``truth`` (cluster name, "field" or "impostor")."""
    rng = np.random.default_rng(seed)
    regions = default_regions()
    parts = []
    for name, n, age in CLUSTERS:
        r = regions[regions["name"] == name][0]
        # Gaussian cluster of sigma radius/3, truncated at 0.95 radius (Rayleigh separations)
        umin = np.exp(-0.5 * (0.95 * 3) ** 2)
        sep = r["radius"] / 3 * np.sqrt(-2 * np.log(rng.uniform(umin, 1, n)))
        pos = SkyCoord(r["ra"] * u.deg, r["dec"] * u.deg).directional_offset_by(
            rng.uniform(0, 360, n) * u.deg, sep * u.deg)
        ra, dec = pos.ra.deg, pos.dec.deg
        log_age = np.log10(age * 1e6) + rng.normal(0, 0.15, n)
        mass = np.exp(rng.uniform(np.log(0.12), np.log(1.0), n))
        iso = interpolate(grid, log_age, mass, columns=["teff", "logg"], outside="nan")
        disk = rng.random(n) < 0.5
        logg = iso["logg"] + rng.normal(0, 0.06, n) - 0.1 * disk  # veiled Class II lower
        parts.append(Table({"ra": ra, "dec": dec, "teff": iso["teff"] + rng.normal(0, 40, n),
                            "logg": logg, "disk": np.where(disk, "Class II", "Class III"),
                            "truth": np.full(n, name)}))
    ra, dec = _isotropic(rng, n_field)
    giant = rng.random(n_field) < 0.45
    teff = np.where(giant, rng.uniform(3800, 5200, n_field), rng.uniform(3000, 6500, n_field))
    logg = np.where(giant, 2.4 + (teff - 4600) / 800 + rng.normal(0, 0.2, n_field),
                    4.75 - (teff - 3000) / 3500 * 0.5 + rng.normal(0, 0.07, n_field))
    parts.append(Table({"ra": ra, "dec": dec, "teff": teff, "logg": logg,
                        "disk": np.full(n_field, ""), "truth": np.full(n_field, "field")}))
    ra, dec = _far_from_regions(rng, N_IMPOSTORS, regions)
    parts.append(Table({"ra": ra, "dec": dec, "teff": rng.uniform(3600, 4200, N_IMPOSTORS),
                        "logg": rng.uniform(3.75, 4.0, N_IMPOSTORS),
                        "disk": np.full(N_IMPOSTORS, ""),
                        "truth": np.full(N_IMPOSTORS, "impostor")}))
    cat = vstack(parts)
    cat = cat[np.isfinite(cat["teff"]) & np.isfinite(cat["logg"])]
    n = len(cat)
    cat["fe_h"] = rng.normal(0.0, 0.1, n)
    cat["teff_err"] = rng.uniform(15, 60, n)
    cat["logg_err"] = rng.uniform(0.02, 0.08, n)
    cat["fe_h_err"] = rng.uniform(0.01, 0.05, n)
    cat["snr"] = rng.uniform(30, 300, n)
    cat["flags"] = np.zeros(n, np.int32)
    cat["flags"][rng.choice(n, 10, replace=False)] = 1  # SNR ~ 0
    cat["snr"][cat["flags"] == 1] = 0.0
    cat["apogee_id"] = [f"2M{i:08d}" for i in range(n)]
    cat.meta["STEP"] = "predict"
    return cat["apogee_id", "ra", "dec", "logg", "teff", "fe_h", "logg_err", "teff_err",
               "fe_h_err", "snr", "flags", "disk", "truth"]


@pytest.fixture(scope="module")
def catalogue(grid, tmp_path_factory):
    path = tmp_path_factory.mktemp("ysocat") / "predictions.fits"
    synthetic_catalogue(grid).write(path)
    return path


def test_report_on_synthetic_sky(catalogue, grid, tmp_path):
    out = tmp_path / "report"
    summary = ysos_report.report(catalogue, out, isochrones=grid)
    cat = read_table(catalogue)
    for name in ("yso_kiel.png", "yso_sky.png", "yso_age_maps.png", "yso_logg_kde.png",
                 "yso_candidates.fits", "yso_summary.json", "yso_age_bins.csv",
                 "yso_regions.csv"):
        assert (out / name).stat().st_size > 1000 or name.endswith(".csv")
    on_disk = json.loads((out / "yso_summary.json").read_text())
    assert on_disk["n_candidates"] == summary["n_candidates"]
    cands = read_table(out / "yso_candidates.fits")
    assert read_meta(out / "yso_candidates.fits")["STEP"] == "ysos"
    # every constructed impostor that passes the cuts is found, and nothing else
    truth = np.asarray(cands["truth"]).astype(str)
    assert set(truth[np.asarray(cands["impostor"])]) <= {"impostor", "field"}
    n_imp = int(np.sum(truth == "impostor"))
    assert n_imp >= 0.9 * N_IMPOSTORS
    assert np.all(cands["impostor"][truth == "impostor"])
    # cluster members land in their own region or its complex
    ok = truth == "ONC"
    assert np.mean(np.asarray(cands["region_complex"]).astype(str)[ok] == "Orion Complex") > 0.95
    # flagged stars never pass the default cuts
    assert not np.any(np.isin(cands["apogee_id"], cat["apogee_id"][cat["flags"] != 0]))
    # age bins track the cluster ages: NGC 1333 (1 Myr) younger than lambda Ori (5 Myr)
    assert (np.median(cands["logg"][truth == "NGC 1333"])
            < np.median(cands["logg"][truth == "lambda Ori"]) - 0.2)
    # impostor flags and fraction against a straight-line haversine: a candidate is an
    # impostor when its separation from every region centre exceeds that region's radius
    reg = default_regions()
    ra1, dec1 = np.radians(cands["ra"])[:, None], np.radians(cands["dec"])[:, None]
    ra2, dec2 = np.radians(reg["ra"])[None], np.radians(reg["dec"])[None]
    hav = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin(
        (ra2 - ra1) / 2) ** 2
    sep = np.degrees(2 * np.arcsin(np.sqrt(hav)))
    outside = np.all(sep > np.asarray(reg["radius"])[None], axis=1)
    np.testing.assert_array_equal(np.asarray(cands["impostor"]), outside)
    assert summary["impostor_fraction"] == pytest.approx(outside.mean())
    assert outside.sum() >= n_imp  # field stars in the triangle count too


def test_kde_figure_groups_and_cli_report(catalogue, tmp_path):
    out = tmp_path / "cli"
    rc = cli_main(["ysos", "report", str(catalogue), "--out", str(out),
                   "--group-column", "disk"])
    assert rc == 0
    assert (out / "yso_logg_kde.png").stat().st_size > 1000
    rc = cli_main(["ysos", "report", str(catalogue), "--out", str(out),
                   "--group-column", "nonexistent"])
    assert rc == 1


def test_logg_kde_normalised_and_peaks_at_data():
    x = np.full(50, 3.7)
    grid = np.linspace(2, 6, 4001)
    dens = ysomaps.logg_kde(x, grid, 0.1)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)
    assert grid[np.argmax(dens)] == pytest.approx(3.7, abs=1e-3)
    # a Gaussian kernel of sigma 0.1 dex: peak height 1/(0.1 sqrt(2 pi))
    assert dens.max() == pytest.approx(1 / (0.1 * np.sqrt(2 * np.pi)), rel=1e-4)


def test_density_grid_units():
    rng = np.random.default_rng(0)
    l, b = rng.uniform(0, 10, 20000), rng.uniform(0, 10, 20000)
    dens = ysomaps.density_grid(l, b, (0, 10, 0, 10), n=50, smooth_deg=0.5)
    # 20000 stars over 100 deg^2: 200 per deg^2 away from the edges
    assert np.median(dens[10:40, 10:40]) == pytest.approx(200, rel=0.1)


def _stand_in_grid() -> Table:
    """A toy grid: log g = 3.0 + 0.4 (log age - 6) at every mass, Teff linear in mass."""
    rows = []
    for la in np.arange(6.0, 8.75, 0.25):
        for m in np.linspace(0.1, 1.0, 10):
            rows.append((la, m, 2800.0 + 2000.0 * (m - 0.1), 3.0 + 0.4 * (la - 6.0)))
    grid = Table(rows=rows, names=("log_age", "mass_ini", "teff", "logg"))
    grid.meta["GRID"] = "stand-in"
    return grid


def test_isochrones_come_from_the_grid_given():
    curves = ysomaps.isochrone_curves(_stand_in_grid(), (1, 10, 300))
    assert [c[0] for c in curves] == [1.0, 10.0, 300.0]
    for age, _, logg in curves:  # linear in log age between grid nodes
        assert np.allclose(logg, 3.0 + 0.4 * np.log10(age), atol=1e-9)
    fig = ysomaps.kiel_figure(_catalogue_for_kiel(), grid=_stand_in_grid())
    assert len(fig.axes[0].lines) >= 9  # nine isochrones at least
    assert "stand-in" in "".join(t.get_text() for t in fig.axes[0].texts)


def _catalogue_for_kiel() -> Table:
    return Table({"teff": [3300.0, 5000.0], "logg": [3.8, 4.5]})


def test_real_isochrones_order_by_age(grid):
    """PARSEC: at 3500 K a 1 Myr star has lower log g than a 10 Myr one, and both lower than
    at 100 Myr (contraction towards the main sequence); masses drawn stop at 3 M☉."""
    curves = {a: (t, g) for a, t, g in ysomaps.isochrone_curves(grid, (1, 10, 100))}
    at = {a: np.interp(3500, t[np.argsort(t)], g[np.argsort(t)]) for a, (t, g) in
          curves.items()}
    assert at[1] < at[10] - 0.3 < at[100] - 0.3
    assert 3.3 < at[1] < 3.9 and 4.6 < at[100] < 5.0


def test_kiel_density_with_sparse_or_out_of_frame_predictions():
    """Regression (CI of an earlier landing): a log colour bar needs a count range; with every
    cell at one star, or every star outside the frame, the figure must still be drawn, and
    the colour bar spans 1 … the densest cell."""
    rng = np.random.default_rng(0)
    spread = Table({"teff": rng.uniform(3000, 6000, 30), "logg": rng.uniform(1, 5, 30)})
    fig = ysomaps.kiel_figure(spread, grid=_stand_in_grid())
    bar = fig.axes[1]  # the colour bar
    assert bar.get_ylim()[0] == pytest.approx(1.0) and bar.get_ylim()[1] >= 2.0
    outside = Table({"teff": np.full(30, 4000.0), "logg": np.full(30, 9.0)})
    fig = ysomaps.kiel_figure(outside, grid=_stand_in_grid())
    assert len(fig.axes) == 1  # no density, no colour bar: points drawn as they are


def test_impostor_flag_at_region_edges():
    """Positions at 0.9, 1.1 and 1.3 region radii around every region: inside/outside
    against a straight-line haversine over all regions (catches a wrong radius scale)."""
    reg = default_regions()
    ra, dec = [], []
    for r in reg:
        for frac in (0.9, 1.1, 1.3):
            pos = SkyCoord(r["ra"] * u.deg, r["dec"] * u.deg).directional_offset_by(
                np.array([0, 90, 180, 270]) * u.deg, frac * r["radius"] * u.deg)
            ra += list(pos.ra.deg)
            dec += list(pos.dec.deg)
    from apogee_net.yso.selection import match_regions

    out = match_regions(Table({"ra": ra, "dec": dec}))
    ra1, dec1 = np.radians(ra)[:, None], np.radians(dec)[:, None]
    ra2, dec2 = np.radians(reg["ra"])[None], np.radians(reg["dec"])[None]
    hav = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin(
        (ra2 - ra1) / 2) ** 2
    sep = np.degrees(2 * np.arcsin(np.sqrt(hav)))
    outside = np.all(sep > np.asarray(reg["radius"])[None], axis=1)
    assert 0.2 < outside.mean() < 0.8
    np.testing.assert_array_equal(np.asarray(out["impostor"]), outside)
