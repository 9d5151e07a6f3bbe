"""Shared fixtures. Real-data tests read ``../shared/data`` (beside the repository) and skip
with a clear reason when it is absent; the data are never copied into the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written, never shown

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("YSO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ``../shared/data``; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real survey data not found at {SHARED_DATA} (set YSO_SHARED_DATA)")
    return SHARED_DATA


def shared_file(*parts: str) -> Path:
    """A file under ``../shared/data``; skips the calling test when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data file {path} not found (see ../shared/data/SOURCES.md)")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A store of 120 toy spectra (256 px) of three groups, its label table, and an APOGEE
    Net run trained on it for one epoch: ``(directory, label table)``."""
    import numpy as np

    from apogee_net.network.train import train_apogee_net
    from tests.test_train import make_store

    tmp = tmp_path_factory.mktemp("adapt")
    table = make_store(tmp / "s.h5", n=120, npix=256)
    source = np.array(["payne"] * 80 + ["mstar"] * 20 + ["yso"] * 20)
    split = np.array(["train"] * 120, dtype="U5")
    for grp in ("payne", "mstar", "yso"):
        i = np.flatnonzero(source == grp)
        split[i[int(0.6 * len(i)):int(0.8 * len(i))]] = "dev"
        split[i[int(0.8 * len(i)):]] = "test"
    table["source"], table["split"] = source, split
    table.write(tmp / "labels.csv")
    train_apogee_net(tmp / "s.h5", tmp / "labels.csv", tmp / "run", max_epochs=1,
                     batch_size=16, device="cpu", progress=False, warmup=0.0)
    return tmp, table
