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


def test_the_l1l2_axis_trends_with_the_predicted_positive_sign(run_dir):
    """The final view carries the history's l1/l2 count at the last epoch; RA falls with
    compressibility in the fixture, so it rises with the count, which is what 'predicted' says."""
    final = final_robustness(load(run_dir))
    table = trend_table(final, measures=["spectral_l1l2", "spectral_comp"])
    assert set(table["measure"]) == {"spectral_l1l2", "spectral_comp"}
    ratio = table.filter((pl.col("measure") == "spectral_l1l2") & (pl.col("metric") == "RA")
                         & (pl.col("subset") == "all") & (pl.col("eps") == 0.04))
    assert (ratio["predicted"] == 1).all() and (ratio["rho"] > 0.8).all()
    comp = table.filter(pl.col("measure") == "spectral_comp")
    assert (comp["predicted"] == -1).all()
    data = final.collect().filter((pl.col("knob") == "rank") & (pl.col("norm") == "linf")
                                  & (pl.col("eps") == 0.04))
    # the fixture writes spectral_l1l2 = 1 + 15 (1 - comp) into history at every epoch
    assert data["spectral_l1l2"].to_numpy() == pytest.approx(
        1 + 15 * (1 - data["spectral_comp"].to_numpy()))
