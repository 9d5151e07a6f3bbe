"""docs/tutorial.ipynb runs from top to bottom (nbclient, a fresh Python kernel importing the
package under test) and its products hold the right numbers: the photometry is the archive's
(recorded) answer for each ID, the labels are physically possible young-star labels close to
the synthetic truth, and the YSO report's candidates are those inside the §4.1 triangle.
The recorded archive answers must match the current query (else rerun
scripts/make_tutorial_data.py)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table, join

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "docs" / "tutorial.ipynb"


def _need(module: str):
    """The module; in CI (``CI`` set, as .ci/run does) a missing one fails the test."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} not installed (pip install -e "
                               "'.[test]' installs it)")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nbformat, nbclient, _ = (_need(m) for m in ("nbformat", "nbclient", "ipykernel"))
    work = tmp_path_factory.mktemp("tutorial")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # one cell more, in memory only: which copy of the package the kernel imported
    nb.cells.append(nbformat.v4.new_code_cell("import apogee_net, yso_labels\n"
                                              "print('PKG', apogee_net.__file__)\n"
                                              "print('PKG', yso_labels.__file__)"))
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "MPLBACKEND", "OMP_NUM_THREADS")}
    # the kernel imports this checkout (not another installed copy), draws no windows and
    # keeps to the CPU threads the suite uses
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO),
                                                             saved["PYTHONPATH"]]))
    os.environ["MPLBACKEND"] = "Agg"
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return work / "tutorial_out", nb


def _outputs(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))


def test_kernel_imported_this_checkout(executed):
    _, nb = executed
    paths = [line.split(" ", 1)[1] for line in _outputs(nb).splitlines()
             if line.startswith("PKG ")]
    assert len(paths) == 2 and all(Path(p).is_relative_to(REPO) for p in paths), paths
    assert "100 APOGEE IDs" in _outputs(nb)


def test_photometry_is_the_recorded_archive_answer(executed):
    out, _ = executed
    from apogee_net.demo import demo_file

    phot = Table.read(out / "phot.fits")
    demo = Table.read(demo_file("yso_photometry.csv"))
    both = join(phot, demo, keys="apogee_id", table_names=["got", "demo"])
    assert len(phot) == len(both) == 100 and np.all(phot["match"] == "2mass_id")
    for band in ("G", "BP", "RP", "J", "H", "K", "parallax", "radius", "logl"):
        np.testing.assert_allclose(both[f"{band}_got"], both[f"{band}_demo"], atol=1e-5,
                                   err_msg=band)
    assert phot["G"].unit == "mag" and phot["parallax"].unit == "mas"


def test_labels_are_young_star_labels_near_the_truth(executed):
    out, _ = executed
    yso = Table.read(out / "yso_labels.fits")
    assert len(yso) == 100 and not np.any(yso["out_of_domain"])
    teff, logg = np.asarray(yso["teff"], float), np.asarray(yso["logg"], float)
    mass, age = np.asarray(yso["mass"], float), np.asarray(yso["age_myr"], float)
    # PARSEC grid of the training population: 0.09-3 Msun, 1-100 Myr
    assert np.all((teff > 2300) & (teff < 15000)) and np.all((logg > 2.5) & (logg < 5.5))
    assert np.all((mass > 0.05) & (mass < 3.5)) and np.all((age > 0.3) & (age < 300))
    truth = Table.read(REPO / "apogee_net" / "data" / "demo" / "yso_photometry.csv")
    both = join(yso, truth["apogee_id", "teff_true", "logg_true"], keys="apogee_id")
    # a demo-size network (6000 stars, 40 epochs) reaches ~50 K and ~0.05 dex here
    assert np.std(both["teff"] - both["teff_true"]) < 250
    assert np.std(both["logg"] - both["logg_true"]) < 0.25


def test_yso_report_selects_the_triangle(executed):
    out, nb = executed
    from apogee_net.yso.selection import in_polygon

    yso = Table.read(out / "yso_labels.fits")
    cands = Table.read(out / "ysos" / "yso_candidates.fits")
    summary = json.loads((out / "ysos" / "yso_summary.json").read_text())
    for name in ("apogee_id", "teff", "logg", "age_myr", "mass", "av", "yso_candidate",
                 "age_range", "region_complex", "impostor"):
        assert name in cands.colnames, name
    inside = in_polygon(np.asarray(yso["teff"], float), np.asarray(yso["logg"], float))
    assert 0 < len(cands) == summary["n_candidates"] == int(inside.sum())
    assert set(cands["apogee_id"]) == set(yso["apogee_id"][inside])
    # the demo stars lie in real star-forming regions: no impostor
    assert summary["n_impostors"] == 0 and np.all(cands["region_complex"] != "")
    for name in ("yso_kiel.png", "yso_sky.png", "yso_regions.csv", "yso_age_bins.csv"):
        assert (out / "ysos" / name).exists(), name
    assert f"{len(cands)} YSO candidates among 100 stars" in _outputs(nb)
    assert any(o.get("output_type") in ("display_data", "execute_result")
               and "image/png" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))


def test_recorded_answers_match_the_current_query(tmp_path):
    """The recorded cache keys are those of today's query (scripts/make_tutorial_data.py)."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import make_tutorial_data
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert make_tutorial_data.main(["--out", str(tmp_path)]) == 0
    packaged = REPO / "apogee_net" / "data" / "demo"
    fresh = sorted(p.name for p in (tmp_path / "archive_responses").glob("*.vot"))
    assert fresh == sorted(p.name for p in (packaged / "archive_responses").glob("*.vot")), \
        "the archive query changed: rerun python scripts/make_tutorial_data.py"
    assert (tmp_path / "tutorial_ids.csv").read_text() == \
        (packaged / "tutorial_ids.csv").read_text()
