"""Writes the hand-built Gaia-archive extracts used by tests/test_catalogs.py.

A tiny "archive": ``tmass_psc.vot`` (rows of gaiadr1.tmass_original_valid) and
``gaia_dr3.vot`` / ``gaia_dr2.vot`` (rows of gaia_source, each with its best-neighbour
2MASS designation and Gaia-2MASS distance, AllWISE photometry and SDSS / Pan-STARRS1 g, r).
The test server in tests/test_catalogs.py answers ADQL jobs from these tables and serves
the results as the archive does (VOTable 1.4, BINARY2, gzip). Values are invented but
physically plausible; positions are chosen to exercise each matching rule:

A  2M03290406+3117075  full match (NGC 1333); a Gaia-only neighbour 4" north
(each Gaia row ends with FLAME radius_flame (R_sun) and lum_flame (L_sun), null for faint
stars, as gaiadr3.astrophysical_parameters)
B  2M10112233+2030405  2MASS only (no Gaia source within 10"); Ks is an upper limit
C  2M21003000-0512345  Gaia + 2MASS + SDSS, no AllWISE, no Pan-STARRS1
D  2M05351234-0523456  two Gaia sources share this 2MASS source (0.90" and 0.12")
F  ra=150, dec=2.2     high proper motion star 1.6" away at 2016.0, 0" at 2000.0, and a
                       background star 1.0" away: the first is the right match
G  AP20000000+1000000  AP ID (position only), Gaia + 2MASS + SDSS

Run ``python tests/data/catalogs/make_archive_extract.py`` to rewrite the files.
"""

from pathlib import Path

import numpy as np
from astropy.io.votable import from_table
from astropy.table import MaskedColumn, Table

HERE = Path(__file__).resolve().parent
N = None  # a null in the archive


def _radec(h, m, s, sign, d, dm, ds):
    return 15 * (h + m / 60 + s / 3600), sign * (d + dm / 60 + ds / 3600)


def _offset(ra, dec, east_arcsec, north_arcsec):
    return ra + east_arcsec / 3600 / np.cos(np.radians(dec)), dec + north_arcsec / 3600


def _table(names, rows, dtypes):
    cols = []
    for j, (name, dtype) in enumerate(zip(names, dtypes, strict=True)):
        vals = [r[j] for r in rows]
        mask = [v is None for v in vals]
        fill = b"" if dtype.startswith("S") else 0
        cols.append(MaskedColumn([fill if v is None else v for v in vals], name=name,
                                 dtype=dtype, mask=mask))
    return Table(cols)


def _write(table, name):
    vot = from_table(table)
    vot.resources[0].type = "results"
    vot.resources[0].tables[0].format = "binary2"
    vot.to_xml(str(HERE / name))


TMASS_NAMES = ("designation", "ra", "dec", "ph_qual", "j_m", "j_msigcom", "h_m", "h_msigcom",
               "ks_m", "ks_msigcom")
TMASS_DTYPES = ("S17", "f8", "f8", "S3") + ("f4",) * 6
A = _radec(3, 29, 4.064, 1, 31, 17, 7.54)
B = _radec(10, 11, 22.335, 1, 20, 30, 40.55)
C = _radec(21, 0, 30.004, -1, 5, 12, 34.52)
D = _radec(5, 35, 12.345, -1, 5, 23, 45.65)
G = _radec(20, 0, 0.004, 1, 10, 0, 0.32)
TMASS = [
    ("03290406+3117075", *A, "AAA", 12.081, 0.023, 11.102, 0.026, 10.573, 0.019),
    ("10112233+2030405", *B, "AAU", 14.512, 0.035, 13.901, 0.041, 13.70, N),
    ("21003000-0512345", *C, "AAA", 10.204, 0.021, 9.611, 0.022, 9.385, 0.020),
    ("05351234-0523456", *D, "AAA", 9.870, 0.024, 9.102, 0.030, 8.811, 0.019),
    ("20000000+1000003", *G, "AAB", 13.402, 0.026, 12.810, 0.031, 12.563, 0.035),
]

GAIA_NAMES = ("source_id", "ra", "dec", "ref_epoch", "pmra", "pmdec", "parallax",
              "parallax_error", "phot_g_mean_mag", "phot_g_mean_flux_over_error",
              "phot_bp_mean_mag", "phot_bp_mean_flux_over_error", "phot_rp_mean_mag",
              "phot_rp_mean_flux_over_error", "tmass_designation", "xm_sep",
              "w1mpro", "w1mpro_error", "w2mpro", "w2mpro_error", "w3mpro", "w3mpro_error",
              "sdss_g", "sdss_g_error", "sdss_r", "sdss_r_error",
              "ps1_g", "ps1_g_error", "ps1_r", "ps1_r_error", "radius_flame", "lum_flame")
