"""A failure in the middle of a write leaves no partial file and the old file intact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.table import Table

from yso_labels.core.atomic import atomic_write, write_json
from yso_labels.core.checkpoint import save_checkpoint
from yso_labels.core.tables import read_table, write_table


class Boom(RuntimeError):
    pass


def test_atomic_write_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(Boom), atomic_write(target) as tmp:
        tmp.write_text("half of the sec")  # a partial second version ...
        raise Boom  # ... interrupted
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "new.json") as tmp:
        tmp.write_text("{")
        raise KeyboardInterrupt
    assert not (tmp_path / "new.json").exists()
    write_json(tmp_path / "new.json", {"a": 1})
    assert (tmp_path / "new.json").read_text().strip() == '{\n "a": 1\n}'


def test_table_write_interrupted_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "labels.fits"
    write_table(Table({"x": [1.0, 2.0]}), path)
    def write_half_then_fail(self, out, **kw):
        with open(out, "wb") as fh:  # bytes on disk under the temporary name
            fh.write(b"SIMPLE  =                    T")
        raise Boom("disk full")

    monkeypatch.setattr(Table, "write", write_half_then_fail)
    for name in ("labels.fits", "other.csv"):
        with pytest.raises(Boom):
            write_table(Table({"x": [5.0, 6.0, 7.0]}), tmp_path / name)
    monkeypatch.undo()
    assert list(read_table(path)["x"]) == [1.0, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.fits"]


def test_checkpoint_write_interrupted(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 1)

    def fail(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 partial")
        raise Boom

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(Boom):
        save_checkpoint(tmp_path / "model.pt", model, {"in_features": 2, "out_features": 1}, {})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_checkpoint(tmp_path / "model.pt", model, {"in_features": 2, "out_features": 1},
                    {"x": np.pi})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
