"""Synthetic LAMOST-like low-resolution spectra for tests and the recovery benchmark.

No optical emulator ships with the toolkit (The Payne models in ``shared/data`` cover the
APOGEE H band only), so this is a documented *toy* generator, not a stellar atmosphere:
it gives every one of the 14 labels its own spectral signature at real line positions, with
realistic degeneracies, so that missing-label and weighting experiments are meaningful.

Model, on LAMOST's native log-linear grid (λ_i = 10^(3.5682 + 10⁻⁴ i) Å, 3909 px):

* continuum: Planck B_λ(Teff) × a smooth throughput 1 + 0.3 sin(λ/700 Å);
* lines (air wavelengths of :data:`LINES`, converted to vacuum) as Gaussians of the LAMOST
  resolution (R = 1800, σ = λ/(2.355 R)); optical depth at the line centre
  log10 τ = log10 A + [X/H] + c_T (Teff − 4750 K)/1000 K + c_g (log g − 2.5), with
  c_T = −0.6, c_g = −0.05 for neutral metals, c_T = −0.1, c_g = −0.25 for ions (which gain
  at low gravity), [X/H] = [X/Fe] + [Fe/H] for the labelled elements, [M/H] (+[α/M] for Ti)
  for the others; saturation τ/(1 + τ) and, for strong lines (Mg b, Ca I 4227, Na D,
  Ca II), pressure-broadened wings (σ = 4 Å, τ_w = min(0.03 τ 10^{0.3(log g − 2.5)}, 1));
* molecules: CH G band (4295–4315 Å, [C/H]), CN 4216 Å and red CN ([C/H]+[N/H] averaged),
  TiO band heads below 4200 K; Balmer lines growing with Teff and broadening with log g;
* flux = continuum × exp(−Σ τ·profile), redshifted by a radial velocity drawn from
  N(0, 60 km/s); Gaussian noise σ_i = √(f_i f_g)/SNR_g with f_g the continuum at 4750 Å,
  plus a Poisson number (mean ``cosmic_rate``) of one-pixel cosmic-ray spikes of 8–40 σ.

Star ``i`` draws its radial velocity, noise and cosmic rays from ``default_rng([seed, i])``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from apogee_net.lamost.io import log_linear_wavelength

__all__ = ["LINES", "air_to_vacuum", "SyntheticLamost", "simulate_lamost",
           "write_lamost_fits", "line_strengths"]

C_KMS = 299792.458
COEFF0, COEFF1, NPIX_NATIVE = 3.5682, 1e-4, 3909
RESOLUTION = 1800.0

#: (air wavelength Å, label group, strength A at the reference star, ionised, strong)
#: Species groups: fe, c, n, o, mg, al, si, ca, mn, ni (label [X/Fe] + [Fe/H]); "z" ([M/H]);
#: "ti" ([M/H] + [α/M]).
LINES: tuple[tuple[float, str, float, bool, bool], ...] = (
    # Fe I
    *((w, "fe", a, False, False) for w, a in (
        (4045.81, 0.8), (4063.59, 0.6), (4071.74, 0.6), (4260.47, 0.5), (4271.76, 0.5),
        (4325.76, 0.5), (4383.55, 0.8), (4404.75, 0.6), (4415.12, 0.4), (4528.61, 0.3),
        (4890.76, 0.3), (4891.49, 0.3), (4920.50, 0.4), (4957.60, 0.4), (5227.19, 0.4),
        (5269.54, 0.5), (5328.04, 0.5), (5371.49, 0.4), (5397.13, 0.4), (5405.77, 0.4),
        (5429.70, 0.4), (5446.92, 0.4), (5455.61, 0.3), (5615.64, 0.3), (6136.61, 0.2),
        (6191.56, 0.2), (6230.72, 0.2), (6252.56, 0.2), (6393.60, 0.2), (6400.00, 0.2),
        (6494.98, 0.2), (6677.99, 0.2), (7511.02, 0.1), (8327.05, 0.15), (8387.77, 0.15),
        (8468.41, 0.15))),
    # Fe II (ionised: stronger at low gravity)
    *((w, "fe", a, True, False) for w, a in (
        (4233.17, 0.3), (4923.93, 0.3), (5018.44, 0.3), (5169.03, 0.3), (5197.58, 0.15),
        (5316.62, 0.2), (6147.74, 0.08), (6456.38, 0.08), (6516.08, 0.08))),
    # Mg I (b triplet strong, pressure wings)
    (5167.32, "mg", 1.0, False, True), (5172.68, "mg", 1.5, False, True),
    (5183.60, "mg", 2.0, False, True), (4702.99, "mg", 0.3, False, False),
    (5528.41, "mg", 0.3, False, False), (4571.10, "mg", 0.2, False, False),
    (8806.76, "mg", 0.3, False, False),
    # Ca I / Ca II
    (4226.73, "ca", 2.0, False, True), (6102.72, "ca", 0.2, False, False),
    (6122.22, "ca", 0.4, False, False), (6162.17, "ca", 0.4, False, False),
    (6439.08, "ca", 0.3, False, False), (6449.81, "ca", 0.15, False, False),
    (6462.57, "ca", 0.2, False, False), (6493.78, "ca", 0.15, False, False),
    (6717.68, "ca", 0.15, False, False), (5588.76, "ca", 0.2, False, False),
    (5857.45, "ca", 0.15, False, False), (8498.02, "ca", 1.5, True, True),
    (8542.09, "ca", 3.0, True, True), (8662.14, "ca", 2.5, True, True),
    # Si I
    *((w, "si", a, False, False) for w, a in (
        (5690.43, 0.08), (5701.10, 0.08), (5708.40, 0.1), (5772.15, 0.08), (5948.54, 0.1),
        (6155.13, 0.08), (7405.77, 0.1), (7415.95, 0.1), (7423.50, 0.1))),
    # Al I
    (6696.02, "al", 0.1, False, False), (6698.67, "al", 0.08, False, False),
    (7835.31, "al", 0.08, False, False), (7836.13, "al", 0.08, False, False),
    # Mn I
    *((w, "mn", a, False, False) for w, a in (
        (4030.75, 0.4), (4033.06, 0.4), (4034.48, 0.3), (4754.04, 0.2), (4783.43, 0.2),
        (4823.52, 0.2), (6013.51, 0.1), (6016.64, 0.1), (6021.82, 0.1))),
    # Ni I
    *((w, "ni", a, False, False) for w, a in (
        (4714.42, 0.2), (4980.17, 0.15), (5035.36, 0.15), (5080.52, 0.15), (5476.90, 0.2),
        (6108.11, 0.08), (6643.63, 0.1), (6767.77, 0.1), (7122.20, 0.08), (7788.93, 0.06))),
    # O I triplet and forbidden lines (weak in giants)
    (7771.94, "o", 0.06, False, False), (7774.17, "o", 0.05, False, False),
    (7775.39, "o", 0.04, False, False), (6300.30, "o", 0.04, False, False),
    (6363.78, "o", 0.02, False, False),
    # C I
    (8335.15, "c", 0.03, False, False),
    # other metals: Ti (alpha), Cr, Sr II, Ba II, Na, K
    *((w, "ti", a, False, False) for w, a in (
        (4981.73, 0.3), (4991.07, 0.3), (4999.50, 0.3), (5064.65, 0.2), (5173.74, 0.2),
        (5192.97, 0.2), (5210.39, 0.2), (6258.10, 0.1))),
    *((w, "z", a, ion, strong) for w, a, ion, strong in (
        (5204.51, 0.3, False, False), (5206.04, 0.3, False, False),
        (5208.42, 0.4, False, False), (5409.77, 0.2, False, False),
        (4254.33, 0.4, False, False), (4274.80, 0.4, False, False),
        (4077.71, 0.6, True, False), (4554.03, 0.5, True, False),
        (6141.71, 0.3, True, False), (6496.90, 0.3, True, False),
        (5889.95, 1.5, False, True), (5895.92, 1.2, False, True),
        (8183.26, 0.4, False, False), (8194.82, 0.5, False, False),
        (7664.90, 0.6, False, False), (7698.96, 0.5, False, False))),
)
#: Balmer lines (air, Å): strength grows with Teff, width with log g.
BALMER = (4101.74, 4340.47, 4861.33, 6562.79)
#: TiO band heads (air, Å), shading redward over ~80 Å; present below 4200 K.
TIO = (4954.6, 5166.7, 5448.0, 5847.0, 6158.8, 6651.0, 7053.9, 7589.0, 8432.0)
#: Molecular bands: (λ_lo, λ_hi, species) boxes with soft edges.
BANDS = ((4295.0, 4315.0, "ch"), (4150.0, 4216.0, "cn"), (7875.0, 7930.0, "cn"),
         (8050.0, 8090.0, "cn"))


def air_to_vacuum(air: np.ndarray) -> np.ndarray:
    """Vacuum wavelength (Å) from air wavelength (Å) (Morton 2000, eq. 3, inverted once)."""
    air = np.asarray(air, dtype=float)
    s2 = (1e4 / air) ** 2
    n = 1 + 8.34254e-5 + 2.406147e-2 / (130 - s2) + 1.5998e-4 / (38.9 - s2)
    return air * n


def _planck(wl_angstrom: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """B_λ(T) up to a constant: λ⁻⁵ / (exp(hc/λkT) − 1), λ in Å, T in K."""
    x = 1.438777e8 / (wl_angstrom[None, :] * teff[:, None])  # hc/k = 1.438777e8 Å K
    return wl_angstrom[None, :] ** -5 / np.expm1(x)


def _group_abundance(labels: dict[str, np.ndarray], group: str) -> np.ndarray:
    fe = labels["fe_h"]
    if group == "fe":
        return fe
    if group == "z":
        return labels["m_h"]
    if group == "ti":
        return labels["m_h"] + labels["alpha_m"]
    return labels[f"{group}_fe"] + fe


def line_strengths(labels: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Core and wing optical depths (n_stars, n_lines) of :data:`LINES` (see module doc)."""
    t = (np.asarray(labels["teff"], float) - 4750.0) / 1000.0
    g = np.asarray(labels["logg"], float) - 2.5
    core, wing = [], []
    for _, group, a, ionised, strong in LINES:
        c_t, c_g = (-0.1, -0.25) if ionised else (-0.6, -0.05)
        tau = 10 ** (np.log10(a) + _group_abundance(labels, group) + c_t * t + c_g * g)
        core.append(tau / (1.0 + tau))
        wing.append(np.minimum(0.03 * tau * 10 ** (0.3 * g), 1.0) if strong
                    else np.zeros_like(tau))
    return np.column_stack(core), np.column_stack(wing)


