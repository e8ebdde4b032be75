"""analysis.predictors on synthetic stores: pooled Spearman of RA with each scale-free statistic
against compressibility at kappa (checked by hand with scipy), bootstrap intervals, the saturation
case the issue describes, and per-eps (never pooled) bound correlations."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from analysis import load
from analysis.predictors import (
    GOAL,
    best_predictors,
    bootstrap_spearman,
    predictor_table,
    trial_statistics,
)
from tests.analysis.helpers import final_rows_by_hand, read_tables, rewrite
from trainables.schema import DATA_STATS, SCALE_FREE_STATS


def _rewrite(run_dir, target, layers: pl.DataFrame):
    """The run with its layers table replaced (trials re-labelled with the new run id)."""
    trials = read_tables(run_dir)["trials"].with_columns(pl.lit(target.name).alias("run_id"))
    return rewrite(run_dir, target, layers=layers, trials=trials)


def _by_hand(run_dir, norm: str, eps: float, column: str) -> tuple[np.ndarray, np.ndarray]:
    """RA (lowest over attacks) and the final-iteration layer mean of `column`, per completed
    trial, in plain Python."""
    tables = read_tables(run_dir)
    final = final_rows_by_hand(run_dir)
    layers = tables["layers"]
    xs, ys = [], []
    for (tid, n, e), rows in sorted(final.items()):
        if n != norm or e != eps:
            continue
        mine = layers.filter(pl.col("trial_id") == tid)
        last = mine.filter(pl.col("iteration") == mine["iteration"].max())
        xs.append(float(last[column].mean()))
        ys.append(min(r["robust_acc"] for r in rows))
    return np.array(xs), np.array(ys)


def test_pooled_spearman_matches_scipy_and_sits_in_its_interval(run_dir):
    table = predictor_table(load(run_dir), n_boot=500)
    for norm, eps in (("linf", 0.04), ("l2", 0.25)):
        for statistic, column in (("spectral_l1l2", "spectral_l1l2"),
                                  ("spectral_comp", "spectral_comp_k10")):
            x, y = _by_hand(run_dir, norm, eps, column)
            row = table.filter((pl.col("norm") == norm) & (pl.col("eps") == eps)
                               & (pl.col("statistic") == statistic)).row(0, named=True)
            assert row["n"] == len(x) == 30  # 2 knobs x 5 strengths x 3 seeds; errored excluded
            assert row["spearman"] == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
            assert -1 <= row["ci_low"] <= row["spearman"] <= row["ci_high"] <= 1
    # RA falls with compressibility: the ratio (lower = more compressible) correlates positively.
    linf = table.filter((pl.col("norm") == "linf") & (pl.col("eps") == 0.04))
    assert linf.filter(pl.col("statistic") == "spectral_l1l2")["spearman"][0] > 0.5
    assert linf.filter(pl.col("statistic") == "spectral_comp")["spearman"][0] < -0.5
    assert set(table["statistic"]) == {*SCALE_FREE_STATS, *DATA_STATS, "spectral_comp",
                                       "neuron_comp", "neuron_comp_l2"}


def test_a_saturating_compressibility_loses_to_a_continuous_statistic(run_dir, tmp_path):
    """comp at kappa clipped at 1 for the more compressible half of the trials (as kappa 0.1 is for
    every rank <= 26): it ties them, and the continuous statistic ranks RA better."""
    tables = read_tables(run_dir)
    layers = tables["layers"].with_columns(
        pl.min_horizontal(pl.lit(1.0), 4.0 * pl.col("spectral_comp_k10")).alias("spectral_comp_k10")
    )
    saturated = _rewrite(run_dir, tmp_path / "saturated", layers)
    table = predictor_table(load(saturated), n_boot=200)
    linf = table.filter((pl.col("norm") == "linf") & (pl.col("eps") == 0.04))
    comp = abs(linf.filter(pl.col("statistic") == "spectral_comp")["spearman"][0])
    ratio = abs(linf.filter(pl.col("statistic") == "spectral_l1l2")["spearman"][0])
    assert ratio > comp + 0.05
    best = best_predictors(table).filter((pl.col("norm") == "linf") & (pl.col("eps") == 0.04))
    assert best["kind"][0] == "scale_free" and best["best_comp"][0] is not None
    assert best["reaches_goal"][0] == (abs(best["spearman"][0]) >= GOAL)


def test_bootstrap_interval_is_wide_for_noise_and_narrow_for_a_monotone_relation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    low, high = bootstrap_spearman(x, rng.normal(size=40), n_boot=1000)
    assert low < 0 < high
    low, high = bootstrap_spearman(x, np.exp(x), n_boot=1000)
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)
    assert np.isnan(bootstrap_spearman(x[:3], x[:3])[0])


def test_infinite_spread_ranks_as_the_largest_value(run_dir, tmp_path):
    """sigma_1 / sigma_k is inf past a layer's rank: the trial must stay in (ranked last), not be
    dropped as analysis.stats drops non-finite pairs."""
    tables = read_tables(run_dir)
    layers = tables["layers"].with_columns(
        pl.when(pl.col("trial_id") == "t0000").then(float("inf"))
        .otherwise(pl.col("spectral_spread_k10")).alias("spectral_spread_k10")
    )
    table = predictor_table(load(_rewrite(run_dir, tmp_path / "inf", layers)), n_boot=50)
    row = table.filter((pl.col("norm") == "linf") & (pl.col("eps") == 0.04)
                       & (pl.col("statistic") == "spectral_spread")).row(0, named=True)
    x, y = _by_hand(run_dir, "linf", 0.04, "spectral_spread_k10")  # sorted by trial id
    x[0] = np.inf  # t0000
    expected = sps.spearmanr(sps.rankdata(x), y).statistic
    assert row["n"] == 30 and row["spearman"] == pytest.approx(expected, abs=1e-12)


def test_trial_statistics_are_layer_means_at_the_last_iteration(run_dir):
    stats = trial_statistics(load(run_dir))
    assert stats.height == 30  # the errored trial is not analysed
    x, _ = _by_hand(run_dir, "linf", 0.04, "stable_rank")
    np.testing.assert_allclose(np.sort(stats["stable_rank"].to_numpy()), np.sort(x))


def test_data_statistics_are_the_last_epochs_against_the_strongest_attack(run_dir, tmp_path):
    """data_gain_l2 planted as -RA of the strongest attack at the last epoch (+RA before it):
    rho is exactly -1 only if the table reads the last history row and the lowest RA over
    attacks; PGD's RA alone orders the trials differently (checked)."""
    final = final_rows_by_hand(run_dir)
    keys = sorted(k for k in final if k[1] == "linf" and k[2] == 0.04)
    strongest = {k[0]: min(r["robust_acc"] for r in final[k]) for k in keys}
    pgd = {k[0]: next(r["robust_acc"] for r in final[k] if r["attack"] == "pgd") for k in keys}
    ra = pl.col("trial_id").replace_strict(strongest, default=None, return_dtype=pl.Float64)
    history = read_tables(run_dir)["history"].with_columns(
        pl.when(pl.col("iteration") == pl.col("iteration").max().over("trial_id"))
        .then(-ra).otherwise(ra).alias("data_gain_l2"),
        pl.lit(float("nan")).alias("data_align"),  # a conv first layer: no value
    )
    trials = read_tables(run_dir)["trials"].with_columns(pl.lit("data").alias("run_id"))
    table = predictor_table(load(rewrite(run_dir, tmp_path / "data", history=history,
                                         trials=trials)), n_boot=100)
    linf = table.filter((pl.col("norm") == "linf") & (pl.col("eps") == 0.04))
    row = linf.filter(pl.col("statistic") == "data_gain_l2").row(0, named=True)
    assert row["kind"] == "data" and row["n"] == 30
    assert row["spearman"] == pytest.approx(-1.0, abs=1e-12) and row["reaches_goal"]
    assert linf["statistic"][0] == "data_gain_l2"  # the best predictor sorts first
    values = [strongest[t] for t in sorted(strongest)]
    assert sps.spearmanr(values, [pgd[t] for t in sorted(pgd)]).statistic < 1 - 1e-6
    align = linf.filter(pl.col("statistic") == "data_align").row(0, named=True)
    assert align["n"] == 0 and align["spearman"] is None and not align["reaches_goal"]
    assert linf["statistic"][-1] in {"data_align", "data_gain_linf"}  # no rho sorts last


def test_cli_prints_the_tables_and_rejects_a_missing_run(run_dir, tmp_path, capsys):
    from analysis.predictors import main

    assert main([str(run_dir), "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "spectral_l1l2" in out and "bound_gap" in out and "data_gain_l2" in out
    assert "rank_varied" in out and "layer1" in out  # the subsets and the per-factor table
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run directory" in err[0]
    for bad in (["--kappa", "0.3"], ["--n-boot", "0"]):
        assert main([str(run_dir), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --")
    with pytest.raises(SystemExit) as exited:
        main([str(run_dir), "--nope"])
    assert exited.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
