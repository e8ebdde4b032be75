"""The empirical robustness/compressibility frontier: the Pareto set, a monotone (isotonic) fit,
and a parametric fit with bootstrap bands that resample seeds.

Parametric form: robust_acc = a - b * comp^c, with 0 <= a <= 1, 0 <= b <= B_MAX and
C_MIN <= c <= C_MAX. Why this one: THEORY.md's
sensitivity inequality makes each layer's operator norm grow at least linearly in its
compressibility at a fixed weight scale, and the Lipschitz bound multiplies L such factors, so
robustness loss is expected to grow like a power of compressibility; a is the robust accuracy of
an incompressible network, b the loss at comp = 1 and c the curvature (c = 1 linear, c > 1 the
loss concentrated at high compressibility). Three parameters stay identifiable on a sweep of a few
strengths, where a four-parameter logistic often is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.optimize import isotonic_regression, least_squares

from analysis.stats import finite_pairs

PARAMETERS = ("a", "b", "c")
C_MIN, C_MAX = 0.05, 50.0
# a is an accuracy; b is the accuracy lost at comp = 1, so more than 1 only describes a curve
# leaving [0, 1] inside the data range; B_MAX leaves room for that and keeps b finite.
B_MAX = 10.0
BOUNDS: dict[str, tuple[float, float]] = {"a": (0.0, 1.0), "b": (0.0, B_MAX), "c": (C_MIN, C_MAX)}
# A bootstrap interval within this fraction of a bound's width "reaches" it: the data do not
# identify the parameter (the optimum sits on the constraint, not at a minimum of the loss).
BOUND_TOL = 1e-3


@dataclass(frozen=True)
class Frontier:
    points: pl.DataFrame  # one row per trial: by..., measure, comp, robust_acc, pareto
    curves: pl.DataFrame  # by..., measure, fit, comp, robust_acc, band_lo, band_hi
    parameters: pl.DataFrame  # by..., measure, n_trials, n_configs, resampled, a..c (+ _lo/_hi)


def pareto_front(
    points: pl.LazyFrame, x: str, y: str, by: Sequence[str] = ()
) -> pl.LazyFrame:
    """Add a boolean column 'pareto': true for points no other point of the same group dominates
    with x >= and y >= (one of them strictly). Rows with a null or NaN x or y are never on it."""
    by = list(by) or ["_all"]
    frame = points.with_columns(pl.lit(0).alias("_all")) if by == ["_all"] else points
    valid = pl.col(x).is_not_null() & pl.col(y).is_not_null() & pl.col(x).is_not_nan() & pl.col(
        y
    ).is_not_nan()
    levels = (
        frame
        .filter(valid)
        .group_by([*by, x])
        .agg(pl.col(y).max().alias("_level_best"))
        .sort([*by, x], descending=[False] * len(by) + [True], nulls_last=True)
        # the best y among strictly larger x within the group
        .with_columns(pl.col("_level_best").cum_max().shift(1).over(by).alias("_best_right"))
    )
    on_front = (pl.col(y) >= pl.col("_level_best")) & (
        pl.col("_best_right").is_null() | (pl.col(y) > pl.col("_best_right"))
    )
    result = (
        frame
        # "Add a column": the rows keep their order (polars' default join order is unspecified)
        .join(levels, on=[*by, x], how="left", nulls_equal=True, maintain_order="left")
        .with_columns((valid & on_front).fill_null(False).alias("pareto"))
        .drop("_level_best", "_best_right")
    )
    return result.drop("_all") if by == ["_all"] else result


def isotonic_fit(
    x: np.ndarray, y: np.ndarray, increasing: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares monotone fit (non-increasing by default) of y on x. Ties in x are pooled
    first (their mean, weighted by count). Returns (unique sorted x, fitted value at each)."""
    x, y = finite_pairs(x, y)
    if len(x) == 0:
        return x, y
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y) / counts
    fitted = isotonic_regression(means, weights=counts, increasing=increasing).x
    return ux, np.asarray(fitted, dtype=float)


