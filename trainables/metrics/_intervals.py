"""Confidence intervals for an accuracy k / n over n independent samples (a binomial proportion).

- `clopper_pearson`: the exact interval (inverting two one-sided binomial tests through the beta
  distribution). Coverage is >= the confidence level for every p, at the price of some width: the
  safe choice for a published number.
- `wilson`: the score interval; close to nominal coverage on average, narrower, never outside
  [0, 1], but it can under-cover for p near 0 or 1.
Both take numbers or arrays (broadcast together) and return (lo, hi) of the broadcast shape, as
numpy floats / arrays. n = 0 gives NaN (no evidence); k = 0 gives lo = 0 and k = n gives hi = 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from trainables.errors import ConfigError


def _check(k: ArrayLike, n: ArrayLike, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), but got {confidence!r}")
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    bad = (k_arr < 0) | (k_arr > n_arr) | (k_arr != np.round(k_arr)) | (n_arr != np.round(n_arr))
    if np.any(bad | ~np.isfinite(k_arr) | ~np.isfinite(n_arr)):
        raise ConfigError(
            f"intervals need integer counts 0 <= k <= n, but got k={k!r}, n={n!r}; pass the "
            "number of correct samples and the number of samples"
        )
    return k_arr, n_arr


def _shaped(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | float]:
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


def clopper_pearson(k: ArrayLike, n: ArrayLike, confidence: float = 0.95
                    ) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Exact (Clopper-Pearson) two-sided interval for k successes in n trials."""
    from scipy import stats  # ~0.4 s, paid only by a process that computes intervals

    k_arr, n_arr = _check(k, n, confidence)
    alpha = 1 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        # beta.ppf with a zero shape parameter is NaN: the bounds at k = 0 and k = n are set below.
        lo = stats.beta.ppf(alpha / 2, k_arr, n_arr - k_arr + 1)
        hi = stats.beta.ppf(1 - alpha / 2, k_arr + 1, n_arr - k_arr)
    lo = np.where(k_arr == 0, 0.0, lo)
    hi = np.where(k_arr == n_arr, 1.0, hi)
    empty = n_arr == 0
    return _shaped(np.where(empty, np.nan, lo), np.where(empty, np.nan, hi))


def wilson(k: ArrayLike, n: ArrayLike, confidence: float = 0.95
           ) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Wilson score two-sided interval for k successes in n trials."""
    from scipy import stats  # ~0.4 s, paid only by a process that computes intervals

    k_arr, n_arr = _check(k, n, confidence)
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k_arr / n_arr
        denom = 1 + z**2 / n_arr
        center = (p + z**2 / (2 * n_arr)) / denom
        half = z * np.sqrt(p * (1 - p) / n_arr + z**2 / (4 * n_arr**2)) / denom
    # In exact arithmetic lo = 0 at k = 0 and hi = 1 at k = n; remove the float rounding there.
    lo = np.where(k_arr == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    hi = np.where(k_arr == n_arr, 1.0, np.clip(center + half, 0.0, 1.0))
    empty = n_arr == 0
    return _shaped(np.where(empty, np.nan, lo), np.where(empty, np.nan, hi))
