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
