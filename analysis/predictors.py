"""Which single scale-free statistic of the trained network predicts robust accuracy across every
knob pooled (issue 12, items 6 and 7)?

`predictor_table` ranks each candidate of trainables.schema.SCALE_FREE_STATS, the first layer's
alignment with the data (schema.DATA_STATS, from the history table), and compressibility at a kept
fraction kappa beside them, by its Spearman correlation with RA (the strongest attack's, at the
final evaluation) per (norm, eps), pooled over every knob and seed of the run(s), with a bootstrap
interval over trials.

The CLI also prints the bound's per-eps correlations with the measured CE gap and with each of its
factors (analysis.bound, their one home). A trial counts at its last evaluated iteration.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats as sps

from analysis._cli import OneLineParser, fail
from analysis.bound import bound_correlations, bound_factors, factor_correlations
from analysis.stats import spearman
from analysis.store import Tables, load
from analysis.views import ANALYSED_STATUSES, final_robustness
from trainables.errors import SweepError
from trainables.schema import DATA_STATS, HEADLINE_KAPPA, KAPPAS, SCALE_FREE_STATS, kappa_tag

# Compressibility at a fixed kappa, per flavour: trial statistic -> layers-column prefix.
COMP_AT_KAPPA: dict[str, str] = {
    "spectral_comp": "spectral_comp",
    "neuron_comp": "neuron_comp_l1",
    "neuron_comp_l2": "neuron_comp_l2",
}
GOAL = 0.9  # the target: |Spearman| with RA, pooled over every knob
_TRIAL = ["run_id", "trial_id"]


def trial_statistics(
    tables: Tables,
    kappa: float = HEADLINE_KAPPA,
    statuses: Sequence[str] = ANALYSED_STATUSES,
) -> pl.DataFrame:
    """One row per analysed trial: the encoder-layer mean of every scale-free statistic and of
    compressibility at `kappa`, at the trial's last iteration with layer rows."""
    tag = kappa_tag(kappa)
    columns = {**SCALE_FREE_STATS, **{k: f"{p}_{tag}" for k, p in COMP_AT_KAPPA.items()}}
    analysed = tables.trials.filter(pl.col("status").is_in(list(statuses))).select(_TRIAL)
    return (
        tables.layers
        .filter(pl.col("iteration") == pl.col("iteration").max().over(_TRIAL))
        .group_by(_TRIAL, maintain_order=True)
        .agg(*[pl.col(column).mean().alias(name) for name, column in columns.items()])
        .join(analysed, on=_TRIAL, how="inner")
        .sort(_TRIAL)
        .collect()
    )


def bootstrap_spearman(
    x: np.ndarray, y: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of Spearman's rho over trials resampled with replacement (NaN pairs
    dropped; +-inf ranks as the largest / smallest value; resamples with a constant side are
    skipped). (nan, nan) with fewer than 4 pairs."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 4:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    rx = sps.rankdata(x[idx], axis=1)
    ry = sps.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    ok = denom > 0
    rhos = (rx * ry).sum(axis=1)[ok] / denom[ok]
    if not len(rhos):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(rhos, [tail, 100 - tail])
    return float(low), float(high)


