"""The seven photometric inputs of APOGEE Net II (Sprague et al. 2022, AJ 163 152, §2.2 and
§3.1): Gaia parallax (mas), G, BP, RP and 2MASS J, H, K (mag), in this order.

The published rule (peer code ``apogeenet2/dataset.py`` of hutchresearch/ApogeeNet2, and
``astra.contrib.apogeenet.utils.get_metadata`` of SDSS astra): a value ≥ 98 or non-finite is
replaced by :data:`FILL_VALUES`, then each input is z-scored with :data:`PHOT_MEAN` and
:data:`PHOT_STD` (the statistics of the published training set). astra also replaces values
≤ −1 (a negative parallax); the ApogeeNet2 pipeline does not, and neither does this module.

Photometry comes from the label table itself or from any table with ``apogee_id`` joined by
that ID; the columns of ``yso-labels fetch-photometry`` (``parallax, G, BP, RP, J, H, K``)
work as they are, and Gaia/2MASS archive names (``phot_g_mean_mag``, ``j_m``, ``ks_m``…) and
the allStar names (``GAIAEDR3_PARALLAX``…) are recognised too.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from astropy.table import Table

#: Input order of the metadata network (Sprague et al. 2022; peer ``dataset.py``).
PHOT_BANDS = ("parallax", "G", "BP", "RP", "J", "H", "K")
#: Replacement of missing values (parallax in mas, magnitudes in mag; peer code).
FILL_VALUES = (-84.827, 21.40844, 24.53892, 20.26276, 18.439, 24.0, 17.025)
#: A value at or above this is "missing" (APOGEE's 99.999 placeholder; peer code).
MISSING_AT = 98.0
#: z-scoring of the seven inputs: mean and standard deviation of the published training set.
PHOT_MEAN = (-0.6959113178296891, 13.630030428758845, 14.5224418320574, 12.832448427460813,
             11.537019017423619, 10.858717523536697, 10.702106344460235)
PHOT_STD = (14.572430555504504, 2.2762944923233883, 2.8342029214199704, 2.136884367623457,
            1.6793628207779732, 1.4888102872755238, 1.5848713221149886)
#: Column names accepted for each band, first match wins (exact case, then case-insensitive
#: for the long names: ``g`` is SDSS g in fetch-photometry output, not Gaia G).
ALIASES = {
    "parallax": ("parallax", "plx", "gaiaedr3_parallax", "gaia_parallax"),
    "G": ("G", "phot_g_mean_mag", "gaiaedr3_phot_g_mean_mag", "gmag"),
    "BP": ("BP", "phot_bp_mean_mag", "gaiaedr3_phot_bp_mean_mag", "bpmag"),
    "RP": ("RP", "phot_rp_mean_mag", "gaiaedr3_phot_rp_mean_mag", "rpmag"),
    "J": ("J", "j_m", "jmag"),
    "H": ("H", "h_m", "hmag"),
    "K": ("K", "ks_m", "k_m", "kmag"),
}


def photometry_columns(table: Table, where: str, required: bool = True) -> list[str] | None:
    """Column of ``table`` for each of :data:`PHOT_BANDS`; None (or a clear error naming
    ``where`` and the missing bands when ``required``) if one is absent."""
    names, lower = list(table.colnames), {c.lower(): c for c in table.colnames}
    found, missing = [], []
    for band in PHOT_BANDS:
        col = next((a for a in ALIASES[band] if a in names), None)
        if col is None:
            col = next((lower[a.lower()] for a in ALIASES[band] if len(a) > 2
                        and a.lower() in lower), None)
        (found if col else missing).append(col or band)
    if missing:
        if required:
            raise ValueError(f"{where}: no column for {', '.join(missing)} (APOGEE Net II "
                             f"needs {', '.join(PHOT_BANDS)}; e.g. the output of "
                             "`yso-labels fetch-photometry`)")
        return None
    return found


def _float_column(table: Table, col: str) -> np.ndarray:
    column = table[col]
    if hasattr(column, "filled"):
        column = column.filled(np.nan)
    return np.asarray(column, dtype=np.float64)


def table_photometry(table: Table, where: str) -> np.ndarray:
    """``(n, 7)`` raw photometry (NaN where absent) of a table with the seven columns."""
    cols = photometry_columns(table, where)
    return np.column_stack([_float_column(table, c) for c in cols]) if len(table) \
        else np.zeros((0, len(PHOT_BANDS)))


class PhotometryTable:
    """A photometry table indexed by ``apogee_id`` (path or Table); :meth:`lookup` returns the
    ``(n, 7)`` raw values for a list of IDs, NaN for IDs it does not hold."""

    def __init__(self, source, where: str | None = None):
        from yso_labels.core.tables import read_table

        if isinstance(source, Table):
            table, self.name = source, where or "photometry table"
        else:
            self.name = where or str(source)
            table = read_table(source, required=["apogee_id"], what="photometry table")
        if "apogee_id" not in table.colnames:
            raise ValueError(f"{self.name}: needs an apogee_id column to join by")
        values = table_photometry(table, self.name)
        self.index: dict[str, int] = {}
        for i, key in enumerate(table["apogee_id"]):
            key = key.decode() if isinstance(key, bytes) else str(key)
            self.index.setdefault(key.strip(), i)  # first row of a repeated ID
        self.values = values
        self.path = None if isinstance(source, Table) else str(source)

    def lookup(self, ids) -> np.ndarray:
        out = np.full((len(ids), len(PHOT_BANDS)), np.nan)
        for i, key in enumerate(ids):
            j = self.index.get(str(key).strip())
            if j is not None:
                out[i] = self.values[j]
        return out


def load_photometry(source: str | os.PathLike | Table | None) -> PhotometryTable | None:
    """:class:`PhotometryTable` of ``source`` (None stays None)."""
    return None if source is None else PhotometryTable(source)


def fill_photometry(values) -> tuple[np.ndarray, np.ndarray]:
    """Published replacement: ``(filled (n, 7), replaced (n, 7) bool)``; a value is replaced
    by :data:`FILL_VALUES` when it is ≥ :data:`MISSING_AT` or not finite."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, len(PHOT_BANDS))
    with np.errstate(invalid="ignore"):
        replaced = ~np.isfinite(values) | (values >= MISSING_AT)
    return np.where(replaced, np.asarray(FILL_VALUES), values), replaced


