"""Read a fixture store back eagerly and re-write it with edits (for planted violations)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import polars as pl

from tests.analysis.conftest import write_store
from trainables import schema


def read_tables(run_dir: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(run_dir / "store" / name / "*.parquet") for name in schema.TABLES}


def rewrite(run_dir: Path, target: Path, **replaced: pl.DataFrame) -> Path:
    tables = read_tables(run_dir) | replaced
    hyper = {c: "str" if tables["trials"][c].dtype == pl.String else "float64"
             for c in tables["trials"].columns if c not in schema.TRIALS_COLUMNS}
    return write_store(target, tables, hyper)


def final_rows_by_hand(run_dir: Path) -> dict[tuple, list[dict]]:
    """Non-UAP robustness rows of completed trials at each trial's last iteration, grouped by
    (trial_id, norm, eps): plain Python, independent of analysis.views."""
    tables = read_tables(run_dir)
    completed = set(tables["trials"].filter(pl.col("status") == "completed")["trial_id"])
    rows = [r for r in tables["robustness"].iter_rows(named=True)
            if r["attack"] != "uap" and r["trial_id"] in completed]
    last: dict[str, int] = {}
    for r in rows:
        last[r["trial_id"]] = max(last.get(r["trial_id"], 0), r["iteration"])
    grouped = defaultdict(list)
    for r in rows:
        if r["iteration"] == last[r["trial_id"]]:
            grouped[(r["trial_id"], r["norm"], r["eps"])].append(r)
    return grouped