def _rho(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """Spearman rho with +-inf kept (ranked at the ends); analysis.stats drops them."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if np.isfinite(x).all() and np.isfinite(y).all():
        return spearman(x, y, level).r
    if len(x) < 3 or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return float("nan")
    return float(sps.spearmanr(sps.rankdata(x), sps.rankdata(y)).statistic)


def predictor_table(
    tables: Tables,
    kappa: float = HEADLINE_KAPPA,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """Per (norm, eps, statistic): Spearman of RA with the statistic across every analysed trial
    pooled, its bootstrap interval, and whether |rho| reaches GOAL. RA is the strongest attack's
    (the lowest over attacks at the trial's last evaluated iteration, UAP excluded; see
    views.final_robustness). `kind` is "scale_free", "data" (DATA_STATS at the trial's last
    history row; NaN for a conv first layer, such trials leave that row's n) or
    "comp_at_kappa"; rows are sorted by |rho| within each (norm, eps), so the first row of each
    group is the best single predictor there."""
    stats = trial_statistics(tables, kappa)
    robust = final_robustness(tables).select(
        *_TRIAL, "norm", "eps", "robust_acc", *DATA_STATS).collect()
    joined = robust.join(stats, on=_TRIAL, how="inner")
    candidates = {**{k: "scale_free" for k in SCALE_FREE_STATS},
                  **{k: "data" for k in DATA_STATS},
                  **{k: "comp_at_kappa" for k in COMP_AT_KAPPA}}
    rows = []
    for (norm, eps), group in sorted(joined.partition_by(["norm", "eps"], as_dict=True).items()):
        ra = group["robust_acc"].to_numpy()
        for name, kind in candidates.items():
            values = group[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()
            rho = _rho(values, ra, level)
            low, high = bootstrap_spearman(values, ra, n_boot, level, seed)
            rows.append({
                "norm": norm, "eps": float(eps), "statistic": name, "kind": kind,
                "kappa": kappa if kind == "comp_at_kappa" else None,
                "n": int((~(np.isnan(values) | np.isnan(ra))).sum()),
                "spearman": rho, "ci_low": low, "ci_high": high,
                "reaches_goal": bool(abs(rho) >= GOAL) if np.isfinite(rho) else False,
            })
    frame = pl.DataFrame(rows, schema_overrides={"kappa": pl.Float64})
    if frame.is_empty():
        return frame
    # NaN (no defined rho) as null, so it sorts last rather than as the largest |rho|
    return frame.with_columns(pl.col("spearman").fill_nan(None)).sort(
        ["norm", "eps", pl.col("spearman").abs()], descending=[False, False, True],
        nulls_last=True,
    )


def best_predictors(table: pl.DataFrame) -> pl.DataFrame:
    """The first row per (norm, eps) of predictor_table: the strongest single statistic, beside
    the strongest compressibility-at-kappa flavour."""
    best = table.group_by(["norm", "eps"], maintain_order=True).first()
    comp = (
        table.filter(pl.col("kind") == "comp_at_kappa")
        .group_by(["norm", "eps"], maintain_order=True).first()
        .select("norm", "eps", pl.col("statistic").alias("best_comp"),
                pl.col("spearman").alias("best_comp_spearman"))
    )
    return best.join(comp, on=["norm", "eps"], how="left").sort(["norm", "eps"])


def main(argv: list[str] | None = None) -> int:
    """python -m analysis.predictors RUN_DIR [RUN_DIR ...]: the pooled-predictor table (best
    statistic per norm and eps first), the per-eps bound correlations with the measured CE gap
    (rank-varied and all trials) and the same per factor of the bound, over the runs pooled."""
    parser = OneLineParser(prog="python -m analysis.predictors", description=main.__doc__)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories (hold store/)")
    parser.add_argument("--kappa", type=float, default=HEADLINE_KAPPA)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.kappa not in KAPPAS:  # the store has comp columns at these kept fractions only
        return fail(f"--kappa must be one of {list(KAPPAS)}, but got {args.kappa}")
    if args.n_boot < 1:
        return fail(f"--n-boot must be >= 1, but got {args.n_boot}")
    try:
        tables = load(args.run_dirs)
        table = predictor_table(tables, kappa=args.kappa, n_boot=args.n_boot)
        bounds = bound_correlations(final_robustness(tables))
        factors = factor_correlations(bound_factors(tables))
    except SweepError as err:
        return fail(err)
    shown_bounds = bounds.select("subset", "norm", "eps", "quantity", "n", "spearman_r",
                                 "spearman_ci_low", "spearman_ci_high", "pearson_r",
                                 "ratio_median")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=400, float_precision=3,
                   tbl_formatting="MARKDOWN", tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True):
        print(f"Spearman of RA (strongest attack) with each statistic, pooled over every knob "
              f"and seed; |rho| >= {GOAL} reaches the goal")
        print(table)
        print("Best single predictor per (norm, eps)")
        print(best_predictors(table))
        print("Measured CE gap vs the bound and the estimates, per eps (never pooled)")
        print(shown_bounds)
        print("Measured CE gap vs each factor of the global bound, per eps")
        print(factors)
    return 0


__all__ = [
    "COMP_AT_KAPPA",
    "GOAL",
    "best_predictors",
    "bootstrap_spearman",
    "main",
    "predictor_table",
    "trial_statistics",
]


if __name__ == "__main__":
    sys.exit(main())
