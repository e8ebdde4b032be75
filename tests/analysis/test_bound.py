"""Bound vs measured gap: violations and correlations against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from analysis import load
from analysis.bound import bound_correlations, bound_factors, factor_correlations, violations
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
    rank_trials = set(read_tables(run_dir)["trials"].filter(
        pl.col("compression") == "rank")["trial_id"])
    for subset, keep in (("all", lambda t: True), ("rank_varied", rank_trials.__contains__)):
        for norm, eps in [("linf", 0.04), ("l2", 0.25)]:
            keys = sorted(k for k in grouped if k[1] == norm and k[2] == eps and keep(k[0]))
            measured = np.array([max(r["measured_gap"] for r in grouped[k]) for k in keys])
            for quantity in ("bound_gap", "align_est_gap", "first_order_gap"):
                agg = max if quantity == "bound_gap" else np.mean
                values = np.array([agg([r[quantity] for r in grouped[k]]) for k in keys])
                row = corr.filter(
                    (pl.col("subset") == subset) & (pl.col("norm") == norm)
                    & (pl.col("eps") == eps) & (pl.col("quantity") == quantity)
                ).row(0, named=True)
                assert row["n"] == len(keys) == (30 if subset == "all" else 15)
                assert row["kind"] == ("bound" if quantity == "bound_gap" else "estimate")
                assert row["spearman_r"] == pytest.approx(
                    sps.spearmanr(values, measured).statistic)
                assert row["pearson_r"] == pytest.approx(sps.pearsonr(values, measured).statistic)
                assert row["pearson_ci_low"] <= row["pearson_r"] <= row["pearson_ci_high"]
                assert row["ratio_median"] == pytest.approx(np.median(values / measured))
    bound_rows = corr.filter(pl.col("quantity") == "bound_gap")
    assert (bound_rows["ratio_min"] >= 1).all()  # a bound is never below the measured gap
    # never pooled over eps: every row names its eps, and each (subset, norm) has one per eps
    assert corr["eps"].null_count() == 0
    assert sorted(set(zip(corr["subset"], corr["norm"], corr["eps"]))) == [
        (s, n, e) for s in ("all", "rank_varied")
        for n, e in (("l2", 0.25), ("l2", 0.5), ("linf", 0.01), ("linf", 0.04))]
    assert not any(math.isnan(v) for v in corr["spearman_r"])


def test_a_run_without_rank_trials_has_only_the_all_subset(run_dir, tmp_path):
    trials = read_tables(run_dir)["trials"].with_columns(
        pl.lit("nuclear").alias("compression"), pl.lit("norank").alias("run_id"))
    corr = bound_correlations(final_robustness(load(
        rewrite(run_dir, tmp_path / "norank", trials=trials))))
    assert set(corr["subset"]) == {"all"}


def test_factor_correlations_show_which_factor_loses_the_ordering(run_dir, tmp_path):
    """Layer 0's L-inf norm planted to rise with the measured gap, layer 1's to fall and Lhat_inf
    to fall: each factor's own rho says so, while the whole bound's is unchanged."""
    grouped = final_rows_by_hand(run_dir)
    gap = {k[0]: max(r["measured_gap"] for r in rows)
           for k, rows in grouped.items() if k[1] == "linf" and k[2] == 0.04}
    g = pl.col("trial_id").replace_strict(gap, default=1.0, return_dtype=pl.Float64)
    tables = read_tables(run_dir)
    layers = tables["layers"].with_columns(
        pl.when(pl.col("layer_index") == 0).then(g).otherwise(100.0 - g).alias("inf_norm"))
    history = tables["history"].with_columns((1.0 / g).alias("lip_linf"))
    trials = tables["trials"].with_columns(pl.lit("factors").alias("run_id"))
    planted = load(rewrite(run_dir, tmp_path / "factors", layers=layers, history=history,
                           trials=trials))
    factors = bound_factors(planted)
    table = factor_correlations(factors)
    at = table.filter((pl.col("subset") == "all") & (pl.col("norm") == "linf")
                      & (pl.col("eps") == 0.04))
    rho = dict(zip(at["factor"], at["spearman"]))
    assert rho["layer0"] == pytest.approx(1.0) and rho["layer1"] == pytest.approx(-1.0)
    assert rho["lip"] == pytest.approx(-1.0)
    expected = sps.spearmanr([max(r["bound_gap"] for r in grouped[k]) for k in sorted(grouped)
                              if k[1] == "linf" and k[2] == 0.04],
                             [gap[k[0]] for k in sorted(grouped)
                              if k[1] == "linf" and k[2] == 0.04]).statistic
    assert rho["bound_gap"] == pytest.approx(expected)
    # head = bound / (lip * eps): the head norm times G_p, recovered per row
    row = factors.filter((pl.col("norm") == "linf") & (pl.col("eps") == 0.04)).row(0, named=True)
    assert row["head"] == pytest.approx(row["bound_gap"] / (row["lip"] * 0.04))
    assert set(at["n"]) == {30}
    assert set(table.filter(pl.col("subset") == "rank_varied")["n"]) == {15}