def _profiles(wl: np.ndarray) -> dict[str, np.ndarray]:
    """Unit-peak profiles on the grid ``wl`` (vacuum Å), one row per feature."""
    sig = wl / (2.355 * RESOLUTION)

    def gauss(centre, extra=0.0):
        s = np.sqrt(np.interp(centre, wl, sig) ** 2 + extra**2)
        return np.exp(-0.5 * ((wl[None, :] - centre[:, None]) / s[:, None]) ** 2)

    centres = air_to_vacuum(np.array([line[0] for line in LINES]))
    balmer = air_to_vacuum(np.array(BALMER))
    tio = air_to_vacuum(np.array(TIO))
    d = wl[None, :] - tio[:, None]
    tio_prof = np.where(d >= 0, np.exp(-np.clip(d, 0, None) / 80.0), 0.0)
    tio_prof *= expit(d / np.interp(tio, wl, sig)[:, None])
    bands = []
    for lo, hi, _ in BANDS:
        lo_v, hi_v = air_to_vacuum(np.array([lo, hi]))
        bands.append(expit((wl - lo_v) / 2.0) * expit((hi_v - wl) / 2.0))
    return {"core": gauss(centres), "wing": gauss(centres, 4.0),
            "balmer_narrow": gauss(balmer, 2.0), "balmer_broad": gauss(balmer, 6.0),
            "tio": tio_prof, "bands": np.array(bands)}


