"""Trend table: Spearman per knob / norm / eps, and the near-best-clean subset."""

from __future__ import annotations

import polars as pl
import pytest
from scipy import stats as sps

from analysis import load
from analysis.trend import near_best_clean, trend_table
from analysis.views import final_robustness


def test_trend_matches_scipy_and_robust_accuracy_falls(run_dir):
    final = final_robustness(load(run_dir))
    table = trend_table(final)
    assert set(table["knob"]) == {"nuclear", "rank"}  # never pooled
    data = final.collect()
    for knob in ("nuclear", "rank"):
        part = data.filter((pl.col("knob") == knob) & (pl.col("norm") == "linf")
                           & (pl.col("eps") == 0.04))
        for metric, column in (("RA", "robust_acc"), ("SA", "clean_acc"),
                               ("RA/SA", "ra_over_sa")):
            row = table.filter(
                (pl.col("knob") == knob) & (pl.col("norm") == "linf") & (pl.col("eps") == 0.04)
                & (pl.col("measure") == "spectral_comp") & (pl.col("subset") == "all")
                & (pl.col("metric") == metric)
            ).row(0, named=True)
            ref = sps.spearmanr(part["spectral_comp"], part[column])
            assert row["n"] == 15
            assert row["rho"] == pytest.approx(ref.statistic)
            assert row["p_value"] == pytest.approx(ref.pvalue)
        ra = table.filter((pl.col("knob") == knob) & (pl.col("metric") == "RA")
                          & (pl.col("subset") == "all") & (pl.col("eps") == 0.04))
        assert (ra["rho"] < -0.8).all() and (ra["p_value"] < 1e-3).all()


def test_near_best_clean_keeps_trials_within_two_points_of_the_best(run_dir):
    final = final_robustness(load(run_dir)).collect()
    kept = near_best_clean(final.lazy(), ["knob", "norm", "eps"]).collect()
    for (knob, norm, eps), part in final.group_by(["knob", "norm", "eps"]):
        best = part["final_clean_acc"].max()
        expected = set(part.filter(pl.col("final_clean_acc") >= best - 0.02)["trial_id"])
        got = kept.filter((pl.col("knob") == knob) & (pl.col("norm") == norm)
                          & (pl.col("eps") == eps))
        assert set(got["trial_id"]) == expected
        assert 0 < len(expected) < part.height  # the fixture's clean accuracy drifts 2 points
