"""minimal_eps: r_emp is a budget where the attack succeeds, and the exact distance for linear
models."""

from __future__ import annotations

import math

import pytest
import torch

from tests.trainables.attacks_models import Normalize, digits, trained_digits_mlp
from trainables.attacks import minimal_eps, pgd
from trainables.errors import ConfigError

EPS_MAX = {"linf": 0.3, "l2": 3.0}


def _fooled(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1) != y


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_r_emp_is_where_the_attack_starts_to_succeed(norm):
    torch.set_num_threads(1)
    model = trained_digits_mlp()
    x, y = digits()[2][:200], digits()[3][:200]
    r = minimal_eps(model, x, y, norm=norm, eps_max=EPS_MAX[norm], steps=20, bisection_steps=10)
    assert r.shape == (200,)
    misclassified = _fooled(model, x, y)
    assert torch.equal(r == 0, misclassified)  # 0 exactly for the clean mistakes
    ok = (r > 0) & torch.isfinite(r)
    assert ok.sum() > 150
    # minimal_eps bisects the deterministic PGD (start at x), so the same attack at r_emp
    # succeeds on every sample, and (nearly) always just above it.
    xs, ys, rs = x[ok], y[ok], r[ok]
    at = pgd(model, xs, ys, norm=norm, eps=rs, steps=20, random_start=False)
    assert _fooled(model, at, ys).all()
    above = pgd(model, xs, ys, norm=norm, eps=rs * 1.01, steps=20, random_start=False)
    assert _fooled(model, above, ys).float().mean() >= 0.99
    # Below the bracket's lower end the attack failed during bisection: nearly all fail again.
    below = pgd(model, xs, ys, norm=norm, eps=rs * 0.98, steps=20, random_start=False)
    assert _fooled(model, below, ys).float().mean() <= 0.1
    # A much stronger attack rarely beats r_emp by more than 10%: r_emp is not loose.
    strong = pgd(model, xs, ys, norm=norm, eps=rs * 0.9, steps=100, restarts=3, seed=0)
    assert _fooled(model, strong, ys).float().mean() <= 0.1


def test_unreachable_samples_get_inf():
    model = trained_digits_mlp()
    x, y = digits()[2][:100], digits()[3][:100]
    r = minimal_eps(model, x, y, norm="linf", eps_max=0.02, steps=10, bisection_steps=4)
    correct = ~_fooled(model, x, y)
    robust_at_max = ~_fooled(model, pgd(model, x, y, norm="linf", eps=0.02, steps=10,
                                        random_start=False), y)
    assert torch.equal(torch.isinf(r), correct & robust_at_max)
    assert (r[torch.isfinite(r)] <= 0.02).all()


def _linear_binary(dim: int, seed: int):
    """Normalize -> Linear(dim, 2) with no ReLU; the decision boundary is a hyperplane in
    pixel space with normal a = (w_1 - w_0) / std."""
    torch.manual_seed(seed)
    std = 0.5 + torch.rand(dim)
    model = torch.nn.Sequential(Normalize(torch.full((dim,), 0.5), std), torch.nn.Linear(dim, 2))
    return model, std


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_linear_classifier_r_emp_is_the_distance_to_the_hyperplane(norm):
    dim, n = 20, 300
    model, std = _linear_binary(dim, seed=0)
    gen = torch.Generator().manual_seed(1)
    x = 0.3 + 0.4 * torch.rand(n, dim, generator=gen)  # far from the box's edges
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    w = model[1].weight.detach()
    normal = (w[1] - w[0]) / std  # d(f_1 - f_0) / dx in pixel space
    margin = (logits[:, 1] - logits[:, 0]).abs()
    dual = normal.abs().sum() if norm == "linf" else normal.norm()
    distance = margin / dual  # closed form: margin / ||w_y - w_j||_q, q the dual norm
    # The minimal perturbation moves each pixel by distance * |a_i| / ||a||_2 (L2) or by
    # distance (L-inf); keep samples where that stays inside the box.
    reach = distance if norm == "linf" else distance * normal.abs().max() / normal.norm()
    keep = reach < 0.25
    assert keep.sum() > 50
    x, y, distance = x[keep], y[keep], distance[keep]
    eps_max, bisection_steps = 0.5 if norm == "linf" else 1.0, 14
    r = minimal_eps(model, x, y, norm=norm, eps_max=eps_max, steps=40,
                    bisection_steps=bisection_steps)
    tolerance = eps_max / 2**bisection_steps
    assert torch.isfinite(r).all()
    assert (r >= distance - 1e-5).all()  # nothing beats the exact distance
    assert (r - distance).max().item() <= tolerance + 1e-5  # the bracket width


def test_bad_arguments_raise_config_error():
    model = trained_digits_mlp()
    x, y = digits()[2][:4], digits()[3][:4]
    with pytest.raises(ConfigError, match="eps_max"):
        minimal_eps(model, x, y, norm="linf", eps_max=0.0)
    with pytest.raises(ConfigError, match="eps_max"):
        minimal_eps(model, x, y, norm="linf", eps_max=math.inf)
    with pytest.raises(ConfigError, match="attack must be one of"):
        minimal_eps(model, x, y, norm="linf", eps_max=0.1, attack="autoattack")
