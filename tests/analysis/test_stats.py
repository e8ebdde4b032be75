"""Correlations and their intervals against scipy.stats and the textbook formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis.stats import pearson, spearman


@pytest.fixture
def sample():
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    return x, 0.6 * x + rng.normal(size=40)


def test_pearson_matches_scipy_including_its_fisher_interval(sample):
    x, y = sample
    ours, ref = pearson(x, y), sps.pearsonr(x, y)
    assert ours.r == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue)
    interval = ref.confidence_interval(confidence_level=0.95)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((interval.low, interval.high))


def test_spearman_matches_scipy_and_the_fieller_interval(sample):
    x, y = sample
    ours, ref = spearman(x, y), sps.spearmanr(x, y)
    assert ours.r == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue)
    half = 1.959964 * math.sqrt(1.06 / (len(x) - 3))
    z = math.atanh(ref.statistic)
    assert ours.ci_low == pytest.approx(math.tanh(z - half), abs=1e-6)
    assert ours.ci_high == pytest.approx(math.tanh(z + half), abs=1e-6)
    assert ours.ci_low < ours.r < ours.ci_high


def test_non_finite_pairs_are_dropped_and_constant_input_gives_nan(sample):
    x, y = sample
    x_nan = x.copy()
    x_nan[:5] = np.nan
    assert spearman(x_nan, y).n == 35
    assert spearman(x_nan, y).r == pytest.approx(sps.spearmanr(x[5:], y[5:]).statistic)
    flat = spearman(np.ones(10), np.arange(10.0))
    assert flat.n == 10 and math.isnan(flat.r) and math.isnan(flat.p_value)


def test_spearman_p_value_is_exact_for_few_points():
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.7])
    y = np.array([0.8, 0.5, 0.9, 0.1, 0.3])
    ref = sps.permutation_test(
        (x,), lambda a: sps.spearmanr(a, y).statistic, permutation_type="pairings",
        n_resamples=np.inf, alternative="two-sided",
    )
    assert spearman(x, y).p_value == pytest.approx(ref.pvalue)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]).p_value == pytest.approx(1 / 3)


def test_small_sample_interval_excludes_zero_only_where_the_exact_test_rejects():
    x = np.arange(4.0)
    four = spearman(x, x)  # a perfect order of 4 points: exact p = 2/24
    assert four.r == 1.0 and four.p_value == pytest.approx(1 / 12)
    assert four.ci_low <= 0.0 <= four.ci_high  # the Fisher-z interval alone is [1, 1]
    six = spearman(np.arange(6.0), np.arange(6.0))  # exact p = 2/720: rejects
    assert six.p_value < 0.05 and six.ci_low > 0.5
