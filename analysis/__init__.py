"""Polars over the Parquet result store: load, query, frontier fit, bound comparison, report.

`load(run_dir)` returns Tables, one LazyFrame per store table; `write_report(run_dir)` writes
RUN_DIR/report/. The analysis reads only the store (and trainables.schema), never torch or Ray.
Names other than load, Tables and the errors load on first use, so `python -m analysis.query`
does not pay for scipy and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from analysis.errors import (
    EmptyRunError,
    MalformedStoreError,
    QueryError,
    SchemaVersionError,
    StoreError,
    StoreNotFoundError,
)
from analysis.store import Run, Tables, load

_LAZY = {
    "band_table": "analysis.band",
    "band_violations": "analysis.band",
    "bound_correlations": "analysis.bound",
    "bound_factors": "analysis.bound",
    "factor_correlations": "analysis.bound",
    "violations": "analysis.bound",
    "Frontier": "analysis.frontier",
    "fit_frontiers": "analysis.frontier",
    "fit_power": "analysis.frontier",
    "isotonic_fit": "analysis.frontier",
    "pareto_front": "analysis.frontier",
    "run_query": "analysis.query",
    "write_report": "analysis.report",
    "Correlation": "analysis.stats",
    "pearson": "analysis.stats",
    "spearman": "analysis.stats",
    "near_best_clean": "analysis.trend",
    "trend_table": "analysis.trend",
    "final_robustness": "analysis.views",
    "seed_means": "analysis.views",
    "trial_columns": "analysis.views",
    "uap_robustness": "analysis.views",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


__all__ = [
    "Correlation",
    "EmptyRunError",
    "Frontier",
    "MalformedStoreError",
    "QueryError",
    "Run",
    "SchemaVersionError",
    "StoreError",
    "StoreNotFoundError",
    "Tables",
    "band_table",
    "band_violations",
    "bound_correlations",
    "bound_factors",
    "factor_correlations",
    "final_robustness",
    "fit_frontiers",
    "fit_power",
    "isotonic_fit",
    "load",
    "near_best_clean",
    "pareto_front",
    "pearson",
    "run_query",
    "seed_means",
    "spearman",
    "trend_table",
    "trial_columns",
    "uap_robustness",
    "violations",
    "write_report",
]
