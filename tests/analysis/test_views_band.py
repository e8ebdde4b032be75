"""Final robustness per trial, seed means, and the band certified <= attacked <= clean."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from analysis import load
from analysis.band import band_table, band_violations
from analysis.views import config_columns, final_robustness, seed_means
from tests.analysis.helpers import final_rows_by_hand, read_tables, rewrite


def test_final_robustness_combines_attacks_at_the_last_iteration(run_dir):
    final = final_robustness(load(run_dir)).collect()
    expected = final_rows_by_hand(run_dir)
    assert final.height == len(expected) == 30 * 4
    for row in final.iter_rows(named=True):
        rows = expected[(row["trial_id"], row["norm"], row["eps"])]
        assert row["iteration"] == 3
        assert row["robust_acc"] == min(r["robust_acc"] for r in rows)
        assert row["certified_acc"] == max(r["certified_acc"] for r in rows)
        assert row["measured_gap"] == max(r["measured_gap"] for r in rows)
        assert row["attacks"] == "autoattack,pgd"
    assert set(final["status"]) == {"completed"}


def test_seed_means_match_a_t_interval():
    frame = pl.DataFrame({"cfg": [1, 1, 1, 2], "v": [0.1, 0.4, 0.7, 0.5]})
    out = seed_means(frame.lazy(), ["cfg"], ["v"]).collect()
    one = out.row(0, named=True)
    half = sps.t.ppf(0.975, 2) * np.std([0.1, 0.4, 0.7], ddof=1) / np.sqrt(3)
    assert one["n_seeds"] == 3 and one["v"] == pytest.approx(0.4)
    assert (one["v_lo"], one["v_hi"]) == pytest.approx((0.4 - half, 0.4 + half))
    single = out.row(1, named=True)
    assert single["n_seeds"] == 1 and single["v_lo"] is None


def test_band_is_ordered_certified_attacked_clean(run_dir):
    tables = load(run_dir)
    band = band_table(final_robustness(tables), config_columns(tables), "spectral_comp").collect()
    assert band.height == 10 * 4  # configurations x (norm, eps)
    assert (band["certified_acc"] <= band["robust_acc"]).all()
    assert (band["robust_acc"] <= band["clean_acc"]).all()
    assert band_violations(tables).collect().height == 0


def test_band_violations_finds_exactly_the_planted_rows(run_dir, tmp_path):
    robustness = read_tables(run_dir)["robustness"].with_row_index("i")
    robustness = robustness.with_columns(
        pl.when(pl.col("i").is_in([3, 50]))
        .then(pl.col("robust_acc") + 0.5)  # attacked above clean
        .otherwise(pl.col("clean_acc")).alias("clean_acc"),
        pl.when(pl.col("i") == 7)
        .then(pl.col("robust_acc") + 0.01)  # certified above attacked
        .otherwise(pl.col("certified_acc")).alias("certified_acc"),
    ).with_columns(
        pl.when(pl.col("i").is_in([3, 50])).then(pl.col("robust_acc") - 0.5)
        .otherwise(pl.col("clean_acc")).alias("clean_acc")
    )
    planted = rewrite(run_dir, tmp_path / "planted", robustness=robustness.drop("i"))
    bad = band_violations(load(planted)).collect()
    assert bad.height == 3