GAIA_DTYPES = ("i8", "f8", "f8", "f8", "f8", "f8", "f8", "f4", "f4", "f4", "f4", "f4", "f4",
               "f4", "S17", "f4") + ("f4",) * 16
F1 = _offset(150.0, 2.2, 0.0, -1.6)
F2 = _offset(150.0, 2.2, 1.0, 0.0)
GAIA_DR3 = [
    (216710367487286272, *_offset(*A, 0.1104, -0.1568), 2016.0, 6.9, -9.8, 3.412, 0.041,
     15.8123, 812.3, 17.9012, 61.2, 14.5567, 402.9, "03290406+3117075", 0.083,
     9.953, 0.023, 9.412, 0.021, 7.623, 0.048, 18.934, 0.012, 17.301, 0.008,
     18.801, 0.010, 17.268, 0.006, 1.912, 0.6215),
    (216710367487290112, *_offset(*A, 0.0, 4.0), 2016.0, 1.2, -0.4, 0.21, 0.35,
     19.802, 95.0, 20.31, 8.1, 19.05, 12.2, N, N, *(N,) * 6, *(N,) * 8, N, N),
    (6915123456789012480, *_offset(*C, 0.03, -0.04), 2016.0, 25.1, -40.3, 12.871, 0.022,
     13.2004, 2411.0, 14.4513, 480.5, 12.1002, 1190.3, "21003000-0512345", 0.051,
     *(N,) * 6, 16.127, 0.004, 14.702, 0.003, N, N, N, N, 0.7803, 0.4092),
    (3017366423498432640, *_offset(*D, 0.5, 0.75), 2016.0, 1.0, 0.5, 2.41, 0.21,
     17.512, 150.2, 18.6, 20.1, 16.4, 70.3, "05351234-0523456", 0.90,
     *(N,) * 6, *(N,) * 8, N, N),
    (3017366423498432512, *_offset(*D, 0.06, -0.10), 2016.0, 1.5, 0.2, 2.532, 0.031,
     12.9013, 3020.5, 13.9, 700.2, 11.9, 1500.9, "05351234-0523456", 0.12,
     8.402, 0.022, 8.311, 0.020, 8.01, 0.031, *(N,) * 8, 2.104, 1.702),
    (3838510926538862592, *F1, 2016.0, 0.0, -100.0, 48.77, 0.05,
     14.005, 1800.0, 15.92, 300.1, 12.71, 900.2, N, N,
     10.11, 0.022, 9.90, 0.021, 9.71, 0.04, 17.95, 0.007, 16.40, 0.005, 17.81, 0.004,
     16.33, 0.003, 0.5512, 0.0803),
    (3838510926538862720, *F2, 2016.0, 0.0, 0.0, 0.11, 0.30,
     18.021, 120.0, 18.5, 15.0, 17.3, 30.0, N, N, *(N,) * 6, *(N,) * 8, N, N),
    (4297351234567890176, *_offset(*G, 0.02, -0.01), 2016.0, -3.2, -5.1, 7.112, 0.030,
     15.001, 950.4, 16.8, 80.2, 13.8, 500.5, "20000000+1000003", 0.05,
     12.31, 0.024, 12.10, 0.023, 11.8, 0.2, 17.612, 0.006, 16.011, 0.004, N, N, N, N,
     1.021, 0.9534),
]
GAIA_DR2 = [
    (216710367487286400, *_offset(*A, 0.1070, -0.1519), 2015.5, 7.1, -9.5, 3.301, 0.092,
     15.8301, 700.0, 17.95, 50.0, 14.57, 350.0, "03290406+3117075", 0.090,
     9.953, 0.023, 9.412, 0.021, 7.623, 0.048, 18.934, 0.012, 17.301, 0.008,
     18.801, 0.010, 17.268, 0.006, 1.855, 0.6012),
]

if __name__ == "__main__":
    _write(_table(TMASS_NAMES, TMASS, TMASS_DTYPES), "tmass_psc.vot")
    _write(_table(GAIA_NAMES, GAIA_DR3, GAIA_DTYPES), "gaia_dr3.vot")
    _write(_table(GAIA_NAMES, GAIA_DR2, GAIA_DTYPES), "gaia_dr2.vot")
