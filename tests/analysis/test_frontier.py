"""Pareto set, isotonic and parametric fits against brute force and known curves."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from analysis import load
from analysis.frontier import (
    BOUNDS,
    C_MAX,
    PARAMETERS,
    bootstrap_indices,
    fit_frontiers,
    fit_power,
    isotonic_fit,
    not_identified,
    pareto_front,
    power_curve,
)
from analysis.views import config_columns, final_robustness


def brute_force_pareto(x, y) -> list[bool]:
    out = []
    for i in range(len(x)):
        dominated = any(
            x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i])
            for j in range(len(x))
        )
        out.append(not dominated)
    return out


def test_pareto_front_equals_brute_force_per_group_with_ties():
    rng = np.random.default_rng(0)
    # coarse values make ties in x, in y and exact duplicates likely
    frame = pl.DataFrame({
        "group": rng.integers(0, 3, 300),
        "x": rng.integers(0, 12, 300) / 10,
        "y": rng.integers(0, 12, 300) / 10,
    }).with_row_index("id")
    result = pareto_front(frame.lazy(), "x", "y", ["group"]).collect().sort("id")
    for g in range(3):
        part = result.filter(pl.col("group") == g)
        expected = brute_force_pareto(part["x"].to_list(), part["y"].to_list())
        assert part["pareto"].to_list() == expected
    assert result["pareto"].sum() < result.height


def test_pareto_front_keeps_the_row_order():
    # the column is added in place: polars' join may return rows in any order unless told
    rng = np.random.default_rng(1)
    for _ in range(20):
        frame = pl.DataFrame({"x": rng.random(40), "y": rng.random(40)}).with_row_index("id")
        result = pareto_front(frame.lazy(), "x", "y").collect()
        assert result["id"].to_list() == list(range(40))
        expected = brute_force_pareto(frame["x"].to_list(), frame["y"].to_list())
        assert result["pareto"].to_list() == expected


def test_pareto_front_without_groups_skips_nan():
    frame = pl.DataFrame({"x": [0.1, 0.5, 0.9, float("nan"), 0.5], "y": [0.9, 0.7, 0.2, 1.0, 0.6]})
    assert pareto_front(frame.lazy(), "x", "y").collect()["pareto"].to_list() == [
        True, True, True, False, False
    ]


def naive_pava_decreasing(values, weights):
    """Pool adjacent violators on blocks, written out directly (O(n^2) worst case)."""
    blocks = [[v * w, w, 1] for v, w in zip(values, weights)]  # weighted sum, weight, count
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] / blocks[i][1] < blocks[i + 1][0] / blocks[i + 1][1]:  # rises: violates
            a, b = blocks[i], blocks.pop(i + 1)
            blocks[i] = [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
            i = max(i - 1, 0)
        else:
            i += 1
    return [blk[0] / blk[1] for blk in blocks for _ in range(blk[2])]


def test_isotonic_fit_is_monotone_and_equals_naive_pava():
    x = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.7])
    y = np.array([0.8, 0.9, 0.7, 0.85, 0.6, 0.65, 0.5, 0.7, 0.3])
    ux, fitted = isotonic_fit(x, y)
    assert np.all(np.diff(fitted) <= 0)
    # ties in x pooled first (mean, weight = count), as the fit documents
    means = [np.mean(y[x == v]) for v in ux]
    counts = [np.sum(x == v) for v in ux]
    np.testing.assert_allclose(fitted, naive_pava_decreasing(means, counts))
    # and the fit never does worse than any other non-increasing step through the same knots
    assert np.sum((np.repeat(fitted, counts) - y) ** 2) <= np.sum((np.mean(y) - y) ** 2)


def test_power_fit_recovers_known_parameters_and_matches_least_squares():
    x = np.linspace(0.05, 0.95, 25)
    truth = (0.85, 0.5, 2.0)
    params = fit_power(x, power_curve(x, *truth))
    np.testing.assert_allclose(params, truth, rtol=5e-3)
    rng = np.random.default_rng(1)
    noisy = power_curve(x, *truth) + rng.normal(0, 0.01, len(x))
    params = fit_power(x, noisy)
    sse = np.sum((power_curve(x, *params) - noisy) ** 2)
    # a brute-force search over a grid of (a, b, c) cannot beat the fit
    a, b, c = np.meshgrid(np.linspace(0.7, 1, 31), np.linspace(0.3, 0.7, 41),
                          np.linspace(1, 3, 41), indexing="ij")
    grid_sse = ((a[..., None] - b[..., None] * x ** c[..., None] - noisy) ** 2).sum(-1)
    assert sse <= grid_sse.min() + 1e-12
    assert fit_power(x[:3], noisy[:3]) is None


def test_bootstrap_resamples_seeds_within_each_configuration():
    configs = np.array([1, 1, 1, 2, 2, 3, 3, 3])
    draws, unit = bootstrap_indices(configs, 50, np.random.default_rng(0))
    assert unit == "seeds within configuration"
    for idx in draws:
        assert sorted(configs[idx]) == sorted(configs)  # the design is kept
    assert any(len(set(idx)) < len(idx) for idx in draws)  # and seeds are resampled
    _, unit = bootstrap_indices(np.arange(5), 3, np.random.default_rng(0))
    assert unit == "trials"


def test_fit_frontiers_on_a_store(run_dir):
    tables = load(run_dir)
    final = final_robustness(tables)
    front = fit_frontiers(final, "spectral_comp", ["norm", "eps"], config_columns(tables),
                          n_boot=30)
    params = front.parameters
    assert params.height == 4  # 2 norms x 2 eps
    assert (params["resampled"] == "seeds within configuration").all()
    assert (params["n_trials"] == 30).all() and (params["n_configs"] == 10).all()
    # robust accuracy falls with compressibility in the fixture: b > 0 and a near 0.8
    assert (params["b"] > 0).all()
    assert ((params["a"] > 0.7) & (params["a"] < 0.95)).all()
    assert (params["b_lo"] <= params["b"]).all() and (params["b"] <= params["b_hi"]).all()
    parametric = front.curves.filter(pl.col("fit") == "parametric")
    assert (parametric["band_lo"] <= parametric["band_hi"]).all()
    # each group's Pareto flags equal the brute force on the same points
    for part in front.points.partition_by(["norm", "eps"]):
        expected = brute_force_pareto(part["comp"].to_list(), part["robust_acc"].to_list())
        assert part["pareto"].to_list() == expected


@pytest.mark.parametrize("n", [0, 2])
def test_too_few_points_leave_parameters_nan(n):
    frame = pl.DataFrame({"norm": ["linf"] * n, "eps": [0.1] * n, "seed": list(range(n)),
                          "c": [0.1 * i for i in range(n)], "robust_acc": [0.5] * n},
                         schema_overrides={"c": pl.Float64, "robust_acc": pl.Float64})
    front = fit_frontiers(frame.lazy(), "c", ["norm", "eps"], ["seed"], n_boot=5)
    assert front.parameters.height == (1 if n else 0)
    if n:
        assert np.isnan(front.parameters["a"][0])


def test_power_fit_stays_in_bounds_and_flags_what_the_data_cannot_identify():
    rng = np.random.default_rng(4)
    # flat data: robust accuracy does not depend on compressibility, so b -> 0 and c is free
    x = np.repeat(np.linspace(0.1, 0.9, 6), 3)
    flat = pl.DataFrame({"norm": "linf", "eps": 0.1, "seed": np.tile([0, 1, 2], 6),
                         "cfg": np.repeat(np.arange(6), 3), "comp": x,
                         "robust_acc": 0.02 + rng.normal(0, 0.01, len(x))})
    front = fit_frontiers(flat.lazy(), "comp", ["norm", "eps"], ["cfg"], n_boot=40)
    row = front.parameters.row(0, named=True)
    for name in PARAMETERS:
        low, high = BOUNDS[name]
        assert low <= row[f"{name}_lo"] <= row[name] <= row[f"{name}_hi"] <= high
    assert "b" in row["not_identified"] or "c" in row["not_identified"]
    # near zero accuracy the band would dip below 0; curves and bands are clipped to [0, 1]
    curves = front.curves.filter(pl.col("fit") == "parametric")
    for column in ("robust_acc", "band_lo", "band_hi"):
        assert curves[column].min() >= 0 and curves[column].max() <= 1
    # a clean power law with many points: every parameter identified
    y = power_curve(x, 0.85, 0.5, 2.0) + rng.normal(0, 0.005, len(x))
    clean = flat.with_columns(pl.Series("robust_acc", y))
    row = fit_frontiers(clean.lazy(), "comp", ["norm", "eps"], ["cfg"], n_boot=40).parameters
    assert row["not_identified"][0] == ""
    assert not_identified({"a": 0.5, "b": 0.2, "c": 1.0}, {"a": 0.6, "b": 0.3, "c": C_MAX}) == [
        "c"]
