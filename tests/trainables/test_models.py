"""trainables.models: the model protocol, low-rank layers, Lipschitz upper bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.config import MODELS
from trainables.errors import ConfigError
from trainables.models import (
    MODEL_BUILDERS,
    LowRankConv2d,
    LowRankLinear,
    build_model,
)

# (name, input_shape, width, depth, rank): small enough to run in well under a second each.
CASES = [
    ("fcn", (20,), 32, 1, None),
    ("fcn", (1, 6, 6), 32, 3, None),
    ("fcn", (1, 6, 6), 32, 2, 4),
    ("cnn", (1, 8, 8), 32, 1, None),
    ("cnn", (3, 10, 10), 32, 1, 3),
    ("resnet18", (3, 8, 8), 32, 1, None),
    ("resnet18", (3, 8, 8), 32, 1, 2),
]
IDS = [f"{n}-{'x'.join(map(str, s))}-r{r}" for n, s, _, _, r in CASES]



def make(name, shape, width, depth, rank, seed=0):
    torch.manual_seed(seed)
    channels = shape[0] if len(shape) == 3 else 1
    stat_shape = (channels, 1, 1) if len(shape) == 3 else (1,)
    mean = torch.linspace(0.3, 0.5, channels).reshape(stat_shape)
    std = torch.linspace(0.15, 0.3, channels).reshape(stat_shape)
    return build_model(
        name, input_shape=shape, num_classes=5, mean=mean, std=std,
        width=width, depth=depth, rank=rank,
    )


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial eval-mode BN maps, so the bound test exercises their factor."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.randn(n, generator=g) * 1.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.05)


def exact_op_norm(module: nn.Module, p: str) -> float:
    """Test-only op_norm: exact for linear maps, sqrt(kh*kw)*||K||_2 for conv 2-norm."""
    if isinstance(module, nn.BatchNorm2d):
        scale = module.weight.detach() / torch.sqrt(module.running_var + module.eps)
        return float(scale.abs().max())
    w = module.weight.detach().double()
    matrix = w.reshape(w.shape[0], -1).numpy()
    if p == "linf":
        return float(np.abs(matrix).sum(axis=1).max())
    sigma = float(np.linalg.svd(matrix, compute_uv=False)[0])
    return sigma * math.sqrt(w.shape[2] * w.shape[3]) if w.ndim == 4 else sigma


def norm(v: torch.Tensor, p: str) -> torch.Tensor:
    flat = v.flatten(1)
    return flat.abs().amax(dim=1) if p == "linf" else flat.norm(dim=1)


def test_registry_covers_every_configured_model():
    assert sorted(MODEL_BUILDERS) == sorted(MODELS)


@pytest.mark.parametrize(("name", "shape", "width", "depth", "rank"), CASES, ids=IDS)
def test_protocol_shapes_and_head_composition(name, shape, width, depth, rank):
    model = make(name, shape, width, depth, rank).eval()
    x = torch.rand(4, *shape)
    logits = model(x)
    assert logits.shape == (4, 5)
    assert model.features(x).shape == (4, width)
    torch.testing.assert_close(logits, model.head(model.features(x)))
    assert model.input_shape == shape and model.num_classes == 5
    assert isinstance(model.head, nn.Linear) and model.head.weight.shape == (5, width)
    assert model.normalize.mean.shape == model.normalize.std.shape
    torch.testing.assert_close(
        model.normalize(x), (x - model.normalize.mean) / model.normalize.std
    )
    modules = dict(model.named_modules())
    layers = model.encoder_layers()
    assert layers and all(not n.startswith("head") for n, _ in layers)
    for layer_name, layer in layers:
        assert modules[layer_name] is layer
        if layer.weight.ndim == 4:
            assert isinstance(layer.stride, tuple) and isinstance(layer.padding, tuple)
        else:
            assert layer.weight.ndim == 2


@pytest.mark.parametrize(("name", "shape", "width", "depth", "rank"), CASES, ids=IDS)
def test_rank_factorizes_exactly_the_layers_it_constrains(name, shape, width, depth, rank):
    model = make(name, shape, width, depth, rank)
    for _, layer in model.encoder_layers():
        matrix = layer.weight.reshape(layer.weight.shape[0], -1)
        constrained = rank is not None and rank < min(matrix.shape)
        assert isinstance(layer, (LowRankLinear, LowRankConv2d)) == constrained
        if constrained:
            sigma = torch.linalg.svdvals(matrix.detach().double())
            assert int((sigma > 1e-5 * sigma[0]).sum()) <= rank
    assert type(model.head) is nn.Linear


def test_fcn_first_layer_is_factorized_only_below_input_dim():
    model = make("fcn", (1, 6, 6), 64, 2, 40)  # input dim 36 <= 40 < 64
    kinds = [type(layer) for _, layer in model.encoder_layers()]
    assert kinds == [nn.Linear, LowRankLinear]
    assert model.encoder_layers()[0][1].bias is None  # bias-free encoder


def test_low_rank_linear_weight_and_output():
    torch.manual_seed(1)
    layer = LowRankLinear(7, 5, 3)
    torch.testing.assert_close(layer.weight, layer.u @ layer.v)
    x = torch.randn(4, 7)
    torch.testing.assert_close(layer(x), x @ layer.weight.T)
    assert layer.u.shape == (5, 3) and layer.v.shape == (3, 7)


@pytest.mark.parametrize(("stride", "padding", "kernel"), [(1, 1, 3), (2, 1, 3), (2, 0, 1)])
def test_low_rank_conv_equals_conv_with_effective_weight(stride, padding, kernel):
    torch.manual_seed(2)
    layer = LowRankConv2d(3, 6, kernel, rank=2, stride=stride, padding=padding)
    expected = torch.einsum("or,rchw->ochw", layer.u, layer.v)
    torch.testing.assert_close(layer.weight, expected)
    assert layer.weight.shape == (6, 3, kernel, kernel)
    x = torch.randn(2, 3, 9, 9)
    reference = F.conv2d(x, layer.weight, stride=stride, padding=padding)
    torch.testing.assert_close(layer(x), reference, atol=1e-5, rtol=1e-5)


def test_low_rank_assign_weight_is_the_best_rank_r_approximation():
    torch.manual_seed(3)
    layer = LowRankLinear(8, 6, 2)
    target = torch.randn(6, 8, dtype=torch.float64)
    layer.assign_weight(target)
    u, s, vt = np.linalg.svd(target.numpy())
    best = (u[:, :2] * s[:2]) @ vt[:2]
    np.testing.assert_allclose(layer.weight.detach().numpy(), best, atol=1e-5)


@pytest.mark.parametrize(("name", "shape", "width", "depth", "rank"), CASES, ids=IDS)
@pytest.mark.parametrize("p", ["linf", "l2"])
def test_lipschitz_upper_bounds_feature_changes(name, shape, width, depth, rank, p):
    model = make(name, shape, width, depth, rank)
    randomize_batchnorm(model)
    model.eval()
    bound = model.lipschitz_upper(p, exact_op_norm)
    torch.manual_seed(5)
    x = torch.rand(16, *shape)
    ratios = []
    for scale in (1e-3, 0.1):  # local and non-local pairs
        d = torch.randn_like(x) if p == "l2" else torch.sign(torch.randn_like(x))
        d = d * scale
        ratios.append(norm(model.features(x + d) - model.features(x), p) / norm(d, p))
    # a few ascent steps on the ratio, so the check is not only against random directions
    d = (torch.randn_like(x) * 1e-2).requires_grad_(True)
    optimizer = torch.optim.Adam([d], lr=1e-3)
    for _ in range(15):
        ratio = norm(model.features(x + d) - model.features(x), p) / norm(d, p)
        optimizer.zero_grad()
        (-ratio.sum()).backward()
        optimizer.step()
    with torch.no_grad():
        ratios.append(norm(model.features(x + d) - model.features(x), p) / norm(d, p))
    worst = float(torch.cat(ratios).detach().max())
    assert 0 < worst <= bound * (1 + 1e-5)


@pytest.mark.parametrize("p", ["linf", "l2"])
def test_fcn_bound_is_exactly_the_normalized_product(p):
    model = make("fcn", (1, 6, 6), 32, 3, 4)
    expected = 1 / float(model.normalize.std.min())
    for _, layer in model.encoder_layers():
        expected *= exact_op_norm(layer, p)
    assert model.lipschitz_upper(p, exact_op_norm) == pytest.approx(expected, rel=1e-6)


def test_fcn_l2_bound_is_attained_when_all_units_are_active():
    """One bias-free layer, everything active along v_1: the bound is tight, so it cannot be
    an overestimate by a forgotten factor either."""
    model = make("fcn", (12,), 12, 1, None)
    layer = model.encoder_layers()[0][1]
    with torch.no_grad():
        layer.weight.copy_(torch.eye(12) * torch.linspace(0.5, 2.0, 12)[:, None])
    x = torch.full((1, 12), 0.9)
    d = torch.zeros(1, 12)
    d[0, -1] = 0.01
    with torch.no_grad():
        ratio = float(norm(model.features(x + d) - model.features(x), "l2") / norm(d, "l2"))
    assert ratio == pytest.approx(model.lipschitz_upper("l2", exact_op_norm), rel=1e-4)


@pytest.mark.parametrize(("name", "shape", "width", "depth", "rank"), CASES[::2], ids=IDS[::2])
def test_build_is_deterministic_under_seed(name, shape, width, depth, rank):
    a, b, c = (make(name, shape, width, depth, rank, seed=s) for s in (7, 7, 8))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert any(
        not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items()
        if v.dtype.is_floating_point
    )


def test_bad_arguments_raise_config_error():
    kwargs = {"num_classes": 3, "mean": torch.zeros(1), "std": torch.ones(1)}
    with pytest.raises(ConfigError, match="model must be one of"):
        build_model("vit", input_shape=(4,), **kwargs)
    with pytest.raises(ConfigError, match="image input"):
        build_model("cnn", input_shape=(4,), **kwargs)
    with pytest.raises(ConfigError, match="rank"):
        build_model("fcn", input_shape=(4,), rank=0, **kwargs)
