"""Sanity ranges of photometry and stellar labels: values no real star can have.

These are not the calibrated ranges of a relation (those are flags, see
:data:`yso_labels.mdwarf.VALIDITY`) nor the range of a training set: a value outside them is
a missing-value code (magnitudes of 99 or −99, −9999), a unit error or a polynomial pushed
far outside its domain, and must never reach a label table or a training run.

Enforced where labels are made (:mod:`yso_labels.mdwarf`), again in
:func:`yso_labels.merge.merge_labels` (rows left out, counted) and before the first epoch of
training (:func:`check_labels`: refused, naming the rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Apparent magnitudes outside this range (mag) are missing-value codes (99, −99, 99.999,
#: −9999 in survey tables), not measurements: the brightest stars are near −1.5, the faintest
#: survey detections near 30.
MAGNITUDE_RANGE = (-5.0, 40.0)

#: Labels no star has (inclusive bounds): Teff in K (coolest brown dwarfs ~250 K are not in
#: these spectra; hottest O stars and white dwarfs < 100,000 K), log g in dex cgs
#: (supergiants ~ −0.5, white dwarfs ≤ 9.5), metallicities in dex.
LABEL_RANGES = {
    "teff": (1000.0, 100000.0),
    "logg": (-1.5, 9.5),
    "fe_h": (-6.0, 2.0),
    "m_h": (-6.0, 2.0),
    "alpha_m": (-2.0, 2.0),
}
#: Abundance ratios [X/Fe] (labels named ``*_fe``), dex.
ABUNDANCE_RANGE = (-5.0, 5.0)


def missing_magnitudes(mag) -> np.ndarray:
    """True where a magnitude is not a measurement: non-finite or outside
    :data:`MAGNITUDE_RANGE` (missing-value codes such as 99 and −99)."""
    mag = np.asarray(mag, float)
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(mag) & (mag >= MAGNITUDE_RANGE[0]) & (mag <= MAGNITUDE_RANGE[1]))


def label_range(name: str) -> tuple[float, float] | None:
    """Sanity range of label ``name`` (None: only finiteness is checked)."""
    if name in LABEL_RANGES:
        return LABEL_RANGES[name]
    return ABUNDANCE_RANGE if name.endswith("_fe") else None


def implausible(values, name: str) -> np.ndarray:
    """True where a label is ±inf or a finite value outside its sanity range; NaN (a
    missing label) is not implausible."""
    values = np.asarray(values, float)
    bad = np.isinf(values)
    rng = label_range(name)
    if rng is not None:
        with np.errstate(invalid="ignore"):
            bad |= np.isfinite(values) & ((values < rng[0]) | (values > rng[1]))
    return bad


def implausible_rows(table, names: Sequence[str]) -> np.ndarray:
    """True for rows of ``table`` with an implausible value in any of the columns
    ``names`` present in it."""
    bad = np.zeros(len(table), bool)
    for name in names:
        if name in table.colnames:
            bad |= implausible(table[name], name)
    return bad


def check_labels(values, names: Sequence[str], ids: Sequence, where: str) -> None:
    """Raise ValueError naming up to five rows (by ``ids``) whose labels ``values``
    ((n, k) in the order of ``names``) are ±inf or outside their sanity range."""
    values = np.asarray(values, float).reshape(len(ids), -1)
    problems = []
    for j, name in enumerate(names):
        bad = np.flatnonzero(implausible(values[:, j], name))
        rng = label_range(name)
        expect = f"a finite value in {rng[0]:g}..{rng[1]:g}" if rng else "finite"
        for i in bad[:5]:
            problems.append(f"{ids[i]} {name}={values[i, j]:g}")
        if bad.size:
            problems.append(f"({bad.size} row(s) with {name} not {expect})")
    if problems:
        raise ValueError(f"{where}: impossible labels, fix or drop these rows before training: "
                         + "; ".join(problems))
