"""The analysis of the final evaluation protocol's rows: the strongest attack's row per (trial,
norm, eps) with its interval, the relaxed certificate in the band and its checks, and the
scale-free radius comparison; on hand-made stores with known answers."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from analysis import load
from analysis.band import band_violations
from analysis.bound import radius_comparison
from analysis.views import final_robustness
from tests.analysis.conftest import write_store


def _store(tmp_path, robustness: list[dict], n_trials: int) -> object:
    trials = pl.DataFrame([{"run_id": "run", "trial_id": f"t{i}", "space": "s",
                            "status": "completed", "seed": 0,
                            "iterations": 2, "compression": "none", "clean_acc": 0.9,
                            "robust_acc": 0.5} for i in range(n_trials)])
    write_store(tmp_path / "run", {"trials": trials, "robustness": pl.DataFrame(robustness)},
                {"compression": "str"})
    return load(tmp_path / "run")


def _row(tid, attack, ra, lo, hi, *, it=2, relaxed=float("nan"), ratio_g=0.2, ratio_r=0.6,
         r_cert=0.01, r_emp=0.05, r_relaxed=0.03):
    return {"trial_id": tid, "iteration": it, "norm": "linf", "eps": 0.1, "attack": attack,
            "robust_acc": ra, "robust_acc_lo": lo, "robust_acc_hi": hi, "clean_acc": 0.9,
            "certified_acc": 0.1, "n_eval": 1000 if it == 2 else 100,
            "certified_acc_relaxed": relaxed, "cert_ratio_global": ratio_g,
            "cert_ratio_relaxed": ratio_r, "median_r_cert": r_cert, "median_r_emp": r_emp,
            "median_r_cert_relaxed": r_relaxed, "n_exact": 0, "exact_acc": float("nan")}


def test_final_takes_the_strongest_attacks_row_and_interval(tmp_path):
    tables = _store(tmp_path, [
        _row("t0", "pgd", 0.60, 0.57, 0.63, relaxed=0.3),
        _row("t0", "ensemble", 0.55, 0.52, 0.58, relaxed=0.3),
        _row("t0", "pgd", 0.20, 0.1, 0.3, it=1),  # an earlier epoch: ignored
    ], 1)
    row = final_robustness(tables).collect().row(0, named=True)
    assert (row["robust_acc"], row["robust_acc_lo"], row["robust_acc_hi"]) == (0.55, 0.52, 0.58)
    assert row["strongest_attack"] == "ensemble" and row["n_eval"] == 1000
    assert row["certified_acc_relaxed"] == 0.3 and row["attacks"] == "ensemble,pgd"


def test_band_checks_the_relaxed_certificate_but_not_nan(tmp_path):
    tables = _store(tmp_path, [
        _row("t0", "ensemble", 0.55, 0.52, 0.58, relaxed=0.7),  # relaxed above attacked: a bug
        _row("t1", "ensemble", 0.55, 0.52, 0.58),  # NaN: not computed, not a violation
        _row("t2", "ensemble", 0.55, 0.52, 0.58, relaxed=0.05),  # below the global one: a bug
    ], 3)
    bad = band_violations(tables).collect()
    assert sorted(bad["trial_id"].to_list()) == ["t0", "t2"]


def test_radius_comparison_medians_and_correlation(tmp_path):
    rng = np.random.default_rng(0)
    r_emp = np.linspace(0.02, 0.1, 6)
    rows = [_row(f"t{i}", "ensemble", 0.5, 0.4, 0.6, ratio_g=g, ratio_r=r, r_cert=0.2 * e,
                 r_emp=e, r_relaxed=float(0.5 * e + rng.uniform(0, 1e-3)))
            for i, (g, r, e) in enumerate(zip([0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                                              [0.5, 0.6, 0.6, 0.7, 0.8, 0.9], r_emp))]
    table = radius_comparison(final_robustness(_store(tmp_path, rows, 6)))
    got = {r["certificate"]: r for r in table.iter_rows(named=True)}
    assert got["global"]["median_ratio"] == pytest.approx(0.35)
    assert got["relaxed"]["median_ratio"] == pytest.approx(0.65)
    assert got["global"]["spearman_r"] == pytest.approx(1.0)  # r_cert proportional to r_emp
    assert got["relaxed"]["n_trials"] == 6 and not math.isnan(got["relaxed"]["spearman_r"])


def test_history_statistics_come_from_each_trials_last_epoch(tmp_path):
    """data_align / spectral_l1l2 / lip_linf of the final view are the last history row's, per
    trial (an earlier epoch's value would be another network's)."""
    trials = pl.DataFrame([{"run_id": "run", "trial_id": f"t{i}", "space": "s",
                            "status": "completed", "seed": 0, "iterations": 2 + i,
                            "compression": "none", "clean_acc": 0.9, "robust_acc": 0.5}
                           for i in range(2)])
    history = pl.DataFrame([{"trial_id": f"t{i}", "iteration": it, "data_align": 10.0 * i + it,
                             "spectral_l1l2": 100.0 * i + it, "lip_linf": float(it)}
                            for i in range(2) for it in range(1, 3 + i)])
    robustness = [_row(f"t{i}", "pgd", 0.5, 0.4, 0.6, it=2 + i) for i in range(2)]
    write_store(tmp_path / "run", {"trials": trials, "history": history,
                                   "robustness": pl.DataFrame(robustness)},
                {"compression": "str"})
    final = final_robustness(load(tmp_path / "run")).collect().sort("trial_id")
    assert final["data_align"].to_list() == [2.0, 13.0]
    assert final["spectral_l1l2"].to_list() == [2.0, 103.0]
    assert final["lip_linf"].to_list() == [2.0, 3.0]
