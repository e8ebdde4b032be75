"""Clopper-Pearson and Wilson intervals: against scipy's binomtest, edge cases, coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from trainables.errors import ConfigError
from trainables.metrics import clopper_pearson, wilson

CASES = [(0, 1), (1, 1), (0, 10), (10, 10), (3, 10), (7, 10), (1, 256), (230, 256), (512, 1000),
         (999, 1000), (1, 1000)]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_matches_scipy_binomtest(k, n, confidence):
    result = stats.binomtest(k, n)
    for ours, method in ((clopper_pearson, "exact"), (wilson, "wilson")):
        ref = result.proportion_ci(confidence_level=confidence, method=method)
        lo, hi = ours(k, n, confidence)
        assert lo == pytest.approx(ref.low, abs=1e-9), method
        assert hi == pytest.approx(ref.high, abs=1e-9), method


def test_vectorized_matches_scalar_calls():
    k = np.array([[0, 5], [10, 3]])
    n = np.array([10, 10])
    for interval in (clopper_pearson, wilson):
        lo, hi = interval(k, n)
        assert lo.shape == hi.shape == (2, 2)
        for i in range(2):
            for j in range(2):
                assert (lo[i, j], hi[i, j]) == pytest.approx(interval(int(k[i, j]), int(n[j])))


def test_edges():
    for interval in (clopper_pearson, wilson):
        lo, hi = interval(0, 50)
        assert lo == 0.0 and 0 < hi < 0.1
        lo, hi = interval(50, 50)
        assert hi == 1.0 and 0.9 < lo < 1
        lo, hi = interval(0, 0)
        assert np.isnan(lo) and np.isnan(hi)
        lo, hi = interval(np.array([0, 2]), np.array([0, 4]))
        assert np.isnan(lo[0]) and lo[1] < 0.5 < hi[1]
    # Exact 95% upper bound at k = 0: 1 - 0.025^(1/n) (solves (1-p)^n = alpha/2).
    assert clopper_pearson(0, 50)[1] == pytest.approx(1 - 0.025 ** (1 / 50))


@pytest.mark.parametrize("k,n,confidence", [(-1, 5, 0.95), (6, 5, 0.95), (2.5, 5, 0.95),
                                            (1, 5, 1.0), (1, 5, 0.0)])
def test_rejects_bad_counts(k, n, confidence):
    with pytest.raises(ConfigError):
        clopper_pearson(k, n, confidence)


def test_coverage_by_simulation():
    # Clopper-Pearson covers at least the nominal level for every p; Wilson about nominal.
    rng = np.random.default_rng(0)
    n, trials = 200, 4000
    for p in (0.02, 0.3, 0.5, 0.9, 0.99):
        k = rng.binomial(n, p, size=trials)
        lo, hi = clopper_pearson(k, n)
        cp = np.mean((lo <= p) & (p <= hi))
        lo_w, hi_w = wilson(k, n)
        wi = np.mean((lo_w <= p) & (p <= hi_w))
        # Monte-Carlo standard error with 4000 trials is about 0.0035.
        assert cp >= 0.95 - 0.01, (p, cp)
        assert wi >= 0.93, (p, wi)
        assert np.mean(hi_w - lo_w) < np.mean(hi - lo)  # Wilson is narrower on average
