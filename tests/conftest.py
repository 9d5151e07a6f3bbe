"""Shared fixtures. Real-data tests read ``../shared/data`` (beside the repository) and skip
with a clear reason when it is absent; the data are never copied into the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
