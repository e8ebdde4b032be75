"""The loss-gap bound against the measured CE gap (THEORY.md "Network bound"), and the two
data-dependent estimates beside it. Only bound_gap is a certificate; align_est_gap and
first_order_gap are estimates and are labelled so in every table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis.stats import pearson, spearman
from analysis.store import Tables

GAP_QUANTITIES: dict[str, str] = {
    "bound_gap": "bound",
    "align_est_gap": "estimate",
    "first_order_gap": "estimate",
}
# measured_gap > bound_gap beyond float rounding is a bug somewhere (THEORY.md invariant).
ABS_TOL = 1e-9
REL_TOL = 1e-6


def violations(tables: Tables, abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL) -> pl.LazyFrame:
    """Every robustness row (any trial, iteration and attack) whose measured CE gap exceeds its
    loss-gap bound by more than the tolerance. Must be empty."""
    return (
        tables.robustness
        .filter(
            pl.col("measured_gap")
            > pl.col("bound_gap") + rel_tol * pl.col("bound_gap").abs() + abs_tol
        )
        .select("run_id", "trial_id", "iteration", "norm", "eps", "attack", "measured_gap",
                "bound_gap")
    )


def bound_correlations(
    final: pl.LazyFrame, by: Sequence[str] = ("norm", "eps"), level: float = 0.95
) -> pl.DataFrame:
    """Per group (and pooled over eps per norm, eps = null): Spearman and Pearson correlation of
    each gap quantity with the measured gap across trials, with confidence intervals, and the
    ratio quantity / measured (the bound's tightness) over trials with a positive measured gap."""
    columns = ["measured_gap", *GAP_QUANTITIES]
    frame = final.select(*by, *columns).collect()
    rows = []
    groupings = [list(by)] + ([[c for c in by if c != "eps"]] if "eps" in by else [])
    for keys in groupings:
        groups = frame.partition_by(keys, as_dict=True, maintain_order=True) if keys else {
            (): frame
        }
        for key, group in sorted(groups.items(), key=lambda kv: str(kv[0])):
            labels = dict(zip(keys, key)) | {c: None for c in by if c not in keys}
            measured = group["measured_gap"].to_numpy()
            for quantity, kind in GAP_QUANTITIES.items():
                values = group[quantity].to_numpy()
                rows.append(
                    labels
                    | {"quantity": quantity, "kind": kind}
                    | spearman(values, measured, level).as_dict("spearman_")
                    | pearson(values, measured, level).as_dict("pearson_")
                    | _ratio_summary(values, measured)
                )
    return pl.DataFrame(rows).with_columns(pl.col("spearman_n").alias("n")).drop(
        "spearman_n", "pearson_n"
    )


def _ratio_summary(values: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    keep = np.isfinite(values) & np.isfinite(measured) & (measured > 0)
    if not keep.any():
        return {"ratio_median": np.nan, "ratio_min": np.nan, "ratio_max": np.nan}
    ratio = values[keep] / measured[keep]
    return {
        "ratio_median": float(np.median(ratio)),
        "ratio_min": float(ratio.min()),
        "ratio_max": float(ratio.max()),
    }


# Radii per (trial, norm) of the final protocol: (certified radius column, its ratio column).
RADII: dict[str, tuple[str, str]] = {
    "global": ("median_r_cert", "cert_ratio_global"),
    "relaxed": ("median_r_cert_relaxed", "cert_ratio_relaxed"),
}


def radius_comparison(final: pl.LazyFrame, level: float = 0.95) -> pl.DataFrame:
    """The scale-free theory comparison, per norm and certificate (global Lipschitz product,
    linear relaxation): the median over trials of each trial's median per-sample r_cert / r_emp
    (r_emp from the strongest attack), and the Spearman correlation across trials of the median
    certified radius with the median r_emp. Radii and accuracies are scale-free (a bias-free ReLU
    network's decisions do not change when its weights are scaled); the loss-gap bound and the
    CE gap are not. Empty when no trial has the columns."""
    needed = ["median_r_emp", *[c for pair in RADII.values() for c in pair]]
    frame = final.collect() if isinstance(final, pl.LazyFrame) else final
    if not all(c in frame.columns for c in needed):
        return pl.DataFrame()
    # Radii are per (trial, norm): the same on every eps row.
    per_trial = (frame.group_by("run_id", "trial_id", "norm")
                 .agg(pl.col(needed).fill_nan(None).max()))
    rows = []
    for norm in sorted(per_trial["norm"].unique().to_list()):
        part = per_trial.filter(pl.col("norm") == norm)
        for certificate, (radius, ratio) in RADII.items():
            ratios = part[ratio].drop_nulls()
            if ratios.len() == 0:
                continue
            pairs = part.select(radius, "median_r_emp").drop_nulls().filter(
                pl.col("median_r_emp").is_finite() & pl.col(radius).is_finite())
            corr = spearman(pairs[radius].to_numpy(), pairs["median_r_emp"].to_numpy(), level)
            rows.append({"norm": norm, "certificate": certificate, "n_trials": ratios.len(),
                         "median_ratio": float(ratios.median()),
                         "ratio_min": float(ratios.min()), "ratio_max": float(ratios.max()),
                         "spearman_r": corr.r, "spearman_ci_low": corr.ci_low,
                         "spearman_ci_high": corr.ci_high})
    return pl.DataFrame(rows)
