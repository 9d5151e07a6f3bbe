"""The options of the ``apogee-net`` commands: one dataclass per command.

Each field is a keyword argument of the library function behind the command, with the same
default, and (declared with :func:`yso_labels.core.options.option`) an option of the
command, whose ``--help`` text it carries. The command line is generated from these classes
(:func:`yso_labels.core.options.add_dataclass_arguments`); the paths a command reads and
writes are arguments of the function and are declared by the command itself. This module
imports no science and no torch, so that ``apogee-net --help`` stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from yso_labels.core.guards import nonneg_int, pos_int
from yso_labels.core.options import OPTIMIZER_NAMES, TrainOptions, option
from yso_labels.core.runtime import AMP_CHOICES, device_arg
from yso_labels.families import models_arg

ARCHS = ("apogeenet1", "apogeenet2")
ARCH_HELP = ("APOGEE Net I (Olney et al. 2020) or II (Sprague et al. 2022: + Gaia/2MASS "
             "photometry, log Teff, hot stars)")
ARCH_CHECK_HELP = ARCH_HELP + "; checked against the model (default: whatever it holds)"
PHOTOMETRY_HELP = ("apogeenet2: table with apogee_id, parallax, G, BP, RP, J, H, K (the "
                   "output of `yso-labels fetch-photometry` works as is; default: the label "
                   "table's own columns). Missing values: published fill, flag NO_PHOTOMETRY")
DEVICE_HELP = "auto, cpu or cuda"
AMP_HELP = ("forward passes in float32 (none, default) or bf16/fp16 autocast (for GPUs; on a "
            "CPU bf16 moved labels by ~0.03 sigma and fp16 is slow: benchmarks/README.md)")
COMPILE_HELP = "torch.compile the network (needs a C++ compiler on the CPU)"


def int_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers (``4,8,8``)."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None


def standard_arg(text: str) -> float | str:
    """argparse type of ``--weight-standard``: a number or ``auto``."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("weight standard: a number or 'auto'") from None


# --------------------------------------------------------------------------- spectra
@dataclass
class IngestOptions:
    """``apogee-net ingest`` / :func:`apogee_net.spectra.ingest.ingest_apstar`."""

    workers: int | None = option(None, "reader processes (default min(4, CPUs))",
                                 type=nonneg_int)
    batch_size: int = option(64, "rows per write (default 64)", type=pos_int)
    compression: str | None = option("none", "flux/error compression (default none)",
                                     choices=("none", "lzf", "gzip"))
    restart: bool = option(False, "discard an unfinished STORE.h5.part instead of resuming it")
    progress: bool = option(True, "no progress bar")
    pixmask_bits: Any = option(
        "default", "apStar PIXMASK bits (HDU3) whose pixels are stored as no data: numbers "
        "or names, e.g. '0,1,SIG_SKYLINE', 'none', or 'default' (0-10,12,14: bad/cosmic-"
        "ray/saturated pixels, sky lines, Littrow ghost, high and medium persistence; chosen "
        "on real DR17 files)", metavar="BITS")


@dataclass
class SimulateOptions:
    """``apogee-net simulate`` / :func:`apogee_net.spectra.simulate.simulate_apstar`."""

    emulator: str | None = option(
        None, "NN_unnormalized_spectra.npz of The Payne (scripts/fetch_payne_emulator.py "
        "downloads it); 'analytic' for the fallback; default: $YSO_PAYNE_DIR or the download "
        "cache, else the fallback with a warning", metavar="NPZ")
    snr: Any = option("50:200", "SNR range, drawn uniformly per star (default 50:200)",
                      metavar="LO:HI")
    seed: int = option(0, "random seed (default 0)", type=nonneg_int)
    convention: str = option("dr17", "layout of pixels without data (default dr17: NaN, 2 "
                             "rows)", choices=("dr17", "dr13"))
    out_of_range: str = option("error", "labels outside the emulator's range: stop (default), "
                               "clip, or extrapolate the emulator; flagged LBLCLIP",
                               choices=("error", "clip", "extrapolate"))
    augment: str | None = option(
        "none", "draw real-instrument systematics onto the spectra (their bit mask goes to "
        "HDU3): 'none' (default; `apogee-net train` augments anyway), 'default' (learnt from "
        "real DR17 files) or a file made by scripts/learn_apstar_systematics.py",
        metavar="none|default|FILE.npz")
    overwrite: bool = option(False, "rewrite existing files")
    progress: bool = option(True, "no progress bar")
    chunk: int = 256


