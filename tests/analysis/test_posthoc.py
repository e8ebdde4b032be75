"""The post-hoc frontier tables: reference row, structured vs unstructured winners, figure."""

from __future__ import annotations

import polars as pl
import pytest

from analysis.posthoc import draw_posthoc, posthoc_table, winners


def _final() -> pl.DataFrame:
    rows = [("none", 1.0, 0.60)]
    rows += [("svd_truncate", 0.1, 0.50), ("svd_truncate", 0.5, 0.58)]
    rows += [("prune_rows", 0.1, 0.20), ("prune_rows", 0.5, 0.40)]
    rows += [("magnitude_layer", 0.1, 0.45), ("magnitude_layer", 0.5, 0.59)]
    rows += [("magnitude_global", 0.1, 0.47), ("magnitude_global", 0.5, 0.61)]
    return pl.DataFrame(
        [{"compression": c, "keep_frac": k, "robust_acc": r, "certified_acc": 0.1,
          "clean_acc": 0.8, "norm": "linf", "eps": 0.02, "seed": s}
         for c, k, r in rows for s in (0, 1)]
    )


def test_posthoc_tables_and_figure(tmp_path):
    table = posthoc_table(_final())
    assert set(table["kind"]) == {"reference", "structured", "unstructured"}
    assert (table["reference_robust_acc"] == 0.60).all() and (table["trials"] == 2).all()
    svd = table.filter((pl.col("compression") == "svd_truncate") & (pl.col("keep_frac") == 0.1))
    assert svd["robust_acc_change"][0] == pytest.approx(-0.10)
    best = winners(table)
    diff = dict(zip(best["keep_frac"], best["structured_minus_unstructured"]))
    assert diff[0.1] == pytest.approx(0.50 - 0.47) and diff[0.5] == pytest.approx(0.58 - 0.61)
    draw_posthoc(table, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    assert posthoc_table(_final().drop("keep_frac")).height == 0
