"""The one table of catalogue columns and flag bits: units, meanings, and docs/CATALOG.md.

:data:`COLUMNS` lists every column the prediction catalogues can hold (``apogee-net
predict``, ``apogee-net lamost predict``) with its unit and meaning; label columns come from
:data:`LABEL_UNITS` (the APOGEE Net labels, and the LAMOST labels' units from
``apogee_net/data/lamost_label_ranges.csv``). The flag bits are read from the code that sets
them (:data:`apogee_net.inference.predict.FLAGS`, :data:`apogee_net.lamost.predict.FLAGS`)
by :mod:`apogee_net.inference.catalog_doc`, so a new bit appears in ``docs/CATALOG.md`` by
itself (``python -m apogee_net.inference.catalog_doc`` rewrites it; a test checks that the
file matches). :func:`apply_units` puts the units on a catalogue's columns.
"""

from __future__ import annotations

from astropy import units as u
from astropy.table import Table

from yso_labels.core.tables import DEX

#: (name, unit, catalogues, meaning). ``<label>`` stands for each label column.
COLUMNS: tuple[tuple[str, object, str, str], ...] = (
    ("apogee_id", None, "apogee",
     "star identifier: the APOGEE ID (apStar OBJID) or the SDSS-V sdss_id (mwmStar/mwmVisit "
     "files)"),
    ("spec_id", None, "lamost", "the LAMOST spectrum ID (OBSID; the store's key)"),
    ("ra", u.deg, "apogee, lamost", "right ascension (ICRS, J2000) from the file header"),
    ("dec", u.deg, "apogee, lamost", "declination (ICRS, J2000) from the file header"),
    ("<label>", "label unit", "apogee, lamost",
     "predicted label: mean of the perturbed (APOGEE Net, Olney et al. 2020 sec. 3.5) or "
     "MC-dropout (LAMOST, Li et al.) predictions"),
    ("<label>_err", "label unit", "apogee, lamost",
     "1-sigma uncertainty: standard deviation over the perturbed realizations (APOGEE; "
     "times the calibration factor SIGSCALE when the model has one) or "
     "sqrt(model + predictive variance) (LAMOST)"),
    ("<label>_err_model", "label unit", "lamost",
     "model (epistemic) part of the LAMOST uncertainty: std over the MC-dropout passes"),
    ("<label>_err_pred", "label unit", "lamost",
     "predictive (aleatoric) part of the LAMOST uncertainty: sqrt(exp(mean log variance))"),
    ("<label>_flag", None, "lamost",
     "True: the prediction lies outside Li et al.'s recommended range (Table 2, sec. 3.1-3.3)"),
    ("snr", None, "apogee, lamost",
     "signal-to-noise ratio per pixel (apStar header SNR, SNRVIS<v> for a visit; LAMOST "
     "SNR_g)"),
    ("ood_score", None, "apogee, lamost",
     "out-of-distribution score (apogee_net.network.ood: penultimate-layer Mahalanobis "
     "distance, extreme standardised pixels, missing pixels), scaled so that 1 % of the dev "
     "spectra score above 1; above 1 sets OOD; NaN when the model has no OOD statistics"),
    ("fit_teff", u.K, "apogee",
     "Teff of an independent fit of The Payne emulator (Ting et al. 2019) x a quadratic "
     "per chip to the spectrum, started at the network's labels (apogee_net.network."
     "fitcheck); NaN when the check did not run (header FITCHECK) or the network's labels "
     "lie outside the emulator's range"),
    ("fit_logg", DEX, "apogee", "log g of the same fit (see fit_teff)"),
    ("fit_fe_h", DEX, "apogee", "[Fe/H] of the same fit (see fit_teff); abs(label - fit) above "
     "the model's dev threshold sets FIT_DISAGREE"),
    ("class_teff", u.K, "lamost",
     "dwarf-scale Teff of the LAMOST pipeline's own class (header SUBCLASS; Pecaut & "
     "Mamajek 2013 Table 5, apogee_net.lamost.sptype); NaN when the file has none, the "
     "class is not STAR, the type is outside A0-M5, or the check is off; sets "
     "CLASS_DISAGREE / OUT_OF_RANGE"),
    ("lum_logg_lo", DEX, "lamost",
     "lowest log g allowed by the star's Gaia G and parallax (--photometry; masses "
     "0.3-3 Msun, parallax +-2 sigma, A_G; BC_G of Andrae et al. 2018; "
     "apogee_net.lamost.lumcheck); NaN without a match within 1 arcsec, with parallax/sigma "
     "< 5, Teff outside 3300-8000 K, or no --photometry; log g outside lo-hi sets "
     "LUM_DISAGREE"),
    ("lum_logg_hi", DEX, "lamost", "highest log g allowed by the same (see lum_logg_lo)"),
    ("flags", None, "apogee, lamost", "bit flags, see the flag table below"),
    ("sigma_group", None, "apogee",
     "group whose sigma calibration factor was applied: yso, mstar, dwarf or giant, "
     "assigned from the predicted Teff and log g (header SIGGROUP gives the rule), or "
     "known:<source> for a star of predict --groups (header SIGKNOWN)"),
    ("telescope", None, "apogee, lamost",
     "apo25m, apo1m, lco25m (apStar/asStar header TELESCOP, DR17 directory or file prefix; "
     "mwm files: their table) or lamost"),
    ("file", None, "apogee, lamost",
     "the spectrum file (for a store: the file it was ingested from; PATH[k] for the k-th "
     "APOGEE spectrum of an mwmStar/mwmVisit file)"),
    ("visit", None, "apogee (--visits)",
     "0: the combined spectrum; 1..N: visit N of the apStar file (rows 2.. of its arrays) "
     "or of the mwmVisit file"),
    ("mjd", u.d, "apogee (--visits)",
     "modified Julian date of the visit (apStar header JD<v> - 2400000.5; mwmVisit mjd); "
     "NaN for combined spectra"),
)