def _optical_depth(labels: dict[str, np.ndarray], prof: dict[str, np.ndarray]) -> np.ndarray:
    core, wing = line_strengths(labels)
    tau = core @ prof["core"] + wing @ prof["wing"]
    t = (np.asarray(labels["teff"], float) - 4750.0) / 1000.0
    g = np.asarray(labels["logg"], float) - 2.5
    balmer = 0.3 * 10 ** (1.0 * t)
    broad = 1.0 / (1.0 + 10 ** (-0.6 * g))        # higher gravity: broader wings
    tau += (balmer * (1 - broad))[:, None] * prof["balmer_narrow"].sum(0)[None, :]
    tau += (0.3 * balmer * broad)[:, None] * prof["balmer_broad"].sum(0)[None, :]
    cool = np.clip((4200.0 - labels["teff"]) / 400.0, 0, None) ** 2
    tau += (0.3 * cool * 10 ** labels["m_h"])[:, None] * prof["tio"].sum(0)[None, :]
    c_h = labels["c_fe"] + labels["fe_h"]
    n_h = labels["n_fe"] + labels["fe_h"]
    mol_t = 10 ** (-1.2 * t)
    for (_, _, kind), band in zip(BANDS, prof["bands"], strict=True):
        x = c_h if kind == "ch" else 0.5 * (c_h + n_h) + 0.5 * labels["n_fe"]
        amp = (0.25 if kind == "ch" else 0.12) * 10 ** x * mol_t
        tau += amp[:, None] * band[None, :]
    return tau


