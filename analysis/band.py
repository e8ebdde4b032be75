"""The theoretical band around true robust accuracy: certified accuracy is a lower bound, any
attack's robust accuracy an upper bound, and neither exceeds clean accuracy (THEORY.md)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.store import Tables
from analysis.views import seed_means

BAND_COLUMNS = ("certified_acc", "robust_acc", "clean_acc")
TOL = 1e-9


def band_violations(tables: Tables, tol: float = TOL) -> pl.LazyFrame:
    """Robustness rows (every trial, iteration and attack) breaking certified <= attacked <=
    clean. UAP rows are included: a universal perturbation is an attack too. Must be empty."""
    return (
        tables.robustness
        .filter(
            (pl.col("certified_acc") > pl.col("robust_acc") + tol)
            | (pl.col("robust_acc") > pl.col("clean_acc") + tol)
        )
        .select("run_id", "trial_id", "iteration", "norm", "eps", "attack", *BAND_COLUMNS)
    )


def band_table(final: pl.LazyFrame, config: Sequence[str], measure: str) -> pl.LazyFrame:
    """Per configuration, norm and eps: the seed means (with CIs) of the compressibility measure
    and of the three band accuracies."""
    return seed_means(final, [*config, "knob", "norm", "eps"], [measure, *BAND_COLUMNS])