#: Units of the label columns (APOGEE Net: log g, Teff, [Fe/H]; LAMOST: the 14 labels).
LABEL_UNITS: dict[str, object] = {"teff": u.K, "logg": DEX, "fe_h": DEX}


def _lamost_units() -> dict[str, object]:
    from apogee_net.lamost.labels import label_ranges

    return {str(r["label"]): (u.K if str(r["unit"]) == "K" else DEX) for r in label_ranges()}


def label_unit(name: str):
    """Unit of a label column (K for Teff, dex for log g and abundances; None if unknown)."""
    units = {**_lamost_units(), **LABEL_UNITS}
    return units.get(name)


def column_unit(name: str):
    """Unit of catalogue column ``name`` (None: dimensionless, text or flags)."""
    fixed = {n: unit for n, unit, _, _ in COLUMNS if not n.startswith("<")}
    if name in fixed:
        return fixed[name]
    for suffix in ("_err_model", "_err_pred", "_err"):
        if name.endswith(suffix):
            return label_unit(name[: -len(suffix)])
    return None if name.endswith("_flag") else label_unit(name)


def undocumented(colnames) -> list[str]:
    """Names among ``colnames`` that no entry of :data:`COLUMNS` describes (a label column
    counts when its unit is known)."""
    fixed = {n for n, *_ in COLUMNS if not n.startswith("<")}
    out = []
    for name in colnames:
        base = name
        for suffix in ("_err_model", "_err_pred", "_err", "_flag"):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                break
        if name not in fixed and label_unit(base) is None:
            out.append(name)
    return out


def apply_units(table: Table) -> Table:
    """Set the unit of every physical column of a catalogue (in place) and return it."""
    for name in table.colnames:
        unit = column_unit(name)
        if unit is not None:
            table[name].unit = unit
    return table
