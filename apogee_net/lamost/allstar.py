"""APOGEE allStar-like label tables before the Li et al. label treatment: column names,
quality cuts and duplicates.

* :func:`allstar_columns`: an SDSS-V astra summary table (lower-case ``teff``, ``e_teff``
  already read as ``teff_err`` by :func:`yso_labels.core.tables.read_table`, ``m_h_atm``,
  ``alpha_m_atm``, ``c_h``, ``sdss4_apogee_id``, ``ra``/``dec``) or a DR12 table
  (``PARAM_M_H``, ``X_H``) gets the DR17 allStar names the rest of the code reads.
* :func:`quality_mask`: the documented default cuts (:data:`DEFAULT_CUTS`) on the bit masks
  of the SDSS DR17 APOGEE bitmask documentation (sdss4.org/dr17/irspec/apogee-bitmasks; the
  same bits in DR12-DR17): ASPCAPFLAG ``STAR_BAD`` (the ASPCAP fit is not to be used, the
  documentation's advice), STARFLAG ``BAD_PIXELS``, ``COMMISSIONING``,
  ``VERY_BRIGHT_NEIGHBOR``, ``LOW_SNR``, and EXTRATARG ``COMMISSIONING``.
* :func:`best_snr_rows`: one row per APOGEE ID, the highest-S/N one (the rule behind
  EXTRATARG ``DUPLICATE``, which marks the lower-S/N copies), so that an ID cross-match
  never picks a copy at random; the number dropped is reported.
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.table import Table

log = logging.getLogger(__name__)

#: APOGEE_ASPCAPFLAG bits used here (DR17 bitmask documentation).
ASPCAPFLAG_BITS = {"STAR_WARN": 7, "STAR_BAD": 23}
#: APOGEE_STARFLAG bits (DR17 bitmask documentation).
STARFLAG_BITS = {"BAD_PIXELS": 0, "COMMISSIONING": 1, "BRIGHT_NEIGHBOR": 2,
                 "VERY_BRIGHT_NEIGHBOR": 3, "LOW_SNR": 4, "PERSIST_HIGH": 9,
                 "PERSIST_MED": 10, "PERSIST_LOW": 11, "PERSIST_JUMP_POS": 12,
                 "PERSIST_JUMP_NEG": 13, "SUSPECT_RV_COMBINATION": 16,
                 "SUSPECT_BROAD_LINES": 17}
#: APOGEE_EXTRATARG bits (DR17 bitmask documentation).
EXTRATARG_BITS = {"NOT_MAIN": 0, "COMMISSIONING": 1, "TELLURIC": 2, "APO1M": 3,
                  "DUPLICATE": 4}
#: Column → bit names of the default cuts (a row with any of them set is dropped).
DEFAULT_CUTS = {"ASPCAPFLAG": ("STAR_BAD",),
                "STARFLAG": ("BAD_PIXELS", "COMMISSIONING", "VERY_BRIGHT_NEIGHBOR", "LOW_SNR"),
                "EXTRATARG": ("COMMISSIONING",)}
BITS = {"ASPCAPFLAG": ASPCAPFLAG_BITS, "STARFLAG": STARFLAG_BITS,
        "EXTRATARG": EXTRATARG_BITS}
#: astra (SDSS-V) → allStar names where they differ beyond case.
ASTRA_ALIASES = {"M_H_ATM": "M_H", "ALPHA_M_ATM": "ALPHA_M", "SDSS4_APOGEE_ID": "APOGEE_ID",
                 "E_M_H_ATM": "M_H_ERR", "E_ALPHA_M_ATM": "ALPHA_M_ERR",
                 "M_H_ATM_ERR": "M_H_ERR", "ALPHA_M_ATM_ERR": "ALPHA_M_ERR"}


def allstar_columns(table: Table) -> Table:
    """A copy of ``table`` with allStar DR17 column names: every name upper-cased when the
    table has lower-case label columns (astra), astra aliases (:data:`ASTRA_ALIASES`), and
    [X/Fe] from [X/H] (:func:`~apogee_net.lamost.labels.from_dr12_columns`)."""
    from apogee_net.lamost.labels import from_dr12_columns

    out = table.copy(copy_data=False)
    if "TEFF" not in out.colnames and "teff" in out.colnames:
        for col in list(out.colnames):
            if col.upper() not in out.colnames:
                out.rename_column(col, col.upper())
    for src, dst in ASTRA_ALIASES.items():
        if src in out.colnames and dst not in out.colnames:
            out.rename_column(src, dst)
    return from_dr12_columns(out)


def _bits(values, names: tuple[str, ...], column: str) -> tuple[np.ndarray, int]:
    table = BITS[column]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"{column}: unknown bit name(s) {', '.join(unknown)}; known: "
                         f"{', '.join(table)}")
    mask = sum(1 << table[n] for n in names)
    raw = values.filled(0) if hasattr(values, "filled") else values
    return (np.asarray(raw).astype(np.int64) & mask) != 0, mask


def quality_mask(table: Table, cuts: dict[str, tuple[str, ...]] | None = None
                 ) -> tuple[np.ndarray, dict]:
    """Boolean keep-mask of the rows passing ``cuts`` (column → bit names; default
    :data:`DEFAULT_CUTS`) and a report ``{column: {"bits": [...], "dropped": n}}``. A
    column missing from the table is reported (``"absent"``) and not applied."""
    cuts = DEFAULT_CUTS if cuts is None else cuts
    keep = np.ones(len(table), bool)
    report: dict = {}
    for column, names in cuts.items():
        if not names:
            continue
        if column not in table.colnames:
            report[column] = {"bits": list(names), "absent": True}
            log.warning("allStar quality cuts: no %s column; its cuts (%s) are not applied",
                        column, ", ".join(names))
            continue
        bad, _ = _bits(table[column], tuple(names), column)
        report[column] = {"bits": list(names), "dropped": int((bad & keep).sum())}
        keep &= ~bad
    return keep, report


def best_snr_rows(ids, snr) -> tuple[np.ndarray, int]:
    """Indices (sorted) of one row per ID, the highest ``snr`` (NaN lowest; ties: first
    row), and the number of rows dropped."""
    ids = np.char.strip(np.asarray(ids).astype(str))
    snr = np.asarray(snr, float)
    order = np.lexsort((np.arange(ids.size), -np.nan_to_num(snr, nan=-np.inf), ids))
    _, first = np.unique(ids[order], return_index=True)
    keep = np.sort(order[first])
    return keep, int(ids.size - keep.size)


def prepare_allstar(table: Table, cuts: str | dict = "default", duplicates: str = "best-snr",
                    id_column: str = "APOGEE_ID", snr_column: str = "SNR"
                    ) -> tuple[Table, dict]:
    """allStar names (:func:`allstar_columns`), quality cuts (``cuts``: ``"default"``
    = :data:`DEFAULT_CUTS`, ``"none"``, or a dict column → bit names), then duplicates
    (``duplicates``: ``"best-snr"`` keeps the highest-``snr_column`` row of each
    ``id_column``, ``"keep"`` keeps all). Returns the table and a report (rows in, per-cut
    drops, duplicates dropped, rows out) for the output header."""
    if duplicates not in ("best-snr", "keep"):
        raise ValueError(f"duplicates must be 'best-snr' or 'keep', got {duplicates!r}")
    if isinstance(cuts, str):
        if cuts not in ("default", "none"):
            raise ValueError(f"cuts must be 'default', 'none' or a dict, got {cuts!r}")
        cuts = DEFAULT_CUTS if cuts == "default" else {}
    out = allstar_columns(table)
    report = {"rows_in": len(out)}
    keep, report["cuts"] = quality_mask(out, cuts)
    out = out[keep]
    report["duplicates_dropped"] = 0
    if duplicates == "best-snr" and id_column in out.colnames:
        snr = (np.asarray(out[snr_column].filled(np.nan) if hasattr(out[snr_column], "filled")
                          else out[snr_column], float)
               if snr_column in out.colnames else np.zeros(len(out)))
        if snr_column not in out.colnames:
            log.warning("allStar duplicates: no %s column; the first row of each ID is kept",
                        snr_column)
        idx, report["duplicates_dropped"] = best_snr_rows(out[id_column], snr)
        out = out[idx]
    report["rows_out"] = len(out)
    log.info("allStar: %d rows, %d after quality cuts, %d after duplicates (%d dropped)",
             report["rows_in"], int(keep.sum()), len(out), report["duplicates_dropped"])
    return out, report
