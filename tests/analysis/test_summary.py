"""The findings: binomial intervals against scipy, verdicts decided by the interval, effect rows
against a by-hand computation, and the report opening with them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from analysis.report import write_report
from analysis.stats import clopper_pearson
from analysis.summary import effect_table, verdict
from tests.analysis.conftest import N_EVAL


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 200), (1, 1)])
def test_clopper_pearson_matches_scipy(k, n):
    expected = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_clopper_pearson_without_a_count_is_empty():
    assert all(np.isnan(clopper_pearson(3, 0)))


@pytest.mark.parametrize("lo,hi,expected", [
    (-0.9, -0.1, "holds"), (0.1, 0.9, "contradicts"), (-0.5, 0.2, "inconclusive"),
    (float("nan"), float("nan"), "inconclusive"),
])
def test_verdict_is_decided_by_the_interval(lo, hi, expected):
    assert verdict(lo, hi) == expected


def _final(slope: float, n_configs: int = 6, seeds: int = 2, noise: float = 0.01) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for c in range(n_configs):
        for s in range(seeds):
            comp = 0.1 + 0.8 * c / (n_configs - 1)
            rows.append({"trial_id": f"t{c}{s}", "space": "x", "strength": float(c),
                         "knob": "rank", "norm": "linf", "eps": 0.03, "seed": s,
                         "spectral_comp": comp,
                         "robust_acc": float(np.clip(0.5 + slope * (comp - 0.5)
                                                     + rng.normal(0, noise), 0, 1))})
    return pl.DataFrame(rows)


@pytest.mark.parametrize("slope,expected", [(-0.6, "holds"), (0.6, "contradicts")])
def test_effect_verdict_follows_the_data(slope, expected):
    row = effect_table(_final(slope), "spectral_comp", ["space", "strength"], n_eval=100).row(
        0, named=True)
    assert row["verdict"] == expected
    assert (row["most_ra"] < row["least_ra"]) == (slope < 0)


def test_effect_with_too_few_trials_is_inconclusive():
    row = effect_table(_final(-0.6, n_configs=3, seeds=1), "spectral_comp",
                       ["space", "strength"], n_eval=100).row(0, named=True)
    assert row["verdict"] == "inconclusive"


def test_effect_ends_and_intervals_by_hand():
    final = _final(-0.6)
    row = effect_table(final, "spectral_comp", ["space", "strength"], n_eval=50).row(
        0, named=True)
    least = final.filter(pl.col("strength") == 0.0)["robust_acc"]
    most = final.filter(pl.col("strength") == 5.0)["robust_acc"]
    assert row["least_ra"] == pytest.approx(least.mean())
    assert row["most_ra"] == pytest.approx(most.mean())
    # two seeds of 50 samples: an exact interval on 100 pooled samples
    ci = sps.binomtest(round(most.sum() * 50), 100).proportion_ci(0.95, method="exact")
    assert (row["most_ra_lo"], row["most_ra_hi"]) == pytest.approx((ci.low, ci.high))
    assert row["rho"] == pytest.approx(sps.spearmanr(final["spectral_comp"],
                                                     final["robust_acc"]).statistic)


def test_store_intervals_are_used_when_present():
    final = _final(-0.6).with_columns((pl.col("robust_acc") - 0.2).alias("robust_acc_lo"),
                                      (pl.col("robust_acc") + 0.2).alias("robust_acc_hi"))
    row = effect_table(final, "spectral_comp", ["space", "strength"], n_eval=50).row(
        0, named=True)
    assert row["least_ra_hi"] - row["least_ra_lo"] == pytest.approx(0.4)


def test_report_opens_with_findings(run_dir):
    html = write_report(run_dir, n_boot=5).read_text()
    order = [html.index(h) for h in ("<h2>Findings</h2>", "<h2>Pareto-optimal trials</h2>",
                                     "<h2>Invariant checks", "<h2>Interactive figures</h2>")]
    assert order == sorted(order)
    findings = html[order[0]:order[1]]
    # the synthetic run's RA falls with compressibility for both knobs at every budget
    assert findings.count(": holds</p>") == 8 and "contradicts</p>" not in findings
    assert f"Clopper-Pearson on {N_EVAL} attacked samples" in findings
    assert "nan" not in findings and '<div class="scroll"><table>' in findings


def test_a_per_row_sample_count_is_preferred():
    final = _final(-0.6).with_columns(pl.lit(400).alias("n_eval"))
    row = effect_table(final, "spectral_comp", ["space", "strength"], n_eval=50).row(
        0, named=True)
    most = final.filter(pl.col("strength") == 5.0)["robust_acc"]
    ci = sps.binomtest(round(most.sum() * 400), 800).proportion_ci(0.95, method="exact")
    assert (row["most_ra_lo"], row["most_ra_hi"]) == pytest.approx((ci.low, ci.high))