# --------------------------------------------------------------------------- APOGEE Net
@dataclass
class ApogeeTrainOptions(TrainOptions):
    """``apogee-net train`` / :func:`apogee_net.network.train.train_apogee_net`: the
    training loop's options (:class:`~yso_labels.core.options.TrainOptions`) with the
    recipe of issue 14 as defaults (benchmarks/README.md), and the data options.

    ``warmup`` is cut to leave at least one epoch after it (a one-epoch run has none).
    ``label_columns``: the labels learnt (None: logg, teff, fe_h)."""

    max_epochs: int = option(30, "epoch budget (the cosine schedule spans it; default 30)",
                             type=pos_int)
    batch_size: int = option(32, "global batch (default 32; paper: 128)", type=pos_int)
    lr: float = option(1e-3, "peak learning rate (1e-3)")
    patience: int = option(10, "epochs without a better dev loss before stopping (default "
                           "10; paper: 5)", type=pos_int)
    schedule: str = option("cosine", "learning rate: warm-up then cosine decay (default), or "
                           "constant (the paper's)", choices=("cosine", "constant"))
    warmup: float = option(1.0, "warm-up epochs (default 1)")
    weight_decay: float = option(0.0, "(default 0)")
    optimizer: str = option("adam", "(default adam)", choices=OPTIMIZER_NAMES)
    dropout: float = option(0.0, "FC dropout (default 0; paper: 0.1)")
    device: str = option("auto", DEVICE_HELP, type=device_arg)
    seed: int = option(0, None, type=nonneg_int)
    resume: bool = option(False, "continue RUNDIR/last.pt (refused unless the store, labels "
                          "and options are those it was trained with)")
    amp: bool = option(False, "mixed precision (GPU only)")
    workers: int = option(0, "data loader processes", type=nonneg_int)
    noise_augment: float = option(1.0, "add a fresh draw of this many times each spectrum's "
                                  "own error every epoch (default 1; 0: off)")
    linear_skip: Any = option(None, "an architecture option outside the paper (apogeenet1 "
                              "only): a ridge regression on the pixels added to the "
                              "network's output for these labels ('all' or e.g. "
                              "'logg,fe_h'), the network trained on its cross-fitted "
                              "residuals (default: none)", metavar="LABELS")
    arch: str = option("apogeenet1", ARCH_HELP + " (default apogeenet1)", choices=ARCHS)
    photometry: Any = option(None, PHOTOMETRY_HELP, metavar="TABLE")
    flux_norm: str = option("median", "divide each spectrum by its median before the "
                            "per-pixel standardisation (default), or not (the paper's raw "
                            "flux)", choices=("median", "none"))
    restart: bool = option(False, "start a new run in RUNDIR, replacing what it holds")
    augment: str | None = option(
        "default", "draw real-instrument systematics (response, sky, telluric, persistence, "
        "bad pixels, error relation) onto the training spectra: 'default' (learnt from real "
        "DR17 apStar files), a file made by scripts/learn_apstar_systematics.py, or 'none'",
        metavar="default|none|FILE.npz")
    pixmask_bits: Any = option(None, "apStar PIXMASK bits treated as no data, e.g. '0,1,12' "
                               "or 'default' or 'none' (default: those the store was "
                               "ingested with)", metavar="BITS")
    fit_check: bool = option(True, "do not fit the thresholds of the independent-fit "
                             "consistency check (FIT_DISAGREE) on dev at the end of training")
    emulator: str | None = option(None, "The Payne emulator NN_unnormalized_spectra.npz for "
                                  "the fit check's thresholds (default: $YSO_PAYNE_DIR or the "
                                  "download cache; none found: the model gets no fit check)")
    label_columns: tuple[str, ...] | None = None

    def __post_init__(self):
        self.warmup = min(self.warmup, max(0.0, self.max_epochs - 1.0))
        super().__post_init__()