@dataclass
class SyntheticLamost:
    """Synthetic observed-frame spectra: ``wavelength`` (native grid, Å), ``flux``/``ivar``
    (n, 3909), ``z`` (redshift), ``snr`` (g band), ``n_cosmic`` (spikes added)."""

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    z: np.ndarray
    snr: np.ndarray
    n_cosmic: np.ndarray


def simulate_lamost(labels: dict[str, np.ndarray], snr=None, seed: int = 0,
                    rv_sigma: float = 60.0, cosmic_rate: float = 2.0,
                    snr_range: tuple[float, float] = (15.0, 150.0), first_index: int = 0
                    ) -> SyntheticLamost:
    """Simulate spectra for labels (dict of 14 arrays named as :data:`~.labels.LABELS`,
    Teff in K, the rest in dex). ``snr``: per-star g-band S/N (default log-uniform in
    ``snr_range``); ``first_index``: index of the first star in the whole sample (its
    random numbers come from ``default_rng([seed, first_index + i])``, so chunks of a
    sample give the same spectra as the whole); see the module docstring for the model."""
    labels = {k: np.asarray(v, dtype=float) for k, v in labels.items()}
    n = len(labels["teff"])
    bad = [k for k, v in labels.items() if not np.all(np.isfinite(v))]
    if bad:
        raise ValueError(f"simulate_lamost: labels must be finite to make spectra; "
                         f"non-finite in {', '.join(bad)}")
    wl = log_linear_wavelength(COEFF0, COEFF1, NPIX_NATIVE)
    prof = _profiles(wl)
    tau = _optical_depth(labels, prof)
    cont = _planck(wl, labels["teff"]) * (1 + 0.3 * np.sin(wl / 700.0))[None, :]
    g_pix = int(np.searchsorted(wl, 4750.0))
    cont /= cont[:, g_pix:g_pix + 1]
    cont *= 1000.0
    rest = cont * np.exp(-tau)
    flux = np.empty_like(rest)
    ivar = np.empty_like(rest)
    z = np.empty(n)
    snr_out = np.empty(n)
    n_cr = np.zeros(n, dtype=np.int64)
    idx = np.arange(NPIX_NATIVE, dtype=float)
    for i in range(n):
        rng = np.random.default_rng([seed, first_index + i])
        rv = rng.normal(0.0, rv_sigma)
        z[i] = math.sqrt((1 + rv / C_KMS) / (1 - rv / C_KMS)) - 1
        shift = math.log10(1 + z[i]) / COEFF1                 # pixels on the log grid
        model = np.interp(idx - shift, idx, rest[i])          # observed frame
        s = (math.exp(rng.uniform(*np.log(snr_range))) if snr is None
             else float(np.broadcast_to(snr, (n,))[i]))
        snr_out[i] = s
        sigma = np.sqrt(np.clip(model, 1e-3, None) * cont[i, g_pix]) / s
        flux[i] = model + sigma * rng.standard_normal(NPIX_NATIVE)
        ivar[i] = 1.0 / sigma**2
        k = rng.poisson(cosmic_rate) if cosmic_rate > 0 else 0
        if k:
            pix = rng.integers(5, NPIX_NATIVE - 5, size=k)
            flux[i, pix] += rng.uniform(8, 40, size=k) * sigma[pix]
            n_cr[i] = k
    return SyntheticLamost(wl, flux, ivar, z, snr_out, n_cr)


