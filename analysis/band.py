"""The theoretical band around true robust accuracy: certified accuracy is a lower bound, any
attack's robust accuracy an upper bound, and neither exceeds clean accuracy (THEORY.md)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.store import Tables
from analysis.views import seed_means

BAND_COLUMNS = ("certified_acc", "robust_acc", "clean_acc")
# The linear-relaxation certificate (final protocol; null where not computed): the band's lower
# edge when present, since it is the tighter lower bound (certified_acc <= it by construction).
RELAXED = "certified_acc_relaxed"
TOL = 1e-9


def band_violations(tables: Tables, tol: float = TOL) -> pl.LazyFrame:
    """Robustness rows (every trial, iteration and attack) breaking certified <= certified
    (relaxed) <= attacked <= clean, or exact > attacked when the exact robust accuracy covers
    every row sample. UAP rows are included: a universal perturbation is an attack too. Must be
    empty. NaN (not computed) never counts as a violation."""
    relaxed = pl.col(RELAXED).fill_nan(None)
    exact = pl.when(pl.col("n_exact") == pl.col("n_eval")).then(pl.col("exact_acc").fill_nan(None))
    return (
        tables.robustness
        .filter(
            (pl.col("certified_acc") > pl.col("robust_acc") + tol)
            | (pl.col("robust_acc") > pl.col("clean_acc") + tol)
            | (relaxed > pl.col("robust_acc") + tol).fill_null(False)
            | (pl.col("certified_acc") > relaxed + tol).fill_null(False)
            | (relaxed > exact + tol).fill_null(False)
            | (exact > pl.col("robust_acc") + tol).fill_null(False)
        )
        .select("run_id", "trial_id", "iteration", "norm", "eps", "attack", *BAND_COLUMNS,
                RELAXED, "exact_acc")
    )


def band_table(final: pl.LazyFrame, config: Sequence[str], measure: str) -> pl.LazyFrame:
    """Per configuration, norm and eps: the seed means (with CIs) of the compressibility measure
    and of the band accuracies (certified_acc_relaxed null where no trial computed it)."""
    return seed_means(final, [*config, "knob", "norm", "eps"],
                      [measure, *BAND_COLUMNS, RELAXED])