@dataclass
class PredictOptions:
    """``apogee-net predict`` / :func:`apogee_net.inference.predict.predict_catalog`."""

    arch: str | None = option(None, ARCH_CHECK_HELP, choices=ARCHS)
    photometry: Any = option(None, PHOTOMETRY_HELP, metavar="TABLE")
    hot: str = option("flag", "stars hotter than 6700 K (left out of the paper's table): "
                      "flag (default, bit 16) or drop", choices=("flag", "drop"))
    realizations: int = option(100, "perturbed copies per spectrum (paper: 100; 0: no "
                               "uncertainties)", type=nonneg_int)
    device: str = option("auto", DEVICE_HELP, type=device_arg)
    batch_size: int | None = option(None, "rows per forward pass (default 32 on CPU, 2048 on "
                                    "GPU)", type=pos_int)
    seed: int = option(0, None, type=nonneg_int)
    chunk_size: int = option(1024, "spectra per resumable part", type=pos_int)
    restart: bool = option(False, "discard the finished parts of an interrupted run "
                           "(OUT.parts/)")
    workers: int = option(4, "threads reading apStar files", type=nonneg_int)
    visits: bool = option(False, "also one row per visit of each apStar file (columns visit, "
                          "mjd; visit 0 is the combined spectrum)")
    pixmask_bits: Any = option(None, "apStar PIXMASK bits treated as no data (default: the "
                               "model's)", metavar="BITS")
    amp: str = option("none", AMP_HELP, choices=AMP_CHOICES)
    compile: bool = option(False, COMPILE_HELP)
    groups: Any = option(None, "table with apogee_id and source (e.g. the label table of "
                         "yso-labels merge): its stars get their known group's sigma factor "
                         "(sigma_group known:<group>), the others their predicted group's",
                         metavar="TABLE")
    fit_check: bool = option(True, "no independent-fit consistency check (columns fit_teff, "
                             "fit_logg, fit_fe_h NaN, no FIT_DISAGREE)")
    emulator: str | None = option(None, "The Payne emulator NN_unnormalized_spectra.npz for "
                                  "the fit check (default: the model's, $YSO_PAYNE_DIR or the "
                                  "download cache; none found: no check)")
    progress: bool = True


# --------------------------------------------------------------------------- LAMOST
@dataclass
class LamostIngestOptions:
    """``apogee-net lamost ingest`` / :func:`apogee_net.lamost.ingest.ingest_lamost`."""

    workers: int | None = option(None, "reader processes (default min(4, CPUs))",
                                 type=nonneg_int)
    batch_size: int = option(64, "rows per write (default 64)", type=pos_int)
    L: float = option(50.0, "continuum Gaussian sigma in A (Li et al.: 50)")
    max_cosmic: int = option(20, "reject spectra with more cosmic-ray pixels (default 20)",
                             type=nonneg_int)
    reject_cosmics: bool = option(True, "no cosmic-ray masking", flag="--keep-cosmics")
    min_valid_fraction: float = option(0.5, "reject spectra with fewer valid grid pixels "
                                       "(default 0.5)")
    overwrite: bool = option(False, "build a new store; it replaces STORE.h5 only once "
                             "complete")
    restart: bool = option(False, "discard an unfinished STORE.h5.part instead of resuming it")
    progress: bool = option(True, None)


@dataclass
class LamostLabelsOptions:
    """``apogee-net lamost labels`` / :func:`apogee_net.lamost.training.build_training_labels`
    (Li et al. §2.2). ``source``: the value of the table's ``source`` column."""

    how: str = option("position", None, choices=("position", "id"))
    max_sep: float = option(3.0, "arcsec (default 3)")
    id_table: Any = option(None, "--how id: table with spec_id (LAMOST OBSID) and the APOGEE "
                           "ID column named by --lamost-key")
    lamost_key: str | None = option(None, "--how id: the APOGEE ID column of --id-table")
    apogee_key: str = option("APOGEE_ID", None)
    require_core: bool = option(True, "keep stars without Teff, log g, [Fe/H] or [M/H] "
                                "(paper: dropped)", flag="--keep-incomplete")
    weights: str = option("feh", None, choices=("feh", "none"))
    weight_standard: float | str = option(410.0, "stars per bin of the weight standard "
                                          "(paper: 410) or 'auto'", type=standard_arg)
    uncovered_weight: str = option("error", "stars outside the weight table: stop (default) "
                                   "or weight 1", choices=("error", "one"))
    seed: int = option(0, "seed of the split", type=nonneg_int)
    quality_cuts: Any = option(
        "default", "drop APOGEE rows with ASPCAPFLAG STAR_BAD, STARFLAG BAD_PIXELS, "
        "COMMISSIONING, VERY_BRIGHT_NEIGHBOR, LOW_SNR or EXTRATARG COMMISSIONING (default), "
        "or none", choices=("default", "none"))
    duplicates: str = option("best-snr", "APOGEE IDs with several rows: keep the highest-S/N "
                             "row (default) or all", choices=("best-snr", "keep"))
    source: str = "apogee"


