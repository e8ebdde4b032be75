"""Which single scale-free statistic of the trained network predicts robust accuracy across every
knob pooled (issue 12, items 6 and 7)?

`predictor_table` ranks each candidate of trainables.schema.SCALE_FREE_STATS, and compressibility
at a kept fraction kappa beside them, by its Spearman correlation with RA per (norm, eps), pooled
over every knob and seed of the run(s), with a bootstrap interval over trials. `bound_table` gives
the per-eps correlation of the global loss-gap bound and of the two estimates with the measured CE
gap: never pooled over eps, since the gap and the bound both scale with eps and pooling would
reward the eps axis, not the bound.

Both read a store through analysis.load; a trial counts at its last evaluated iteration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats as sps

from analysis._cli import fail
from analysis.stats import spearman
from analysis.store import Tables, load
from analysis.views import ANALYSED_STATUSES, final_robustness
from trainables.errors import SweepError
from trainables.schema import HEADLINE_KAPPA, SCALE_FREE_STATS, kappa_tag

# Compressibility at a fixed kappa, per flavour: trial statistic -> layers-column prefix.
COMP_AT_KAPPA: dict[str, str] = {
    "spectral_comp": "spectral_comp",
    "neuron_comp": "neuron_comp_l1",
    "neuron_comp_l2": "neuron_comp_l2",
}
GOAL = 0.9  # the target: |Spearman| with RA, pooled over every knob
BOUND_QUANTITIES: dict[str, str] = {
    "bound_gap": "global product (certificate)",
    "align_est_gap": "alignment-aware (estimate)",
    "first_order_gap": "first-order (estimate)",
}
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
        .group_by(_TRIAL)
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
    """Per (norm, eps, statistic): Spearman of RA (lowest over attacks, UAP excluded) with the
    statistic across every analysed trial pooled, its bootstrap interval, and whether |rho|
    reaches GOAL. `kind` is "scale_free" or "comp_at_kappa"; rows are sorted by |rho| within each
    (norm, eps), so the first row of each group is the best single predictor there."""
    stats = trial_statistics(tables, kappa)
    robust = final_robustness(tables).select(*_TRIAL, "norm", "eps", "robust_acc").collect()
    joined = robust.join(stats, on=_TRIAL, how="inner")
    candidates = {**{k: "scale_free" for k in SCALE_FREE_STATS},
                  **{k: "comp_at_kappa" for k in COMP_AT_KAPPA}}
    rows = []
    for (norm, eps), group in sorted(joined.partition_by(["norm", "eps"], as_dict=True).items()):
        ra = group["robust_acc"].to_numpy()
        for name, kind in candidates.items():
            values = group[name].to_numpy()
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
    return frame.sort(
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


def bound_table(
    tables: Tables, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> pl.DataFrame:
    """Per (norm, eps) and quantity of BOUND_QUANTITIES: Spearman with the measured CE gap across
    analysed trials, with a bootstrap interval. One row per eps: never pooled over eps."""
    frame = final_robustness(tables).select(
        "norm", "eps", "measured_gap", *BOUND_QUANTITIES
    ).collect()
    rows = []
    for (norm, eps), group in sorted(frame.partition_by(["norm", "eps"], as_dict=True).items()):
        measured = group["measured_gap"].to_numpy()
        for quantity, label in BOUND_QUANTITIES.items():
            values = group[quantity].to_numpy()
            corr = spearman(values, measured, level)
            low, high = bootstrap_spearman(values, measured, n_boot, level, seed)
            rows.append({"norm": norm, "eps": float(eps), "quantity": quantity, "label": label,
                         "n": corr.n, "spearman": corr.r, "ci_low": low, "ci_high": high})
    return pl.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """python -m analysis.predictors RUN_DIR [RUN_DIR ...]: the pooled-predictor table (best
    statistic per norm and eps first) and the per-eps bound correlations."""
    parser = argparse.ArgumentParser(prog="python -m analysis.predictors", description=main.__doc__)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories (hold store/)")
    parser.add_argument("--kappa", type=float, default=HEADLINE_KAPPA)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        tables = load(args.run_dirs)
        table = predictor_table(tables, kappa=args.kappa, n_boot=args.n_boot)
        bounds = bound_table(tables, n_boot=args.n_boot)
    except SweepError as err:
        return fail(err)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, float_precision=3):
        print(table)
        print(best_predictors(table))
        print(bounds)
    return 0


__all__ = [
    "BOUND_QUANTITIES",
    "COMP_AT_KAPPA",
    "GOAL",
    "best_predictors",
    "bootstrap_spearman",
    "bound_table",
    "main",
    "predictor_table",
    "trial_statistics",
]


if __name__ == "__main__":
    sys.exit(main())
