"""Figures of the YSO science products (Olney et al. 2020 §4): the Kiel diagram with PARSEC
isochrones (Fig. 6/7), the candidates on the sky with impostors (Fig. 7 bottom), density
maps per log g age bin (Fig. 8) and the log g kernel density per group (Fig. 9).

Each ``*_figure`` function takes Tables (see :mod:`apogee_net.yso.selection`) and returns a
matplotlib Figure (the user's matplotlib backend; the CLI uses Agg);
:func:`yso_labels.core.figures.save_figure` writes it atomically as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from apogee_net.yso.selection import age_bin_table, check_vertices
from yso_labels.core.figures import save_figure
from yso_labels.core.tables import float_column

#: Olney et al. 2020 Fig. 6: PARSEC isochrone ages (Myr) and evolutionary tracks (M☉).
ISOCHRONE_AGES_MYR = (1, 2, 5, 10, 20, 50, 100, 200, 300)
TRACK_MASSES = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: One colour per age bin, youngest blue to oldest red (as Fig. 8).
AGE_COLORS = ("#1f4e9c", "#1fa3c4", "#3a9e4f", "#f28e2b", "#c8102e")
#: Olney et al. 2020 Fig. 9: log g KDE with a 0.1 dex kernel.
KDE_BANDWIDTH = 0.1
#: Isochrones are drawn up to this initial mass (M☉): the mass range of the paper's synthetic
#: YSO training stars (Olney et al. 2020 §2.4: 0.08-3 M☉).
MAX_MASS = 3.0


def tex_age(text: str) -> str:
    """Plot label of an age range of :data:`apogee_net.yso.selection.AGE_BINS`
    ("<~1 Myr" -> ≲1 Myr)."""
    return (text.replace("<~", r"$\lesssim$").replace(">~", r"$\gtrsim$")
            .replace("-", "–"))


def _col(table: Table, name: str) -> np.ndarray:
    return float_column(table[name])


def galactic(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """Galactic (l, b) in degrees of the ``ra``, ``dec`` (ICRS deg) columns."""
    c = SkyCoord(_col(table, "ra") * u.deg, _col(table, "dec") * u.deg).galactic
    return c.l.deg, c.b.deg


def _circle_lb(ra: float, dec: float, radius: float, n: int = 90):
    """Galactic (l, b) of a small circle of ``radius`` deg around (ra, dec) ICRS deg."""
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    ring = centre.directional_offset_by(np.linspace(0, 360, n) * u.deg, radius * u.deg).galactic
    return ring.l.deg, ring.b.deg


def _unwrap(l: np.ndarray, centre: float) -> np.ndarray:
    """Galactic longitudes (deg) shifted by multiples of 360 to lie within 180 of centre."""
    return (np.asarray(l) - centre + 180.0) % 360.0 - 180.0 + centre


# --------------------------------------------------------------------------- Kiel

def isochrone_curves(grid: Table, ages_myr: Sequence[float] = ISOCHRONE_AGES_MYR,
                     max_mass: float = MAX_MASS) -> list:
    """``[(age_myr, teff K, logg dex)]`` of each isochrone in ``grid`` up to ``max_mass``
    (M☉, initial), pre-main sequence and main sequence only (PARSEC phase <= 1 where the
    grid has ``phase``)."""
    from yso_labels.isochrones import isochrone

    curves = []
    cols = ["teff", "logg", "phase"] if "phase" in grid.colnames else ["teff", "logg"]
    for age in ages_myr:
        iso = isochrone(grid, age, columns=cols)
        keep = np.asarray(iso["mass_ini"]) <= max_mass
        if "phase" in cols:
            keep &= np.asarray(iso["phase"]) < 1.5
        curves.append((float(age), np.asarray(iso["teff"])[keep], np.asarray(iso["logg"])[keep]))
    return curves


def track_curves(grid: Table, masses: Sequence[float] = TRACK_MASSES,
                 ages_myr: tuple[float, float] = (1.0, 300.0)) -> list:
    """``[(mass M☉, teff K, logg dex)]``: evolutionary tracks between ``ages_myr``."""
    from yso_labels.isochrones import interpolate

    la = np.linspace(np.log10(ages_myr[0] * 1e6), np.log10(ages_myr[1] * 1e6), 120)
    out = []
    for m in masses:
        t = interpolate(grid, la, np.full(la.shape, m), columns=["teff", "logg"],
                        outside="nan")
        out.append((float(m), np.asarray(t["teff"]), np.asarray(t["logg"])))
    return out


def kiel_grid(isochrones: Table | str | None = None, models: str | None = None) -> Table:
    """The Kiel diagram's isochrones: a grid Table, a file for
    :func:`yso_labels.isochrones.load_isochrones`, or the family ``models`` (default
    ``parsec``); not both a file and a family."""
    from yso_labels.families import DEFAULT_MODELS, check_models, load_models
    from yso_labels.isochrones import load_isochrones

    if isochrones is not None and models is not None:
        raise ValueError("give either isochrones (a grid file) or models (a model family) "
                         "for the Kiel diagram, not both")
    if isinstance(isochrones, Table):
        return isochrones
    if isochrones is not None:
        return load_isochrones(isochrones)
    return load_models(check_models(models or DEFAULT_MODELS))


def kiel_figure(catalog: Table, cands: Table | None = None, *, grid: Table | None = None,
                ages_myr: Sequence[float] = ISOCHRONE_AGES_MYR,
                masses: Sequence[float] = TRACK_MASSES,
                vertices: Sequence[Sequence[float]] | None = None,
                bins: Table | None = None) -> Figure:
    """Kiel diagram (Teff K, log g dex) of the catalogue (grey density), the candidates
    coloured by age bin, the selection polygon, and PARSEC isochrones (grey lines, ages
    ``ages_myr``) and tracks (dotted, ``masses``) as Olney et al. 2020 Figs. 6-7.
    ``grid`` defaults to :func:`yso_labels.isochrones.load_isochrones`."""
    if grid is None:
        from yso_labels.isochrones import load_isochrones

        grid = load_isochrones()
    bins = age_bin_table(bins)
    v = check_vertices(vertices)
    teff, logg = _col(catalog, "teff"), _col(catalog, "logg")
    good = np.isfinite(teff) & np.isfinite(logg)
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    xlo, xhi, ylo, yhi = 2000.0, 7000.0, -0.2, 5.6
    if good.sum() > 10:
        xlo = min(xlo, np.percentile(teff[good], 0.5) - 100)
        xhi = max(xhi, np.percentile(teff[good], 99.5) + 100)
    inside = good & (teff >= xlo) & (teff <= xhi) & (logg >= ylo) & (logg <= yhi)
    if inside.sum() > 10:
        # explicit limits: with every occupied cell at one star, an autoscaled LogNorm
        # collapses to vmin == vmax and the colour bar cannot be drawn
        hb = ax.hexbin(teff[inside], logg[inside], gridsize=(90, 60), cmap="Greys", mincnt=1,
                       extent=(xlo, xhi, ylo, yhi), linewidths=0, zorder=1)
        hb.set_norm(LogNorm(vmin=1.0, vmax=max(2.0, float(np.max(hb.get_array())))))
        cb = fig.colorbar(hb, ax=ax, pad=0.01, label="catalogue stars per cell")
        cb.set_ticks(LogLocator(subs=(1.0, 2.0, 5.0)))
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    elif good.any():
        ax.plot(teff[good], logg[good], ".", color="0.5", ms=3, label="catalogue", zorder=1)
    for m, t, g in track_curves(grid, masses):
        ax.plot(t, g, ":", color="0.55", lw=0.8, zorder=2)
        if np.isfinite(t).any():
            i = int(np.nanargmax(np.where(np.isfinite(g), np.arange(len(g)), -1)))  # oldest
            ax.annotate(f"{m:g}", (t[i], g[i]), fontsize=6, color="0.35", ha="center",
                        va="top", xytext=(0, -9), textcoords="offset points", zorder=2)
    placed: list[tuple[float, float]] = []  # label (Teff, log g): cool end, else 5000 K
    for age, t, g in isochrone_curves(grid, ages_myr):
        ax.plot(t, g, "-", color="0.35", lw=0.9, zorder=2)
        ok = (t > xlo) & (g > ylo) & (g < yhi)
        spots = []
        if (ok & (t < 3100)).any():
            spots.append((int(np.nonzero(ok)[0][np.argmin(np.where(ok, t, np.inf)[ok])]),
                          "left", 3))
        if (ok & (t > 4500) & (t < 5500)).any():
            spots.append((int(np.argmin(np.where(ok, np.abs(t - 5000), np.inf))), "center", 0))
        for i, ha, dx in spots:
            if all(abs(g[i] - pg) > 0.09 or abs(t[i] - pt) > 1000 for pt, pg in placed):
                ax.annotate(f"{age:g} Myr", (t[i], g[i]), fontsize=7, color="0.2", ha=ha,
                            va="center", xytext=(dx, 0), textcoords="offset points",
                            zorder=5, bbox={"boxstyle": "round,pad=0.1", "fc": "white",
                                            "ec": "none", "alpha": 0.75})
                placed.append((float(t[i]), float(g[i])))
                break
    family = {"parsec": "PARSEC", "dsep-magnetic": "DSEP magnetic",
              "dsep-standard": "DSEP standard"}.get(str(grid.meta.get("MODELS", "")),
                                                     str(grid.meta.get("MODELS", "")) or
                                                     "model")
    family = "MIST" if family.startswith("mist:") else family
    ax.plot([], [], "-", color="0.35", lw=0.9, label=f"{family} isochrones, "
            + ", ".join(f"{a:g}" for a in ages_myr) + " Myr")
    ax.plot([], [], ":", color="0.55", lw=0.8, label="tracks, "
            + ", ".join(f"{m:g}" for m in masses) + r" M$_\odot$")
    closed = np.vstack([v, v[:1]])
    ax.plot(closed[:, 0], closed[:, 1], "-", color="magenta", lw=1.5, zorder=4,
            label="YSO selection (Olney et al. 2020)")
    if cands is not None and len(cands):
        ab = np.asarray(cands["age_bin"])
        ct, cg = _col(cands, "teff"), _col(cands, "logg")
        for row, color in zip(bins, AGE_COLORS, strict=False):
            sel = ab == row["age_bin"]
            ax.plot(ct[sel], cg[sel], "o", ms=2.5, color=color, alpha=0.8, mew=0, zorder=3,
                    label=f"candidates {tex_age(str(row['age_range']))} (N={int(sel.sum())})")
    ax.set_xlim(xhi, xlo)
    ax.set_ylim(yhi, ylo)
    ax.set_xlabel(r"$T_{\rm eff}$ (K)")
    ax.set_ylabel(r"$\log g$ (dex, cgs)")
    n_c = 0 if cands is None else len(cands)
    ax.set_title(f"Kiel diagram: {int(good.sum())} stars, {n_c} YSO candidates", fontsize=10)
    ax.legend(loc="upper left", fontsize=6.5, framealpha=0.85)
    ax.text(0.99, 0.01, f"isochrones: {grid.meta.get('GRID', 'PARSEC')}, "
            f"[M/H] = {grid.meta.get('MH', '?')}", transform=ax.transAxes, ha="right",
            va="bottom", fontsize=6, color="0.3")
    return fig


# --------------------------------------------------------------------------- sky

def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11,
            color="0.3")


def sky_figure(cands: Table, regions: Table, bins: Table | None = None) -> Figure:
    """Candidates in Galactic coordinates coloured by age bin, impostors (outside every
    region) as black crosses, region circles outlined (Olney et al. 2020 Fig. 7 bottom)."""
    bins = age_bin_table(bins)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    placed: dict[str, tuple[float, float]] = {}
    for r in regions:
        centre = SkyCoord(float(r["ra"]) * u.deg, float(r["dec"]) * u.deg).galactic
        rl, rb = _circle_lb(float(r["ra"]), float(r["dec"]), float(r["radius"]))
        ax.plot(_unwrap(rl, centre.l.deg), rb, "-", color="0.6", lw=0.7)
        name = str(r["complex"])
        if name in placed:
            continue
        top, bottom = float(np.max(rb)), float(np.min(rb))
        options = ((top, "bottom", 1.0), (bottom, "top", -1.0), (top + 7, "bottom", 1.0))
        yb, va, dy = next((o for o in options  # first label position clear of the others
                           if all(abs(centre.l.deg - pl) > 1.2 * len(name) or
                                  abs(o[0] - pb) > 6 for pl, pb in placed.values())),
                          options[0])
        placed[name] = (centre.l.deg, yb)
        ax.annotate(name, (centre.l.deg, yb + dy), fontsize=7, color="0.3", ha="center",
                    va=va)
    ax.plot([], [], "-", color="0.6", lw=0.7, label="star-forming regions")
    if len(cands):
        l, b = galactic(cands)
        imp = np.asarray(cands["impostor"], bool)
        ab = np.asarray(cands["age_bin"])
        for row, color in zip(bins, AGE_COLORS, strict=False):
            sel = (ab == row["age_bin"]) & ~imp
            ax.plot(l[sel], b[sel], "o", ms=2, mew=0, color=color, alpha=0.7,
                    label=f"{tex_age(str(row['age_range']))} (N={int(sel.sum())})")
        frac = imp.sum() / max(np.isfinite(l).sum(), 1)
        ax.plot(l[imp], b[imp], "x", ms=4, color="k",
                label=f"impostors (N={int(imp.sum())}, {100 * frac:.1f}%)")
    else:
        _empty(ax, "no YSO candidates")
    ax.set_xlim(360, 0)
    ax.set_ylim(-90, 90)
    ax.set_xticks(np.arange(0, 361, 60))
    ax.set_xlabel(r"Galactic longitude $l$ (deg)")
    ax.set_ylabel(r"Galactic latitude $b$ (deg)")
    ax.set_title(f"{len(cands)} YSO candidates on the sky", fontsize=10)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7, ncol=4,
              frameon=False, title=r"YSO candidates inside a region, by $\log g$ age bin; "
              "impostors outside every region", title_fontsize=7)
    return fig


def density_grid(l: np.ndarray, b: np.ndarray, extent: tuple[float, float, float, float],
                 n: int = 80, smooth_deg: float = 0.2) -> np.ndarray:
    """Stars per deg² on an n×n grid over ``extent`` = (l_min, l_max, b_min, b_max) deg,
    smoothed by a Gaussian of σ = ``smooth_deg`` deg; shape (n_b, n_l). The flat-sky cell
    area is Δl·Δb (no cos b factor)."""
    h, _, _ = np.histogram2d(b, l, bins=n, range=[extent[2:], extent[:2]])
    dl, db = (extent[1] - extent[0]) / n, (extent[3] - extent[2]) / n
    return gaussian_filter(h, sigma=(smooth_deg / db, smooth_deg / dl)) / (dl * db)


def kernel_bandwidth(l: np.ndarray, b: np.ndarray, floor: float = 0.05, k: int = 5) -> float:
    """Gaussian kernel σ (deg) for a 2-D density of n positions (deg): Scott's rule
    n^(-1/6) × the rms of the per-axis standard deviations (Scott 1992), or the median
    distance to the k-th nearest neighbour where smaller (Scott's rule oversmooths several
    clusters in one panel), and at least ``floor``."""
    if len(l) < 2:
        return float(floor)
    xy = np.column_stack([l, b])
    sigma = np.sqrt((np.var(l) + np.var(b)) / 2) * len(l) ** (-1 / 6)
    if len(l) > k:
        dist, _ = cKDTree(xy).query(xy, k=k + 1)  # column 0 is the point itself
        sigma = min(sigma, float(np.median(dist[:, k])))
    return float(max(sigma, floor))


def _panels(cands: Table, regions: Table, max_panels: int) -> list[tuple[str, tuple]]:
    """Region complexes with the most member candidates, with an (l, b) box around them."""
    member = np.asarray(cands["region_complex"]).astype(str)
    member = member[~np.asarray(cands["impostor"]) & (member != "")]  # "": no position
    names, counts = np.unique(member, return_counts=True)
    out = []
    for name in names[np.argsort(-counts, kind="stable")][:max_panels]:
        ls, bs = [], []
        for r in regions[np.asarray(regions["complex"]).astype(str) == name]:
            rl, rb = _circle_lb(float(r["ra"]), float(r["dec"]), float(r["radius"]))
            ls.append(rl)
            bs.append(rb)
        ls = np.concatenate(ls)
        centre = float(ls[0])
        ls = _unwrap(ls, centre)
        bs = np.concatenate(bs)
        half = max(np.ptp(ls), np.ptp(bs)) / 2 + 0.3
        lc, bc = (ls.min() + ls.max()) / 2, (bs.min() + bs.max()) / 2
        out.append((name, (lc - half, lc + half, bc - half, bc + half)))
    return out


def age_maps_figure(cands: Table, regions: Table, bins: Table | None = None,
                    max_panels: int = 6, min_stars: int = 5,
                    levels: Sequence[float] = (0.25, 0.5, 0.75)) -> Figure:
    """Density contours per log g age bin in Galactic coordinates, one panel per region
    complex (Olney et al. 2020 Fig. 8; youngest blue, oldest red). Contours at ``levels``
    × the peak density of each bin in that panel; bins with fewer than ``min_stars`` stars
    in a panel show as points only."""
    bins = age_bin_table(bins)
    panels = _panels(cands, regions, max_panels) if len(cands) else []
    ncol = min(3, max(len(panels), 1))
    nrow = max(1, -(-len(panels) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4.0 * nrow + 0.6), squeeze=False)
    if not panels:
        _empty(axes[0, 0], "no YSO candidates in any star-forming region")
        axes[0, 0].set_axis_off()
    if len(cands):
        l_all, b_all = galactic(cands)
        ab = np.asarray(cands["age_bin"])
    for ax, (name, ext) in zip(axes.ravel(), panels, strict=False):
        l = _unwrap(l_all, (ext[0] + ext[1]) / 2)
        box = (l > ext[0]) & (l < ext[1]) & (b_all > ext[2]) & (b_all < ext[3])
        smooth = kernel_bandwidth(l[box], b_all[box], floor=(ext[1] - ext[0]) / 60)
        for row, color in zip(bins, AGE_COLORS, strict=False):
            sel = (ab == row["age_bin"]) & box
            contoured = sel.sum() >= min_stars
            # points under contours stay faint; a bin too sparse for contours shows clearly
            ax.plot(l[sel], b_all[sel], "o", ms=1.8 if contoured else 4.0, mew=0,
                    color=color, alpha=0.45 if contoured else 0.9)
            if contoured:
                dens = density_grid(l[sel], b_all[sel], ext, smooth_deg=smooth)
                ax.contour(np.linspace(ext[0], ext[1], dens.shape[1]),
                           np.linspace(ext[2], ext[3], dens.shape[0]), dens,
                           levels=np.asarray(levels) * dens.max(), colors=[color],
                           linewidths=1.0)
        ax.set_xlim(ext[1], ext[0])
        ax.set_ylim(ext[2], ext[3])
        ax.set_aspect("equal")
        ax.set_title(f"{name}: {int(box.sum())} candidates, kernel σ = {smooth:.2f}°",
                     fontsize=9)
        ax.set_xlabel(r"$l$ (deg)")
        ax.set_ylabel(r"$b$ (deg)")
    for ax in axes.ravel()[max(len(panels), 1):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=c, lw=1.5) for c in AGE_COLORS[:len(bins)]]
    labels = [rf"$\log g$ {_edge_text(r)} dex: {tex_age(str(r['age_range']))}" for r in bins]
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(bins)), fontsize=8,
               frameon=False)
    fig.suptitle("YSO candidate density per log g age bin (contours at "
                 + ", ".join(f"{x:g}" for x in levels) + " of each bin's peak)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig


def _edge_text(row) -> str:
    lo, hi = float(row["logg_min"]), float(row["logg_max"])
    if not np.isfinite(lo):
        return f"< {hi:g}"
    if not np.isfinite(hi):
        return f"≥ {lo:g}"
    return f"{lo:g}–{hi:g}"


# --------------------------------------------------------------------------- KDE

def logg_kde(logg: np.ndarray, grid: np.ndarray, bandwidth: float = KDE_BANDWIDTH) -> np.ndarray:
    """Gaussian kernel density (per dex) of ``logg`` (dex) on ``grid`` with σ = ``bandwidth``
    dex (Olney et al. 2020 Fig. 9: 0.1 dex); integrates to 1 over the real line."""
    x = np.asarray(logg, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return np.zeros_like(np.asarray(grid, float))
    z = (np.asarray(grid, float)[:, None] - x[None, :]) / bandwidth
    return np.exp(-0.5 * z**2).sum(axis=1) / (len(x) * bandwidth * np.sqrt(2 * np.pi))


def kde_figure(cands: Table, group_column: str, bandwidth: float = KDE_BANDWIDTH,
               bins: Table | None = None, min_stars: int = 3) -> Figure:
    """log g KDE per value of ``group_column`` (Olney et al. 2020 Fig. 9 right), with the age
    bin edges marked; groups with fewer than ``min_stars`` stars are left out (legend says)."""
    bins = age_bin_table(bins)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = np.asarray(cands[group_column]).astype(str) if len(cands) else np.array([])
    logg = _col(cands, "logg") if len(cands) else np.array([])
    lo, hi = 3.0, 4.6
    if np.isfinite(logg).sum() > 1:
        lo = min(lo, np.nanpercentile(logg, 0.5) - 3 * bandwidth)
        hi = max(hi, np.nanpercentile(logg, 99.5) + 3 * bandwidth)
    grid = np.linspace(max(lo, 0.0), min(hi, 6.0), 801)
    names, counts = np.unique(groups, return_counts=True)
    skipped = []
    for name in names[np.argsort(-counts, kind="stable")][:10]:
        sel = groups == name
        label = name if name else "(none)"
        if sel.sum() < min_stars:
            skipped.append(f"{label} ({int(sel.sum())})")
            continue
        dens = logg_kde(logg[sel], grid, bandwidth)
        ax.plot(grid, dens, lw=1.4,
                label=f"{label}: N={int(sel.sum())}, peak {grid[np.argmax(dens)]:.2f} dex")
    if not len(cands):
        _empty(ax, "no YSO candidates")
    for edge in np.asarray(bins["logg_max"], float)[:-1]:
        ax.axvline(edge, color="0.6", ls=":", lw=0.8)
    top = ax.secondary_xaxis("top")
    lo = np.clip(np.asarray(bins["logg_min"], float), grid[0], None)
    hi = np.clip(np.asarray(bins["logg_max"], float), None, grid[-1])
    top.set_xticks((lo + hi) / 2, [tex_age(str(a)) for a in bins["age_range"]], fontsize=7)
    top.set_xlabel("age bin (Olney et al. 2020 §4.2)", fontsize=8)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel(r"$\log g$ (dex, cgs)")
    ax.set_ylabel(r"probability density (dex$^{-1}$)")
    title = (rf"$\log g$ KDE of YSO candidates by {group_column.replace('_', ' ')} "
             f"(Gaussian σ = {bandwidth:g} dex)")
    ax.set_title(title, fontsize=9)
    if skipped:
        ax.plot([], [], " ", label=f"fewer than {min_stars} stars: {', '.join(skipped)}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    return fig


# --------------------------------------------------------------------------- report

def report_figures(selected: Table, cands: Table, out: str | os.PathLike, *,
                   vertices: Sequence[Sequence[float]] | None = None,
                   regions: Table | None = None, group_column: str | None = None,
                   isochrones: Table | str | None = None,
                   kde_bandwidth: float = KDE_BANDWIDTH,
                   models: str | None = None) -> tuple[dict, list[str]]:
    """Write the report's PNG figures into ``out``; return ``({name: path}, notes)``.

    ``regions`` None means the catalogue has no sky positions: no sky or age maps.
    ``isochrones``: a standard grid Table or a source for
    :func:`yso_labels.isochrones.load_isochrones`; else the model family ``models``
    (:mod:`yso_labels.families`; None: the packaged PARSEC grid).
    """
    out = Path(out)
    notes: list[str] = []
    grid = kiel_grid(isochrones, models)
    files = {"kiel": save_figure(kiel_figure(selected, cands, grid=grid, vertices=vertices),
                                 out / "yso_kiel.png")}
    if regions is None:
        notes.append("no sky positions: sky map, age maps and impostor flags skipped")
    else:
        files["sky"] = save_figure(sky_figure(cands, regions), out / "yso_sky.png")
        files["age_maps"] = save_figure(age_maps_figure(cands, regions),
                                        out / "yso_age_maps.png")
    column = group_column or ("region_complex" if regions is not None else None)
    if column is None:
        cands = cands.copy()
        cands["all"] = np.full(len(cands), "all candidates")
        column = "all"
    if column == "region_complex" and len(cands):
        cands = cands.copy()
        group = np.asarray(cands[column]).astype(str)
        group = np.where(group == "", "no sky position", group)
        cands[column] = np.where(np.asarray(cands["impostor"]), "impostors", group)
    files["logg_kde"] = save_figure(kde_figure(cands, column, bandwidth=kde_bandwidth),
                                    out / "yso_logg_kde.png")
    return files, notes
