"""Bound vs measured gap: violations and correlations against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from analysis import load
from analysis.bound import bound_correlations, violations
from analysis.views import final_robustness
from tests.analysis.helpers import final_rows_by_hand, read_tables, rewrite


def test_no_violations_in_a_consistent_run(run_dir):
    assert violations(load(run_dir)).collect().height == 0


def test_violation_count_respects_the_tolerance(run_dir, tmp_path):
    robustness = read_tables(run_dir)["robustness"].with_row_index("i")
    factor = (
        pl.when(pl.col("i").is_in([0, 10, 20])).then(1.001)  # violations
        .when(pl.col("i").is_in([1, 11])).then(1.0)  # equal: allowed
        .when(pl.col("i") == 2).then(1 + 1e-9)  # within rounding tolerance
        .otherwise(None)
    )
    robustness = robustness.with_columns(
        (pl.col("bound_gap") * factor).fill_null(pl.col("measured_gap")).alias("measured_gap")
    )
    planted = rewrite(run_dir, tmp_path / "planted", robustness=robustness.drop("i"))
    bad = violations(load(planted)).collect()
    assert bad.height == 3
    assert (bad["measured_gap"] > bad["bound_gap"]).all()


def test_correlations_match_scipy_on_independent_per_trial_values(run_dir):
    corr = bound_correlations(final_robustness(load(run_dir)))
    grouped = final_rows_by_hand(run_dir)
    for norm, eps in [("linf", 0.04), ("l2", 0.25)]:
        keys = sorted(k for k in grouped if k[1] == norm and k[2] == eps)
        measured = np.array([max(r["measured_gap"] for r in grouped[k]) for k in keys])
        for quantity in ("bound_gap", "first_order_gap"):
            agg = max if quantity == "bound_gap" else np.mean
            values = np.array([agg([r[quantity] for r in grouped[k]]) for k in keys])
            row = corr.filter(
                (pl.col("norm") == norm) & (pl.col("eps") == eps) & (pl.col("quantity") == quantity)
            ).row(0, named=True)
            assert row["n"] == len(keys) == 30
            assert row["kind"] == ("bound" if quantity == "bound_gap" else "estimate")
            assert row["spearman_r"] == pytest.approx(sps.spearmanr(values, measured).statistic)
            assert row["pearson_r"] == pytest.approx(sps.pearsonr(values, measured).statistic)
            assert row["pearson_ci_low"] <= row["pearson_r"] <= row["pearson_ci_high"]
            assert row["ratio_median"] == pytest.approx(np.median(values / measured))
    bound_rows = corr.filter(pl.col("quantity") == "bound_gap")
    assert (bound_rows["ratio_min"] >= 1).all()  # a bound is never below the measured gap
    pooled = corr.filter(pl.col("eps").is_null())
    assert sorted(set(pooled["norm"])) == ["l2", "linf"] and (pooled["n"] == 60).all()
    assert not any(math.isnan(v) for v in corr["spearman_r"])