def photometry_input(values) -> torch.Tensor:
    """Network input ``(n, 7)`` float32: :func:`fill_photometry`, then ``(x − PHOT_MEAN) /
    PHOT_STD`` (Sprague et al. 2022; peer ``normalize_metadata``). ``values``: raw
    ``(n, 7)`` array or tensor in the order of :data:`PHOT_BANDS`."""
    device = values.device if isinstance(values, torch.Tensor) else None
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    filled, _ = fill_photometry(values)
    z = (filled - np.asarray(PHOT_MEAN)) / np.asarray(PHOT_STD)
    return torch.as_tensor(z, dtype=torch.float32, device=device)


class WithPhotometry(torch.utils.data.Dataset):
    """A spectra dataset (:class:`apogee_net.spectra.store.SpectraDataset` or
    :class:`apogee_net.network.train.ArrayDataset`) whose items and batches also carry
    ``photometry`` ``(7,)`` raw values (row ``i`` of ``photometry`` for item ``i``)."""

    def __init__(self, dataset, photometry):
        self.dataset = dataset
        self.photometry = np.asarray(photometry, dtype=np.float32).reshape(-1, len(PHOT_BANDS))
        if len(self.photometry) != len(dataset):
            raise ValueError(f"{len(self.photometry)} photometry rows for {len(dataset)} "
                             "spectra")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        item = dict(self.dataset[i])
        item["photometry"] = torch.from_numpy(self.photometry[int(i)].copy())
        return item

    def __getitems__(self, indices):
        items = self.dataset.__getitems__(indices)
        phot = torch.from_numpy(self.photometry[np.asarray(indices, dtype=np.int64)])
        collated = getattr(items, "collated", None)
        if isinstance(items, dict):
            items["photometry"] = phot
            return items
        if collated is not None:
            collated["photometry"] = phot
        for j, it in enumerate(items):
            if isinstance(it, dict):
                it["photometry"] = phot[j]
        return items


def labelled_photometry(ids, labels=None, photometry=None,
                        where: str = "training") -> np.ndarray:
    """``(n, 7)`` raw photometry of the stars ``ids``: from the table ``photometry`` when
    given, else from the label table ``labels`` (path or Table) when it has the seven
    columns; a clear error when neither has them. Stars absent from the table get NaN
    (filled later by the published rule); the count is logged."""
    import logging

    source = photometry
    if source is None and labels is not None:
        table = labels if isinstance(labels, Table) else None
        if table is None:
            from yso_labels.core.tables import read_table

            table = read_table(labels, required=["apogee_id"], what="label table")
        if photometry_columns(table, str(labels), required=False) is not None:
            source = table
    if source is None:
        raise ValueError(f"{where}: APOGEE Net II needs photometry ({', '.join(PHOT_BANDS)}):"
                         " the label table has no such columns; pass --photometry TABLE "
                         "(e.g. the output of `yso-labels fetch-photometry`)")
    values = PhotometryTable(source).lookup(list(ids))
    n_missing = int(fill_photometry(values)[1].any(axis=1).sum())
    if n_missing:
        logging.getLogger(__name__).info(
            "%s: %d of %d stars lack some photometry: filled with the published values",
            where, n_missing, len(values))
    return values