@dataclass
class LamostTrainOptions(TrainOptions):
    """``apogee-net lamost train`` / :func:`apogee_net.lamost.training.train_lamost`: the
    training loop's options with astroNN's defaults (Li et al.) and the network's shape."""

    max_epochs: int = option(100, None, type=pos_int)
    batch_size: int = option(64, "(astroNN: 64)", type=pos_int)
    lr: float = option(1e-3, None)
    patience: int = option(5, None, type=pos_int)
    dropout: float = option(0.2, "MC dropout rate (astroNN 0.2)")
    seed: int = option(0, None, type=nonneg_int)
    device: str = option("auto", None, type=device_arg)
    amp: bool = option(False, "mixed precision (GPU only)")
    workers: int = option(0, None, type=nonneg_int)
    resume: bool = option(False, "continue RUNDIR/last.pt (same store, labels and options "
                          "only)")
    progress: bool = option(True, None)
    weight_norm: str = option("batch", "per-batch loss: mean of w*l (default; astroNN/Keras, "
                              "as Li et al.) or sum(w*l)/sum(w)", choices=("batch", "sum_w"))
    filters: tuple[int, ...] = option((4, 8, 8), "three conv widths", type=int_list)
    kernel: int = option(8, None, type=pos_int)
    pool: int = option(4, None, type=pos_int)
    hidden: tuple[int, ...] = option((196, 96), "two FC sizes", type=int_list)
    weights: str = option("column", "sample weights: the table's (default), rebuilt from "
                          "[Fe/H], none", choices=("column", "feh", "none"))
    weight_standard: float | str = option(410.0, None, type=standard_arg)
    input_norm: str = option("center", "network input: normalised flux minus its per-pixel "
                             "training mean (default; astroNN input_norm_mode 3, as Li et al.) "
                             "or also divided by the per-pixel std",
                             choices=("center", "standardise"))
    dev_mc: bool = option(True, "dev loss (early stopping) with MC dropout on, one "
                          "stochastic pass per spectrum, as astroNN's validation loss "
                          "(default) or off")
    restart: bool = option(False, "start a new run in RUNDIR")


@dataclass
class LamostPredictOptions:
    """``apogee-net lamost predict`` / :func:`apogee_net.lamost.predict.predict_lamost`."""

    passes: int = option(100, "MC-dropout passes (paper: 100)", type=pos_int)
    device: str = option("auto", None, type=device_arg)
    batch_size: int | None = option(None, "rows per forward call (default 128 CPU, 8192 GPU)",
                                    type=pos_int)
    seed: int = option(0, None, type=nonneg_int)
    chunk_size: int = option(1024, None, type=pos_int)
    restart: bool = option(False, "discard the finished parts of an interrupted run "
                           "(OUT.parts/)")
    amp: str = option("none", AMP_HELP, choices=AMP_CHOICES)
    compile: bool = option(False, COMPILE_HELP)
    progress: bool = option(True, None)
    class_check: bool = option(True, "do not compare Teff with the LAMOST "
                               "pipeline's spectral class (column class_teff, flag "
                               "CLASS_DISAGREE; apogee_net.lamost.sptype)")
    photometry: str | None = option(None, "table of Gaia photometry by position (ra, dec, G, "
                                    "parallax, parallax_error[, a_g]; e.g. from yso-labels "
                                    "fetch-photometry): flag LUM_DISAGREE when log g is outside "
                                    "what the luminosity allows (apogee_net.lamost.lumcheck)")


# --------------------------------------------------------------------------- §3.4, evaluation
@dataclass
class AdaptOptions:
    """``apogee-net adapt`` / :func:`apogee_net.network.adapt.adapt` (Olney et al. 2020
    §3.4). ``store``, ``labels``: default to those the run was trained on; ``lr``: default
    ``LR_FACTOR`` (0.02) times the run's; ``min_improvement``: relative rare-group dev-loss
    gain that resets ``round_patience``."""

    fraction: float = option(0.05, "fraction of Payne training stars drawn each round "
                             "(default 0.05)")
    seed: int = option(0, None, type=nonneg_int)
    store: str | None = option(None, "HDF5 store (default: the one the run was trained on)")
    labels: Any = option(None, "label table (default: the one the run was trained on)")
    max_rounds: int = option(20, None, type=pos_int)
    patience: int = option(8, "epochs without a better dev loss within a round (default 8)",
                           type=pos_int)
    # batch 32 and lr 0.02 x the run's: measured, see apogee_net.network.adapt
    batch_size: int = option(32, None, type=pos_int)
    lr: float | None = option(None, "learning rate (default 0.02 x the run's)")
    round_patience: int = option(2, "rounds without YSO/M-dwarf improvement before stopping",
                                 type=pos_int)
    max_epochs: int = option(30, "epochs per round at most", type=pos_int)
    majority_tolerance: float = option(0.05, "reject a round that raises the Payne dev loss "
                                       "by more than this fraction of the input model's "
                                       "(default 0.05)")
    device: str = option("auto", DEVICE_HELP, type=device_arg)
    arch: str | None = option(None, ARCH_CHECK_HELP, choices=ARCHS)
    photometry: Any = option(None, PHOTOMETRY_HELP, metavar="TABLE")
    workers: int = 0
    min_improvement: float = 1e-3
    progress: bool = True


