"""The findings: binomial intervals against scipy, verdicts decided by the interval and the
measure's predicted sign, effect rows against a by-hand computation, and the report opening with
them on the non-saturating l1/l2 axis."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from analysis.report import write_report
from analysis.stats import clopper_pearson, spearman
from analysis.summary import (
    REFERENCE,
    effect_table,
    knob_effect_table,
    pareto_trials,
    predicted_sign,
    sentence,
    verdict,
)
from tests.analysis.conftest import N_EVAL
from tests.analysis.helpers import read_tables, rewrite


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 200), (1, 1)])
def test_clopper_pearson_matches_scipy(k, n):
    expected = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_clopper_pearson_without_a_count_is_empty():
    assert all(np.isnan(clopper_pearson(3, 0)))


@pytest.mark.parametrize("lo,hi,predicted,expected", [
    (-0.9, -0.1, -1, "holds"), (0.1, 0.9, -1, "contradicts"), (-0.5, 0.2, -1, "inconclusive"),
    (float("nan"), float("nan"), -1, "inconclusive"),
    (0.1, 0.9, 1, "holds"), (-0.9, -0.1, 1, "contradicts"), (-0.5, 0.2, 1, "inconclusive"),
])
def test_verdict_is_decided_by_the_interval_and_the_predicted_sign(lo, hi, predicted, expected):
    assert verdict(lo, hi, predicted) == expected


def test_verdict_needs_a_sign():
    with pytest.raises(ValueError, match="predicted must be -1 or"):
        verdict(0.1, 0.9, 0)


@pytest.mark.parametrize("measure,sign", [
    ("spectral_comp", -1), ("neuron_comp", -1), ("neuron_comp_l2", -1),
    ("spectral_l1l2", 1), ("neuron_l1l2_l1", 1), ("neuron_l1l2_l2", 1),
])
def test_predicted_sign_follows_the_direction_of_compressibility(measure, sign):
    assert predicted_sign(measure) == sign


def test_predicted_sign_of_an_unknown_measure_is_an_error():
    with pytest.raises(ValueError, match="direction of compressibility"):
        predicted_sign("stable_rank")


def _final(slope: float, n_configs: int = 6, seeds: int = 2, noise: float = 0.01) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for c in range(n_configs):
        for s in range(seeds):
            comp = 0.1 + 0.8 * c / (n_configs - 1)
            rows.append({"trial_id": f"t{c}{s}", "space": "x", "strength": float(c),
                         "knob": "rank", "norm": "linf", "eps": 0.03, "seed": s,
                         "spectral_comp": comp,
                         # the l1/l2 count falls as comp rises; saturated comp does not separate
                         "spectral_l1l2": 1.0 + 15.0 * (1.0 - comp),
                         "robust_acc": float(np.clip(0.5 + slope * (comp - 0.5)
                                                     + rng.normal(0, noise), 0, 1))})
    return pl.DataFrame(rows)


@pytest.mark.parametrize("slope,expected", [(-0.6, "holds"), (0.6, "contradicts")])
def test_effect_verdict_follows_the_data(slope, expected):
    row = effect_table(_final(slope), "spectral_comp", ["space", "strength"], n_eval=100).row(
        0, named=True)
    assert row["verdict"] == expected
    assert (row["most_ra"] < row["least_ra"]) == (slope < 0)


@pytest.mark.parametrize("slope,expected", [(-0.6, "holds"), (0.6, "contradicts")])
def test_effect_verdict_on_the_l1l2_axis(slope, expected):
    """RA rising with the l1/l2 count (falling with compressibility) is what the paper predicts."""
    row = effect_table(_final(slope), "spectral_l1l2", ["space", "strength"], n_eval=100,
                       secondary="spectral_comp").row(0, named=True)
    assert row["predicted"] == 1
    assert (row["rho"] > 0) == (slope < 0)  # slope is RA against comp, so opposite to l1l2
    assert row["verdict"] == expected
    # least compressed = the largest count, reported with its comp at kappa beside it
    assert row["least_axis"] > row["most_axis"]
    assert row["least_secondary"] < row["most_secondary"]
    assert row["least_axis"] == pytest.approx(1.0 + 15.0 * 0.9)


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
    # the synthetic run's RA falls with compressibility for both knobs at every budget, so it
    # rises with the l1/l2 count (the findings' axis): a positive rho, which holds
    assert findings.count(": holds</p>") == 8 and "contradicts</p>" not in findings
    assert findings.count("predicted &gt; 0") == 8 and "at spectral_l1l2 " in findings
    assert "(spectral_comp " in findings  # the secondary column
    assert "effective spectral count" in findings
    assert f"Clopper-Pearson on {N_EVAL} attacked samples" in findings
    assert "nan" not in findings and '<div class="scroll"><table>' in findings


def test_a_per_row_sample_count_is_preferred():
    final = _final(-0.6).with_columns(pl.lit(400).alias("n_eval"))
    row = effect_table(final, "spectral_comp", ["space", "strength"], n_eval=50).row(
        0, named=True)
    most = final.filter(pl.col("strength") == 5.0)["robust_acc"]
    ci = sps.binomtest(round(most.sum() * 400), 800).proportion_ci(0.95, method="exact")
    assert (row["most_ra_lo"], row["most_ra_hi"]) == pytest.approx((ci.low, ci.high))


def test_pareto_on_the_l1l2_axis_prefers_the_lower_count():
    """Lower l1/l2 = more compressible: a trial with a low count is on the front even with lower
    RA; the trial beaten on both (same count, lower RA) is not."""
    final = pl.DataFrame({"trial_id": ["a", "b", "c"], "norm": "linf", "eps": 0.03,
                          "knob": "rank", "spectral_l1l2": [2.0, 10.0, 10.0],
                          "robust_acc": [0.5, 0.6, 0.4]})
    front = pareto_trials(final, "spectral_l1l2", [])
    assert set(front["trial_id"]) == {"a", "b"}


def test_a_store_without_the_ratio_falls_back_to_comp_at_kappa(run_dir, tmp_path):
    """A store from before schema 3 has no l1/l2 statistics: the findings use comp at kappa with
    its own (negative) predicted sign, and the verdicts still hold."""
    history = read_tables(run_dir)["history"].with_columns(
        pl.lit(None, dtype=pl.Float64).alias("spectral_l1l2"))
    trials = read_tables(run_dir)["trials"].with_columns(pl.lit("old").alias("run_id"))
    old = rewrite(run_dir, tmp_path / "old", history=history, trials=trials)
    html = write_report(old, n_boot=5).read_text()
    findings = html[html.index("<h2>Findings</h2>"):html.index("<h2>Pareto-optimal trials</h2>")]
    assert findings.count(": holds</p>") == 8 and findings.count("predicted &lt; 0") == 8
    assert "at spectral_comp " in findings and "at spectral_l1l2" not in findings
    assert "(spectral_comp " not in findings  # no secondary column repeating the axis


def test_each_knob_is_judged_on_its_own_family_in_a_mixed_space():
    """A neuron knob in a spectral space (mechanism_*): its spectrum does not move, its neuron
    count does; judged on the spectrum it would be inconclusive, on its own count it holds."""
    spectral = _final(-0.6)
    neuron = (_final(-0.6).with_columns(
        pl.lit("group_lasso").alias("knob"),
        pl.col("spectral_l1l2").alias("neuron_l1l2_l1"),
        pl.col("spectral_comp").alias("neuron_comp"),
        pl.lit(15.0).alias("spectral_l1l2"),  # the spectrum does not move with this knob
    ))
    both = pl.concat([spectral.with_columns(pl.lit(None, pl.Float64).alias("neuron_l1l2_l1"),
                                            pl.lit(None, pl.Float64).alias("neuron_comp")),
                      neuron], how="diagonal_relaxed")
    table = knob_effect_table(both, "spectral_l1l2", ["space", "strength"], n_eval=100,
                              secondary="spectral_comp")
    rows = {r["knob"]: r for r in table.iter_rows(named=True)}
    assert rows["rank"]["measure"] == "spectral_l1l2" and rows["rank"]["verdict"] == "holds"
    assert rows["group_lasso"]["measure"] == "neuron_l1l2_l1"
    assert rows["group_lasso"]["verdict"] == "holds"
    assert effect_table(neuron, "spectral_l1l2", ["space", "strength"],
                        n_eval=100).row(0, named=True)["verdict"] == "inconclusive"


def test_one_configuration_is_a_reference_not_an_inconclusive_test():
    # the uncompressed baseline: seeds of one configuration differ by noise, not by compression
    final = _final(-0.6, n_configs=2, seeds=5).filter(pl.col("strength") == 0.0)
    row = effect_table(final, "spectral_comp", ["space", "strength"], n_eval=100).row(
        0, named=True)
    assert row["n_configs"] == 1 and row["n_trials"] == 5
    assert row["verdict"] == REFERENCE and math.isnan(row["rho"])
    assert sentence(row, 100).endswith("(n=5): reference")
    assert "->" not in sentence(row, 100)
    two = effect_table(_final(-0.6, n_configs=2, seeds=2), "spectral_comp",
                       ["space", "strength"], n_eval=100).row(0, named=True)
    assert two["verdict"] == "inconclusive"  # two configurations are a test, if a weak one


def test_family_wise_reading_is_bonferroni_over_the_rows_with_an_interval():
    # three knobs: a strong trend, a weak one (holds alone at 95%, not over three tests) and one
    # configuration; each family interval against the project's own spearman at the strict level.
    # The weak trend's noise draw is one where the two readings differ (seed 9 of this generator).
    rng = np.random.default_rng(9)
    strong = _final(-0.6)
    comp = np.linspace(0.1, 0.9, 12)
    weak = pl.DataFrame({
        "trial_id": [f"w{i}" for i in range(12)], "space": "x", "strength": comp,
        "knob": "nuclear", "norm": "linf", "eps": 0.03, "seed": 0, "spectral_comp": comp,
        "spectral_l1l2": 1.0 + 15.0 * (1.0 - comp),
        "robust_acc": 0.5 - 0.1 * comp + rng.normal(0, 0.03, 12)})
    single = strong.filter(pl.col("strength") == 0.0).with_columns(pl.lit("none").alias("knob"))
    final = pl.concat([strong, weak, single], how="diagonal_relaxed")
    table = knob_effect_table(final, "spectral_l1l2", ["space", "strength"], n_eval=100)
    rows = {r["knob"]: r for r in table.iter_rows(named=True)}
    assert set(table["family_tests"]) == {2}  # the single configuration has no interval
    assert rows["none"]["verdict_family"] == REFERENCE
    for knob in ("rank", "nuclear"):
        part = final.filter(pl.col("knob") == knob)
        alone = spearman(part["spectral_l1l2"].to_numpy(), part["robust_acc"].to_numpy(), 0.95)
        strict = spearman(part["spectral_l1l2"].to_numpy(), part["robust_acc"].to_numpy(), 0.975)
        row = rows[knob]
        assert (row["rho_lo"], row["rho_hi"]) == pytest.approx((alone.ci_low, alone.ci_high))
        assert (row["rho_lo_family"], row["rho_hi_family"]) == pytest.approx(
            (strict.ci_low, strict.ci_high))
        assert row["rho_lo_family"] <= row["rho_lo"] and row["rho_hi_family"] >= row["rho_hi"]
        assert row["verdict_family"] == verdict(strict.ci_low, strict.ci_high, 1)
    assert rows["rank"]["verdict_family"] == "holds"
    assert (rows["nuclear"]["verdict"], rows["nuclear"]["verdict_family"]) == (
        "holds", "inconclusive"), rows["nuclear"]
    assert sentence(rows["nuclear"], 100).endswith(
        f"holds, but inconclusive family-wise (Bonferroni over 2 tests: "
        f"[{rows['nuclear']['rho_lo_family']:.3g}, {rows['nuclear']['rho_hi_family']:.3g}])")
    assert "family-wise" not in sentence(rows["rank"], 100)
