"""The baseline the paper rejected: a chi-square fit of photometry to the isochrone grid.

Olney et al. 2020 §2.4 first fitted YSO photometry to reddened isochrones by chi-square
minimisation (the ``isochrones`` package) and found it biased by extinction degeneracy,
J−K offsets and grid edges. This module is the same idea on the same grid and bands as the
photometric CNN, for side-by-side evaluation: for every star and every model of a regular
(log age, log mass) mesh, A_V is solved by weighted least squares (clipped to the A_V
prior range), the distance is known, bands at their detection limit act as upper limits
(a model brighter than the limit pays ((lim − m)/σ)²); the minimum-χ² model is reported.

Extinction as in the synthetic stars (:mod:`yso_labels.extinction`): with ``extinction=
"law"`` each band's A_band/A_V depends on the model's Teff and on A_V itself (G23 law
through the filter curve), so A_band(A_V) = A_V·k_band(Teff, A_V) is not linear in A_V
(Gaia G's ratio of a 2300 K star falls by a third from A_V = 0 to 20). A_V is then found by
Gauss–Newton on the same weighted least squares, from the linear solution with the ratios
at A_V = 0, with the exact derivative dA_band/dA_V = k + A_V dk/dA_V of the ratios
interpolated linearly between the tabulated A_V nodes (:data:`AV_ITERATIONS` steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.table import Table

from yso_labels.core.tables import float_column
from yso_labels.extinction import band_ratios
from yso_labels.isochrones import interpolate, mass_coverage, require_bands
from yso_labels.synthetic import (
    LIMITS,
    PAPER_RANGES,
    apply_limits,
    default_bands,
    distance_modulus,
)

#: A_V nodes (mag) at which the law's A_band/A_V of every mesh model is tabulated.
AV_NODES = np.arange(0.0, 20.0 + 1e-9, 1.0)
#: Gauss–Newton steps of the A_V solution with Teff- and A_V-dependent ratios.
AV_ITERATIONS = 2


def model_mesh(grid: Table, bands: Sequence[str],
               age_myr_range: tuple[float, float] = PAPER_RANGES["age_myr"],
               log_age_step: float = 0.01, n_mass: int = 300,
               mass_range: tuple[float, float] | None = None) -> Table:
    """Models on a regular mesh: log age in ``log_age_step`` dex steps, ``n_mass`` masses
    log-uniform over ``mass_range`` (default: the paper's 0.08–3 M☉ within the grid)."""
    la_range = (np.log10(age_myr_range[0] * 1e6), np.log10(age_myr_range[1] * 1e6))
    if mass_range is None:
        lo, hi = mass_coverage(grid, la_range)
        mass_range = (max(PAPER_RANGES["mass"][0], lo), min(PAPER_RANGES["mass"][1], hi))
    n_age = int(round((la_range[1] - la_range[0]) / log_age_step)) + 1
    la = np.linspace(*la_range, n_age)
    lm = np.linspace(np.log10(mass_range[0]), np.log10(mass_range[1]), n_mass)
    la_g, lm_g = np.meshgrid(la, lm, indexing="ij")
    mesh = interpolate(grid, la_g.ravel(), 10 ** lm_g.ravel(),
                       columns=["teff", "logg", *bands], outside="raise")
    mesh.remove_column("in_grid")
    return mesh


def chi2_fit(table: Table, grid: Table | None = None, bands: Sequence[str] | None = None,
             sigma: float | dict[str, float] = 0.03, av_range: tuple[float, float] =
             PAPER_RANGES["av"], limits: dict[str, float] | None = None,
             log_age_step: float = 0.01, n_mass: int = 300, chunk: int = 32,
             models: str | None = None, extinction: str = "law") -> Table:
    """Minimum-χ² (log age, mass, A_V) of each row of ``table`` on the isochrone mesh.

    ``grid``: a standard isochrone table, else the model family ``models`` (``parsec``
    default; :mod:`yso_labels.families`). ``sigma``: assumed photometric uncertainty (mag),
    one value or per band. ``extinction``: ``law`` (Teff- and A_V-dependent ratios, as
    :func:`yso_labels.synthetic.draw_population` draws them) or ``fixed``. Distance from
    ``distance`` (pc) or ``parallax`` (mas). Returns ``teff`` (K), ``logg``, ``age_myr``,
    ``mass`` (M☉), ``av`` (mag) and ``chi2`` (NaN rows where G or the distance is missing);
    ``meta`` records the grid, family (``MODELS``) and extinction mode.
    """
    from yso_labels.families import DEFAULT_MODELS, check_models, grid_models, load_models

    if grid is None:
        grid = load_models(check_models(models or DEFAULT_MODELS))
    elif models is not None and grid_models(grid) != models:
        raise ValueError(f"chi2_fit: the grid is of model family {grid_models(grid)!r}, "
                         f"not the requested {models!r}")
    bands = list(bands) if bands else list(default_bands(grid))
    require_bands(grid, bands)
    limits = dict(LIMITS, **(limits or {}))
    mesh = model_mesh(grid, bands, log_age_step=log_age_step, n_mass=n_mass)
    absmag = np.column_stack([np.asarray(mesh[b], float) for b in bands]).astype(np.float32)
    ratios = band_ratios(bands, np.asarray(mesh["teff"], float)[:, None], AV_NODES[None, :],
                         extinction)
    k_nodes = np.stack([ratios[b] for b in bands], axis=1).astype(np.float32)  # (j, b, av)
    sig = np.array([sigma[b] if isinstance(sigma, dict) else sigma for b in bands], np.float32)
    lim = np.array([limits[b] for b in bands], np.float32)
    obs = np.column_stack([apply_limits(_col(table, b) if b in table.colnames
                                        else np.full(len(table), np.nan), b, limits)
                           for b in bands]).astype(np.float32)
    if "distance" in table.colnames:
        dist = _col(table, "distance")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = 1000.0 / _col(table, "parallax")
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = distance_modulus(dist).astype(np.float32)
    usable = np.isfinite(mu) & np.isfinite(_col(table, "G"))
    best = np.full(len(table), -1)
    best_av = np.full(len(table), np.nan)
    best_chi2 = np.full(len(table), np.nan)
    w = 1.0 / sig**2
    for start in range(0, len(table), chunk):
        rows = np.arange(start, min(start + chunk, len(table)))
        rows = rows[usable[rows]]
        if not len(rows):
            continue
        det = (obs[rows] < lim).astype(np.float32)                       # (s, b)
        resid = (obs[rows] - mu[rows, None])[:, None, :] - absmag[None]   # (s, j, b)
        wd = det * w                                                     # (s, b)
        k0 = k_nodes[:, :, 0]                                            # (j, b), A_V = 0
        num = np.einsum("sjb,sjb->sj", resid, k0[None] * wd[:, None, :])
        den = (k0 * k0) @ wd.T                                           # (j, s)
        den = den.T
        av = _clip_av(num, den, 0.0, av_range)                           # (s, j)
        for _ in range(AV_ITERATIONS if extinction == "law" else 0):
            k, dk = _ratios_at(k_nodes, av)                              # (s, j, b)
            r = resid - av[:, :, None] * k
            jac = k + av[:, :, None] * dk                                # dA_band/dA_V
            wjac = jac * wd[:, None, :]
            num = np.einsum("sjb,sjb->sj", r, wjac)
            den = np.einsum("sjb,sjb->sj", jac, wjac)
            av = _clip_av(num, den, av, av_range)
        k = _ratios_at(k_nodes, av)[0]
        r = resid - av[:, :, None] * k                                   # obs − model
        upper = np.maximum(0.0, r) * (1 - det)[:, None, :]  # model brighter than the limit
        chi2 = np.einsum("sjb,sb->sj", r * r, wd) + np.einsum("sjb,b->sj", upper**2, w)
        j = np.argmin(chi2, axis=1)
        best[rows] = j
        best_av[rows] = av[np.arange(len(rows)), j]
        best_chi2[rows] = chi2[np.arange(len(rows)), j]
    ok = best >= 0
    out = Table()
    for name, src in (("teff", "teff"), ("logg", "logg"), ("mass", "mass_ini")):
        v = np.full(len(table), np.nan)
        v[ok] = np.asarray(mesh[src], float)[best[ok]]
        out[name] = v
    age = np.full(len(table), np.nan)
    age[ok] = 10 ** (np.asarray(mesh["log_age"], float)[best[ok]] - 6.0)
    out["age_myr"] = age
    out["av"] = best_av
    out["chi2"] = best_chi2
    out.meta.update(METHOD="chi2 isochrone fit", BANDS=" ".join(bands),
                    SIGMA=str(sigma), GRID=grid.meta.get("GRID", ""),
                    MODELS=grid_models(grid), EXTMODE=extinction)
    return out


def _clip_av(num, den, start, av_range) -> np.ndarray:
    """``start + num/den`` (0 where ``den`` = 0) clipped to ``av_range`` (mag), float32."""
    step = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return np.clip(start + step, *av_range).astype(np.float32)


def _ratios_at(k_nodes: np.ndarray, av: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A_band/A_V (s, j, b) of mesh models j at A_V ``av`` (s, j), and its derivative
    d(A_band/A_V)/dA_V (mag⁻¹): linear between the :data:`AV_NODES` columns of ``k_nodes``
    (j, b, n_av), clipped at the ends."""
    x = np.clip(av, AV_NODES[0], AV_NODES[-1])
    i = np.clip(np.searchsorted(AV_NODES, x, side="right") - 1, 0, len(AV_NODES) - 2)
    f = ((x - AV_NODES[i]) / (AV_NODES[i + 1] - AV_NODES[i])).astype(np.float32)
    j = np.arange(k_nodes.shape[0])[None, :]
    lo = k_nodes[j, :, i]                    # (s, j, b)
    hi = k_nodes[j, :, i + 1]
    slope = (hi - lo) / (AV_NODES[i + 1] - AV_NODES[i])[:, :, None].astype(np.float32)
    return lo + f[:, :, None] * (hi - lo), slope


def _col(table: Table, name: str) -> np.ndarray:
    return float_column(table[name])