def write_lamost_fits(path: str | os.PathLike, wavelength: np.ndarray, flux: np.ndarray,
                      ivar: np.ndarray, z: float | None, snr_g: float = 50.0,
                      layout: str = "coadd", obsid: int | None = 1, ra: float = 10.0,
                      dec: float = 20.0, cls: str = "STAR", subclass: str = "",
                      andmask: np.ndarray | None = None) -> Path:
    """Write one spectrum as a LAMOST LRS FITS file (``layout`` "coadd" = DR9+, "image" =
    DR1–DR8 (5, N)); ``.gz`` in the name compresses it. ``z=None`` leaves out the redshift
    (for bad-input tests). Header as real files: COEFF0/COEFF1, Z, SNRG, CLASS, SUBCLASS,
    OBSID, DESIG; SUBCLASS is empty unless given: a simulated spectrum has no LAMOST pipeline
    class to be judged against (:mod:`apogee_net.lamost.sptype`)."""
    from astropy.io import fits

    path = Path(path)
    npix = len(flux)
    andmask = np.zeros(npix) if andmask is None else np.asarray(andmask, float)
    hdr = fits.Header()
    hdr["OBSID"] = obsid if obsid is not None else ""
    hdr["DESIG"] = f"LAMOST J{ra:08.4f}{dec:+08.4f}"
    hdr["RA"], hdr["DEC"] = ra, dec
    hdr["COEFF0"], hdr["COEFF1"] = COEFF0, COEFF1
    hdr["CLASS"], hdr["SUBCLASS"] = cls, subclass
    if z is not None:
        hdr["Z"], hdr["Z_ERR"] = z, 1e-5
    hdr["SNRG"] = snr_g
    hdr["DATA_V"] = "SYNTHETIC " + ("DR9" if layout == "coadd" else "DR5")
    rows = [np.asarray(flux, np.float32), np.asarray(ivar, np.float32),
            np.asarray(wavelength, np.float32), andmask.astype(np.float32),
            np.zeros(npix, np.float32)]
    if layout == "coadd":
        cols = [fits.Column(name=n, format=f"{npix}E", array=r[None, :]) for n, r in
                zip(("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK"), rows, strict=True)]
        hdul = fits.HDUList([fits.PrimaryHDU(header=hdr),
                             fits.BinTableHDU.from_columns(cols, name="COADD")])
    elif layout == "image":
        hdr["EXTEN0"] = "Flux, Inverse, Wavelength, Andmask, Ormask"
        hdul = fits.HDUList([fits.PrimaryHDU(data=np.vstack(rows), header=hdr)])
    else:
        raise ValueError(f"layout must be 'coadd' or 'image', got {layout!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    hdul.writeto(path, overwrite=True)
    return path
