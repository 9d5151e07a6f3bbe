"""The CLI error policy: expected failures are one line and exit code 1; a bug keeps its
traceback (the exception goes through)."""

from __future__ import annotations

import numpy as np
import pytest

from yso_labels.cli import expected_error, main
from yso_labels.cli import labels as cli_labels
from yso_labels.core.tables import read_table


def _raised(fn) -> BaseException:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    raise AssertionError("no exception")


def test_expected_or_bug(tmp_path):
    assert expected_error(_raised(lambda: read_table(tmp_path / "none.csv")))  # TableError
    assert expected_error(_raised(lambda: open(tmp_path / "none.csv")))  # FileNotFoundError

    def own_value_error():
        from yso_labels.core.training import TrainOptions

        TrainOptions(lr=-1)

    assert expected_error(_raised(own_value_error))
    assert not expected_error(_raised(lambda: np.zeros(2).reshape(3)))  # numpy's ValueError
    assert not expected_error(_raised(lambda: {}["teff"]))
    assert not expected_error(_raised(lambda: (_ for _ in ()).throw(OSError(5, "I/O"))))


def test_cli_one_line_for_missing_file_traceback_for_a_bug(tmp_path, capsys, monkeypatch):
    assert main(["mdwarf", str(tmp_path / "none.csv"), str(tmp_path / "out.fits")]) == 1
    err = capsys.readouterr().err
    assert "none.csv: no such file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    def buggy(*args, **kwargs):
        return {}["teff"]

    monkeypatch.setattr(cli_labels, "run_mdwarf", buggy)
    with pytest.raises(KeyError, match="teff"):
        main(["mdwarf", str(tmp_path / "none.csv"), str(tmp_path / "out.fits")])
