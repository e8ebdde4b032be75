"""Per-layer metrics against numpy, comp_k invariants, and THEORY.md's sensitivity inequalities."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from tests.trainables.metrics_models import (
    FCN,
    LayerBag,
    LowRankConv2d,
    LowRankLinear,
    TinyConvNet,
    conv_with_weight,
    linear_with_weight,
    structured_matrices,
)
from trainables.metrics import comp_at_kappas, comp_k, layer_metrics, network_summary
from trainables.schema import HEADLINE_KAPPA, KAPPAS, LAYERS_COLUMNS, kappa_tag, kept_count

MATRICES = structured_matrices()


def numpy_comp(theta: np.ndarray, k: int) -> float:
    theta = np.abs(theta.ravel()).astype(np.float64)
    norm = np.linalg.norm(theta)
    if norm == 0:
        return 0.0
    kept = np.zeros_like(theta)
    top = np.argsort(-theta, kind="stable")[:k]
    kept[top] = theta[top]
    return 1.0 - np.linalg.norm(theta - kept) / norm


def numpy_layer_reference(w: np.ndarray) -> dict[str, float]:
    sigma = np.linalg.svd(w, compute_uv=False)
    row_l1 = np.abs(w).sum(axis=1)
    row_l2 = np.sqrt((w**2).sum(axis=1))
    ref = {
        "fro_norm": np.linalg.norm(w, "fro"),
        "spec_norm": sigma[0],
        "inf_norm": np.linalg.norm(w, np.inf),
        "stable_rank": (np.linalg.norm(w, "fro") / sigma[0]) ** 2 if sigma[0] > 0 else 0.0,
        "zero_row_frac": np.mean(np.all(w == 0, axis=1)),
    }
    probs = sigma[sigma > 1e-12 * max(sigma[0], 1e-300)] / sigma.sum() if sigma[0] > 0 else []
    ref["entropy"] = float(-np.sum(probs * np.log(probs))) if len(probs) else 0.0
    ref["effective_rank"] = math.exp(ref["entropy"]) if sigma[0] > 0 else 0.0
    fro = np.linalg.norm(w, "fro")

    def ratio(v: np.ndarray) -> float:
        return float(np.abs(v).sum() / np.linalg.norm(v)) if np.linalg.norm(v) > 0 else 0.0

    ref["spectral_l1l2"] = ratio(sigma)
    ref["neuron_l1l2_l1"] = ratio(row_l1)
    ref["neuron_l1l2_l2"] = ratio(row_l2)
    ref["spec_fro"] = sigma[0] / fro if fro > 0 else 0.0
    ref["inf_fro"] = np.abs(w).sum(axis=1).max() / fro if fro > 0 else 0.0
    for kappa in KAPPAS:
        tag = kappa_tag(kappa)
        ref[f"neuron_comp_l1_{tag}"] = numpy_comp(row_l1, kept_count(kappa, len(row_l1)))
        ref[f"neuron_comp_l2_{tag}"] = numpy_comp(row_l2, kept_count(kappa, len(row_l2)))
        ref[f"spectral_comp_{tag}"] = numpy_comp(sigma, kept_count(kappa, len(sigma)))
    return ref


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_linear_layer_metrics_match_numpy(name: str) -> None:
    w = MATRICES[name]
    (row,) = layer_metrics(LayerBag([linear_with_weight(w)]))
    ref = numpy_layer_reference(w.double().numpy())
    for key, value in ref.items():
        assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        assert math.isfinite(row[key]), key
    assert row["op_norm_l2"] == pytest.approx(ref["spec_norm"], rel=1e-9)


def test_layer_rows_have_exactly_the_schema_columns() -> None:
    torch.manual_seed(0)
    model = TinyConvNet((3, 6, 6), 4, torch.zeros(3, 1, 1), torch.ones(3, 1, 1), rank=2)
    rows = layer_metrics(model)
    expected = set(LAYERS_COLUMNS) - {"trial_id", "iteration"}
    assert [r["layer"] for r in rows] == ["conv1", "block_conv", "conv2"]
    assert [r["layer_index"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert set(row) == expected


def test_conv_layer_metrics_read_the_per_filter_matrix() -> None:
    torch.manual_seed(1)
    weight = torch.randn(5, 3, 3, 3)
    weight[2] = 0.0  # a dead filter is a zero row of K
    (row,) = layer_metrics(LayerBag([conv_with_weight(weight)]))
    ref = numpy_layer_reference(weight.reshape(5, 27).double().numpy())
    for key, value in ref.items():
        assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert row["zero_row_frac"] == pytest.approx(0.2)
    assert row["op_norm_l2"] == pytest.approx(3.0 * ref["spec_norm"])  # sqrt(3 * 3) * sigma_1


def test_low_rank_layers_are_read_through_their_effective_weight() -> None:
    torch.manual_seed(2)
    linear = LowRankLinear(10, 8, rank=3)
    conv = LowRankConv2d(3, 6, 3, rank=2, stride=1, padding=1)
    rows = layer_metrics(LayerBag([linear, conv]))
    sigma_linear = np.linalg.svd(linear.weight.detach().double().numpy(), compute_uv=False)
    assert rows[0]["spec_norm"] == pytest.approx(sigma_linear[0])
    assert rows[0]["spectral_comp_k25"] == pytest.approx(
        numpy_comp(sigma_linear, kept_count(0.25, 8))
    )
    # rank 3 of 8: the top 3 singular values hold everything, so exp(H) <= 3.
    assert rows[0]["effective_rank"] <= 3.0 + 1e-6
    assert rows[1]["effective_rank"] <= 2.0 + 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_comp_k_matches_numpy_and_invariants(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(37, generator=g) * torch.rand(37, generator=g) ** 3
    theta[torch.rand(37, generator=g) < 0.3] = 0.0
    nonzeros = int((theta != 0).sum())
    values = [comp_k(theta, k) for k in range(1, 38)]
    for k, value in enumerate(values, start=1):
        assert value == pytest.approx(numpy_comp(theta.numpy(), k), abs=1e-12)
        assert 0.0 <= value <= 1.0
    assert all(a <= b for a, b in itertools.pairwise(values))  # non-decreasing
    assert values[nonzeros - 1] == 1.0  # exactly, not approximately
    assert values[-1] == 1.0


def test_comp_of_zero_vector_is_zero_not_nan() -> None:
    assert comp_k(torch.zeros(5), 2) == 0.0
    assert comp_at_kappas(torch.zeros(40)) == [0.0] * len(KAPPAS)


def test_comp_at_kappas_uses_kept_count() -> None:
    theta = torch.arange(1.0, 201.0)
    expected = [comp_k(theta, kept_count(kappa, 200)) for kappa in KAPPAS]
    assert comp_at_kappas(theta) == expected
    single = torch.zeros(200)
    single[17] = 1.0
    assert comp_at_kappas(single) == [1.0] * len(KAPPAS)  # one nonzero: k = 1 holds everything


def _sensitivity_layers() -> list[torch.nn.Module]:
    torch.manual_seed(3)
    layers = [linear_with_weight(w) for w in MATRICES.values()]
    layers.append(conv_with_weight(torch.randn(6, 3, 3, 3)))
    layers.append(
        conv_with_weight(torch.randn(8, 4, 3, 3) * torch.logspace(0, -3, 8)[:, None, None, None])
    )
    layers.append(LowRankLinear(30, 20, rank=2))
    layers.append(LowRankConv2d(3, 8, 3, rank=1, stride=2, padding=1))
    fcn = FCN((16,), [24, 12], 3, torch.zeros(1), torch.ones(1))
    layers.extend(m for _, m in fcn.encoder_layers())
    return layers


def test_sensitivity_inequalities_hold_on_every_layer() -> None:
    rows = layer_metrics(LayerBag(_sensitivity_layers()))
    slack = 1e-9
    for layer, row in zip(_sensitivity_layers(), rows, strict=True):
        matrix = layer.weight.detach().double().reshape(layer.weight.shape[0], -1)
        row_l1 = matrix.abs().sum(dim=1)
        out_dim, in_dim = matrix.shape
        for kappa in KAPPAS:
            tag = kappa_tag(kappa)
            k_rows = kept_count(kappa, out_dim)
            k_sigma = kept_count(kappa, min(out_dim, in_dim))
            spectral = row[f"spectral_comp_{tag}"] * row["fro_norm"] / math.sqrt(k_sigma)
            assert row["spec_norm"] >= spectral - slack, (row["layer"], tag)
            neuron = row[f"neuron_comp_l1_{tag}"] * float(row_l1.norm()) / math.sqrt(k_rows)
            assert row["inf_norm"] >= neuron - slack, (row["layer"], tag)
            assert (
                neuron >= row[f"neuron_comp_l1_{tag}"] * row["fro_norm"] / math.sqrt(k_rows) - slack
            )
            # The direction that attains the norm: delta = sign(w_i*) moves unit i* by ||w_i*||_1.
            top = int(row_l1.argmax())
            assert float(matrix[top] @ matrix[top].sign()) == pytest.approx(row["inf_norm"])


def test_network_summary_is_the_mean_at_the_headline_kappa() -> None:
    rows = layer_metrics(LayerBag([linear_with_weight(w) for w in MATRICES.values()]))
    tag = kappa_tag(HEADLINE_KAPPA)
    summary = network_summary(rows)
    assert summary["neuron_comp"] == pytest.approx(
        np.mean([r[f"neuron_comp_l1_{tag}"] for r in rows])
    )
    assert summary["neuron_comp_l2"] == pytest.approx(
        np.mean([r[f"neuron_comp_l2_{tag}"] for r in rows])
    )
    assert summary["spectral_comp"] == pytest.approx(
        np.mean([r[f"spectral_comp_{tag}"] for r in rows])
    )
    assert math.isnan(network_summary([])["spectral_comp"])


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_spectral_spread_is_sigma_1_over_sigma_k_and_inf_past_the_rank(name: str) -> None:
    w = MATRICES[name].double().numpy()
    (row,) = layer_metrics(LayerBag([linear_with_weight(MATRICES[name])]))
    sigma = np.linalg.svd(w, compute_uv=False)
    rank = np.linalg.matrix_rank(MATRICES[name].numpy())  # numpy's float32 tolerance
    for kappa in KAPPAS:
        k = kept_count(kappa, len(sigma))
        value = row[f"spectral_spread_{kappa_tag(kappa)}"]
        if sigma[0] == 0:
            assert value == 0.0
        elif k > rank:
            assert value == math.inf, (kappa, k, rank)
        else:
            assert value == pytest.approx(sigma[0] / sigma[k - 1], rel=1e-9)
            assert value >= 1.0


def test_scale_free_statistics_do_not_change_when_the_layer_is_rescaled() -> None:
    w = MATRICES["gaussian"]
    (row,) = layer_metrics(LayerBag([linear_with_weight(w)]))
    (scaled,) = layer_metrics(LayerBag([linear_with_weight(32.0 * w)]))  # exact in float32
    stats = ["spectral_l1l2", "neuron_l1l2_l1", "neuron_l1l2_l2", "spec_fro", "inf_fro",
             "stable_rank", *(f"spectral_spread_{kappa_tag(k)}" for k in KAPPAS)]
    for key in stats:
        assert scaled[key] == pytest.approx(row[key], rel=1e-9), key
    assert scaled["fro_norm"] == pytest.approx(32.0 * row["fro_norm"])


def test_scale_free_ratios_obey_theory_inequalities_on_every_layer() -> None:
    """sigma_1 / ||W||_F >= comp_k(sigma) / sqrt(k), ||W||_inf / ||W||_F >= comp_k(r1) / sqrt(k),
    and 1 <= ||v||_1 / ||v||_2 <= sqrt(nonzeros) (THEORY.md)."""
    layers = _sensitivity_layers()
    rows = layer_metrics(LayerBag(layers))
    for layer, row in zip(layers, rows, strict=True):
        matrix = layer.weight.detach().double().reshape(layer.weight.shape[0], -1).numpy()
        out_dim, in_dim = matrix.shape
        rank = np.linalg.matrix_rank(matrix, tol=1e-6 * max(np.linalg.norm(matrix, 2), 1e-300))
        for kappa in KAPPAS:
            tag = kappa_tag(kappa)
            k_sigma = kept_count(kappa, min(out_dim, in_dim))
            k_rows = kept_count(kappa, out_dim)
            assert row["spec_fro"] >= row[f"spectral_comp_{tag}"] / math.sqrt(k_sigma) - 1e-12
            assert row["inf_fro"] >= row[f"neuron_comp_l1_{tag}"] / math.sqrt(k_rows) - 1e-12
        if rank:
            # float32 weights: a rank-r layer's trailing singular values are ~1e-7, not 0
            assert 1 - 1e-12 <= row["spectral_l1l2"] <= math.sqrt(rank) + 1e-6, row["layer"]
            nonzero_rows = int((np.abs(matrix).sum(axis=1) > 0).sum())
            assert 1 - 1e-12 <= row["neuron_l1l2_l2"] <= math.sqrt(nonzero_rows) + 1e-9


def test_network_summary_carries_the_scale_free_means() -> None:
    from trainables.schema import SCALE_FREE_STATS

    rows = layer_metrics(LayerBag([linear_with_weight(w) for w in MATRICES.values()]))
    summary = network_summary(rows)
    for key, column in SCALE_FREE_STATS.items():
        assert summary[key] == pytest.approx(np.mean([r[column] for r in rows])), key