def power_curve(comp: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(comp, c)


def fit_power(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """(a, b, c) of robust_acc = a - b * comp^c by bounded least squares (scipy.optimize.
    least_squares, trust-region reflective, within BOUNDS); None when the data cannot identify
    three parameters (fewer than 4 points or 3 distinct x). The start comes from profiling c on
    a coarse log grid (for a fixed c the model is linear in (a, b), solved in closed form), so the
    local optimizer starts in the right basin."""
    x, y = finite_pairs(x, y)
    if len(x) < 4 or len(np.unique(x)) < 3:
        return None
    grid = np.geomspace(C_MIN, C_MAX, 40)
    c0 = float(grid[int(np.argmin(_profile_losses(x, y, grid)))])
    a0, b0, _ = _profile(x, y, c0)
    lower = np.array([BOUNDS[p][0] for p in PARAMETERS])
    upper = np.array([BOUNDS[p][1] for p in PARAMETERS])
    start = np.clip([a0, b0, c0], lower, upper)
    fit = least_squares(lambda p: power_curve(x, *p) - y, start, bounds=(lower, upper),
                        method="trf", x_scale=[1.0, 1.0, max(c0, 1.0)])
    return np.asarray(fit.x, dtype=float)


def not_identified(lo: dict[str, float], hi: dict[str, float]) -> list[str]:
    """Parameters whose interval reaches a bound of BOUNDS (or has no interval)."""
    names = []
    for name, (low, high) in BOUNDS.items():
        tol = BOUND_TOL * (high - low)
        if not (np.isfinite(lo[name]) and np.isfinite(hi[name])) or lo[name] <= low + tol or (
                hi[name] >= high - tol):
            names.append(name)
    return names


def _profile_losses(x: np.ndarray, y: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """_profile's residual for many c at once (rows of z are x^c)."""
    z = np.power(x[None, :], cs[:, None])
    zc, yc = z - z.mean(axis=1, keepdims=True), y - y.mean()
    var = np.einsum("ij,ij->i", zc, zc)
    b = np.maximum(0.0, -(zc @ yc) / np.where(var > 0, var, 1.0)) * (var > 0)
    residual = yc[None, :] + b[:, None] * zc
    return np.einsum("ij,ij->i", residual, residual)


def _profile(x: np.ndarray, y: np.ndarray, c: float) -> tuple[float, float, float]:
    """Least-squares (a, b >= 0) for a fixed c, and the sum of squared residuals."""
    z = np.power(x, c)
    zc, yc = z - z.mean(), y - y.mean()
    var = float(zc @ zc)
    b = max(0.0, -float(zc @ yc) / var) if var > 0 else 0.0
    # b = 0 is the exact constrained optimum when the unconstrained slope has the wrong sign
    a = float(y.mean() + b * z.mean())
    residual = y - (a - b * z)
    return a, b, float(residual @ residual)


def bootstrap_indices(
    configs: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], str]:
    """Resampled row indices. With several seeds per configuration, each configuration's seeds
    are resampled with replacement (the sweep's design is kept, seed noise is resampled); when
    every configuration has one seed there is nothing to resample within, so trials are."""
    _, inverse, counts = np.unique(configs, return_inverse=True, return_counts=True)
    if counts.max(initial=0) > 1:
        members = [np.flatnonzero(inverse == g) for g in range(len(counts))]
        draws = [
            np.concatenate([rng.choice(m, size=len(m)) for m in members]) for _ in range(n_boot)
        ]
        return draws, "seeds within configuration"
    n = len(configs)
    return [rng.integers(0, n, n) for _ in range(n_boot)], "trials"


def fit_frontiers(
    final: pl.LazyFrame,
    measure: str,
    by: Sequence[str],
    config: Sequence[str],
    n_boot: int = 200,
    level: float = 0.95,
    grid_size: int = 50,
    seed: int = 0,
) -> Frontier:
    """Pareto set, isotonic and parametric fits of robust_acc against `measure` per group `by`
    (e.g. norm, eps and each training setting). `config` names the columns that identify a
    configuration, so the bootstrap resamples seeds within it."""
    by = list(by)
    points = (
        final
        .select(*by, pl.struct(list(config)).hash().alias("_config"), measure, "robust_acc")
        .rename({measure: "comp"})
        .with_columns(pl.lit(measure).alias("measure"))
        .pipe(pareto_front, "comp", "robust_acc", by)
        .sort([*by, "comp"], nulls_last=True)
        .collect()
    )
    rng = np.random.default_rng(seed)
    curves, parameters = [], []
    groups = points.partition_by(by, as_dict=True, maintain_order=True) if by else {(): points}
    for key, group in groups.items():
        labels = dict(zip(by, key)) | {"measure": measure}
        fit_curves, fit_params = _fit_group(group, n_boot, level, grid_size, rng)
        curves.append(fit_curves.with_columns(**{k: pl.lit(v) for k, v in labels.items()}))
        parameters.append({**labels, **fit_params})
    return Frontier(
        points=points.drop("_config"),
        curves=pl.concat(curves, how="diagonal_relaxed") if curves else pl.DataFrame(),
        parameters=pl.DataFrame(parameters) if parameters else pl.DataFrame(),
    )


def _fit_group(
    group: pl.DataFrame, n_boot: int, level: float, grid_size: int, rng: np.random.Generator
) -> tuple[pl.DataFrame, dict]:
    keep = group.filter(pl.col("comp").is_finite() & pl.col("robust_acc").is_finite())
    x, y = keep["comp"].to_numpy(), keep["robust_acc"].to_numpy()
    configs = keep["_config"].to_numpy()
    iso_x, iso_y = isotonic_fit(x, y)
    nan = float("nan")
    rows: dict = {
        "n_trials": len(x),
        "n_configs": len(np.unique(configs)),
        "resampled": "",
        "n_boot_fits": 0,
        "rmse_isotonic": _rmse(y, np.interp(x, iso_x, iso_y)) if len(x) else nan,
        "rmse_parametric": nan,
        **{name: nan for name in PARAMETERS},
        **{f"{name}_{s}": nan for name in PARAMETERS for s in ("lo", "hi")},
        "not_identified": ", ".join(PARAMETERS),
    }
    no_band = np.full(len(iso_x), nan)
    iso = pl.DataFrame(
        {"fit": "isotonic", "comp": iso_x, "robust_acc": iso_y, "band_lo": no_band,
         "band_hi": no_band},
        schema_overrides={c: pl.Float64 for c in ("comp", "robust_acc", "band_lo", "band_hi")},
    )
    params = fit_power(x, y)
    if params is None:
        return iso, rows
    grid = np.linspace(x.min(), x.max(), grid_size)
    draws, rows["resampled"] = bootstrap_indices(configs, n_boot, rng)
    boot_params = [p for p in (fit_power(x[i], y[i]) for i in draws) if p is not None]
    tail = (1 - level) / 2 * 100
    rows |= dict(zip(PARAMETERS, map(float, params)))
    rows["rmse_parametric"] = _rmse(y, power_curve(x, *params))
    rows["n_boot_fits"] = len(boot_params)
    if boot_params:
        boot = np.array(boot_params)
        bands = np.array([power_curve(grid, *p) for p in boot])
        lo, hi = np.percentile(bands, [tail, 100 - tail], axis=0)
        for j, name in enumerate(PARAMETERS):
            rows[f"{name}_lo"], rows[f"{name}_hi"] = map(
                float, np.percentile(boot[:, j], [tail, 100 - tail])
            )
        rows["not_identified"] = ", ".join(not_identified(
            {p: rows[f"{p}_lo"] for p in PARAMETERS}, {p: rows[f"{p}_hi"] for p in PARAMETERS}))
    else:
        lo = hi = np.full_like(grid, nan)
    parametric = pl.DataFrame(
        {
            "fit": "parametric",
            "comp": grid,
            # accuracies live in [0, 1]; a band edge outside it is the power law extrapolating
            "robust_acc": np.clip(power_curve(grid, *params), 0.0, 1.0),
            "band_lo": np.clip(lo, 0.0, 1.0),
            "band_hi": np.clip(hi, 0.0, 1.0),
        }
    )
    return pl.concat([iso, parametric], how="diagonal_relaxed"), rows


def _rmse(y: np.ndarray, fitted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - fitted) ** 2)))
