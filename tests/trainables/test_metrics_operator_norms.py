"""op_norm against explicit matrices (conv layers unrolled on a tiny input), and Lhat_p against
measured input-output ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.trainables.metrics_models import (
    FCN,
    LowRankConv2d,
    LowRankLinear,
    TinyConvNet,
    conv_with_weight,
    linear_with_weight,
    structured_matrices,
    unrolled_conv_matrix,
)
from trainables.errors import ConfigError
from trainables.metrics import conv_spectral_norm_lower, lipschitz, op_norm

MATRICES = structured_matrices(seed=5)


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_linear_op_norms_are_exact(name: str) -> None:
    w = MATRICES[name].double().numpy()
    layer = linear_with_weight(MATRICES[name])
    assert op_norm(layer, "l2") == pytest.approx(np.linalg.norm(w, 2), rel=1e-6, abs=1e-12)
    assert op_norm(layer, "linf") == pytest.approx(np.linalg.norm(w, np.inf), rel=1e-6)


def _conv_cases() -> list[tuple[nn.Module, tuple[int, int, int]]]:
    torch.manual_seed(0)
    structured = torch.zeros(4, 2, 3, 3)
    structured[1, 0, 1, 1] = 5.0  # one nonzero tap
    structured[3] = torch.randn(2, 3, 3)
    return [
        (conv_with_weight(torch.randn(3, 2, 3, 3)), (2, 5, 5)),
        (conv_with_weight(torch.randn(4, 3, 3, 3), stride=2), (3, 7, 7)),
        (conv_with_weight(torch.randn(2, 2, 5, 5), padding=2), (2, 6, 6)),
        (conv_with_weight(torch.randn(3, 2, 1, 1), padding=0), (2, 4, 4)),
        (conv_with_weight(structured), (2, 5, 5)),
        (LowRankConv2d(2, 4, 3, rank=1, stride=1, padding=1), (2, 5, 5)),
    ]


@pytest.mark.parametrize("case", range(6))
def test_conv_inf_norm_is_exact_for_the_unrolled_convolution(case: int) -> None:
    conv, shape = _conv_cases()[case]
    matrix = unrolled_conv_matrix(conv, shape).numpy()
    assert op_norm(conv, "linf") == pytest.approx(np.linalg.norm(matrix, np.inf), rel=1e-6)


@pytest.mark.parametrize("case", range(6))
def test_conv_l2_upper_bound_and_power_iteration_bracket_sigma_1(case: int) -> None:
    conv, shape = _conv_cases()[case]
    sigma_1 = np.linalg.norm(unrolled_conv_matrix(conv, shape).numpy(), 2)
    lower = conv_spectral_norm_lower(conv, shape[1:], iters=300)
    upper = op_norm(conv, "l2")
    assert upper >= sigma_1 * (1 - 1e-9)
    assert sigma_1 >= lower * (1 - 1e-9)
    assert lower == pytest.approx(sigma_1, rel=1e-3)  # power iteration converges from below


def test_conv_module_output_matches_unrolled_matrix() -> None:
    """Guards the test helper itself: the unrolled matrix is the convolution."""
    conv, shape = _conv_cases()[1]
    x = torch.randn(1, *shape, dtype=torch.float64)
    direct = conv.double()(x).reshape(-1)
    assert torch.allclose(unrolled_conv_matrix(conv, shape) @ x.reshape(-1), direct)


def test_batchnorm_norm_is_that_of_its_diagonal_map() -> None:
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(5)
    nn.init.uniform_(bn.weight, -2.0, 2.0)
    bn.running_var.uniform_(0.1, 3.0)
    bn.eval()
    x = torch.zeros(1, 5, 1, 1)
    offset = bn(x).reshape(-1)
    diagonal = (
        torch.stack(
            [bn(torch.eye(5)[i].reshape(1, 5, 1, 1)).reshape(-1) - offset for i in range(5)]
        )
        .detach()
        .double()
        .numpy()
    )
    assert op_norm(bn, "linf") == pytest.approx(np.linalg.norm(diagonal, np.inf), rel=1e-6)
    assert op_norm(bn, "l2") == pytest.approx(np.linalg.norm(diagonal, 2), rel=1e-6)


def test_low_rank_linear_is_read_through_its_weight() -> None:
    torch.manual_seed(2)
    layer = LowRankLinear(9, 7, rank=2)
    w = layer.weight.detach().double().numpy()
    assert op_norm(layer, "l2") == pytest.approx(np.linalg.norm(w, 2), rel=1e-6)
    assert op_norm(layer, "linf") == pytest.approx(np.linalg.norm(w, np.inf), rel=1e-6)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="p must be one of"):
        op_norm(nn.Linear(2, 2), "l1")
    with pytest.raises(TypeError, match="2-D"):
        op_norm(nn.ReLU(), "l2")


def test_fcn_lipschitz_is_exactly_the_normalized_product() -> None:
    torch.manual_seed(3)
    std = torch.tensor([0.5, 2.0, 1.0, 0.25]).reshape(4, 1, 1)
    model = FCN((4, 3, 3), [20, 15, 10], 5, torch.zeros(4, 1, 1), std)
    weights = [m.weight.detach().double().numpy() for _, m in model.encoder_layers()]
    for p, order in (("l2", 2), ("linf", np.inf)):
        expected = 4.0 * math.prod(np.linalg.norm(w, order) for w in weights)
        assert lipschitz(model, p) == pytest.approx(expected, rel=1e-6)


def _max_ratio(model: nn.Module, p: str, n_pairs: int = 512, seed: int = 0) -> float:
    """Largest measured ||Phi(x+d) - Phi(x)||_p / ||d||_p over random and sign-like pairs."""
    g = torch.Generator().manual_seed(seed)
    shape = model.input_shape
    x = torch.rand(n_pairs, *shape, generator=g)
    scales = torch.logspace(-4, 0, n_pairs)[:, None]
    deltas = torch.randn(n_pairs, math.prod(shape), generator=g)
    deltas[: n_pairs // 2] = deltas[: n_pairs // 2].sign()  # vertices of the L-inf ball
    deltas = (deltas * scales).reshape(n_pairs, *shape)
    order = math.inf if p == "linf" else 2
    model.eval()
    with torch.no_grad():
        moved = (model.features(x + deltas) - model.features(x)).double()
    ratio = moved.norm(p=order, dim=1) / deltas.double().reshape(n_pairs, -1).norm(p=order, dim=1)
    return float(ratio.max())


@pytest.mark.parametrize("p", ["linf", "l2"])
@pytest.mark.parametrize("kind", ["fcn", "fcn_low_rank", "conv", "conv_low_rank"])
def test_lipschitz_bounds_measured_ratios(kind: str, p: str) -> None:
    torch.manual_seed(4)
    if kind.startswith("fcn"):
        rank = 2 if kind.endswith("low_rank") else None
        std = torch.tensor([0.3])
        model: nn.Module = FCN((12,), [16, 16], 3, torch.full((1,), 0.5), std, rank=rank)
    else:
        rank = 2 if kind.endswith("low_rank") else None
        std = torch.tensor([0.2, 0.3]).reshape(2, 1, 1)
        model = TinyConvNet((2, 6, 6), 3, torch.zeros(2, 1, 1), std, rank=rank)
    ratio = _max_ratio(model, p)
    bound = lipschitz(model, p)
    assert ratio <= bound * (1 + 1e-5)
    assert ratio > 0