@dataclass
class EvaluateOptions:
    """``apogee-net evaluate`` / :func:`apogee_net.evaluation.report.evaluate_model`."""

    realizations: int = option(100, "perturbed realizations per spectrum (default 100)",
                               type=nonneg_int)
    seed: int = option(0, None, type=nonneg_int)
    device: str = option("auto", None, type=device_arg)
    apply_calibration: bool = option(False, "store the per-group sigma scale factors in the "
                                     "model checkpoint")
    calibration: str = option("crossfit", "crossfit (default): factors from the 'cal' and "
                              "'test' splits, each test star judged with factors fitted "
                              "without it (K folds); cal: factors from 'cal' only",
                              choices=("crossfit", "cal"))
    # the default of apogee_net.evaluation.groupcal.CROSSFIT_FOLDS
    folds: int = option(5, "cross-fitting folds (default 5)", type=pos_int)
    arch: str | None = option(None, ARCH_CHECK_HELP, choices=ARCHS)
    photometry: Any = option(None, PHOTOMETRY_HELP, metavar="TABLE")


@dataclass
class DemoOptions:
    """``apogee-net demo`` / :func:`apogee_net.demo.run_demo`."""

    quick: bool = option(False, "smaller samples, a few minutes")
    seed: int = option(0, None, type=nonneg_int)
    device: str = option("auto", DEVICE_HELP, type=device_arg)
    emulator: str | None = option(None, "The Payne emulator NN_unnormalized_spectra.npz "
                                  "(default: $YSO_PAYNE_DIR or the download cache, else the "
                                  "analytic fallback)")


# --------------------------------------------------------------------------- §4 YSOs
def vertex(text: str) -> tuple[float, float]:
    """argparse type of ``--vertices``: ``TEFF,LOGG``."""
    try:
        teff, logg = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"vertex {text!r}: expected TEFF,LOGG such as "
                                         "2200,4.4") from exc
    return teff, logg


def flag_bits(text: str) -> int:
    """argparse type of ``--bad-flags``: an integer, hex (``0x3``) accepted."""
    return int(text, 0)


@dataclass
class YsoSelectOptions:
    """``apogee-net ysos select`` / :func:`apogee_net.yso.report.select_file`: the cuts of
    Olney et al. 2020 §4 (``bad_flags`` -1: any bit of ``flags``)."""

    vertices: Any = option(None, "vertices of the convex (Teff, log g) selection polygon; "
                           "default the triangle of Olney et al. 2020: 2200,4.4 4500,3.9 "
                           "3200,1.7", type=vertex, nargs="+", metavar="TEFF,LOGG")
    max_teff_err: float | None = option(None, "reject teff_err above this (K)")
    max_logg_err: float | None = option(None, "reject logg_err above this (dex)")
    min_snr: float | None = option(None, "reject snr below this")
    bad_flags: int = option(-1, "reject stars with any of these bits of flags set (default "
                            "-1: any bit; 0 keeps flagged stars; hex like 0x3 accepted). Bits "
                            "of apogee-net predict: 1 LOW_SNR, 2 BAD_PIXELS, 4 OUT_OF_RANGE, "
                            "8 UNREADABLE", type=flag_bits)
    regions: Any = option(None, "table of star-forming regions (name, complex, ra, dec, "
                          "radius in deg) instead of the packaged one")
    sky: bool = option(True, "the catalogue has no ra/dec: skip regions, impostors and sky "
                       "maps")


@dataclass
class YsoReportOptions(YsoSelectOptions):
    """``apogee-net ysos report`` / :func:`apogee_net.yso.report.report`: the cuts, and the
    grouping, isochrones (or model family ``models``, :mod:`yso_labels.families`) and KDE
    bandwidth of Figs. 6–9."""

    group_column: str | None = option(None, "catalogue column whose values group the log g "
                                      "KDE (e.g. disk-bearing vs diskless); default the "
                                      "region complex")
    isochrones: Any = option(None, "PARSEC grid or CMD file for the Kiel diagram (default the "
                             "packaged PARSEC v1.2S grid)")
    models: str | None = option(None, "isochrone family of the Kiel diagram: parsec (default), "
                                "dsep-magnetic, dsep-standard or mist:PATH; not with "
                                "--isochrones", type=models_arg)
    kde_bandwidth: float = option(0.1, "Gaussian sigma of the log g KDE in dex (default 0.1, "
                                  "as Fig. 9)")
