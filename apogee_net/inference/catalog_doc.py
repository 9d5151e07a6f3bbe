"""``docs/CATALOG.md`` from the one column table (:mod:`apogee_net.inference.catalog_columns`)
and the flag bits of the code that sets them; ``python -m apogee_net.inference.catalog_doc``
rewrites it (a test checks that the file matches)."""

from __future__ import annotations

import sys
from pathlib import Path

from apogee_net.inference.catalog_columns import COLUMNS, LABEL_UNITS, _lamost_units


def flag_tables() -> dict[str, dict]:
    """The flag bits of each catalogue, read from the code that sets them."""
    from apogee_net.inference.predict import FLAGS as APOGEE_FLAGS
    from apogee_net.lamost.predict import FLAGS as LAMOST_FLAGS

    return {"apogee-net predict": dict(APOGEE_FLAGS),
            "apogee-net lamost predict": dict(LAMOST_FLAGS)}


def _unit_text(unit) -> str:
    if unit is None:
        return ""
    if isinstance(unit, str):
        return unit
    return unit.to_string()


def catalog_markdown() -> str:
    """The text of ``docs/CATALOG.md``: every column and flag bit, from this module."""
    lines = ["# Catalogue columns and flag bits", "",
             "Generated from `apogee_net/inference/catalog_columns.py` (`python -m "
             "apogee_net.inference.catalog_doc`); a test fails when this page and the "
             "code differ.",
             "", "Catalogues: `apogee` = `apogee-net predict`, `lamost` = `apogee-net lamost "
             "predict`. Every table also records in its header the toolkit version, the "
             "options, the model file and its SHA-256 (`MODELSHA`) and the flag bits "
             "(`FLAGBITS`).", "", "## Columns", "", "| column | unit | catalogues | meaning |",
             "|---|---|---|---|"]
    for name, unit, cats, meaning in COLUMNS:
        lines.append(f"| `{name}` | {_unit_text(unit)} | {cats} | {meaning} |")
    lines += ["", "## Label units", "", "| label | unit |", "|---|---|"]
    units = {**_lamost_units(), **LABEL_UNITS}
    for name in units:
        lines.append(f"| `{name}` | {_unit_text(units[name])} |")
    for command, flags in flag_tables().items():
        lines += ["", f"## Flag bits of `{command}`", "", "| bit value | name | meaning |",
                  "|---|---|---|"]
        for name, (value, meaning) in sorted(flags.items(), key=lambda kv: kv[1][0]):
            lines.append(f"| {value} | `{name}` | {meaning} |")
    return "\n".join(lines) + "\n"


def write_catalog_doc(path: str | Path | None = None) -> Path:
    """Write ``docs/CATALOG.md`` (default: beside the package, in the repository)."""
    path = Path(path) if path else Path(__file__).resolve().parents[2] / "docs" / "CATALOG.md"
    path.write_text(catalog_markdown())
    return path


if __name__ == "__main__":
    print(write_catalog_doc(sys.argv[1] if len(sys.argv) > 1 else None))
