"""Correlations with confidence intervals, on plain arrays."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Correlation:
    method: str  # "pearson" or "spearman"
    n: int
    r: float
    p_value: float
    ci_low: float
    ci_high: float

    def as_dict(self, prefix: str = "") -> dict[str, float | int | str]:
        return {f"{prefix}{k}": v for k, v in asdict(self).items() if k != "method"}


def finite_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def pearson(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> Correlation:
    """Pearson r, its two-sided p-value, and the Fisher-z interval (se = 1 / sqrt(n - 3))."""
    return _correlation("pearson", x, y, level, se_scale=1.0)


def spearman(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> Correlation:
    """Spearman rho, its two-sided p-value, and a Fisher-z interval with the Fieller-Hartley-
    Pearson standard error sqrt(1.06 / (n - 3)) (Fieller et al., Biometrika 1957). Up to
    EXACT_MAX_N pairs the p-value is exact (every permutation), since the t approximation
    scipy uses calls rho = -1 on 3 points p = 0 where the exact answer is 1/3."""
    corr = _correlation("spearman", x, y, level, se_scale=1.06)
    if 3 <= corr.n <= EXACT_MAX_N and not math.isnan(corr.r):
        x, y = finite_pairs(x, y)
        corr = replace(corr, p_value=_exact_spearman_p(x, y, corr.r))
        if corr.p_value > 1 - level and not math.isnan(corr.ci_low):
            # The Fisher-z interval is unreliable this small (a perfect order of 4 points gives
            # [1, 1] although the exact p is 1/12): keep it consistent with the exact test, so
            # an interval excludes 0 only where the test rejects.
            corr = replace(corr, ci_low=min(corr.ci_low, 0.0), ci_high=max(corr.ci_high, 0.0))
    return corr


EXACT_MAX_N = 8  # 8! = 40320 permutations


def _exact_spearman_p(x: np.ndarray, y: np.ndarray, rho: float) -> float:
    rx, ry = sps.rankdata(x), sps.rankdata(y)
    perms = np.array(list(itertools.permutations(ry)))
    rx_c, perms_c = rx - rx.mean(), perms - perms.mean(axis=1, keepdims=True)
    rhos = perms_c @ rx_c / np.sqrt((rx_c @ rx_c) * np.einsum("ij,ij->i", perms_c, perms_c))
    return float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))


def _correlation(
    method: str, x: np.ndarray, y: np.ndarray, level: float, se_scale: float
) -> Correlation:
    x, y = finite_pairs(x, y)
    n = len(x)
    nan = float("nan")
    # A constant input has no defined correlation: report NaN rather than a warning.
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(method, n, nan, nan, nan, nan)
    test = sps.pearsonr(x, y) if method == "pearson" else sps.spearmanr(x, y)
    r, p = float(test.statistic), float(test.pvalue)
    lo = hi = nan
    if n > 3:
        z = math.atanh(min(max(r, -1 + 1e-15), 1 - 1e-15))
        half = sps.norm.ppf(0.5 + level / 2) * math.sqrt(se_scale / (n - 3))
        # min/max: at |r| ~ 1, tanh rounds the interval's ends past r itself
        lo, hi = min(math.tanh(z - half), r), max(math.tanh(z + half), r)
    return Correlation(method, n, r, p, lo, hi)


def clopper_pearson(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion: successes of n samples.
    Conservative (coverage >= level), which suits an accuracy measured on a few hundred samples.
    (nan, nan) when n is not a positive count."""
    if not (n > 0) or math.isnan(successes):
        return float("nan"), float("nan")
    k = min(max(round(successes), 0), round(n))
    tail = (1 - level) / 2
    lo = 0.0 if k == 0 else float(sps.beta.ppf(tail, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - tail, k + 1, n - k))
    return lo, hi
