"""The LAMOST pipeline's own spectral class as a check on the network's Teff.

Every LAMOST file carries the classification of the LAMOST 1D pipeline (header ``CLASS``,
``SUBCLASS``, e.g. ``STAR``/``G5``, ``A4III``, ``dM5``), obtained by template matching and
independent of our network. :func:`parse_subclass` reads it, :func:`dwarf_teff` turns the
type into a Teff on a dwarf scale, :func:`class_interval` into the interval of Teff
consistent with the class, and :func:`class_check` flags catalogue rows whose network Teff
lies outside it (``CLASS_DISAGREE``) or whose class interval lies wholly outside the model's
training Teff range (``OUT_OF_RANGE``: the model does not know such stars).

Scales (Teff in K):

* dwarfs, A0V–M5V: Pecaut & Mamajek (2013, ApJS 208, 9), Table 5, as in E. Mamajek's online
  "A Modern Mean Dwarf Stellar Color and Effective Temperature Sequence" (version
  2017.10.19), :data:`DWARF_TEFF`;
* giants, F0III–K5III: Alonso, Arribas & Martínez-Roger (1999, A&AS 140, 261), Table 1, the
  column 0.5 ≳ [Fe/H] ≳ −1.0, :data:`GIANT_TEFF` (G4III is their bracketed value from few
  stars). Earlier than F0 and later than K5 the giant scale is the dwarf scale minus the
  dwarf − giant difference at the table's end (174 K at F0, 460 K at K5).

Interval rule: ±:data:`N_SUBTYPES` subtypes around the class, i.e. hot end = dwarf Teff
``N`` subtypes earlier, cool end = dwarf Teff ``N`` subtypes later; when the luminosity
class is absent or not V (most DR1 subclasses carry none), the cool end is the lower of
that and the giant Teff ``N`` subtypes later, so a giant of the class is never flagged.
Beyond the tabulated range (earlier than A0, later than M5) that end is open.

``N`` (the classification precision): we found no published figure for the LAMOST 1D
pipeline's subclass precision (the DR1 subclasses come in template steps of 1–4 subtypes:
F2, F5, F9, G0, G2, G5, G7, K1, K3, K5, K7, …). ±2 subtypes, chosen first, would flag the
LASP Teff itself (the LAMOST stellar-parameter pipeline's, an independent fit of the same
spectra) on 21 of the 60 DR1 spectra of ``../shared/data/lamost/learninglamost``: their
LASP Teff lies systematically cooler than the dwarf scale of their class. N = 5 was then
set on the 29 spectra with even file numbers (fewest wrong network labels left unflagged,
then fewest LASP Teffs flagged: 3 of 15 and 1 of 29); benchmarks/README.md (issue 12,
fourth pass) reports it on the 31 odd ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["DWARF_TEFF", "GIANT_TEFF", "N_SUBTYPES", "SpType", "parse_subclass",
           "dwarf_teff", "giant_teff", "class_interval", "class_check", "RULE"]

#: Dwarf Teff (K) by spectral type: Pecaut & Mamajek (2013, ApJS 208, 9) Table 5, as in
#: Mamajek's online table (version 2017.10.19).
DWARF_TEFF = {
    "A0": 9700, "A1": 9200, "A2": 8840, "A3": 8550, "A4": 8270, "A5": 8080, "A6": 8000,
    "A7": 7800, "A8": 7500, "A9": 7440,
    "F0": 7220, "F1": 7030, "F2": 6810, "F3": 6720, "F4": 6640, "F5": 6510, "F6": 6340,
    "F7": 6240, "F8": 6170, "F9": 6040,
    "G0": 5920, "G1": 5880, "G2": 5770, "G3": 5720, "G4": 5680, "G5": 5660, "G6": 5590,
    "G7": 5530, "G8": 5490, "G9": 5340,
    "K0": 5280, "K1": 5170, "K2": 5040, "K3": 4840, "K4": 4620, "K5": 4410, "K6": 4230,
    "K7": 4070, "K8": 4000, "K9": 3940,
    "M0": 3870, "M0.5": 3800, "M1": 3700, "M1.5": 3650, "M2": 3550, "M2.5": 3500,
    "M3": 3410, "M3.5": 3250, "M4": 3200, "M4.5": 3100, "M5": 3030,
}
#: Giant (class III) Teff (K): Alonso, Arribas & Martínez-Roger (1999, A&AS 140, 261),
#: Table 1, 0.5 ≳ [Fe/H] ≳ −1.0 (G4III: their bracketed value, few stars).
GIANT_TEFF = {
    "F0": 7046, "F2": 6804, "F5": 6255, "F6": 6190, "F8": 5805, "G4": 5180, "G5": 5050,
    "G6": 5040, "G7": 4920, "G8": 4860, "G9": 4725, "K0": 4660, "K1": 4580, "K2": 4455,
    "K3": 4285, "K4": 4195, "K5": 3950,
}
#: Classification precision in subtypes (module doc).
N_SUBTYPES = 5.0
#: One line for the catalogue header.
RULE = (f"class Teff interval: dwarf Teff (Pecaut & Mamajek 2013 Tab 5) at type -/+ "
        f"{N_SUBTYPES:g} subtypes; cool end min(dwarf, giant Teff (Alonso et al. 1999 Tab 1)) "
        "unless luminosity class V")

_LETTERS = {"A": 0.0, "F": 10.0, "G": 20.0, "K": 30.0, "M": 40.0}


def _code(name: str) -> float:
    return _LETTERS[name[0]] + float(name[1:])


_DWARF = np.array(sorted((_code(k), v) for k, v in DWARF_TEFF.items()), float)
_GIANT = np.array(sorted((_code(k), v) for k, v in GIANT_TEFF.items()), float)
_PATTERN = re.compile(r"^(sd|d|g)?([AFGKM])(\d(?:\.\d+)?)\s*"
                      r"(Iab|Ia|Ib|III|II|IV|VI|V|I)?(?:[/-](?:III|II|IV|V|I))?\s*$")


@dataclass(frozen=True)
class SpType:
    """A parsed type: ``code`` (A0 = 0, F0 = 10, G0 = 20, K0 = 30, M0 = 40; decimal
    subtypes kept) and ``lum`` (luminosity class, "" when none given)."""

    code: float
    lum: str

    @property
    def dwarf(self) -> bool:
        """Luminosity class V (dwarf)."""
        return self.lum == "V"


def parse_subclass(subclass: str, cls: str = "STAR") -> SpType | None:
    """The type of a LAMOST ``SUBCLASS`` (``'G5'``, ``'A4III'``, ``'K3.5V'``, ``'dM5'``:
    prefix d = dwarf, g = giant, sd = subdwarf); None for a non-``STAR`` ``CLASS``, an
    empty or unknown subclass, or a type outside :data:`DWARF_TEFF` (A0–M5)."""
    if str(cls).strip().upper() not in ("STAR", ""):
        return None
    m = _PATTERN.match(str(subclass).strip())
    if m is None:
        return None
    prefix, letter, sub, lum = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    code = _LETTERS[letter] + float(sub)
    if not _DWARF[0, 0] <= code <= _DWARF[-1, 0]:
        return None
    if not lum and prefix:
        lum = {"d": "V", "g": "III", "sd": "VI"}[prefix]
    return SpType(code, lum)


def dwarf_teff(code) -> np.ndarray:
    """Dwarf Teff (K) at type ``code`` (:class:`SpType`), linear between the table's types;
    NaN outside A0–M5."""
    code = np.asarray(code, float)
    out = np.interp(code, _DWARF[:, 0], _DWARF[:, 1])
    return np.where((code >= _DWARF[0, 0]) & (code <= _DWARF[-1, 0]), out, np.nan)


def giant_teff(code) -> np.ndarray:
    """Giant Teff (K) at type ``code``: :data:`GIANT_TEFF` linear between its types, and the
    dwarf scale shifted by the end difference outside F0–K5 (module doc); NaN outside A0–M5."""
    code = np.asarray(code, float)
    lo_c, hi_c = _GIANT[0, 0], _GIANT[-1, 0]
    inside = np.interp(code, _GIANT[:, 0], _GIANT[:, 1])
    early = dwarf_teff(code) - (dwarf_teff(lo_c) - _GIANT[0, 1])
    late = dwarf_teff(code) - (dwarf_teff(hi_c) - _GIANT[-1, 1])
    return np.where(code < lo_c, early, np.where(code > hi_c, late, inside))


def class_interval(sp: SpType, n_subtypes: float = N_SUBTYPES) -> tuple[float, float]:
    """(cool, hot) Teff (K) consistent with the type ``sp`` (module doc: ±``n_subtypes``,
    giant allowance unless class V); an end beyond A0–M5 is ∓inf."""
    hot = float(dwarf_teff(sp.code - n_subtypes))
    cool = float(dwarf_teff(sp.code + n_subtypes))
    if not sp.dwarf and np.isfinite(cool):
        cool = min(cool, float(giant_teff(sp.code + n_subtypes)))
    return (cool if np.isfinite(cool) else -np.inf, hot if np.isfinite(hot) else np.inf)


def class_check(teff, subclasses, classes=None, train_range=None, tol: float = 0.0,
                n_subtypes: float = N_SUBTYPES):
    """Per row: ``class_teff`` (dwarf Teff of the class, NaN when none), ``disagree``
    (finite network ``teff`` outside the class interval) and ``outside`` (the whole class
    interval beyond ``train_range`` = (low, high) training Teff by more than ``tol`` K).
    ``subclasses``/``classes``: the header strings (``classes`` None: all ``STAR``)."""
    teff = np.asarray(teff, float)
    n = teff.size
    classes = ["STAR"] * n if classes is None else list(classes)
    class_teff = np.full(n, np.nan)
    disagree = np.zeros(n, bool)
    outside = np.zeros(n, bool)
    for i, (sub, cls) in enumerate(zip(subclasses, classes, strict=True)):
        sp = parse_subclass(sub, cls)
        if sp is None:
            continue
        class_teff[i] = dwarf_teff(sp.code)
        cool, hot = class_interval(sp, n_subtypes)
        disagree[i] = bool(np.isfinite(teff[i]) and not cool <= teff[i] <= hot)
        if train_range is not None:
            outside[i] = cool > train_range[1] + tol or hot < train_range[0] - tol
    return class_teff, disagree, outside
